// Reading groups: a named set of one tier's readers that a routing rule may give its tasks to
// (admin-reading.ts's rule form picks one). Listed with their members and the rules that use
// them; a group is created with some readers, and its name and members are changed. Drawn by
// pages/admin.ts; the server validates, and a refusal is shown beside its input (forms.ts).
import { api } from '../api';
import { h } from '../dom';
import { choice, field, input, onSubmit } from '../forms';
import { t, term } from '../i18n';
import { type AdminContext, grid, READING_TIERS, type Reader } from './admin-reading';

export interface Group {
  id: number;
  name: string;
  tier: string;
  consortium: string;
  members: string[];
  rules: string[];
}

/** A list of the consortium's readers to pick members from, each with his tier: a reader of
 *  another tier than the group's is the server's to refuse, beside this list. */
function membersPicker(readers: Reader[], chosen: string[] = []): HTMLSelectElement {
  return h(
    'select',
    { name: 'members', multiple: true, size: Math.min(Math.max(readers.length, 2), 6) },
    readers.map((r) =>
      h(
        'option',
        { value: r.username, selected: chosen.includes(r.username) },
        `${r.display_name ?? r.username} (${r.username}) · ${term('tier', r.tier)}`,
      ),
    ),
  );
}

function picked(select: HTMLSelectElement): string[] {
  return Array.from(select.selectedOptions).map((option) => option.value);
}

function groupForm(context: AdminContext, readers: Reader[]): HTMLFormElement {
  const name = input('name', { required: true, maxlength: 100 });
  const tier = choice('tier', READING_TIERS.map((v) => [v, term('tier', v)]));
  const members = membersPicker(readers);
  const form = h(
    'form',
    { class: 'admin-form', id: 'group-form' },
    h('h4', {}, t('admin.form.group')),
    field('admin.col.name', name),
    field('admin.col.tier', tier),
    field('admin.form.members', members),
    h('small', { class: 'muted' }, t('admin.form.members_hint')),
    h('button', { type: 'submit', class: 'primary', id: 'group-submit' }, t('admin.form.create')),
  );
  return onSubmit(form, async () => {
    await api('POST', '/api/admin/groups', { name: name.value.trim(), tier: tier.value, members: picked(members) });
    await context.changed(t('admin.form.group_added', { name: name.value.trim() }));
  });
}

/** A group changed: its name and its readers, saved together (PUT /api/admin/groups/{id}). */
function membersForm(context: AdminContext, groups: Group[], readers: Reader[]): HTMLFormElement {
  const group = choice('group', groups.map((g): [string, string] => [String(g.id), `${g.name} (${term('tier', g.tier)})`]));
  const name = input('name', { required: true, maxlength: 100 });
  const slot = h('div', {});
  let members = membersPicker(readers);
  const fill = () => {
    const chosen = groups.find((g) => String(g.id) === group.value);
    name.value = chosen?.name ?? '';
    members = membersPicker(readers, chosen?.members ?? []);
    slot.replaceChildren(field('admin.form.members', members));
  };
  group.addEventListener('change', fill);
  fill();
  const form = h(
    'form',
    { class: 'admin-form', id: 'members-form' },
    h('h4', {}, t('admin.form.group_members')),
    field('admin.col.group', group),
    field('admin.col.name', name),
    slot,
    h('button', { type: 'submit', class: 'primary', id: 'members-submit' }, t('admin.form.save')),
  );
  return onSubmit(form, async () => {
    await api('PUT', `/api/admin/groups/${encodeURIComponent(group.value)}`, { name: name.value.trim(), members: picked(members) });
    await context.changed(t('admin.form.group_saved', { name: name.value.trim() }));
  });
}

export function groupsPanel(context: AdminContext, groups: Group[], readers: Reader[]): HTMLElement {
  return h(
    'section',
    { class: 'panel' },
    h('h3', {}, t('admin.groups')),
    grid(
      'admin-groups',
      ['admin.col.name', 'admin.col.tier', 'admin.form.members', 'admin.col.rules'],
      groups.map((g) => [g.name, term('tier', g.tier), g.members.join(' '), g.rules.join('; ')]),
    ),
    h('div', { class: 'forms' }, groupForm(context, readers), groups.length ? membersForm(context, groups, readers) : null),
  );
}
