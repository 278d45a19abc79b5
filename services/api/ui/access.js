// Who is signed in, and what that token may do: GET /v1/whoami says its role; the API's own
// OpenAPI document says the least role of every operation (x-ferry-role), so the dashboard shows
// exactly the actions the API would allow — and a viewer none.
import { api } from './api.js';

const ROLES = ['viewer', 'operator', 'admin'];
export const me = { name: null, role: null };
let operations = null;

export async function loadAccess() {
  const [who, doc] = await Promise.all([
    api('/v1/whoami').catch(() => null),
    fetch('/v1/openapi.json').then(
      (r) => (r.ok ? r.json() : null),
      () => null,
    ),
  ]);
  me.name = who?.name ?? null;
  me.role = who?.role ?? null;
  operations = doc?.paths ?? null;
}

/** Whether the signed-in token may call `method path` (OpenAPI style: /v1/workloads/{id}/start); unknown: no. */
export function can(method, path) {
  const needed = operations?.[path]?.[method.toLowerCase()]?.['x-ferry-role'];
  if (!needed || !me.role) return false;
  if (needed === 'open') return true;
  return ROLES.indexOf(me.role) >= ROLES.indexOf(needed);
}

/** The actions the dashboard offers, each with the operation it calls. */
export const ACTIONS = {
  create: ['POST', '/v1/workloads'],
  start: ['POST', '/v1/workloads/{id}/start'],
  stop: ['POST', '/v1/workloads/{id}/stop'],
  suspend: ['POST', '/v1/workloads/{id}/suspend'],
  resume: ['POST', '/v1/workloads/{id}/resume'],
  console: ['POST', '/v1/workloads/{id}/console'],
  logs: ['GET', '/v1/workloads/{id}/logs'],
  destroy: ['DELETE', '/v1/workloads/{id}'],
  migrate: ['POST', '/v1/workloads/{id}/migrate'],
  cancelMigration: ['DELETE', '/v1/migrations/{id}'],
  enterMaintenance: ['POST', '/v1/hosts/{id}/maintenance'],
  exitMaintenance: ['DELETE', '/v1/hosts/{id}/maintenance'],
  rebalance: ['POST', '/v1/rebalance'],
  executePlan: ['POST', '/v1/plans/{id}/execute'],
};

/** The actions allowed, by name: `{create: true, start: false, …}`. */
export function allowed() {
  return Object.fromEntries(Object.entries(ACTIONS).map(([name, [method, path]]) => [name, can(method, path)]));
}
