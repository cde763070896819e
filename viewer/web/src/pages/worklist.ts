import { api, get, withQuery } from '../api';
import { h, clear } from '../dom';
import { explain } from '../forms';
import { ageAt, countdown, dateTime, personName } from '../format';
import { t, term } from '../i18n';
import { navigate, type Page } from '../router';

export interface AiFlag {
  finding_id?: number;
  label: string;
  probability: number | null;
  model: string;
  version?: string;
  positive: boolean;
  explanation?: string;
}

interface Row {
  id: number;
  study_uid: string;
  state: string;
  priority: string;
  deadline_at: string;
  overdue: boolean;
  modality: string | null;
  body_part: string | null;
  ai_flags: AiFlag[];
  mine: boolean;
  claimed_by: number | null;
  patient_name: string | null;
  patient_id: string | null;
  patient_birth_date: string | null;
  patient_sex: string | null;
  study_date: string | null;
  received_at: string | null;
  accession_number: string | null;
  study_description: string | null;
  site: string;
  site_id: number;
  tier: string;
  escalation_reason: string | null;
}

interface Worklist {
  tasks: Row[];
  counts: Record<string, number>;
}

const POLL_MS = 10_000;
const VIEW_KEY = 'yy-worklist-view';

interface View {
  state: string;
  priority: string;
  modality: string;
  site: string;
  mine: boolean;
}

const DEFAULT_VIEW: View = { state: '', priority: '', modality: '', site: '', mine: false };

/** Filters saved under a name on the server (/api/worklist/views): they follow the reader. */
interface NamedView {
  id: number;
  name: string;
  filters: View;
}

function savedView(): View {
  try {
    return { ...DEFAULT_VIEW, ...JSON.parse(localStorage.getItem(VIEW_KEY) ?? '{}') };
  } catch {
    return { ...DEFAULT_VIEW };
  }
}

/** The positive AI finding with the highest probability, if any. */
export function topFinding(flags: AiFlag[]): AiFlag | null {
  const positives = flags.filter((f) => f.positive);
  positives.sort((a, b) => (b.probability ?? 0) - (a.probability ?? 0));
  return positives[0] ?? null;
}

function select(name: string, value: string, options: [string, string][]): HTMLSelectElement {
  const element = h('select', { name, id: `filter-${name}` }, options.map(([v, label]) => h('option', { value: v }, label)));
  element.value = value;
  return element;
}

export const worklistPage: Page = (root) => {
  const view = savedView();
  const sites = new Map<string, string>();
  const stateFilter = select('state', view.state, [
    ['', t('worklist.filter.open')],
    ...['queued', 'claimed', 'preliminary', 'signed', 'escalated'].map((s): [string, string] => [s, term('state', s)]),
  ]);
  const priorityFilter = select('priority', view.priority, [
    ['', t('worklist.filter.any_priority')],
    ...['stat', 'urgent', 'routine'].map((p): [string, string] => [p, term('priority', p)]),
  ]);
  const modalityFilter = select('modality', view.modality, [
    ['', t('worklist.filter.any_modality')],
    ...['CT', 'DX', 'CR', 'MR'].map((m): [string, string] => [m, m]),
  ]);
  const siteFilter = select('site', view.site, [['', t('worklist.filter.any_site')]]);
  const mineFilter = h('input', { type: 'checkbox', id: 'filter-mine', checked: view.mine });
  const counts = h('span', { class: 'counts', id: 'counts' });
  const updated = h('span', { class: 'muted', id: 'updated' });
  const body = h('tbody', { id: 'worklist-rows' });
  const error = h('p', { class: 'error', role: 'alert' });
  let rows: Row[] = [];

  const currentView = (): View => ({
    state: stateFilter.value,
    priority: priorityFilter.value,
    modality: modalityFilter.value,
    site: siteFilter.value,
    mine: mineFilter.checked,
  });

  async function open(row: Row): Promise<void> {
    try {
      if (row.state === 'queued') await api('POST', `/api/tasks/${row.id}/claim`);
      navigate(`/read/${row.id}`);
    } catch (failure) {
      error.textContent = t('worklist.claim_failed', { detail: (failure as Error).message });
      void refresh();
    }
  }

  function draw(): void {
    clear(body);
    if (!rows.length) {
      body.append(h('tr', {}, h('td', { colspan: 11, class: 'empty' }, t('worklist.empty'))));
      return;
    }
    for (const row of rows) {
      const top = topFinding(row.ai_flags);
      const left = countdown(row.deadline_at);
      const action =
        row.state === 'queued'
          ? h('button', { class: 'primary small', 'data-action': 'claim', onclick: () => void open(row) }, t('worklist.claim'))
          : row.mine
            ? h('button', { class: 'small', 'data-action': 'open', onclick: () => void open(row) }, t('worklist.open'))
            : h('span', { class: 'muted' }, t('worklist.taken'));
      const tr = h(
        'tr',
        { 'data-task': row.id, 'data-study': row.study_uid, class: `priority-${row.priority}` },
        h('td', {}, h('span', { class: `badge priority ${row.priority}` }, term('priority', row.priority))),
        h(
          'td',
          { class: 'ai' },
          top
            ? h('span', { class: 'badge ai-flag', title: top.explanation ?? '' }, `AI ${term('finding', top.label)} ${top.probability !== null ? Math.round(top.probability * 100) + '%' : ''}`)
            : row.ai_flags.length
              ? h('span', { class: 'muted' }, t('worklist.ai_negative'))
              : '',
        ),
        h('td', {}, row.site),
        h('td', { class: 'patient' }, h('span', { class: 'name' }, personName(row.patient_name)), h('small', {}, row.patient_id ?? '')),
        h('td', {}, [ageAt(row.patient_birth_date, row.study_date), term('sex', row.patient_sex)].filter(Boolean).join(' / ')),
        h('td', {}, [row.modality, row.body_part].filter(Boolean).join(' / '), h('small', {}, row.study_description ?? '')),
        h('td', {}, dateTime(row.received_at)),
        h('td', { class: `countdown${left.breached ? ' breached' : ''}`, 'data-deadline': row.deadline_at }, left.text),
        h('td', {}, h('span', { class: `state ${row.state}` }, term('state', row.state)), row.escalation_reason ? h('small', {}, row.escalation_reason) : null),
        h('td', {}, action),
      );
      tr.addEventListener('dblclick', () => {
        if (row.state === 'queued' || row.mine) void open(row);
      });
      body.append(tr);
    }
  }

  function tick(): void {
    const now = Date.now();
    body.querySelectorAll<HTMLElement>('td.countdown').forEach((cell) => {
      const left = countdown(cell.dataset.deadline!, now);
      cell.textContent = left.text;
      cell.classList.toggle('breached', left.breached);
    });
  }

  let inFlight = false;
  async function refresh(): Promise<void> {
    if (inFlight) return;
    inFlight = true;
    const chosen = currentView();
    try {
      const answer = await get<Worklist>(
        withQuery('/api/worklist', {
          state: chosen.state ? [chosen.state] : null,
          priority: chosen.priority,
          modality: chosen.modality,
          site: chosen.site,
          mine: chosen.mine,
          limit: 200,
        }),
      );
      rows = answer.tasks;
      for (const row of rows) sites.set(String(row.site_id), row.site);
      const known = new Set(Array.from(siteFilter.options).map((o) => o.value));
      for (const [id, name] of sites) if (!known.has(id)) siteFilter.append(h('option', { value: id }, name));
      counts.textContent = ['queued', 'claimed', 'preliminary']
        .map((s) => `${term('state', s)} ${answer.counts[s] ?? 0}${(answer.counts[s] ?? 0) >= 100 ? '+' : ''}`)
        .join(' · ');
      updated.textContent = t('worklist.updated', { time: new Date().toLocaleTimeString() });
      error.textContent = '';
      draw();
    } catch (failure) {
      error.textContent = t('app.failed', { detail: (failure as Error).message });
    } finally {
      inFlight = false;
    }
  }

  for (const control of [stateFilter, priorityFilter, modalityFilter, siteFilter, mineFilter]) {
    control.addEventListener('change', () => {
      localStorage.setItem(VIEW_KEY, JSON.stringify(currentView()));
      namedViews.value = '';
      deleteView.disabled = true;
      void refresh();
    });
  }

  // Named views: pick one to apply its filters, save the current filters under a name, delete.
  let named: NamedView[] = [];
  const namedViews = h('select', { id: 'saved-views', title: t('views.pick') });
  const viewName = h('input', { id: 'view-name', name: 'name', maxlength: 60, placeholder: t('views.name') });
  const viewError = h('span', { class: 'error', id: 'view-error', role: 'alert' });
  const deleteView = h('button', { class: 'small', id: 'view-delete', title: t('views.delete'), disabled: true }, '✕');
  const saveView = h('button', { class: 'small', id: 'view-save', type: 'submit' }, t('views.save_as'));

  function listViews(chosen: number | null): void {
    clear(namedViews);
    namedViews.append(h('option', { value: '' }, t('views.pick')), ...named.map((v) => h('option', { value: v.id }, v.name)));
    namedViews.value = chosen === null ? '' : String(chosen);
    deleteView.disabled = chosen === null;
  }

  async function loadViews(chosen: number | null = null): Promise<void> {
    named = await get<NamedView[]>('/api/worklist/views');
    listViews(chosen);
  }

  function apply(filters: View): void {
    const view = { ...DEFAULT_VIEW, ...filters };
    if (view.site && !Array.from(siteFilter.options).some((o) => o.value === view.site)) {
      siteFilter.append(h('option', { value: view.site }, sites.get(view.site) ?? `#${view.site}`));
    }
    stateFilter.value = view.state;
    priorityFilter.value = view.priority;
    modalityFilter.value = view.modality;
    siteFilter.value = view.site;
    mineFilter.checked = view.mine;
    localStorage.setItem(VIEW_KEY, JSON.stringify(currentView()));
    void refresh();
  }

  namedViews.addEventListener('change', () => {
    const view = named.find((v) => String(v.id) === namedViews.value);
    deleteView.disabled = !view;
    viewError.textContent = '';
    if (view) apply(view.filters);
  });
  deleteView.addEventListener('click', async () => {
    const view = named.find((v) => String(v.id) === namedViews.value);
    if (!view || !window.confirm(t('views.delete_confirm', { name: view.name }))) return;
    try {
      await api('DELETE', `/api/worklist/views/${view.id}`);
      await loadViews();
    } catch (failure) {
      viewError.textContent = explain(failure);
    }
  });
  const saveForm = h('form', { class: 'saved-views', id: 'view-form' }, namedViews, deleteView, viewName, saveView, viewError);
  saveForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    viewError.textContent = '';
    try {
      const saved = await api<NamedView>('POST', '/api/worklist/views', { name: viewName.value, filters: currentView() });
      viewName.value = '';
      await loadViews(saved.id);
    } catch (failure) {
      viewError.textContent = explain(failure);
    }
  });
  void loadViews().catch((failure) => (viewError.textContent = explain(failure)));

  const nextButton = h(
    'button',
    {
      class: 'primary',
      id: 'claim-next',
      onclick: async () => {
        try {
          const task = await api<{ id: number }>('POST', '/api/worklist/next');
          navigate(`/read/${task.id}`);
        } catch (failure) {
          error.textContent = t('worklist.claim_failed', { detail: (failure as Error).message });
        }
      },
    },
    t('worklist.next'),
  );

  root.append(
    h(
      'section',
      { class: 'worklist' },
      h(
        'div',
        { class: 'toolbar' },
        h('h2', {}, t('worklist.title')),
        stateFilter,
        priorityFilter,
        modalityFilter,
        siteFilter,
        h('label', { class: 'inline' }, mineFilter, t('worklist.filter.mine')),
        saveForm,
        h('span', { class: 'spacer' }),
        counts,
        updated,
        nextButton,
      ),
      error,
      h(
        'table',
        { class: 'grid', id: 'worklist' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['priority', 'ai', 'site', 'patient', 'age_sex', 'modality', 'received', 'time_left', 'state', 'action'].map((c) =>
              h('th', {}, t(`worklist.col.${c}`)),
            ),
          ),
        ),
        body,
      ),
    ),
  );
  void refresh();
  const poll = window.setInterval(() => void refresh(), POLL_MS);
  const clock = window.setInterval(tick, 1000);
  return () => {
    window.clearInterval(poll);
    window.clearInterval(clock);
  };
};
