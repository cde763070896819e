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

export const get = <T>(path: string) => api<T>('GET', path);

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
