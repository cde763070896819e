// Texts live in the message catalogues (zh-CN.json, en.json), never in code. Simplified Chinese
// is the default; the choice is kept in localStorage.
import zhCN from './zh-CN.json';
import en from './en.json';

export type Locale = 'zh-CN' | 'en';
const catalogues: Record<Locale, Record<string, string>> = { 'zh-CN': zhCN, en };
const STORAGE_KEY = 'yy-locale';

let current: Locale = (localStorage.getItem(STORAGE_KEY) as Locale | null) ?? 'zh-CN';
if (!(current in catalogues)) current = 'zh-CN';

export function locale(): Locale {
  return current;
}

export function setLocale(next: Locale): void {
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
}

/** The text of ``key`` in the current language, with ``{name}`` placeholders filled in. */
export function t(key: string, params: Record<string, string | number> = {}): string {
  const text = catalogues[current][key] ?? catalogues['zh-CN'][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

/** ``prefix.value`` when the catalogue has it (states, priorities), else the value itself. */
export function term(prefix: string, value: string | null | undefined): string {
  if (!value) return '';
  const key = `${prefix}.${value}`;
  return key in catalogues[current] ? t(key) : value;
}

document.documentElement.lang = current;
