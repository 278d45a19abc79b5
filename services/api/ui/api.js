// The API as the dashboard calls it: the token (kept in this browser's local storage), reads,
// paged reads and actions. A 401 signs out; other errors are answers the caller shows.
const listeners = { unauthorized: () => undefined };

// A token given as #token=… is taken once and removed from the address bar.
const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromHash) {
  localStorage.setItem('ferry-token', fromHash);
  history.replaceState(null, '', location.pathname);
}
export const session = { token: localStorage.getItem('ferry-token') };

export function signIn(token) {
  session.token = token;
  localStorage.setItem('ferry-token', token);
}

/** What to do when the API refuses the token (show the login form). */
export function onUnauthorized(callback) {
  listeners.unauthorized = callback;
}

const headers = (extra = {}) => ({ authorization: `Bearer ${session.token}`, ...extra });

function refused() {
  localStorage.removeItem('ferry-token');
  session.token = null;
  listeners.unauthorized('That token was refused.');
  return new Error('unauthorized');
}

/** A read: the JSON answer, or an error. */
export async function api(path) {
  const res = await fetch(path, { headers: headers() });
  if (res.status === 401) throw refused();
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

/**
 * An action: `{status, body}` whatever the status (a 400's body has `details.problems`, a 409's
 * the reasons); only a 401 throws.
 */
export async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status === 401) throw refused();
  let answer = null;
  try {
    answer = await res.json();
  } catch {
    // an empty or non-JSON answer
  }
  return { status: res.status, ok: res.ok, body: answer };
}

/**
 * A list route's pages (limit + cursor → nextCursor), at most `cap` records: the dashboard shows a
 * view, not an export (`ferry workloads` and friends list every one).
 */
export async function apiPages(path, key, cap) {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams(path.split('?')[1] ?? '');
    query.set('limit', String(Math.min(1000, cap - items.length)));
    if (cursor) query.set('cursor', cursor);
    const page = await api(`${path.split('?')[0]}?${query}`);
    items.push(...page[key]);
    cursor = page.nextCursor ?? null;
  } while (cursor && items.length < cap);
  return { items, more: cursor !== null };
}

/** The API's error answer in words: its message, or every problem it names. */
export function problemsOf(answer) {
  const problems = answer.body?.details?.problems;
  if (Array.isArray(problems) && problems.length > 0) return problems.map((p) => ({ field: p.field ?? null, code: p.code ?? null, message: p.message }));
  return [{ field: null, code: answer.body?.code ?? `HTTP ${answer.status}`, message: answer.body?.message ?? `the API answered ${answer.status}` }];
}
