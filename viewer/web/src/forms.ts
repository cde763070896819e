// Forms that change something on the server: the server validates, and its refusal is said in
// the user's language beside the input at fault (the catalogues' ``error.<code>``), never as
// the server's English.
import { ApiError } from './api';
import { h } from './dom';
import { t } from './i18n';

/** A labelled input; ``name`` is the field the server names in a refusal. */
export function field(label: string, control: HTMLInputElement | HTMLSelectElement): HTMLLabelElement {
  return h('label', { 'data-field': control.name }, t(label), control, h('small', { class: 'error field-error', role: 'alert' }));
}

export function input(name: string, attrs: Record<string, string | number | boolean> = {}): HTMLInputElement {
  return h('input', { name, ...attrs });
}

/** A select of ``options``; ``value`` chosen when it is one of them, else the first. */
export function choice(name: string, options: [string, string][], value?: string): HTMLSelectElement {
  const element = h('select', { name }, options.map(([v, label]) => h('option', { value: v }, label)));
  if (value !== undefined && options.some(([v]) => v === value)) element.value = value;
  return element;
}

/** The input's value, or null when left empty. */
export function optional(control: HTMLInputElement | HTMLSelectElement): string | null {
  const value = control.value.trim();
  return value === '' ? null : value;
}

function clearErrors(form: HTMLFormElement): void {
  form.querySelectorAll('.field-error, .form-error').forEach((element) => (element.textContent = ''));
  form.querySelectorAll('[aria-invalid]').forEach((element) => element.removeAttribute('aria-invalid'));
}

/** The refusal's text in the user's language; an unexpected failure with its detail. */
export function explain(failure: unknown): string {
  if (failure instanceof ApiError && failure.refusal) return t(`error.${failure.refusal.code}`, failure.refusal.params);
  if (failure instanceof ApiError && failure.status === 404) return t('error.not_found');
  return t('app.failed', { detail: (failure as Error).message });
}

/** Show a failure beside its input when the server named one the form has, else under the form. */
export function showFailure(form: HTMLFormElement, failure: unknown): void {
  const text = explain(failure);
  const name = failure instanceof ApiError ? failure.refusal?.field : null;
  const slot = name ? form.querySelector<HTMLElement>(`label[data-field="${CSS.escape(name)}"]`) : null;
  if (slot) {
    slot.querySelector('.field-error')!.textContent = text;
    slot.querySelector('input, select')?.setAttribute('aria-invalid', 'true');
  } else {
    form.querySelector('.form-error')!.textContent = text;
  }
}

/** Submit handling: errors cleared, the button disabled while the request runs, a refusal shown. */
export function onSubmit(form: HTMLFormElement, send: () => Promise<void>): HTMLFormElement {
  form.append(h('p', { class: 'error form-error', role: 'alert' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector<HTMLButtonElement>('button[type=submit]');
    if (button) button.disabled = true;
    try {
      await send();
    } catch (failure) {
      showFailure(form, failure);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}
