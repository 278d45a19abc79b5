// The overview's filters: what the form holds, as the API's query (server-side filtering and
// paging) and as a check of one record (a workload an event names: does it belong in the view?).
// Pure (unit-tested in services/api/src/console-ui.test.ts).

export const EMPTY_FILTERS = Object.freeze({ search: '', host: '', phase: '', label: '', template: '', hostState: '' });

/** The workloads route's query for these filters: `?host=…&phase=…` (only those set), plus limit and cursor. */
export function workloadQuery(filters, limit, cursor = null) {
  const q = new URLSearchParams();
  for (const key of ['search', 'host', 'phase', 'label', 'template']) if (filters[key]) q.set(key, filters[key]);
  q.set('limit', String(limit));
  if (cursor) q.set('cursor', cursor);
  return `/v1/workloads?${q}`;
}

/** The hosts route's query: a host named in the filter is searched by its id. */
export function hostQuery(filters, limit, cursor = null) {
  const q = new URLSearchParams();
  if (filters.host) q.set('search', filters.host);
  if (filters.hostState) q.set('state', filters.hostState);
  q.set('limit', String(limit));
  if (cursor) q.set('cursor', cursor);
  return `/v1/hosts?${q}`;
}

/** `tier=web,zone` → [{key, value|null}] (the API's LabelSelector, for the local check). */
export function parseLabels(text) {
  return text
    .split(',')
    .filter(Boolean)
    .map((term) => {
      const at = term.indexOf('=');
      return at < 0 ? { key: term, value: null } : { key: term.slice(0, at), value: term.slice(at + 1) };
    });
}

/** Whether a workload (as the API shows it) passes the filters, as the API would decide. */
export function workloadMatches(w, filters) {
  if (filters.search && !w.spec.id.startsWith(filters.search)) return false;
  if (filters.host && w.hostId !== filters.host) return false;
  if (filters.phase && w.phase !== filters.phase) return false;
  if (filters.template && w.spec.template !== filters.template) return false;
  if (filters.label) {
    const labels = w.spec.labels ?? {};
    if (!parseLabels(filters.label).every(({ key, value }) => Object.hasOwn(labels, key) && (value === null || labels[key] === value))) return false;
  }
  return true;
}

/** Filters from the address (#/?phase=running&label=tier=web) and back: a filtered view can be linked. */
export function filtersFromQuery(text) {
  const q = new URLSearchParams(text);
  return Object.fromEntries(Object.keys(EMPTY_FILTERS).map((key) => [key, (q.get(key) ?? '').trim()]));
}

export function filtersToQuery(filters) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value) q.set(key, value);
  return q.toString();
}

/**
 * Where a record an event names belongs in a list loaded in id order up to `lastLoaded` (more
 * pages after it) — inside what is shown, or beyond it (the "more" button will bring it).
 */
export const withinLoaded = (id, lastLoaded, more) => !more || lastLoaded === null || id <= lastLoaded;
