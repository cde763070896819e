// The AI's heat maps laid over the stack viewport, on the slice each was computed for.
//
// The pre-screen stores a heat map as a Secondary Capture in its own series (ai_models/results.py):
// the source slice in greys with the heat blended in red→yellow, and a Source Image Sequence
// naming that slice. Cornerstone3D's stack viewport has no fusion, so the heat alone is drawn on
// a canvas over the viewport, mapped image pixel → world → canvas on every render: it follows
// scrolling, zoom and pan, and lies over the reader's own window rather than the AI's.
import { Enums, utilities, type Types } from '@cornerstonejs/core';
import { dicomJson, value, type SeriesInfo } from './dicomweb';
import type { StackViewer } from './stack';

/** The Manufacturer of the pre-screen's own objects (MANUFACTURER in ai_models/results.py). */
const AI_MANUFACTURER = 'Yunying AI';

/** Where one heat map is: its rendered picture, and the slice it lies over. */
export interface HeatMap {
  sourceSop: string;
  url: string;
}

/** The AI heat maps of a study, by the SOP Instance UID of the slice each lies over. */
export async function findHeatMaps(studyUid: string, series: SeriesInfo[]): Promise<Map<string, HeatMap>> {
  const found = new Map<string, HeatMap>();
  // The pre-screen writes its heat maps as OT (routing and the reader's series list ignore OT).
  for (const one of series.filter((s) => s.modality === 'OT')) {
    const base = `/dicomweb/studies/${studyUid}/series/${one.seriesUid}`;
    for (const instance of await dicomJson(`${base}/metadata`)) {
      if (value<string>(instance, '00080070') !== AI_MANUFACTURER) continue;
      if (value<string>(instance, '00280004') !== 'RGB') continue;
      const source = value<Record<string, { Value?: unknown[] }>>(instance, '00082112');
      const sourceSop = source?.['00081155']?.Value?.[0] as string | undefined;
      const sop = value<string>(instance, '00080018');
      if (sourceSop && sop) found.set(sourceSop, { sourceSop, url: `${base}/instances/${sop}/rendered` });
    }
  }
  return found;
}

/** The heat alone (RGBA) from the stored blend: where the AI blended colour (1, h, 0) at alpha a
 * over grey g, R = g(1−a) + a, G = g(1−a) + ha, B = g(1−a); so a = R − B and h = (G − B) / a. */
async function heatLayer(url: string): Promise<HTMLCanvasElement> {
  const response = await fetch(url, { headers: { Accept: 'image/png' }, credentials: 'same-origin' });
  if (!response.ok) throw new Error(`${response.status} ${url}`);
  // PNG, not JPEG: lossy colour would put faint heat everywhere.
  const bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const layer = document.createElement('canvas');
  layer.width = bitmap.width;
  layer.height = bitmap.height;
  const context = layer.getContext('2d', { willReadFrequently: true })!;
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const pixels = context.getImageData(0, 0, layer.width, layer.height);
  const rgba = pixels.data;
  for (let i = 0; i < rgba.length; i += 4) {
    const alpha = rgba[i] - rgba[i + 2];
    if (alpha <= 1) {
      rgba[i + 3] = 0; // grey: no heat here (±1 is the rounding of the stored 8-bit blend)
      continue;
    }
    const heat = Math.min(1, Math.max(0, (rgba[i + 1] - rgba[i + 2]) / alpha));
    rgba[i] = 255;
    rgba[i + 1] = Math.round(255 * heat);
    rgba[i + 2] = 0;
    rgba[i + 3] = alpha;
  }
  context.putImageData(pixels, 0, 0);
  return layer;
}

export class HeatOverlay {
  readonly canvas: HTMLCanvasElement;
  private maps = new Map<string, HeatMap>();
  // source SOP → its heat layer (null: it failed; no heat map drawn beats a broken viewer)
  private layers = new Map<string, HTMLCanvasElement | null>();
  private loading = new Set<string>();
  private shown = false;
  private drawnOn: string | null = null;
  private destroyed = false; // a heat map may arrive after the reader left the study
  private redraw = () => this.draw();

  constructor(
    private viewer: StackViewer,
    private element: HTMLElement,
    private onSlice: (hasHeatMap: boolean) => void = () => undefined,
  ) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'heat-overlay';
    this.canvas.id = 'ai-heat';
    this.canvas.hidden = true;
    element.after(this.canvas);
    // IMAGE_RENDERED follows every change of slice, camera (zoom, pan) and size.
    element.addEventListener(Enums.Events.IMAGE_RENDERED, this.redraw);
    element.addEventListener(Enums.Events.CAMERA_MODIFIED, this.redraw);
  }

  /** The heat maps of the study (replacing any before). */
  set(maps: Map<string, HeatMap>): void {
    this.maps = maps;
    this.layers.clear();
    this.draw();
  }

  get count(): number {
    return this.maps.size;
  }

  get visible(): boolean {
    return this.shown;
  }

  /** Show or hide the overlay; it stays so while the reader scrolls. */
  toggle(show = !this.shown): boolean {
    this.shown = show;
    this.canvas.hidden = !show;
    this.draw();
    return show;
  }

  /** The SOP Instance UID of the slice the overlay is drawn on, or null (tests read it). */
  get drawnSop(): string | null {
    return this.drawnOn;
  }

  private currentSop(): string | null {
    const imageId = this.viewer.viewport.getCurrentImageId();
    return imageId ? (/\/instances\/([^/]+)\/frames\//.exec(imageId)?.[1] ?? null) : null;
  }

  private load(map: HeatMap): void {
    if (this.loading.has(map.sourceSop)) return;
    this.loading.add(map.sourceSop);
    void heatLayer(map.url)
      .catch(() => null)
      .then((layer) => {
        this.loading.delete(map.sourceSop);
        if (this.maps.get(map.sourceSop) !== map) return; // another study's, since
        this.layers.set(map.sourceSop, layer);
        this.draw();
      });
  }

  private draw(): void {
    if (this.destroyed) return;
    const imageId = this.viewer.viewport.getCurrentImageId();
    const sop = this.currentSop();
    const map = sop ? this.maps.get(sop) : undefined;
    this.onSlice(map !== undefined);
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(this.element.clientWidth * ratio);
    const height = Math.round(this.element.clientHeight * ratio);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const context = this.canvas.getContext('2d')!;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, width, height);
    this.drawnOn = null;
    if (!this.shown || !map) return;
    const layer = this.layers.get(map.sourceSop);
    if (layer === undefined) return this.load(map); // drawn when it arrives, if still this slice
    if (layer === null) return;
    const corner = (x: number, y: number) =>
      this.viewer.viewport.worldToCanvas(utilities.imageToWorldCoords(imageId, [x, y]) as Types.Point3);
    // Three corners of the image fix the affine map (rotation and flips included).
    const [ox, oy] = corner(0, 0);
    const [rx, ry] = corner(layer.width, 0);
    const [dx, dy] = corner(0, layer.height);
    context.setTransform(
      (ratio * (rx - ox)) / layer.width,
      (ratio * (ry - oy)) / layer.width,
      (ratio * (dx - ox)) / layer.height,
      (ratio * (dy - oy)) / layer.height,
      ratio * ox,
      ratio * oy,
    );
    context.drawImage(layer, 0, 0);
    this.drawnOn = map.sourceSop;
  }

  destroy(): void {
    this.destroyed = true;
    this.element.removeEventListener(Enums.Events.IMAGE_RENDERED, this.redraw);
    this.element.removeEventListener(Enums.Events.CAMERA_MODIFIED, this.redraw);
    this.canvas.remove();
  }
}
