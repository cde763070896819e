// Administration of reading: reader profiles (tier, credentialed modalities and body parts, on
// or off reading), their on-duty rosters, routing rules (add — to a tier, a reading group of
// admin-groups.ts or a minimum priority —, disable, enable) and the SLA table as it applies (the
// built-in defaults and the consortium's own entries). Drawn by pages/admin.ts; the server validates, and a refusal is shown beside its input
// in the user's language (forms.ts).
import { api } from '../api';
import { h } from '../dom';
import { choice, explain, field, input, onSubmit, optional } from '../forms';
import { t, term } from '../i18n';
import type { Group } from './admin-groups';

export interface Reader {
  username: string;
  display_name: string | null;
  tier: string;
  modalities: string[];
  body_parts: string[];
  active: boolean;
  roster: string[];
}

export interface Sla {
  consortium: string;
  priority: string;
  modality: string | null;
  minutes: number;
  default_minutes: number;
  source: 'default' | 'consortium';
}

export interface Rule {
  id: number;
  name: string;
  position: number;
  site: string | null;
  site_tier: string | null;
  modality: string | null;
  body_part: string | null;
  to_tier: string | null;
  to_group: string | null;
  min_priority: string | null;
  active: boolean;
}

/** What a form of the page needs from it: redraw with a notice, and the notice itself. */
export interface AdminContext {
  changed: (text: string) => Promise<void>;
  notice: HTMLElement;
}

export const READING_TIERS = ['county', 'provincial'];
const SITE_TIERS = ['village', 'township', 'county', 'provincial'];
const PRIORITIES = ['stat', 'urgent', 'routine'];

export function grid(id: string, columns: string[], rows: (Node | string | number)[][]): HTMLTableElement {
  return h(
    'table',
    { class: 'grid', id },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, t(c))))),
    h('tbody', {}, rows.map((row) => h('tr', {}, row.map((cell) => h('td', {}, cell))))),
  );
}

/** Words typed with spaces or commas between them: ``CT, DX`` → ``['CT', 'DX']``. */
function words(control: HTMLInputElement): string[] {
  return control.value.split(/[\s,，]+/).filter((w) => w !== '');
}

function readerForm(context: AdminContext, readers: Reader[], candidates: string[]): HTMLFormElement {
  const options: [string, string][] = [
    ...candidates.map((u): [string, string] => [u, t('admin.form.new_reader', { login: u })]),
    ...readers.map((r): [string, string] => [r.username, `${r.display_name ?? r.username} (${r.username})`]),
  ];
  const username = choice('username', options);
  const tier = choice('tier', READING_TIERS.map((v) => [v, term('tier', v)]));
  const modalities = input('modalities', { placeholder: 'CT DX' });
  const bodyParts = input('body_parts', { placeholder: t('admin.form.every_body_part') });
  const active = h('input', { type: 'checkbox', name: 'active', checked: true });
  const activeLabel = h('label', { class: 'inline' }, active, t('admin.form.reads'));
  const fill = () => {
    const reader = readers.find((r) => r.username === username.value);
    tier.value = reader?.tier ?? 'county';
    modalities.value = reader?.modalities.join(' ') ?? '';
    bodyParts.value = reader?.body_parts.join(' ') ?? '';
    active.checked = reader?.active ?? true;
    activeLabel.hidden = reader === undefined;
  };
  username.addEventListener('change', fill);
  fill();
  const form = h(
    'form',
    { class: 'admin-form', id: 'reader-form' },
    h('h4', {}, t('admin.form.reader')),
    field('admin.form.username', username),
    field('admin.col.tier', tier),
    field('admin.form.modalities', modalities),
    field('admin.form.body_parts', bodyParts),
    activeLabel,
    h('button', { type: 'submit', class: 'primary', id: 'reader-submit' }, t('admin.form.save')),
  );
  return onSubmit(form, async () => {
    const profile = { tier: tier.value, modalities: words(modalities), body_parts: words(bodyParts) };
    if (readers.some((r) => r.username === username.value)) {
      await api('PUT', `/api/admin/readers/${encodeURIComponent(username.value)}`, { ...profile, active: active.checked });
    } else {
      await api('POST', '/api/admin/readers', { ...profile, username: username.value });
    }
    await context.changed(t('admin.form.reader_saved', { login: username.value }));
  });
}

function rosterForm(context: AdminContext, readers: Reader[]): HTMLFormElement {
  const username = choice('username', readers.map((r) => [r.username, `${r.display_name ?? r.username} (${r.username})`]));
  const windows = input('windows', { placeholder: 'mon 08:00-17:30; daily 20:00-08:00' });
  const fill = () => (windows.value = readers.find((r) => r.username === username.value)?.roster.join('; ') ?? '');
  username.addEventListener('change', fill);
  fill();
  const form = h(
    'form',
    { class: 'admin-form', id: 'roster-form' },
    h('h4', {}, t('admin.form.roster')),
    field('admin.form.username', username),
    field('admin.form.windows', windows),
    h('small', { class: 'muted' }, t('admin.form.windows_hint')),
    h('button', { type: 'submit', class: 'primary', id: 'roster-submit' }, t('admin.form.save')),
  );
  return onSubmit(form, async () => {
    const list = windows.value.split(/[;；\n]/).map((w) => w.trim()).filter((w) => w !== '');
    await api('PUT', `/api/admin/readers/${encodeURIComponent(username.value)}/roster`, { windows: list });
    await context.changed(t('admin.form.roster_saved', { login: username.value }));
  });
}

export function readersPanel(context: AdminContext, readers: Reader[], candidates: string[]): HTMLElement {
  return h(
    'section',
    { class: 'panel' },
    h('h3', {}, t('admin.readers')),
    grid(
      'admin-readers',
      ['admin.col.reader', 'admin.col.tier', 'admin.col.modalities', 'admin.col.roster', 'admin.col.active'],
      readers.map((r) => [
        `${r.display_name ?? ''} (${r.username})`,
        term('tier', r.tier),
        [...r.modalities, ...r.body_parts].join(' '),
        r.roster.join('; '),
        r.active ? '✓' : '✗',
      ]),
    ),
    h('div', { class: 'forms' }, readerForm(context, readers, candidates), readers.length ? rosterForm(context, readers) : null),
  );
}

function slaForm(context: AdminContext): HTMLFormElement {
  const priority = choice('priority', PRIORITIES.map((p) => [p, term('priority', p)]));
  const modality = input('modality', { placeholder: t('admin.any') });
  const minutes = input('minutes', { inputmode: 'numeric', required: true });
  const form = h(
    'form',
    { class: 'admin-form', id: 'sla-form' },
    h('h4', {}, t('admin.form.sla')),
    field('admin.col.priority', priority),
    field('admin.col.modality', modality),
    field('admin.col.minutes', minutes),
    h('button', { type: 'submit', class: 'primary', id: 'sla-submit' }, t('admin.form.save')),
  );
  return onSubmit(form, async () => {
    const typed = minutes.value.trim();
    await api('PUT', '/api/admin/sla', {
      priority: priority.value,
      modality: optional(modality),
      // Minutes that are not a number go as typed: the server's refusal names the field.
      minutes: /^\d+$/.test(typed) ? Number(typed) : typed,
    });
    await context.changed(t('admin.form.sla_saved', { priority: term('priority', priority.value), minutes: typed }));
  });
}

export function slaPanel(context: AdminContext, sla: Sla[]): HTMLElement {
  // An installation admin sees every consortium's table: then each row names its consortium.
  const several = new Set(sla.map((s) => s.consortium)).size > 1;
  const source = (s: Sla) =>
    s.source === 'default' ? t('admin.sla_default') : t('admin.sla_own', { minutes: s.default_minutes });
  return h(
    'section',
    { class: 'panel' },
    h('h3', {}, t('admin.sla')),
    grid(
      'admin-sla',
      [...(several ? ['admin.form.consortium'] : []), 'admin.col.priority', 'admin.col.modality', 'admin.col.minutes', 'admin.col.source'],
      sla.map((s) => [
        ...(several ? [s.consortium] : []),
        term('priority', s.priority),
        s.modality ?? t('admin.any'),
        s.minutes,
        h('span', { class: s.source === 'default' ? 'muted' : '', 'data-source': s.source }, source(s)),
      ]),
    ),
    h('small', { class: 'muted' }, t('admin.sla_hint')),
    h('div', { class: 'forms' }, slaForm(context)),
  );
}

function ruleForm(context: AdminContext, sites: string[], groups: Group[]): HTMLFormElement {
  const any: [string, string] = ['', t('admin.any')];
  const name = input('name', { required: true, maxlength: 100 });
  const position = input('position', { inputmode: 'numeric', value: '100' });
  const site = choice('site', [any, ...sites.map((s): [string, string] => [s, s])]);
  const siteTier = choice('site_tier', [any, ...SITE_TIERS.map((v): [string, string] => [v, term('tier', v)])]);
  const modality = input('modality', { placeholder: 'CT' });
  const bodyPart = input('body_part', { placeholder: 'HEAD' });
  const keep: [string, string] = ['', t('admin.form.unchanged')];
  const toTier = choice('to_tier', [keep, ...READING_TIERS.map((v): [string, string] => [v, term('tier', v)])]);
  const toGroup = choice('to_group', [keep, ...groups.map((g): [string, string] => [g.name, `${g.name} (${term('tier', g.tier)})`])]);
  const minPriority = choice('min_priority', [keep, ...PRIORITIES.map((p): [string, string] => [p, term('priority', p)])]);
  const form = h(
    'form',
    { class: 'admin-form', id: 'rule-form' },
    h('h4', {}, t('admin.form.rule')),
    field('admin.col.name', name),
    field('admin.form.position', position),
    h('small', { class: 'muted' }, t('admin.form.rule_match')),
    field('admin.form.site_of_ae', site),
    field('admin.form.site_tier', siteTier),
    field('admin.col.modality', modality),
    field('admin.form.body_part', bodyPart),
    h('small', { class: 'muted' }, t('admin.form.rule_action')),
    field('admin.form.to_tier', toTier),
    field('admin.form.to_group', toGroup),
    field('admin.form.min_priority', minPriority),
    h('button', { type: 'submit', class: 'primary', id: 'rule-submit' }, t('admin.form.add')),
  );
  return onSubmit(form, async () => {
    const at = position.value.trim();
    await api('POST', '/api/admin/rules', {
      name: name.value.trim(),
      position: /^\d+$/.test(at) ? Number(at) : at,
      site: optional(site),
      site_tier: optional(siteTier),
      modality: optional(modality),
      body_part: optional(bodyPart),
      to_tier: optional(toTier),
      to_group: optional(toGroup),
      min_priority: optional(minPriority),
    });
    await context.changed(t('admin.form.rule_added', { name: name.value.trim() }));
  });
}

function ruleButton(context: AdminContext, rule: Rule): HTMLButtonElement {
  const button = h(
    'button',
    { class: 'small', 'data-action': rule.active ? 'disable-rule' : 'enable-rule', 'data-rule': rule.name },
    t(rule.active ? 'admin.form.disable' : 'admin.form.enable'),
  );
  button.addEventListener('click', async () => {
    try {
      await api('PUT', `/api/admin/rules/${rule.id}/active`, { active: !rule.active });
      await context.changed(t(rule.active ? 'admin.form.rule_disabled' : 'admin.form.rule_enabled', { name: rule.name }));
    } catch (failure) {
      context.notice.textContent = explain(failure);
    }
  });
  return button;
}

export function rulesPanel(context: AdminContext, rules: Rule[], sites: string[], groups: Group[]): HTMLElement {
  const matches = (r: Rule) =>
    [r.site, r.site_tier && term('tier', r.site_tier), r.modality, r.body_part].filter(Boolean).join(' · ');
  const does = (r: Rule) =>
    [r.to_tier && `→ ${term('tier', r.to_tier)}`, r.to_group && `→ ${r.to_group}`, r.min_priority && `≥ ${term('priority', r.min_priority)}`]
      .filter(Boolean)
      .join(' ');
  return h(
    'section',
    { class: 'panel' },
    h('h3', {}, t('admin.rules')),
    grid(
      'admin-rules',
      ['admin.form.position', 'admin.col.name', 'admin.col.match', 'admin.col.route', 'admin.col.active', 'admin.col.action'],
      rules.map((r) => [r.position, r.name, matches(r), does(r), r.active ? '✓' : '✗', ruleButton(context, r)]),
    ),
    h('div', { class: 'forms' }, ruleForm(context, sites, groups)),
  );
}
