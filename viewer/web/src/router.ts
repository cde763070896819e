// A tiny history router: paths map to pages; a page may return a function that stops what it
// started (polling, timers, the viewer) when the user leaves it.

export type Cleanup = () => void;
export type Page = (root: HTMLElement, params: Record<string, string>) => Cleanup | void | Promise<Cleanup | void>;

interface Route {
  pattern: RegExp;
  names: string[];
  page: Page;
}

const routes: Route[] = [];
let cleanup: Cleanup | void = undefined;
let render: (page: Page, params: Record<string, string>) => Promise<Cleanup | void> = async () => undefined;
let notFound: () => void = () => {};

export function route(path: string, page: Page): void {
  const names: string[] = [];
  const pattern = new RegExp(
    '^' + path.replace(/:(\w+)/g, (_, name: string) => (names.push(name), '([^/]+)')) + '/?$',
  );
  routes.push({ pattern, names, page });
}

export function startRouter(renderer: typeof render, missing: () => void): void {
  render = renderer;
  notFound = missing;
  window.addEventListener('popstate', () => void show());
  document.addEventListener('click', (event) => {
    const link = (event.target as Element).closest?.('a[data-route]');
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(link.getAttribute('href') ?? '/');
  });
}

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  void show();
}

export async function show(): Promise<void> {
  if (cleanup) cleanup();
  cleanup = undefined;
  const path = location.pathname;
  for (const { pattern, names, page } of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
    cleanup = await render(page, params);
    return;
  }
  notFound();
}
