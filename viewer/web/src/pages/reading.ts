// One screen to read a study: series thumbnails, the Cornerstone3D viewport, AI findings and
// the structured report beside the images. Loaded lazily (with Cornerstone) from main.ts.
import { api, get } from '../api';
import { h } from '../dom';
import { ageAt, countdown, dicomDate, personName } from '../format';
import { t, term } from '../i18n';
import { navigate, type Page } from '../router';
import type { HeatMap, HeatOverlay } from '../viewer/heatmap';
import { NO_PIXELS, firstSeries, listSeries, type SeriesInfo } from '../viewer/dicomweb';
import { PRESETS } from '../viewer/presets';
import { showPreview, type ShownPreview } from '../viewer/preview';
import { takePreview } from './reading-early';
import type { Measurement, StackViewer, ToolKey, fetched } from '../viewer/stack';
import { PriorsList, basisText, type Prior } from './priors-list';
import { ReportForm, chooseTemplate, type ReportContent, type Template } from './report-form';
import type { AiFlag } from './worklist';

interface AiLocation {
  sop_instance_uid: string;
  frame?: number;
}

interface AiFinding {
  id?: number;
  label: string;
  probability: number | null;
  model: string;
  version?: string;
  positive: boolean;
  explanation?: string;
  location: AiLocation[];
  agree: boolean | null;
}

interface Report extends ReportContent {
  id: number;
  version: number;
  status: string;
  signed_at: string | null;
  addendum: string | null;
}

interface Task {
  id: number;
  study_uid: string;
  state: string;
  priority: string;
  deadline_at: string;
  tier: string;
  modality: string | null;
  body_part: string | null;
  ai_flags: AiFlag[];
  mine: boolean;
  site: string;
  escalation_reason: string | null;
  route_reason: string;
  study: {
    patient_name: string | null;
    patient_id: string | null;
    patient_birth_date: string | null;
    patient_sex: string | null;
    accession_number: string | null;
    study_date: string | null;
    study_description: string | null;
    body_part: string | null;
    instances: number;
  };
  report: Report | null;
  carried_report: Report | null;
}

const TOOL_KEYS: [ToolKey, string][] = [
  ['wl', 'w'],
  ['pan', 'p'],
  ['zoom', 'z'],
  ['length', 'l'],
  ['angle', 'a'],
  ['ellipse', 'e'],
];

declare global {
  interface Window {
    // What the browser tests read: timings and the viewer's own transforms.
    __yyViewer?: {
      firstImageMs: number | null;
      firstImageAt: number | null;
      loaded: number;
      allLoadedAt: number | null;
      /** When Cornerstone's tools (loaded after the first image) answer the mouse. */
      toolsAt: number | null;
      slice: number;
      total: number;
      viewer: StackViewer;
      voi: [number, number];
      prior?: () => StackViewer | null;
      heat?: HeatOverlay;
      /** What each series was fetched as (native or HTJ2K renditions) and the line speed measured. */
      fetched?: typeof fetched;
    };
  }
}

type Viewing = [typeof import('../viewer/stack'), typeof import('../viewer/heatmap')];
let viewingModules: Promise<Viewing> | null = null;

/** The viewer's chunk (Cornerstone core, vtk.js, the image loader), imported on first need: the
 * page around it is built without it. */
function viewing(): Promise<Viewing> {
  viewingModules ??= Promise.all([import('../viewer/stack'), import('../viewer/heatmap')]);
  return viewingModules;
}

/** Start Cornerstone and load its tools before a study is opened (the worklist calls this when idle). */
export async function warmUp(): Promise<void> {
  const [{ initialise, loadTools }] = await viewing();
  await initialise();
  await loadTools();
}

/** How long the page waits for the server's picture of the opening slice before it runs the
 * viewer's chunk (whose evaluation holds every paint back for ~0.2 s). */
const PREVIEW_WAIT_MS = 250;

export const readingPage: Page = async (root, params) => {
  const taskId = Number(params.taskId);
  performance.mark('yy:reading');
  // Opened by its URL, the viewer's chunk has not run yet: the main chunk has asked for the
  // opening slice as a picture (viewer/preview.ts), shown first. Otherwise (from the worklist,
  // which ran the chunk while the reader looked at it) Cornerstone starts while the task is fetched.
  const viewerRan = viewingModules !== null;
  const starting = viewerRan ? viewing().then(([stack]) => stack.initialise()) : null;
  const [task, templates] = await Promise.all([get<Task>(`/api/tasks/${taskId}`), get<Template[]>('/api/templates')]);
  performance.mark('yy:task');
  const listing = listSeries(task.study_uid);
  listing.catch(() => undefined); // awaited below, inside the viewer's error handling
  const status = h('p', { class: 'status', id: 'reading-status', role: 'status' });
  const say = (text: string, error = false) => {
    status.textContent = text;
    status.classList.toggle('error', error);
  };

  // ----------------------------------------------------------------- header
  const study = task.study;
  const left = countdown(task.deadline_at);
  const clock = h('span', { class: `countdown${left.breached ? ' breached' : ''}` }, left.text);
  const stateBadge = h('span', { class: `state ${task.state}`, id: 'task-state' }, term('state', task.state));
  const banner = h(
    'div',
    { class: 'patient-banner' },
    h('span', { class: `badge priority ${task.priority}` }, term('priority', task.priority)),
    h('strong', { class: 'name', id: 'patient-name' }, personName(study.patient_name)),
    h('span', {}, study.patient_id ?? ''),
    h('span', {}, [ageAt(study.patient_birth_date, study.study_date), term('sex', study.patient_sex)].filter(Boolean).join(' / ')),
    h('span', {}, [task.modality, task.body_part].filter(Boolean).join(' / ')),
    h('span', {}, study.study_description ?? ''),
    h('span', {}, task.site),
    h('span', {}, t('reading.accession', { n: study.accession_number ?? '' })),
    h('span', { class: 'spacer' }),
    stateBadge,
    h('span', {}, t('reading.time_left')),
    clock,
  );

  // ----------------------------------------------------------------- viewer
  const viewportElement = h('div', { class: 'viewport', id: 'viewport', tabindex: 0 }) as HTMLDivElement;
  const sliceText = h('span', { id: 'slice' });
  const voiText = h('span', { id: 'voi' });
  // Says which slices carry an AI heat map, whether the overlay is on or not.
  const heatHere = h('span', { id: 'heat-here', class: 'heat-here', hidden: true }, t('heatmap.on_slice'));
  const overlay = h('div', { class: 'overlay' }, sliceText, h('br', {}), voiText, h('br', {}), heatHere);
  const thumbnails = h('div', { class: 'thumbnails', id: 'series' });
  const measurementList = h('ul', { class: 'measurements', id: 'measurements' });
  const toolButtons = new Map<ToolKey, HTMLButtonElement>();
  let viewer: StackViewer | null = null;
  let heat: HeatOverlay | null = null;
  const heatButton = h(
    'button',
    { id: 'ai-overlay', title: t('heatmap.none'), disabled: true, 'aria-pressed': 'false', onclick: () => toggleHeat() },
    t('heatmap.toggle'),
  ) as HTMLButtonElement;

  const toolbar = h(
    'div',
    { class: 'viewer-toolbar' },
    TOOL_KEYS.map(([key, shortcut]) => {
      const button = h('button', { class: 'tool', 'data-tool': key, title: `${t(`tool.${key}`)} (${shortcut.toUpperCase()})`, onclick: () => selectTool(key) }, t(`tool.${key}`));
      toolButtons.set(key, button);
      return button;
    }),
    h('span', { class: 'sep' }),
    Object.keys(PRESETS).map((name, i) =>
      h('button', { class: 'preset', 'data-preset': name, title: `${t(`preset.${name}`)} (${i + 1})`, onclick: () => viewer?.preset(name) }, t(`preset.${name}`)),
    ),
    h('span', { class: 'sep' }),
    h('button', { id: 'cine', title: `${t('viewer.cine')} (C)`, onclick: () => toggleCine() }, t('viewer.cine')),
    h('button', { id: 'reset', title: `${t('viewer.reset')} (R)`, onclick: () => viewer?.reset() }, t('viewer.reset')),
    h('button', { id: 'clear-measurements', onclick: () => viewer?.clearMeasurements() }, t('viewer.clear')),
    h('span', { class: 'sep' }),
    heatButton,
    h('button', { id: 'shortcuts', title: `${t('shortcuts.title')} (?)`, onclick: () => shortcutsDialog.showModal() }, '?'),
  );

  function toggleHeat(): void {
    if (!heat?.count) return;
    const on = heat.toggle();
    heatButton.classList.toggle('active', on);
    heatButton.setAttribute('aria-pressed', String(on));
  }

  // Every key the reading screen answers, in one place the reader can open with "?".
  const SHORTCUTS: [string, string][] = [
    ...TOOL_KEYS.map(([key, shortcut]): [string, string] => [shortcut.toUpperCase(), t(`tool.${key}`)]),
    ['1–8', t('shortcuts.presets')],
    ['↑ ↓ ← →', t('shortcuts.scroll')],
    ['PgUp PgDn', t('shortcuts.scroll_ten')],
    ['Home End', t('shortcuts.ends')],
    ['C', t('viewer.cine')],
    ['R', t('viewer.reset')],
    ['H', t('heatmap.toggle')],
    ['Ctrl+S', t('report.save_preliminary')],
    ['Ctrl+Enter', t('report.sign')],
    ['?', t('shortcuts.title')],
  ];
  const shortcutsDialog = h(
    'dialog',
    { id: 'shortcuts-dialog' },
    h(
      'form',
      { method: 'dialog' },
      h('h3', {}, t('shortcuts.title')),
      h('table', { class: 'shortcuts' }, h('tbody', {}, SHORTCUTS.map(([keys, what]) => h('tr', {}, h('td', {}, h('kbd', {}, keys)), h('td', {}, what))))),
      h('div', { class: 'report-actions' }, h('button', { value: 'close' }, t('shortcuts.close'))),
    ),
  );

  function selectTool(key: ToolKey): void {
    viewer?.setTool(key);
    for (const [k, button] of toolButtons) button.classList.toggle('active', k === key);
  }

  function toggleCine(): void {
    const playing = viewer?.toggleCine() ?? false;
    document.getElementById('cine')?.classList.toggle('active', playing);
  }

  function showMeasurements(found: Measurement[]): void {
    measurementList.replaceChildren(
      ...found.map((m) =>
        h(
          'li',
          { 'data-kind': m.kind, 'data-value': m.value.toFixed(2) },
          m.kind === 'ellipse'
            ? t('measure.ellipse', { mean: m.value.toFixed(1), sd: (m.sd ?? 0).toFixed(1), min: (m.min ?? 0).toFixed(0), max: (m.max ?? 0).toFixed(0), area: (m.area ?? 0).toFixed(1), unit: m.unit, areaUnit: m.areaUnit ?? '' })
            : t(`measure.${m.kind}`, { value: m.value.toFixed(m.kind === 'angle' ? 1 : 2), unit: m.unit }),
        ),
      ),
    );
  }

  // ----------------------------------------------------------------- priors (1×2)
  // Earlier studies of the same patient from any site of the consortium (the same Patient ID,
  // the same ID card, or probably the same person) beside the current one, scrolled with it
  // (same relative place in the stack) unless the reader unticks the sync.
  const priorsBox = h('div', { class: 'priors', id: 'priors' });
  const priorElement = h('div', { class: 'viewport', id: 'prior-viewport' }) as HTMLDivElement;
  const priorLabel = h('span', { id: 'prior-label' });
  const priorSlice = h('span', { id: 'prior-slice' });
  const syncBox = h('input', { type: 'checkbox', id: 'prior-sync', checked: true });
  const priorCell = h(
    'div',
    { class: 'cell prior', hidden: true },
    priorElement,
    h('div', { class: 'overlay' }, priorLabel, h('br', {}), priorSlice),
    h(
      'div',
      { class: 'prior-controls' },
      h('label', { class: 'inline' }, syncBox, t('viewer.sync')),
      h('button', { class: 'small', id: 'prior-close', onclick: () => closePrior() }, t('viewer.close_prior')),
    ),
  );
  let prior: StackViewer | null = null;

  function closePrior(): void {
    prior?.destroy();
    prior = null;
    priorCell.hidden = true;
  }

  async function openPrior(one: Prior): Promise<void> {
    closePrior();
    if (!one.open) {
      // Another site's study: the server opens it to this reader for this task (break-glass, audited).
      await api('POST', `/api/tasks/${task.id}/priors/${one.study_uid}/open`);
      one.open = true;
    }
    priorCell.hidden = false;
    const what = `${one.modalities} ${one.description ?? ''}`;
    priorLabel.textContent = t('viewer.prior_of', { date: dicomDate(one.study_date ?? ''), site: one.site, what });
    if (one.basis === 'probable' || one.basis === 'confirmed') priorLabel.textContent += ` · ${basisText(one)}`;
    const [{ StackViewer }] = await viewing();
    prior = await StackViewer.create(priorElement, {
      slice: (index, total) => (priorSlice.textContent = t('viewer.slice', { n: index + 1, total })),
      voi: () => undefined,
      measurements: () => undefined,
      firstImage: () => undefined,
      loaded: () => undefined,
    });
    const series = (await listSeries(one.study_uid)).filter((s) => !NO_PIXELS.has(s.modality));
    if (!series.length) throw new Error(t('viewer.no_images'));
    await prior.show(one.study_uid, series[0].seriesUid);
    prior.reset(); // fitted to its half of the screen, not to the size it was created at
    if (viewer && syncBox.checked) await prior.follow(viewer.position);
  }

  // ----------------------------------------------------------------- AI findings
  // The findings with where to look (jump to the slice) and the reader's agree/disagree; the
  // worklist's flags stand in when the findings cannot be fetched.
  const aiList = h('ul', { id: 'ai-list' });
  const aiBox = h(
    'section',
    { class: 'panel ai-findings', id: 'ai-findings' },
    h('h3', {}, t('reading.ai')),
    aiList,
    h('p', { class: 'muted' }, t('reading.ai_advisory')),
  );
  let seriesList: SeriesInfo[] = [];
  let showSeries: (one: SeriesInfo) => Promise<void> = async () => undefined;
  // A finding clicked while the study is still opening waits for the series listing and the
  // first series: before that it would search an empty list and say 'not found'.
  let markOpened: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (markOpened = resolve));

  async function jumpToFinding(where: AiLocation): Promise<void> {
    await opened;
    if (!viewer) {
      say(t('reading.ai_not_found'), true);
      return;
    }
    let index = viewer.indexOf(where.sop_instance_uid, where.frame ?? 1);
    for (const one of seriesList) {
      if (index >= 0) break;
      await showSeries(one);
      index = viewer.indexOf(where.sop_instance_uid, where.frame ?? 1);
    }
    if (index >= 0) await viewer.jumpTo(index);
    else say(t('reading.ai_not_found'), true);
  }

  function drawFindings(findings: AiFinding[]): void {
    aiList.replaceChildren();
    if (!findings.length) {
      aiList.append(h('li', { class: 'muted' }, t('reading.ai_none')));
      return;
    }
    for (const finding of findings) {
      const where = finding.location?.[0];
      const opinion = async (agree: boolean) => {
        try {
          const answer = await api<AiFinding>('POST', `/api/ai-findings/${finding.id}/feedback`, { agree });
          finding.agree = answer.agree;
          drawFindings(findings);
        } catch (error) {
          say(t('report.failed', { detail: (error as Error).message }), true);
        }
      };
      aiList.append(
        h(
          'li',
          { class: finding.positive ? 'positive' : 'negative', 'data-finding': finding.id ?? '' },
          h('strong', {}, term('finding', finding.label)),
          ` ${finding.probability !== null ? Math.round(finding.probability * 100) + '%' : ''} · ${finding.model} ${finding.version ?? ''}`,
          finding.explanation ? h('small', {}, finding.explanation) : null,
          h(
            'div',
            { class: 'finding-actions' },
            where ? h('button', { class: 'small', 'data-action': 'jump', onclick: () => void jumpToFinding(where) }, t('reading.ai_jump')) : null,
            finding.id !== undefined
              ? [
                  h('button', { class: `small${finding.agree === true ? ' active' : ''}`, 'data-action': 'agree', onclick: () => void opinion(true) }, t('reading.ai_agree')),
                  h('button', { class: `small${finding.agree === false ? ' active' : ''}`, 'data-action': 'disagree', onclick: () => void opinion(false) }, t('reading.ai_disagree')),
                ]
              : null,
          ),
        ),
      );
    }
  }
  drawFindings(task.ai_flags.map((flag) => ({ ...flag, id: undefined, location: [], agree: null })));
  void get<AiFinding[]>(`/api/tasks/${taskId}/ai-findings`)
    .then(drawFindings)
    .catch(() => undefined);

  // ----------------------------------------------------------------- report
  const template = chooseTemplate(templates, task.modality, task.body_part ?? study.body_part);
  const form = new ReportForm(templates, template);
  const existing = task.report ?? task.carried_report;
  if (existing) form.fill(existing);
  let report: Report | null = task.report;
  let state = task.state;
  const signed = () => state === 'signed' || state === 'amended';

  const saveButton = h('button', { id: 'save-preliminary', title: 'Ctrl+S', onclick: () => void save(true) }, t('report.save_preliminary'));
  const signButton = h('button', { class: 'primary', id: 'sign', title: 'Ctrl+Enter', onclick: () => void sign() }, t('report.sign'));
  const escalateButton = h('button', { id: 'escalate', onclick: () => escalateDialog.showModal() }, t('report.escalate'));
  const releaseButton = h('button', { id: 'release', onclick: () => void release() }, t('report.release'));
  const actions = h('div', { class: 'report-actions' }, saveButton, signButton, escalateButton, releaseButton);

  const addendumText = h('textarea', { id: 'addendum-text', rows: 3 });
  const addendumBox = h(
    'div',
    { class: 'addendum', id: 'addendum' },
    h('label', {}, t('report.addendum'), addendumText),
    h('button', { id: 'add-addendum', onclick: () => void addendum() }, t('report.add_addendum')),
  );

  function refreshControls(): void {
    stateBadge.textContent = term('state', state);
    stateBadge.className = `state ${state}`;
    const open = !signed() && state !== 'escalated';
    form.setReadOnly(!open);
    for (const button of [saveButton, signButton, escalateButton, releaseButton]) button.disabled = !open;
    addendumBox.hidden = !signed();
  }

  async function save(preliminary: boolean): Promise<void> {
    try {
      report = await api<Report>('PUT', `/api/tasks/${taskId}/report`, { ...form.value(), preliminary });
      if (preliminary) state = 'preliminary';
      refreshControls();
      say(t(preliminary ? 'report.saved_preliminary' : 'report.saved', { version: report.version }));
    } catch (error) {
      say(t('report.failed', { detail: (error as Error).message }), true);
    }
  }

  async function sign(): Promise<void> {
    try {
      report = await api<Report>('POST', `/api/tasks/${taskId}/sign`, { report: form.value() });
      state = 'signed';
      refreshControls();
      say(t('report.signed', { version: report.version }));
      if (report.critical) criticalDialog.showModal();
    } catch (error) {
      say(t('report.failed', { detail: (error as Error).message }), true);
    }
  }

  async function release(): Promise<void> {
    try {
      await api('POST', `/api/tasks/${taskId}/release`);
      navigate('/worklist');
    } catch (error) {
      say(t('report.failed', { detail: (error as Error).message }), true);
    }
  }

  async function addendum(): Promise<void> {
    try {
      report = await api<Report>('POST', `/api/tasks/${taskId}/addendum`, { text: addendumText.value });
      state = 'amended';
      addendumText.value = '';
      refreshControls();
      say(t('report.addendum_added', { version: report.version }));
    } catch (error) {
      say(t('report.failed', { detail: (error as Error).message }), true);
    }
  }

  // Escalation needs a reason the provincial expert will read.
  const reason = h('textarea', { id: 'escalate-reason', rows: 4, required: true });
  const escalateDialog = h(
    'dialog',
    { id: 'escalate-dialog' },
    h(
      'form',
      { method: 'dialog' },
      h('h3', {}, t('report.escalate')),
      h('label', {}, t('report.escalate_reason'), reason),
      h(
        'div',
        { class: 'report-actions' },
        h('button', { value: 'cancel', formnovalidate: true }, t('app.cancel')),
        h('button', { class: 'primary', value: 'escalate', id: 'escalate-confirm' }, t('report.escalate')),
      ),
    ),
  );
  escalateDialog.addEventListener('close', async () => {
    if (escalateDialog.returnValue !== 'escalate' || !reason.value.trim()) return;
    try {
      await api('POST', `/api/tasks/${taskId}/escalate`, { reason: reason.value.trim() });
      state = 'escalated';
      refreshControls();
      say(t('report.escalated'));
    } catch (error) {
      say(t('report.failed', { detail: (error as Error).message }), true);
    }
  });

  // A critical result (危急值): record whom at the site the reader told, how and when.
  const told = h('input', { id: 'critical-told', required: true, maxlength: 200 });
  const method = h(
    'select',
    { id: 'critical-method' },
    ['phone', 'in-person', 'portal', 'sms', 'wecom'].map((m) => h('option', { value: m }, term('method', m))),
  );
  const criticalDialog = h(
    'dialog',
    { id: 'critical-dialog' },
    h(
      'form',
      { method: 'dialog' },
      h('h3', { class: 'critical' }, t('critical.title')),
      h('p', {}, t('critical.explain')),
      h('label', {}, t('critical.told'), told),
      h('label', {}, t('critical.method'), method),
      h(
        'div',
        { class: 'report-actions' },
        h('button', { value: 'later', formnovalidate: true }, t('critical.later')),
        h('button', { class: 'primary', value: 'record', id: 'critical-record' }, t('critical.record')),
      ),
    ),
  );
  criticalDialog.addEventListener('close', async () => {
    if (criticalDialog.returnValue !== 'record' || !report) return;
    try {
      await api('POST', `/api/reports/${report.id}/communications`, { told: told.value, method: method.value, at: new Date().toISOString() });
      say(t('critical.recorded'));
    } catch (error) {
      say(t('report.failed', { detail: (error as Error).message }), true);
    }
  });

  const carried = task.carried_report
    ? h('section', { class: 'panel' }, h('h3', {}, t('reading.carried')), h('p', {}, task.carried_report.impression), task.escalation_reason ? h('p', { class: 'muted' }, t('reading.escalation_reason', { reason: task.escalation_reason })) : null)
    : null;

  const side = h(
    'aside',
    { class: 'reading-side' },
    aiBox,
    h('section', { class: 'panel' }, h('h3', {}, t('reading.measurements')), measurementList),
    carried,
    h('section', { class: 'panel report' }, h('h3', {}, t('report.title')), form.element, actions, addendumBox, status),
    escalateDialog,
    criticalDialog,
    shortcutsDialog,
  );

  root.classList.add('reading');
  root.append(
    banner,
    h(
      'div',
      { class: 'reading-body' },
      h('div', { class: 'left-column' }, thumbnails, priorsBox),
      h('section', { class: 'viewer-column' }, toolbar, h('div', { class: 'viewport-frame', id: 'viewport-frame' }, h('div', { class: 'cell' }, viewportElement, overlay), priorCell)),
      side,
    ),
  );
  refreshControls();

  // ----------------------------------------------------------------- keyboard
  function onKey(event: KeyboardEvent): void {
    const typing = (event.target as HTMLElement).closest('input, textarea, select, dialog');
    if ((event.ctrlKey || event.metaKey) && event.key === 's') {
      event.preventDefault();
      void save(true);
      return;
    }
    if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') {
      event.preventDefault();
      void sign();
      return;
    }
    if (typing || !viewer || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    const tool = TOOL_KEYS.find(([, shortcut]) => shortcut === key);
    const presetNames = Object.keys(PRESETS);
    if (tool) selectTool(tool[0]);
    else if (/^[1-8]$/.test(key)) viewer.preset(presetNames[Number(key) - 1]);
    else if (key === 'arrowdown' || key === 'arrowright') viewer.scroll(1);
    else if (key === 'arrowup' || key === 'arrowleft') viewer.scroll(-1);
    else if (key === 'pagedown') viewer.scroll(10);
    else if (key === 'pageup') viewer.scroll(-10);
    else if (key === 'home') void viewer.jumpTo(0);
    else if (key === 'end') void viewer.jumpTo(viewer.total - 1);
    else if (key === 'c') toggleCine();
    else if (key === 'r') viewer.reset();
    else if (key === 'h') toggleHeat();
    else if (event.key === '?') shortcutsDialog.showModal();
    else return;
    event.preventDefault();
  }
  document.addEventListener('keydown', onKey);

  // The claim is a lease: renew it while the study is open.
  const renew = window.setInterval(() => {
    if (!signed() && state !== 'escalated') void api('POST', `/api/tasks/${taskId}/renew`).catch(() => undefined);
  }, 120_000);
  const ticking = window.setInterval(() => {
    const now = countdown(task.deadline_at);
    clock.textContent = now.text;
    clock.classList.toggle('breached', now.breached);
  }, 1000);

  // ----------------------------------------------------------------- images
  // performance.now() marks (from the page's navigation start) for the tests and bench/viewer.py.
  const timing = {
    firstImageMs: null as number | null,
    firstImageAt: null as number | null,
    loaded: 0,
    allLoadedAt: null as number | null,
    toolsAt: null as number | null,
    slice: 0,
    total: 0,
    voi: [0, 0] as [number, number],
  };
  // The opening slice's picture, while it is shown (set in a callback: hence the cast, which keeps
  // TypeScript from narrowing it to null).
  let preview = null as ShownPreview | null;
  try {
    const early = viewerRan ? undefined : takePreview(params.taskId);
    if (early) {
      // The picture is painted before the viewer's chunk runs, or the chunk runs without waiting
      // longer for it (a slow server or line: Cornerstone's own first image is not held back by
      // much); the picture is still shown if it comes before Cornerstone's image.
      const waited = new Promise<void>((resolve) => window.setTimeout(resolve, PREVIEW_WAIT_MS));
      const shown = early.then((one) => {
        if (one && timing.firstImageAt === null) preview = showPreview(viewportElement, one);
        return preview?.painted;
      });
      await Promise.race([shown, waited]);
    }
    const [{ StackViewer, fetched, initialise, startFirstImage }, { HeatOverlay, findHeatMaps }] = await viewing();
    await (starting ?? initialise());
    performance.mark('yy:cornerstone');
    // The first frame's fetch and decode start before the viewport is built (its WebGL set-up
    // takes a few hundred ms), not after.
    const opening = firstSeries(await listing);
    if (opening) await startFirstImage(task.study_uid, opening.seriesUid).catch(() => undefined); // show() reports
    viewer = await StackViewer.create(viewportElement, {
      slice: (index, total) => {
        sliceText.textContent = t('viewer.slice', { n: index + 1, total });
        if (prior && syncBox.checked && viewer) void prior.follow(viewer.position);
        timing.slice = index;
        timing.total = total;
      },
      voi: (width, centre) => {
        voiText.textContent = t('viewer.voi', { w: Math.round(width), l: Math.round(centre) });
        timing.voi = [width, centre];
      },
      measurements: showMeasurements,
      firstImage: (ms) => {
        preview?.remove(); // Cornerstone's image is where the picture was
        timing.firstImageMs = ms;
        timing.firstImageAt = performance.now();
      },
      loaded: (count, total) => {
        timing.loaded = count;
        if (count === total && timing.allLoadedAt === null) timing.allLoadedAt = performance.now();
      },
      toolsReady: () => (timing.toolsAt = performance.now()),
    });
    heat = new HeatOverlay(viewer, viewportElement, (here) => (heatHere.hidden = !here));
    window.__yyViewer = Object.assign(timing, { viewer, prior: () => prior, heat, fetched });
    selectTool('wl');
    const series: SeriesInfo[] = (await listing).filter((one) => !NO_PIXELS.has(one.modality));
    performance.mark('yy:series');
    seriesList = series;
    showSeries = async (one: SeriesInfo) => {
      for (const thumb of thumbnails.querySelectorAll('.thumb')) thumb.classList.toggle('active', (thumb as HTMLElement).dataset.series === one.seriesUid);
      await viewer!.show(task.study_uid, one.seriesUid);
    };
    for (const one of series) {
      thumbnails.append(
        h(
          'button',
          { class: 'thumb', 'data-series': one.seriesUid, onclick: () => void showSeries(one).catch((e) => say(String(e), true)) },
          h('img', {
            src: `/dicomweb/studies/${task.study_uid}/series/${one.seriesUid}/thumbnail`,
            alt: '',
            loading: 'lazy',
            onerror: (event: Event) => ((event.target as HTMLElement).style.visibility = 'hidden'),
          }),
          h('span', {}, `${one.modality} ${one.number ?? ''}`),
          h('small', {}, one.description),
          h('small', {}, t('viewer.images', { n: one.instances })),
        ),
      );
    }
    void new PriorsList(priorsBox, task.id, openPrior, say)
      .load()
      .catch(() => undefined);
    const first = firstSeries(series);
    if (first) await showSeries(first);
    else say(t('viewer.no_images'), true);
    markOpened();
    // After the first image, not before: the heat maps' metadata must not delay it.
    const maps = await findHeatMaps(task.study_uid, series).catch(() => new Map<string, HeatMap>());
    heat.set(maps);
    heatButton.disabled = maps.size === 0;
    heatButton.title = maps.size ? `${t('heatmap.toggle')} (H)` : t('heatmap.none');
  } catch (error) {
    preview?.remove(); // a picture of the study would pass for a viewer that works
    say(t('viewer.failed', { detail: (error as Error).message }), true);
  } finally {
    markOpened();
  }

  return () => {
    document.removeEventListener('keydown', onKey);
    window.clearInterval(renew);
    window.clearInterval(ticking);
    closePrior();
    heat?.destroy();
    viewer?.destroy();
    delete window.__yyViewer;
  };
};
