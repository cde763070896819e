// Administration, read side: the consortium's sites with their AEs and return destinations, its
// readers with their rosters, and the SLA table. Changes go through `yunying` or /api/admin.
import { get } from '../api';
import { h } from '../dom';
import { t, term } from '../i18n';
import type { Page } from '../router';

interface Site {
  id: number;
  name: string;
  tier: string;
  contact: string | null;
  return_ae_title: string | null;
  return_host: string | null;
  return_port: number | null;
  aes: { ae_title: string; allowed_address: string; assumed_charset: string | null }[];
}

interface Reader {
  username: string;
  display_name: string | null;
  tier: string;
  modalities: string[];
  active: boolean;
  roster: string[];
}

interface Sla {
  priority: string;
  modality: string | null;
  minutes: number;
}

function grid(id: string, columns: string[], rows: (string | number)[][]): HTMLTableElement {
  return h(
    'table',
    { class: 'grid', id },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, t(c))))),
    h('tbody', {}, rows.map((row) => h('tr', {}, row.map((cell) => h('td', {}, cell))))),
  );
}

export const adminPage: Page = async (root) => {
  const [sites, readers, sla] = await Promise.all([get<Site[]>('/api/admin/sites'), get<Reader[]>('/api/admin/readers'), get<Sla[]>('/api/admin/sla')]);
  root.append(
    h('h2', {}, t('admin.title')),
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
          s.aes.map((ae) => `${ae.ae_title} ← ${ae.allowed_address}${ae.assumed_charset ? ` (${ae.assumed_charset})` : ''}`).join(', '),
          s.return_ae_title ? `${s.return_ae_title}@${s.return_host}:${s.return_port}` : '',
          s.contact ?? '',
        ]),
      ),
    ),
    h(
      'div',
      { class: 'cards' },
      h(
        'section',
        { class: 'panel' },
        h('h3', {}, t('admin.readers')),
        grid(
          'admin-readers',
          ['admin.col.reader', 'admin.col.tier', 'admin.col.modalities', 'admin.col.roster', 'admin.col.active'],
          readers.map((r) => [`${r.display_name ?? ''} (${r.username})`, term('tier', r.tier), r.modalities.join(' '), r.roster.join('; '), r.active ? '✓' : '✗']),
        ),
      ),
      h(
        'section',
        { class: 'panel' },
        h('h3', {}, t('admin.sla')),
        grid('admin-sla', ['admin.col.priority', 'admin.col.modality', 'admin.col.minutes'], sla.map((s) => [term('priority', s.priority), s.modality ?? t('admin.any'), s.minutes])),
      ),
    ),
  );
};
