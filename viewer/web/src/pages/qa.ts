// The QA dashboard: turnaround against the SLA per site and over time, the breach list with its
// causes, the peer-review queue, readers' agreement with AI, and the downloads.
import { get, withQuery } from '../api';
import { barChart } from '../chart';
import { h } from '../dom';
import { dateTime, percent } from '../format';
import { t, term } from '../i18n';
import type { Page } from '../router';
import { patientLinksPanel } from './qa-links';

interface Figure {
  n: number;
  p50: number | null;
  p90: number | null;
  p95: number | null;
}

interface Group {
  site?: string;
  period?: string;
  count: number;
  sla: { met: number; breached: number; compliance: number | null };
  minutes: Record<string, Figure>;
}

interface Breach {
  task_id: number;
  study_uid: string;
  site: string;
  priority: string;
  deadline_at: string;
  late_minutes: number;
  open: boolean;
  interval: string | null;
  cause: string;
}

interface PeerCase {
  id: number;
  site: string;
  reader: string;
  reviewer: string | null;
  modality: string;
  score: string | null;
  comment: string | null;
  qa_state: string;
}

interface AiLine {
  model: string;
  version: string;
  site: string;
  screened: number;
  flagged: number;
  flagged_rate: number | null;
  opinions: number;
  agreement: number | null;
}

function table(id: string, columns: string[], rows: (string | number | Node)[][], empty: string): HTMLTableElement {
  return h(
    'table',
    { class: 'grid', id },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.length ? rows.map((row) => h('tr', {}, row.map((cell) => h('td', {}, cell)))) : h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty))),
  );
}

function monthOf(date: Date): string {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}`;
}

export const qaPage: Page = async (root) => {
  const month = monthOf(new Date());
  const since = new Date(Date.now() - 30 * 86400_000).toISOString().slice(0, 10);
  const [bySite, byDay, breaches, queue, ai] = await Promise.all([
    get<{ groups: Group[] }>('/api/qa/turnaround?group_by=site'),
    get<{ groups: Group[] }>(withQuery('/api/qa/turnaround', { group_by: 'period', period: 'day', from: since })),
    get<{ breaches: Breach[] }>('/api/qa/breaches'),
    get<{ cases: PeerCase[] }>('/api/qa/peer/queue').catch(() => ({ cases: [] as PeerCase[] })),
    get<{ models: AiLine[] }>(withQuery('/api/qa/ai', { month })),
  ]);

  const sites = bySite.groups.map((g) => g.site ?? '');
  const turnaround = barChart(
    sites,
    [
      { name: t('qa.p50'), colour: '#4f9dde', values: bySite.groups.map((g) => g.minutes.report?.p50 ?? null) },
      { name: t('qa.p90'), colour: '#e0a030', values: bySite.groups.map((g) => g.minutes.report?.p90 ?? null) },
    ],
    { unit: t('qa.min') },
  );
  const compliance = barChart(
    byDay.groups.map((g) => (g.period ?? '').slice(5)),
    [{ name: t('qa.compliance'), colour: '#3fb27f', values: byDay.groups.map((g) => (g.sla.compliance === null ? null : g.sla.compliance * 100)) }],
    { unit: '%', max: 100, limit: 90 },
  );

  const download = (label: string, href: string) => h('a', { class: 'button small', href, download: '' }, label);
  root.append(
    h('h2', {}, t('qa.title')),
    h(
      'div',
      { class: 'downloads' },
      download(t('qa.turnaround_csv'), '/api/qa/turnaround?group_by=site&format=csv'),
      download(t('qa.turnaround_xlsx'), '/api/qa/turnaround?group_by=site&format=xlsx'),
      download(t('qa.breaches_csv'), '/api/qa/breaches?format=csv'),
      download(t('qa.breaches_xlsx'), '/api/qa/breaches?format=xlsx'),
      download(t('qa.monthly_pdf', { month }), `/api/qa/report?month=${month}`),
    ),
    h(
      'div',
      { class: 'cards' },
      h('section', { class: 'panel' }, h('h3', {}, t('qa.turnaround_by_site')), turnaround),
      h('section', { class: 'panel' }, h('h3', {}, t('qa.compliance_by_day')), compliance),
    ),
    h(
      'section',
      { class: 'panel' },
      h('h3', {}, t('qa.sla_table')),
      table(
        'qa-sites',
        [t('qa.col.site'), t('qa.col.count'), t('qa.col.met'), t('qa.col.breached'), t('qa.compliance'), t('qa.p50'), t('qa.p90')],
        bySite.groups.map((g) => [g.site ?? '', g.count, g.sla.met, g.sla.breached, percent(g.sla.compliance), g.minutes.report?.p50 ?? '—', g.minutes.report?.p90 ?? '—']),
        t('qa.none'),
      ),
    ),
    h(
      'section',
      { class: 'panel' },
      h('h3', {}, t('qa.breaches')),
      table(
        'qa-breaches',
        [t('qa.col.site'), t('qa.col.priority'), t('qa.col.deadline'), t('qa.col.late'), t('qa.col.interval'), t('qa.col.cause')],
        breaches.breaches.map((b) => [b.site, term('priority', b.priority), dateTime(b.deadline_at), `${Math.round(b.late_minutes)} ${t('qa.min')}${b.open ? ` (${t('qa.open')})` : ''}`, term('interval', b.interval), b.cause]),
        t('qa.none'),
      ),
    ),
    h(
      'div',
      { class: 'cards' },
      h(
        'section',
        { class: 'panel' },
        h('h3', {}, t('qa.peer_queue')),
        table(
          'qa-peer',
          [t('qa.col.site'), t('qa.col.reader'), t('qa.col.reviewer'), t('qa.col.modality'), t('qa.col.score'), t('qa.col.comment')],
          queue.cases.map((c) => [c.site, c.reader, c.reviewer ?? '', c.modality, c.score ?? '', c.comment ?? '']),
          t('qa.none'),
        ),
      ),
      h(
        'section',
        { class: 'panel' },
        h('h3', {}, t('qa.ai_agreement')),
        table(
          'qa-ai',
          [t('qa.col.model'), t('qa.col.site'), t('qa.col.screened'), t('qa.col.flagged'), t('qa.col.opinions'), t('qa.col.agreement')],
          ai.models.map((m) => [`${m.model} ${m.version}`, m.site, m.screened, `${m.flagged} (${percent(m.flagged_rate)})`, m.opinions, percent(m.agreement)]),
          t('qa.none'),
        ),
      ),
    ),
    patientLinksPanel(),
  );
};
