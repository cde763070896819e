// Administration: the consortium's sites with their AEs and return destinations (add, edit, add
// and remove AEs), its users (add with a first password, reset a password, deactivate), its
// readers with their profiles and rosters, routing rules, the SLA table (admin-reading.ts), the
// reading groups (admin-groups.ts) and the API tokens of service accounts (admin-tokens.ts). The server validates every change; a
// refusal is shown beside its input in the user's language (forms.ts).
import { api, get } from '../api';
import { clear, h } from '../dom';
import { choice, explain, field, input, onSubmit, optional } from '../forms';
import { t, term } from '../i18n';
import type { Page } from '../router';
import { user } from '../session';
import { type Group, groupsPanel } from './admin-groups';
import { type AdminContext, grid, type Reader, readersPanel, type Rule, rulesPanel, type Sla, slaPanel } from './admin-reading';
import { type Token, tokensPanel } from './admin-tokens';

interface SiteAE {
  id: number;
  ae_title: string;
  allowed_address: string;
  assumed_charset: string | null;
}

interface Site {
  id: number;
  name: string;
  tier: string;
  consortium: string;
  contact: string | null;
  return_ae_title: string | null;
  return_host: string | null;
  return_port: number | null;
  report_image: boolean;
  aes: SiteAE[];
}

interface Account {
  username: string;
  display_name: string | null;
  role: string;
  site: string | null;
  consortium: string | null;
  service: boolean;
  has_password: boolean;
  active: boolean;
}

const TIERS = ['village', 'township', 'county', 'provincial'];
const ROLES = ['reader', 'site', 'qa', 'admin'];
// pacs/identity/sites.py ASSUMABLE_CHARSETS: what a modality that declares none is read as.
const CHARSETS = ['GB18030', 'GBK', 'ISO_IR 192', 'ISO_IR 100', 'ISO_IR 6'];

export const adminPage: Page = async (root) => {
  const notice = h('p', { class: 'muted', id: 'admin-notice', role: 'status' });
  const body = h('div', {});
  // A new token, shown once: outside what a redraw rebuilds, emptied by the next change.
  const secretSlot = h('div', { class: 'token-secret', id: 'token-once', role: 'status', hidden: true });
  root.append(h('h2', {}, t('admin.title')), notice, body);

  async function changed(text: string): Promise<void> {
    await draw();
    notice.textContent = text;
  }
  const context: AdminContext = { changed, notice };

  function siteForm(sites: Site[]): HTMLFormElement {
    const siteId = choice('site_id', [['', t('admin.form.new_site')], ...sites.map((s): [string, string] => [String(s.id), s.name])]);
    const name = input('name', { required: true, maxlength: 200 });
    const tier = choice('tier', TIERS.map((v) => [v, term('tier', v)]), 'township');
    const consortium = input('consortium', { value: sites[0]?.consortium ?? '' });
    const contact = input('contact');
    const returnAe = input('return_ae_title');
    const returnHost = input('return_host');
    const returnPort = input('return_port', { inputmode: 'numeric' });
    const reportImage = h('input', { type: 'checkbox', name: 'report_image' });
    const consortiumField = field('admin.form.consortium', consortium);
    siteId.addEventListener('change', () => {
      const site = sites.find((s) => String(s.id) === siteId.value);
      name.value = site?.name ?? '';
      tier.value = site?.tier ?? 'township';
      contact.value = site?.contact ?? '';
      returnAe.value = site?.return_ae_title ?? '';
      returnHost.value = site?.return_host ?? '';
      returnPort.value = site?.return_port?.toString() ?? '';
      reportImage.checked = site?.report_image ?? false;
      consortiumField.hidden = site !== undefined;
    });
    const form = h(
      'form',
      { class: 'admin-form', id: 'site-form' },
      h('h4', {}, t('admin.form.site')),
      field('admin.form.edit', siteId),
      field('admin.col.name', name),
      field('admin.col.tier', tier),
      consortiumField,
      field('admin.col.contact', contact),
      field('admin.form.return_ae_title', returnAe),
      field('admin.form.return_host', returnHost),
      field('admin.form.return_port', returnPort),
      h('label', { class: 'inline' }, reportImage, t('admin.form.report_image')),
      h('button', { type: 'submit', class: 'primary', id: 'site-submit' }, t('admin.form.save')),
    );
    return onSubmit(form, async () => {
      const port = optional(returnPort);
      const fields = {
        name: name.value.trim(),
        tier: tier.value,
        contact: optional(contact),
        return_ae_title: optional(returnAe),
        return_host: optional(returnHost),
        // A port that is not a number goes as typed: the server's refusal names the field.
        return_port: port === null ? null : /^\d+$/.test(port) ? Number(port) : port,
        report_image: reportImage.checked,
      };
      if (siteId.value) {
        await api('PUT', `/api/admin/sites/${siteId.value}`, fields);
      } else {
        await api('POST', '/api/admin/sites', { ...fields, consortium: consortium.value.trim() });
      }
      await changed(t('admin.form.site_saved', { name: fields.name }));
    });
  }

  function aeForm(sites: Site[]): HTMLFormElement {
    const site = choice('site', sites.map((s) => [String(s.id), s.name]));
    const title = input('ae_title', { required: true });
    const address = input('allowed_address', { required: true, placeholder: '10.2.0.0/24' });
    const charset = choice('assumed_charset', [['', t('admin.form.charset_declared')], ...CHARSETS.map((c): [string, string] => [c, c])]);
    const form = h(
      'form',
      { class: 'admin-form', id: 'ae-form' },
      h('h4', {}, t('admin.form.ae')),
      field('admin.form.site_of_ae', site),
      field('admin.form.ae_title', title),
      field('admin.form.allowed_address', address),
      field('admin.form.assumed_charset', charset),
      h('button', { type: 'submit', class: 'primary', id: 'ae-submit' }, t('admin.form.add')),
    );
    return onSubmit(form, async () => {
      await api('POST', `/api/admin/sites/${site.value}/aes`, {
        ae_title: title.value,
        allowed_address: address.value.trim(),
        assumed_charset: optional(charset),
      });
      await changed(t('admin.form.ae_added', { title: title.value.trim() }));
    });
  }

  function userForm(sites: Site[]): HTMLFormElement {
    const username = input('username', { required: true, maxlength: 64, autocomplete: 'off' });
    const displayName = input('display_name');
    const role = choice('role', ROLES.map((r) => [r, t(`role.${r}`)]));
    const site = choice('site_id', [['', '—'], ...sites.map((s): [string, string] => [String(s.id), s.name])]);
    const password = input('password', { type: 'password', required: true, autocomplete: 'new-password' });
    const siteField = field('admin.form.site_of_user', site);
    const showSite = () => (siteField.hidden = role.value !== 'site');
    role.addEventListener('change', showSite);
    showSite();
    const form = h(
      'form',
      { class: 'admin-form', id: 'user-form' },
      h('h4', {}, t('admin.form.user')),
      field('admin.form.username', username),
      field('admin.form.display_name', displayName),
      field('admin.form.role', role),
      siteField,
      field('admin.form.first_password', password),
      h('button', { type: 'submit', class: 'primary', id: 'user-submit' }, t('admin.form.add')),
    );
    return onSubmit(form, async () => {
      await api('POST', '/api/admin/users', {
        username: username.value.trim(),
        display_name: optional(displayName),
        role: role.value,
        site_id: role.value === 'site' && site.value ? Number(site.value) : null,
        password: password.value,
      });
      await changed(t('admin.form.user_added', { login: username.value.trim() }));
    });
  }

  function passwordForm(accounts: Account[]): HTMLFormElement {
    const who = choice('username', accounts.filter((a) => !a.service).map((a) => [a.username, a.username]));
    const password = input('password', { type: 'password', required: true, autocomplete: 'new-password' });
    const form = h(
      'form',
      { class: 'admin-form', id: 'password-form' },
      h('h4', {}, t('admin.form.reset_password')),
      field('admin.form.username', who),
      field('admin.form.new_password', password),
      h('button', { type: 'submit', class: 'primary', id: 'password-submit' }, t('admin.form.reset')),
    );
    return onSubmit(form, async () => {
      await api('PUT', `/api/admin/users/${encodeURIComponent(who.value)}/password`, { password: password.value });
      await changed(t('admin.form.password_set', { login: who.value }));
    });
  }

  function activeButton(account: Account): HTMLButtonElement {
    const button = h(
      'button',
      {
        class: 'small',
        'data-action': account.active ? 'deactivate' : 'reactivate',
        'data-user': account.username,
        // The server refuses it too: the consortium would be left without its administrator.
        disabled: account.username === user()?.login,
      },
      t(account.active ? 'admin.form.deactivate' : 'admin.form.reactivate'),
    );
    button.addEventListener('click', async () => {
      try {
        await api('PUT', `/api/admin/users/${encodeURIComponent(account.username)}/active`, { active: !account.active });
        await changed(t(account.active ? 'admin.form.deactivated' : 'admin.form.reactivated', { login: account.username }));
      } catch (failure) {
        notice.textContent = explain(failure);
      }
    });
    return button;
  }

  function removeAeButton(site: Site, ae: SiteAE): HTMLButtonElement {
    const button = h(
      'button',
      { class: 'small link', 'data-action': 'remove-ae', 'data-ae': ae.ae_title, title: t('admin.form.remove_ae') },
      '✕',
    );
    button.addEventListener('click', async () => {
      if (!window.confirm(t('admin.form.remove_ae_confirm', { title: ae.ae_title, address: ae.allowed_address }))) return;
      try {
        await api('DELETE', `/api/admin/sites/${site.id}/aes/${ae.id}`);
        await changed(t('admin.form.ae_removed', { title: ae.ae_title }));
      } catch (failure) {
        notice.textContent = explain(failure);
      }
    });
    return button;
  }

  async function draw(): Promise<void> {
    const [sites, accounts, readers, groups, sla, rules, tokens] = await Promise.all([
      get<Site[]>('/api/admin/sites'),
      get<Account[]>('/api/admin/users'),
      get<Reader[]>('/api/admin/readers'),
      get<Group[]>('/api/admin/groups'),
      get<Sla[]>('/api/admin/sla'),
      get<Rule[]>('/api/admin/rules'),
      get<Token[]>('/api/admin/tokens'),
    ]);
    notice.textContent = '';
    clear(secretSlot);
    secretSlot.hidden = true;
    clear(body);
    const profiled = new Set(readers.map((r) => r.username));
    const candidates = accounts.filter((a) => a.role === 'reader' && !a.service && !profiled.has(a.username)).map((a) => a.username);
    body.append(
      h(
        'section',
        { class: 'panel' },
        h('h3', {}, t('admin.sites')),
        grid(
          'admin-sites',
          ['admin.col.name', 'admin.col.tier', 'admin.col.aes', 'admin.col.return', 'admin.col.contact'],
          sites.map((s) => [
            s.name,
            term('tier', s.tier),
            h(
              'ul',
              { class: 'aes' },
              s.aes.map((ae) =>
                h('li', { 'data-ae': ae.ae_title }, `${ae.ae_title} ← ${ae.allowed_address}${ae.assumed_charset ? ` (${ae.assumed_charset})` : ''} `, removeAeButton(s, ae)),
              ),
            ),
            s.return_ae_title ? `${s.return_ae_title}@${s.return_host}:${s.return_port}` : '',
            s.contact ?? '',
          ]),
        ),
        h('div', { class: 'forms' }, siteForm(sites), sites.length ? aeForm(sites) : null),
      ),
      h(
        'section',
        { class: 'panel' },
        h('h3', {}, t('admin.users')),
        grid(
          'admin-users',
          ['admin.form.username', 'admin.form.display_name', 'admin.form.role', 'admin.col.scope', 'admin.col.active', 'admin.col.action'],
          accounts.map((a) => [
            a.username,
            a.display_name ?? '',
            t(`role.${a.role}`),
            a.site ?? a.consortium ?? '',
            a.active ? '✓' : '✗',
            activeButton(a),
          ]),
        ),
        h('div', { class: 'forms' }, userForm(sites), passwordForm(accounts)),
      ),
      readersPanel(context, readers, candidates),
      groupsPanel(context, groups, readers),
      h('div', { class: 'cards' }, rulesPanel(context, rules, sites.map((s) => s.name), groups), slaPanel(context, sla)),
      tokensPanel(context, secretSlot, tokens, sites.map((s): [string, string] => [String(s.id), s.name])),
    );
  }

  await draw();
};
