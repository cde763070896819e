// API tokens of service accounts (a RIS, a workstation): listed without the token, created
// (the token shown once, to copy into the service's configuration), revoked. Drawn by
// pages/admin.ts; the server validates and a refusal is shown beside its input (forms.ts).
import { api } from '../api';
import { clear, h } from '../dom';
import { choice, explain, field, input, onSubmit, optional } from '../forms';
import { t, term } from '../i18n';
import { type AdminContext, grid } from './admin-reading';

export interface Token {
  id: number;
  account: string;
  name: string | null;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  state: string;
}

interface Created extends Token {
  token: string;
}

const day = (iso: string | null) => (iso ? iso.slice(0, 10) : '—');

/** The new token, once: it lives in ``slot`` (outside the redrawn panels) until the next change. */
function reveal(slot: HTMLElement, created: Created): void {
  const secret = h('code', { id: 'token-secret' }, created.token);
  const copy = h('button', { class: 'small', type: 'button', id: 'token-copy' }, t('admin.form.copy'));
  copy.addEventListener('click', async () => {
    const range = document.createRange();
    range.selectNodeContents(secret);
    window.getSelection()?.removeAllRanges();
    window.getSelection()?.addRange(range);
    try {
      await navigator.clipboard.writeText(created.token);
      copy.textContent = t('admin.form.copied');
    } catch {
      copy.textContent = t('admin.form.copy_by_hand'); // no clipboard (plain HTTP): it is selected
    }
  });
  clear(slot);
  slot.append(
    h('p', {}, t('admin.form.token_once', { account: created.account })),
    h('p', {}, secret, ' ', copy),
  );
  slot.hidden = false;
}

function tokenForm(context: AdminContext, slot: HTMLElement, sites: [string, string][]): HTMLFormElement {
  const account = input('account', { required: true, maxlength: 64, autocomplete: 'off', placeholder: 'fudong-ris' });
  const site = choice('site_id', [['', t('admin.form.existing_account')], ...sites]);
  const name = input('name', { maxlength: 200 });
  const days = input('days', { inputmode: 'numeric', value: '365' });
  const form = h(
    'form',
    { class: 'admin-form', id: 'token-form' },
    h('h4', {}, t('admin.form.token')),
    field('admin.form.account', account),
    field('admin.form.site_of_account', site),
    field('admin.form.token_name', name),
    field('admin.form.days', days),
    h('button', { type: 'submit', class: 'primary', id: 'token-submit' }, t('admin.form.create')),
  );
  return onSubmit(form, async () => {
    const typed = days.value.trim();
    const created = await api<Created>('POST', '/api/admin/tokens', {
      account: account.value.trim(),
      site_id: site.value ? Number(site.value) : null,
      name: optional(name),
      days: /^-?\d+$/.test(typed) ? Number(typed) : typed,
    });
    await context.changed(t('admin.form.token_created', { account: created.account }));
    reveal(slot, created);
  });
}

function revokeButton(context: AdminContext, token: Token): HTMLButtonElement | string {
  if (token.state !== 'active') return '';
  const button = h('button', { class: 'small', 'data-action': 'revoke', 'data-token': token.prefix }, t('admin.form.revoke'));
  button.addEventListener('click', async () => {
    if (!window.confirm(t('admin.form.revoke_confirm', { prefix: token.prefix, account: token.account }))) return;
    try {
      await api('DELETE', `/api/admin/tokens/${token.id}`);
      await context.changed(t('admin.form.revoked', { prefix: token.prefix }));
    } catch (failure) {
      context.notice.textContent = explain(failure);
    }
  });
  return button;
}

export function tokensPanel(context: AdminContext, slot: HTMLElement, tokens: Token[], sites: [string, string][]): HTMLElement {
  return h(
    'section',
    { class: 'panel' },
    h('h3', {}, t('admin.tokens')),
    slot,
    grid(
      'admin-tokens',
      ['admin.form.account', 'admin.form.token_name', 'admin.col.token', 'admin.col.expires', 'admin.col.last_used', 'admin.col.state', 'admin.col.action'],
      tokens.map((k) => [
        k.account,
        k.name ?? '',
        `${k.prefix}…`,
        day(k.expires_at),
        day(k.last_used_at),
        term('admin.token_state', k.state),
        revokeButton(context, k),
      ]),
    ),
    h('div', { class: 'forms' }, tokenForm(context, slot, sites)),
  );
}
