// The readers' same-person decisions on probable priors (GET /api/patient-links), for QA staff:
// who said two registrations are, or are not, one patient, and why. A rejection hides the other
// registration's studies from every reader, so a wrong decision is withdrawn here, with a reason
// (POST /api/patient-links/{id}/withdraw): the pair is a probable match again.
import { api, get } from '../api';
import { clear, h } from '../dom';
import { dateTime, dicomDate, personName } from '../format';
import { t, term } from '../i18n';
import { failure } from './priors-list';

interface LinkedPatient {
  site: string;
  patient_id: string;
  name: string | null;
  birth_date: string | null;
  sex: string | null;
}

interface Link {
  id: number;
  decision: 'confirmed' | 'rejected';
  decided_by: string;
  decided_at: string;
  reason: string | null;
  patients: LinkedPatient[];
}

function patientText(p: LinkedPatient): string {
  return `${p.site} · ${p.patient_id} · ${personName(p.name)} · ${dicomDate(p.birth_date)} ${term('sex', p.sex)}`;
}

export function patientLinksPanel(): HTMLElement {
  const body = h('tbody', {});
  const status = h('p', { class: 'status', role: 'status' });
  const panel = h(
    'section',
    { class: 'panel', id: 'qa-links' },
    h('h3', {}, t('qa.links')),
    h('p', { class: 'hint' }, t('qa.links_hint')),
    h(
      'table',
      { class: 'grid' },
      h('thead', {}, h('tr', {}, [t('qa.col.decision'), t('qa.col.patients'), t('qa.col.decided_by'), t('qa.col.reason'), ''].map((c) => h('th', {}, c)))),
      body,
    ),
    status,
  );

  const withdraw = async (link: Link, reason: string): Promise<void> => {
    try {
      await api('POST', `/api/patient-links/${link.id}/withdraw`, { reason: reason.trim() || null });
      status.textContent = t('qa.link_withdrawn');
      await load();
    } catch (error) {
      status.textContent = failure(error);
    }
  };

  const row = (link: Link): HTMLElement => {
    const reason = h('input', { type: 'text', class: 'link-reason', maxlength: 500, placeholder: t('prior.reason') });
    return h(
      'tr',
      { 'data-link': link.id },
      h('td', {}, t(`qa.link.${link.decision}`)),
      h('td', {}, link.patients.map((p) => h('div', {}, patientText(p)))),
      h('td', {}, link.decided_by, h('div', { class: 'muted' }, dateTime(link.decided_at))),
      h('td', {}, link.reason ?? ''),
      h('td', {}, reason, h('button', { class: 'small link-withdraw', onclick: () => void withdraw(link, reason.value) }, t('qa.link_withdraw'))),
    );
  };

  const load = async (): Promise<void> => {
    const links = await get<Link[]>('/api/patient-links').catch(() => [] as Link[]);
    clear(body);
    body.append(...(links.length ? links.map(row) : [h('tr', {}, h('td', { colspan: 5, class: 'empty' }, t('qa.none')))]));
  };
  void load();
  return panel;
}
