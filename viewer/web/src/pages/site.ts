// The site portal: the site's own studies (the server answers nothing else), where each stands
// (received → AI → queued → reading → signed → delivered), the report on screen and as PDF.
import { get } from '../api';
import { append, h } from '../dom';
import { dateTime, dicomDate, personName } from '../format';
import { t, term } from '../i18n';
import type { Page } from '../router';

interface SiteStudy {
  study_uid: string;
  patient_name: string | null;
  patient_id: string | null;
  accession_number: string | null;
  study_date: string | null;
  modalities: string;
  instances: number;
  state: string;
  reading: string | null;
  priority: string | null;
}

interface SiteReport {
  id: number;
  study_uid: string;
  version: number;
  fields: Record<string, unknown>;
  findings: string;
  impression: string;
  critical: boolean;
  addendum: string | null;
  signed_at: string | null;
}

interface Delivery {
  id: number;
  report_id: number;
  study_uid: string;
  state: string;
  attempts: number;
  last_error: string | null;
  delivered_at: string | null;
}

interface Critical {
  id: number;
  study_uid: string;
  impression: string;
  ack_due_at: string;
}

/** Where a study stands, as the site understands it. */
function stage(study: SiteStudy, deliveries: Delivery[]): string {
  if (deliveries.some((d) => d.state === 'delivered' || d.state === 'acknowledged')) return 'delivered';
  if (study.reading === 'signed' || study.reading === 'amended') return 'signed';
  if (study.reading === 'claimed' || study.reading === 'preliminary' || study.reading === 'escalated') return 'reading';
  if (study.reading === 'queued') return 'queued';
  if (study.state === 'stable') return 'ai';
  return 'received';
}

export const sitePage: Page = async (root) => {
  const [studies, reports, deliveries, critical] = await Promise.all([
    get<SiteStudy[]>('/api/site/studies?limit=200'),
    get<SiteReport[]>('/api/site/reports?limit=500'),
    get<Delivery[]>('/api/site/deliveries?limit=500'),
    get<Critical[]>('/api/site/critical'),
  ]);
  const latest = new Map<string, SiteReport>();
  for (const report of reports) latest.set(report.study_uid, report); // oldest first: the last wins
  const reportPanel = h('section', { class: 'panel site-report', id: 'site-report' }, h('p', { class: 'muted' }, t('site.pick')));

  function showReport(study: SiteStudy, report: SiteReport): void {
    reportPanel.replaceChildren();
    append(reportPanel, [
      h('h3', {}, t('site.report_of', { name: personName(study.patient_name) })),
      h('p', { class: 'muted' }, t('site.signed_at', { at: dateTime(report.signed_at), version: report.version })),
      report.critical ? h('p', { class: 'critical' }, t('site.critical')) : null,
      h('h4', {}, t('report.findings')),
      h('p', { class: 'report-text', id: 'site-report-findings' }, report.findings),
      h('h4', {}, t('report.impression')),
      h('p', { class: 'report-text', id: 'site-report-impression' }, report.impression),
      report.addendum ? [h('h4', {}, t('report.addendum')), h('p', { class: 'report-text' }, report.addendum)] : null,
      h('a', { class: 'button primary', id: 'report-pdf', href: `/api/reports/${report.id}?format=pdf`, target: '_blank', rel: 'noopener' }, t('site.pdf')),
    ]);
  }

  const rows = studies.map((study) => {
    const mine = deliveries.filter((d) => d.study_uid === study.study_uid);
    const report = latest.get(study.study_uid);
    const where = stage(study, mine);
    const attempts = mine.reduce((n, d) => n + d.attempts, 0);
    const lastError = mine.find((d) => d.last_error)?.last_error;
    return h(
      'tr',
      { 'data-study': study.study_uid },
      h('td', { class: 'patient' }, h('span', { class: 'name' }, personName(study.patient_name)), h('small', {}, study.patient_id ?? '')),
      h('td', {}, dicomDate(study.study_date)),
      h('td', {}, study.modalities.replace(/\\/g, ' ')),
      h('td', {}, study.accession_number ?? ''),
      h('td', {}, study.priority ? term('priority', study.priority) : ''),
      h('td', {}, h('span', { class: `stage ${where}` }, term('stage', where))),
      h('td', {}, mine.length ? t('site.delivery', { state: term('delivery', mine[mine.length - 1].state), n: attempts }) : '', lastError ? h('small', { class: 'error' }, lastError) : null),
      h('td', {}, report ? h('button', { class: 'small', 'data-action': 'report', onclick: () => showReport(study, report) }, t('site.show_report')) : ''),
    );
  });

  append(root, [
    critical.length
      ? h('div', { class: 'banner critical', role: 'alert' }, t('site.critical_open', { n: critical.length }), critical.map((c) => h('div', {}, c.impression)))
      : null,
    h(
      'div',
      { class: 'site-layout' },
      h(
        'section',
        {},
        h('h2', {}, t('site.title')),
        h(
          'table',
          { class: 'grid', id: 'site-studies' },
          h('thead', {}, h('tr', {}, ['patient', 'date', 'modality', 'accession', 'priority', 'stage', 'delivery', 'report'].map((c) => h('th', {}, t(`site.col.${c}`))))),
          h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 8, class: 'empty' }, t('site.empty')))),
        ),
      ),
      reportPanel,
    ),
  ]);
};
