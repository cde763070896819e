// Small SVG bar charts: enough for turnaround and SLA compliance, no chart library.
const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

export interface Series {
  name: string;
  colour: string;
  values: (number | null)[];
}

/** Grouped vertical bars of ``series`` over ``labels``; ``limit`` draws a dashed target line. */
export function barChart(labels: string[], series: Series[], options: { unit: string; limit?: number; max?: number; height?: number }): SVGSVGElement {
  const height = options.height ?? 220;
  const left = 48;
  const bottom = 46;
  const groupWidth = Math.max(40, 16 * series.length + 20);
  const width = Math.max(420, left + labels.length * groupWidth + 20);
  const top = 24;
  const all = series.flatMap((s) => s.values).filter((v): v is number => v !== null);
  const max = options.max ?? Math.max(1, options.limit ?? 0, ...all) * 1.1;
  const y = (v: number) => top + (height - top - bottom) * (1 - v / max);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart', role: 'img' });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    chart.append(svg('line', { x1: left, x2: width - 10, y1: y(v), y2: y(v), class: 'grid-line' }));
    chart.append(svg('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, `${max < 8 ? v.toFixed(1) : Math.round(v)}${options.unit}`));
  }
  labels.forEach((label, i) => {
    const x0 = left + i * groupWidth + 10;
    series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null || v === undefined) return;
      const bar = svg('rect', { x: x0 + j * 16, y: y(v), width: 14, height: Math.max(0, y(0) - y(v)), fill: s.colour });
      bar.append(svg('title', {}, `${label} · ${s.name}: ${v.toFixed(1)}${options.unit}`));
      chart.append(bar);
    });
    chart.append(svg('text', { x: x0 + (series.length * 16) / 2, y: height - bottom + 14, 'text-anchor': 'middle', class: 'axis' }, label.length > 10 ? `${label.slice(0, 9)}…` : label));
  });
  if (options.limit !== undefined) {
    chart.append(svg('line', { x1: left, x2: width - 10, y1: y(options.limit), y2: y(options.limit), class: 'limit' }));
  }
  series.forEach((s, j) => {
    chart.append(svg('rect', { x: left + j * 110, y: height - 18, width: 10, height: 10, fill: s.colour }));
    chart.append(svg('text', { x: left + j * 110 + 14, y: height - 9, class: 'axis' }, s.name));
  });
  return chart;
}
