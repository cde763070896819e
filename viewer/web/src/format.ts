import { locale, t } from './i18n';

/** One PN component group (``Family^Given^Middle^Prefix^Suffix``) as people write it. */
function nameGroup(group: string): string {
  const [family = '', given = ''] = group.split('^');
  if (/[\u3400-\u9fff]/.test(family + given)) return `${family}${given}`;
  return [given, family].filter(Boolean).join(' ');
}

/** DICOM PN ``王^桂英`` or ``Wang^Guiying=王^桂英`` (alphabetic=ideographic, PS3.5 6.2.1) as
 * people write it: the ideographic form first when there is one. */
export function personName(pn: string | null | undefined): string {
  if (!pn) return '';
  const [alphabetic = '', ideographic = ''] = pn.split('=').map(nameGroup);
  if (ideographic && alphabetic) return `${ideographic} (${alphabetic})`;
  return ideographic || alphabetic || pn;
}

/** Age in years at the study date, from DICOM DA values (YYYYMMDD). */
export function ageAt(birth: string | null | undefined, on: string | null | undefined): string {
  if (!birth || birth.length !== 8) return '';
  const when = on && on.length === 8 ? on : new Date().toISOString().slice(0, 10).replace(/-/g, '');
  let years = Number(when.slice(0, 4)) - Number(birth.slice(0, 4));
  if (when.slice(4) < birth.slice(4)) years -= 1;
  return years >= 0 ? t('format.years', { n: years }) : '';
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return '';
  return new Date(iso).toLocaleString(locale(), { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
}

export function dicomDate(da: string | null | undefined): string {
  if (!da || da.length !== 8) return da ?? '';
  return `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}`;
}

/** Time left to a deadline as ``1:05:09`` (or ``-0:03:10`` once breached). */
export function countdown(deadline: string, now: number = Date.now()): { text: string; breached: boolean } {
  let seconds = Math.round((new Date(deadline).getTime() - now) / 1000);
  const breached = seconds <= 0;
  seconds = Math.abs(seconds);
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const secs = seconds % 60;
  const text = `${breached ? '-' : ''}${hours}:${String(minutes).padStart(2, '0')}:${String(secs).padStart(2, '0')}`;
  return { text, breached };
}

export function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? '—' : `${(value * 100).toFixed(1)}%`;
}
