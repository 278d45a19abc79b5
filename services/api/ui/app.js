// Ferry dashboard: plain JS modules, no build. Lists come from the API; live changes from
// GET /v1/events (server-sent events read through fetch, so the token travels in a header, not in
// the URL). Actions (actions.js, drag.js) are shown only to tokens whose role allows them.
import { api, apiPages, onUnauthorized, session, signIn } from './api.js';
import { loadAccess } from './access.js';
import { applyAccess, fillCreateChoices, hostActionsAllowed, hostCell, initActions, migrationCell, workloadActionsAllowed, workloadCell } from './actions.js';
import { draggable, dragging, followMoves, initDrag, markHosts } from './drag.js';
import { $, ago, badge, bar, esc, gib, mib } from './util.js';

const PHASES = ['validate', 'reserve', 'prepare', 'presync', 'precopy', 'freeze', 'transfer', 'restore', 'verify', 'commit', 'cleanup'];
const ACTIVE = new Set(['queued', 'running', 'rolling-back']);
const LIST_CAP = 5000;
/** events the list opens with (the API keeps the latest of them) */
const RECENT_EVENTS = 50;
/** how long a workload that just arrived on its new host stays highlighted */
const ARRIVED_MS = 10_000;
const moreRow = (shown, columns, command) => `<tr class="more"><td colspan="${columns}">the first ${shown} shown: <code>${command}</code> lists every one</td></tr>`;

function fill(table, rows) {
  $(`#${table} tbody`).innerHTML = rows.join('');
}

const state = {
  hosts: [],
  workloads: [],
  migrations: new Map(),
  plans: [],
  failovers: [],
  moreHosts: false,
  moreWorkloads: false,
  /** moves started from this page: workload → {migrationId, from, to} until it arrived or failed */
  moves: new Map(),
  /** workload → when it arrived on its new host (highlighted a while) */
  arrived: new Map(),
};

function renderHosts() {
  const allocated = new Map();
  for (const w of state.workloads) if (w.hostId && w.phase !== 'failed') allocated.set(w.hostId, (allocated.get(w.hostId) ?? 0) + w.spec.resources.memoryMiB * 2 ** 20);
  const columns = 7 + (hostActionsAllowed() ? 1 : 0);
  fill(
    'hosts',
    state.hosts
      .map((h) => {
        const c = h.capacity;
        const mem = allocated.get(h.id) ?? 0;
        // CPU its workloads used over the last report (their cgroups): the host's own figure,
        // where the load average is the kernel's (one machine's for every host of a lab)
        const used = c.containers.reduce((sum, k) => sum + (k.usage?.cpuPercent ?? 0), 0) / 100;
        const disk = c.pools.reduce((a, p) => ({ used: a.used + p.totalBytes - p.freeBytes, total: a.total + p.totalBytes }), { used: 0, total: 0 });
        return `<tr data-host="${esc(h.id)}"><td>${esc(h.id)}</td><td>${badge(h.state)}${h.isolated ? ' <span title="silent on the control plane, alive on storage: nothing restarted elsewhere">isolated</span>' : ''}</td>
        <td title="load average ${c.load.one.toFixed(2)}: the whole machine's, shared by every host of a lab on one machine">${bar(used / c.cpu.count, `${used.toFixed(2)} of ${c.cpu.count} CPUs`)}</td>
        <td>${bar(mem / c.memory.totalBytes, `${gib(mem)} of ${gib(c.memory.totalBytes)}`)}</td>
        <td>${bar(disk.total ? disk.used / disk.total : 0, `${gib(disk.used)} of ${gib(disk.total)}`)}</td>
        <td>${c.containers.length}</td><td>${h.maintenance ? `<span class="badge entering">${h.maintenance.state === 'in' ? 'in maintenance' : 'entering maintenance'}</span>` : ''}</td>${hostCell(h)}</tr>`;
      })
      .concat(state.moreHosts ? [moreRow(state.hosts.length, columns, 'ferry hosts')] : []),
  );
  markHosts();
}

function renderWorkloads() {
  const columns = 7 + (workloadActionsAllowed() ? 1 : 0);
  const now = Date.now();
  fill(
    'workloads',
    state.workloads
      .map((w) => {
        const u = w.observed?.usage;
        const drag = draggable(w) ? ` draggable="true" title="drag onto a host to migrate ${esc(w.spec.id)}"` : '';
        const arrived = now - (state.arrived.get(w.spec.id) ?? 0) < ARRIVED_MS ? ' class="arrived"' : '';
        return `<tr data-workload="${esc(w.spec.id)}"${drag}${arrived}><td>${drag ? '<span class="grip" aria-hidden="true">⠿</span> ' : ''}${esc(w.spec.id)}</td><td class="host">${esc(w.hostId ?? '—')}</td><td>${badge(w.phase)}</td><td>${w.epoch}</td>
        <td>${w.spec.ha.enabled ? `yes (${w.spec.ha.priority})` : 'no'}</td>
        <td>${u ? bar(u.memoryBytes / u.memoryLimitBytes, `${mib(u.memoryBytes)} of ${mib(u.memoryLimitBytes)}`) : ''}</td>
        <td>${u ? `${u.cpuPercent}%` : ''}</td>${workloadCell(w)}</tr>`;
      })
      .concat(state.moreWorkloads ? [moreRow(state.workloads.length, columns, 'ferry workloads')] : []),
  );
}

function renderMigrations() {
  const active = [...state.migrations.values()].filter((m) => ACTIVE.has(m.state)).sort((a, b) => a.createdAt - b.createdAt);
  $('#no-migrations').hidden = active.length > 0;
  fill(
    'migrations',
    active.map((m) => {
      const step = Math.max(0, PHASES.indexOf(m.phase)) + (m.phaseDone ? 1 : 0.5);
      const bytes = m.copied
        ? ` · copying ${mib(m.copied.bytes)} (${m.copied.percent}%)`
        : m.bytes?.total
          ? ` · ${mib(m.bytes.sent)} of ${mib(m.bytes.total)}`
          : m.bytes?.sent
            ? ` · ${mib(m.bytes.sent)}`
            : '';
      return `<tr data-migration="${esc(m.id)}"><td>${esc(m.id)}</td><td>${esc(m.workloadId)}</td><td>${esc(m.source)} → ${esc(m.destination)}</td>
        <td>${esc(m.strategy)}</td><td>${badge(m.state)} ${esc(m.phase)}</td><td>${bar(step / PHASES.length, `${esc(m.phase)}${bytes}`)}</td>${migrationCell(m)}</tr>`;
    }),
  );
}

function renderPlans() {
  const score = (v) => (v === null || v === undefined ? '—' : v.toFixed(4));
  fill(
    'plans',
    state.plans.slice(0, 10).map((p) => {
      const done = p.moves.filter((m) => m.status === 'completed').length;
      return `<tr><td>${esc(p.id)}</td><td>${esc(p.kind)}</td><td>${badge(p.state)}</td><td>${score(p.scoreBefore)} → ${score(p.scoreAfter)}</td><td>${done} / ${p.moves.length}</td></tr>`;
    }),
  );
}

function renderFailovers() {
  fill(
    'failovers',
    state.failovers.slice(0, 10).map((f) => {
      const restarted = f.restarts.filter((r) => r.status === 'restarted');
      const not = f.restarts.filter((r) => r.status !== 'restarted');
      return `<tr><td>${esc(f.hostId)}</td><td>${ago(f.detectedAt)}</td><td>${badge(f.state)}</td>
        <td>${restarted.map((r) => `${esc(r.workload)} → ${esc(r.to)}`).join(', ')}</td>
        <td>${not.map((r) => `<span title="${esc(r.reason)}">${esc(r.workload)} (${esc(r.status)})</span>`).join(', ')}</td></tr>`;
    }),
  );
}

/** Everything from the state; the host and workload rows wait while a row is being dragged. */
function render() {
  if (!dragging()) {
    renderHosts();
    renderWorkloads();
  }
  renderMigrations();
  renderPlans();
  renderFailovers();
}

async function refresh() {
  // lists are paged: hosts and workloads up to LIST_CAP, only the migrations in progress, the newest plans and failovers
  const [hosts, workloads, queued, running, rollingBack, plans, failovers] = await Promise.all([
    apiPages('/v1/hosts', 'hosts', LIST_CAP),
    apiPages('/v1/workloads', 'workloads', LIST_CAP),
    ...[...ACTIVE].map((s) => apiPages(`/v1/migrations?state=${s}`, 'migrations', 1000)),
    api('/v1/plans?limit=10'),
    api('/v1/failovers?limit=10'),
  ]);
  state.hosts = hosts.items;
  state.moreHosts = hosts.more;
  state.workloads = workloads.items;
  state.moreWorkloads = workloads.more;
  // the migrations in progress now, with the live copy progress events brought
  const previous = state.migrations;
  state.migrations = new Map([...queued.items, ...running.items, ...rollingBack.items].map((m) => [m.id, { ...previous.get(m.id), ...m }]));
  state.plans = plans.plans.sort((a, b) => b.createdAt - a.createdAt);
  state.failovers = failovers.failovers.sort((a, b) => b.detectedAt - a.detectedAt);
  followMoves(null);
  fillCreateChoices(state.hosts);
  render();
}

let pending = null;
const refreshSoon = () => {
  pending ??= setTimeout(() => {
    pending = null;
    refresh().catch(() => undefined);
  }, 300);
};

/** One event from the stream; `replayed`: it happened before the stream opened, so it is only listed. */
function onEvent(event, replayed = false) {
  if (event.type === 'migration.progress') {
    if (replayed) return;
    // the source agent's copy progress (rsync's running total) within presync or transfer
    const known = state.migrations.get(event.migrationId);
    if (known) {
      state.migrations.set(event.migrationId, { ...known, phase: event.phase, phaseDone: false, copied: { bytes: event.bytes, percent: event.percent } });
      renderMigrations();
    }
    return;
  }
  const line = document.createElement('li');
  const what =
    event.type === 'host.state'
      ? `${event.hostId}: ${event.from ?? 'new'} → ${event.to}`
      : event.type.startsWith('workload.')
        ? `${event.workloadId}: ${event.phase ?? 'destroyed'}${event.hostId ? ` on ${event.hostId}` : ''}`
        : event.type.startsWith('migration.')
          ? `${event.workloadId}: ${event.phase} ${event.status}${event.bytes?.sent ? ` (${mib(event.bytes.sent)})` : ''}`
          : `failover of ${event.failover.hostId}: ${event.failover.state}`;
  line.textContent = `${new Date(event.at).toLocaleTimeString()}  ${event.type}  ${what}`;
  $('#events').prepend(line);
  while ($('#events').children.length > 100) $('#events').lastChild.remove();
  if (replayed) return;
  if (event.type.startsWith('migration.')) {
    // live progress straight from the event; the full record follows with the next refresh
    const known = state.migrations.get(event.migrationId) ?? { id: event.migrationId, workloadId: event.workloadId, createdAt: event.at };
    state.migrations.set(event.migrationId, {
      ...known,
      state: event.state,
      phase: event.phase,
      phaseDone: event.status !== 'started',
      copied: null,
      ...(event.bytes ? { bytes: event.bytes } : {}),
      ...(event.strategy ? { strategy: event.strategy, source: event.source, destination: event.destination } : {}),
    });
    renderMigrations();
    followMoves(event);
  }
  refreshSoon();
}

/**
 * Reads the event stream until it ends, then comes back after a pause (the API restarted, …). It
 * opens with the latest events, so the list is not empty on load; a reconnect asks for what it
 * missed since the last event it saw (Last-Event-ID), which the same API process can replay.
 */
async function follow() {
  let lastEventId = null;
  for (;;) {
    try {
      const headers = { authorization: `Bearer ${session.token}`, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) };
      const res = await fetch(`/v1/events?recent=${RECENT_EVENTS}`, { headers });
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
      $('#status').textContent = 'live';
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let replaying = true; // until the server's `: live`: events that already happened
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n');
          const data = lines
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          const id = lines.find((l) => l.startsWith('id: '));
          if (id) lastEventId = id.slice(4);
          if (lines.includes(': live')) {
            replaying = false;
            refreshSoon(); // what the replay only listed, the lists show as it is now
          }
          if (data) onEvent(JSON.parse(data), replaying);
        }
      }
    } catch {
      // fall through to the retry
    }
    $('#status').textContent = 'reconnecting…';
    await new Promise((resolve) => setTimeout(resolve, 2000));
    if (!session.token) return;
  }
}

function showLogin(message) {
  $('#main').hidden = true;
  $('#login').hidden = false;
  $('#status').textContent = message ?? 'signed out';
}
onUnauthorized(showLogin);

let opened = false;
async function open() {
  $('#login').hidden = true;
  $('#main').hidden = false;
  // the role first: the rows are drawn with the actions it allows
  await loadAccess();
  applyAccess();
  if (!opened) {
    opened = true;
    const context = { state, refreshSoon, render };
    initActions(context);
    initDrag(context);
    setInterval(() => refresh().catch(() => undefined), 5000);
  }
  await refresh();
  void follow();
}

$('#login').addEventListener('submit', (e) => {
  e.preventDefault();
  signIn($('#token').value.trim());
  open().catch(() => undefined);
});

if (session.token) open().catch(() => undefined);
else showLogin();
