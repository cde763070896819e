import './style.css';
import { whenUnauthorised, type User } from './api';
import { h, clear } from './dom';
import { locale, setLocale, t } from './i18n';
import { navigate, route, show, startRouter, type Page } from './router';
import { forget, home, logOut, resume, session, user } from './session';
import { loginPage } from './pages/login';
import { worklistPage } from './pages/worklist';
import { sitePage } from './pages/site';
import { qaPage } from './pages/qa';
import { adminPage } from './pages/admin';
import { prefetchReading } from './pages/reading-early';

const app = document.getElementById('app')!;
type Role = User['role'];

/** A page for the given roles only; anyone else is sent to his own start page. */
function guarded(roles: Role[], page: Page): Page {
  return async (root, params) => {
    const who = user() ?? (await resume())?.user;
    if (!who) {
      navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
      return;
    }
    if (!roles.includes(who.role)) {
      navigate(home(who.role), true);
      return;
    }
    return page(root, params);
  };
}

// The viewer and report editor, with Cornerstone3D, load only when a study is opened.
const readingPage: Page = async (root, params) => (await import('./pages/reading')).readingPage(root, params);
// Opened by its URL: the viewer's chunk and the study's first requests start now, while the
// session is checked, not after (the server also preloads that chunk from the page's <head>).
const opened = /^\/read\/([^/]+)\/?$/.exec(location.pathname);
if (opened) {
  prefetchReading(decodeURIComponent(opened[1]));
  void import('./pages/reading').catch(() => undefined);
}

route('/login', loginPage);
route('/', async () => {
  const who = user() ?? (await resume())?.user;
  navigate(who ? home(who.role) : '/login', true);
});
// A reader opens studies from the worklist: fetch and evaluate the viewer's chunk (and start
// Cornerstone) while he looks at the list, not after his click.
const worklistThenViewer: Page = async (root, params) => {
  const stop = await worklistPage(root, params);
  const soon = window.setTimeout(() => {
    void import('./pages/reading').then((module) => module.warmUp()).catch(() => undefined);
  }, 1500);
  return () => {
    window.clearTimeout(soon);
    if (stop) stop();
  };
};
route('/worklist', guarded(['reader'], worklistThenViewer));
route('/read/:taskId', guarded(['reader'], readingPage));
route('/site', guarded(['site'], sitePage));
route('/qa', guarded(['qa', 'admin'], qaPage));
route('/admin', guarded(['admin'], adminPage));

const NAV: Record<Role, [string, string][]> = {
  reader: [['/worklist', 'nav.worklist']],
  site: [['/site', 'nav.site']],
  qa: [['/qa', 'nav.qa']],
  admin: [
    ['/admin', 'nav.admin'],
    ['/qa', 'nav.qa'],
  ],
};

function header(): HTMLElement {
  const who = user();
  const switchTo = locale() === 'zh-CN' ? 'en' : 'zh-CN';
  return h(
    'header',
    { class: 'topbar' },
    h('a', { class: 'brand', href: '/', 'data-route': true }, t('app.name')),
    h(
      'nav',
      {},
      who ? NAV[who.role].map(([path, key]) =>
        h('a', { href: path, 'data-route': true, class: location.pathname.startsWith(path) ? 'active' : null }, t(key)),
      ) : [],
    ),
    h('span', { class: 'spacer' }),
    h(
      'button',
      {
        class: 'link',
        id: 'locale-switch',
        title: t('app.switch_language'),
        onclick: () => {
          setLocale(switchTo);
          void show();
        },
      },
      t(`locale.${switchTo}`),
    ),
    who
      ? [
          h('span', { class: 'who', id: 'who' }, `${who.name || who.login} · ${t(`role.${who.role}`)}${who.site ? ` · ${who.site}` : ''}`),
          h(
            'button',
            {
              class: 'link',
              id: 'logout',
              onclick: async () => {
                await logOut().catch(() => undefined);
                navigate('/login', true);
              },
            },
            t('app.logout'),
          ),
        ]
      : null,
  );
}

async function render(page: Page, params: Record<string, string>) {
  clear(app);
  const main = h('main', {});
  app.append(header(), main);
  document.title = t('app.name');
  const loading = h('p', { class: 'muted', id: 'loading' }, t('app.loading'));
  main.append(loading);
  // Gone as soon as the page puts its own content up (the reading page does before its images
  // have come), not when the page's promise settles: the layout would move under the reader.
  const contentShown = new MutationObserver(() => {
    if (main.childElementCount > 1) loading.remove();
  });
  contentShown.observe(main, { childList: true });
  try {
    return await page(main, params);
  } catch (error) {
    main.append(h('p', { class: 'error' }, t('app.failed', { detail: String((error as Error).message ?? error) })));
  } finally {
    contentShown.disconnect();
    loading.remove();
  }
}

// A 401 from any call: the session expired (idle timeout) or was ended elsewhere.
whenUnauthorised(() => {
  if (location.pathname === '/login') return;
  forget();
  navigate(`/login?expired=1&next=${encodeURIComponent(location.pathname)}`, true);
});

// Idle timeout. The worklist polls, and every request keeps the server's session alive, so
// the browser ends an idle session itself: a warning a minute before, then logout — and at the
// session's absolute end (expires_at) whatever the activity.
const WARN_BEFORE_S = 60;
let lastActivity = Date.now();
for (const kind of ['mousedown', 'keydown', 'wheel', 'touchstart']) {
  window.addEventListener(kind, () => (lastActivity = Date.now()), { passive: true, capture: true });
}
const idleBanner = h('div', { class: 'banner idle', id: 'idle-warning', role: 'alert', hidden: true });
document.body.append(idleBanner);

async function endSession(): Promise<void> {
  idleBanner.hidden = true;
  const from = location.pathname;
  await logOut().catch(() => undefined);
  navigate(`/login?expired=1&next=${encodeURIComponent(from)}`, true);
}

window.setInterval(() => {
  const current = session();
  if (!current || location.pathname === '/login') {
    idleBanner.hidden = true;
    return;
  }
  const now = Date.now();
  const left = current.idle_timeout_s - (now - lastActivity) / 1000;
  const ends = current.expires_at ? new Date(current.expires_at).getTime() : Infinity;
  if (left <= 0 || now >= ends) {
    void endSession();
  } else if (left <= WARN_BEFORE_S) {
    idleBanner.textContent = t('session.idle_warning', { s: Math.ceil(left) });
    idleBanner.hidden = false;
  } else {
    idleBanner.hidden = true;
  }
}, 1000);

startRouter(render, () => {
  clear(app);
  app.append(header(), h('main', {}, h('p', { class: 'error' }, t('app.not_found'))));
});
// Who is logged in decides the header and the start page: ask once before the first page.
void resume()
  .catch(() => null)
  .then(() => show());
