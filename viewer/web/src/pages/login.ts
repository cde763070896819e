import { ApiError } from '../api';
import { h } from '../dom';
import { t } from '../i18n';
import { navigate, type Page } from '../router';
import { home, logIn } from '../session';

export const loginPage: Page = (root) => {
  const query = new URLSearchParams(location.search);
  const message = h('p', { class: 'message', id: 'login-message', role: 'alert' }, query.get('expired') ? t('login.expired') : '');
  const login = h('input', { name: 'login', id: 'login', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'login-submit' }, t('login.submit'));
  const form = h(
    'form',
    { class: 'login-form', id: 'login-form' },
    h('h1', {}, t('app.name')),
    h('p', { class: 'subtitle' }, t('app.tagline')),
    h('label', {}, t('login.login'), login),
    h('label', {}, t('login.password'), password),
    submit,
    message,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.textContent = '';
    try {
      const session = await logIn(login.value.trim(), password.value);
      const next = query.get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') && next !== '/login' ? next : home(session.user.role), true);
    } catch (error) {
      if (error instanceof ApiError && error.status === 429) {
        message.textContent = t('login.throttled', { s: error.retryAfter ?? 60 });
      } else if (error instanceof ApiError && error.status === 401) {
        message.textContent = t('login.refused');
      } else {
        message.textContent = t('app.failed', { detail: (error as Error).message });
      }
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  root.classList.add('center');
  root.append(form);
};
