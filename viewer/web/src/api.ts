// The one way the pages talk to the server: same-origin fetch, so the session cookie goes
// along; the CSRF token on every state-changing request; a 401 sends the user back to login.

export interface User {
  login: string;
  name: string;
  role: 'admin' | 'reader' | 'site' | 'qa';
  site: string | null;
}

export interface Session {
  user: User;
  csrf_token: string;
  idle_timeout_s: number;
  expires_at?: string;
}

/** Why the server refused an input, for the page to say it in its user's language: the
 * catalogues' ``error.<code>`` filled with ``params``, shown beside the input named ``field``. */
export interface Refusal {
  code: string;
  field: string | null;
  params: Record<string, string | number>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly retryAfter: number | null = null,
    readonly refusal: Refusal | null = null,
  ) {
    super(detail);
  }
}

/** A refusal from an administrative route (``code``) or from request validation (a list of
 * errors, each with the ``loc`` of its input). */
function refusalOf(answer: { code?: unknown; field?: unknown; params?: unknown; detail?: unknown }): Refusal | null {
  if (typeof answer.code === 'string') {
    return {
      code: answer.code,
      field: typeof answer.field === 'string' ? answer.field : null,
      params: (answer.params ?? {}) as Record<string, string | number>,
    };
  }
  if (Array.isArray(answer.detail) && answer.detail.length) {
    const loc: unknown[] = answer.detail[0].loc ?? [];
    const field = loc.length ? String(loc[loc.length - 1]) : null;
    return { code: 'field_invalid', field, params: {} };
  }
  return null;
}

let csrfToken = '';
let onUnauthorised: () => void = () => {};

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

export function csrfHeader(): Record<string, string> {
  return csrfToken ? { 'X-CSRF-Token': csrfToken } : {};
}

export function whenUnauthorised(handler: () => void): void {
  onUnauthorised = handler;
}

const SAFE = new Set(['GET', 'HEAD']);

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE.has(method)) Object.assign(headers, csrfHeader());
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path !== '/api/session') onUnauthorised();
  if (!response.ok) {
    let detail = response.statusText;
    let refusal: Refusal | null = null;
    try {
      const answer = await response.json();
      detail = typeof answer.detail === 'string' ? answer.detail : JSON.stringify(answer.detail ?? answer);
      refusal = refusalOf(answer);
    } catch {
      /* not JSON: keep the status text */
    }
    const retry = response.headers.get('Retry-After');
    throw new ApiError(response.status, detail, retry ? Number(retry) : null, refusal);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

// GETs started before a page asks for them (a study opened by its URL starts its requests beside
// the session check and the viewer's chunk, not after them). Kept briefly: an answer nobody took
// at once is not handed out later as if it were fresh.
const PREFETCH_TTL_MS = 15_000;
const prefetched = new Map<string, { answer: Promise<unknown>; at: number }>();

/** Start a GET of ``path`` now; the next ``get`` (or ``takePrefetched``) of it takes the answer. */
export function prefetch<T>(path: string, accept = 'application/json'): Promise<T> {
  const answer = fetch(path, { headers: { Accept: accept }, credentials: 'same-origin' }).then(async (response) => {
    if (!response.ok) throw new ApiError(response.status, response.statusText);
    return (response.status === 204 ? [] : await response.json()) as T;
  });
  answer.catch(() => undefined); // whoever takes it asks again on failure, with the usual handling
  prefetched.set(path, { answer, at: performance.now() });
  return answer;
}

/** The early answer for ``path``, once, if it was started recently. */
export function takePrefetched<T>(path: string): Promise<T> | undefined {
  const early = prefetched.get(path);
  prefetched.delete(path);
  return early && performance.now() - early.at < PREFETCH_TTL_MS ? (early.answer as Promise<T>) : undefined;
}

export const get = <T>(path: string): Promise<T> => {
  const early = takePrefetched<T>(path);
  return early ? early.catch(() => api<T>('GET', path)) : api<T>('GET', path);
};

/** ``/path?a=1&b=2``, leaving out empty values; arrays repeat the name. */
export function withQuery(path: string, query: Record<string, string | number | boolean | string[] | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === '' || value === false) continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, String(one));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}
