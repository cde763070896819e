import { api, ApiError, setCsrfToken, type Session, type User } from './api';

let current: Session | null = null;

export function session(): Session | null {
  return current;
}

export function user(): User | null {
  return current?.user ?? null;
}

/** The session the cookie holds, or null (401). */
export async function resume(): Promise<Session | null> {
  try {
    current = await api<Session>('GET', '/api/session');
    setCsrfToken(current.csrf_token);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    current = null;
  }
  return current;
}

export async function logIn(login: string, password: string): Promise<Session> {
  current = await api<Session>('POST', '/api/session', { login, password });
  setCsrfToken(current.csrf_token);
  return current;
}

export async function logOut(): Promise<void> {
  try {
    await api<void>('DELETE', '/api/session');
  } finally {
    current = null;
    setCsrfToken('');
  }
}

export function forget(): void {
  current = null;
  setCsrfToken('');
}

/** Where each role starts. */
export function home(role: User['role']): string {
  return { reader: '/worklist', site: '/site', qa: '/qa', admin: '/admin' }[role];
}
