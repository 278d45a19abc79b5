// Ferry dashboard: plain JS modules, no build. Lists come from the API; live changes from
// GET /v1/events (server-sent events read through fetch, so the token travels in a header, not in
// the URL). Actions (actions.js, drag.js) are shown only to tokens whose role allows them.
import { api, apiPages, onUnauthorized, session, signIn } from './api.js';
import { loadAccess } from './access.js';
import { applyAccess, fillCreateChoices, hostCell, initActions, migrationCell, workloadCell } from './actions.js';
import { draggable, dragging, followMoves, initDrag, markHosts } from './drag.js';
import { $, ago, badge, bar, esc, eventLine, gib, mib, readEventStream } from './util.js';
import { EMPTY_FILTERS, filtersFromQuery, filtersToQuery, hostQuery, withinLoaded, workloadMatches, workloadQuery } from './filters.js';
import { closePage, initPages, parseRoute, showPage } from './pages.js';

const PHASES = ['validate', 'reserve', 'prepare', 'presync', 'precopy', 'freeze', 'transfer', 'restore', 'verify', 'commit', 'cleanup'];
const ACTIVE = new Set(['queued', 'running', 'rolling-back']);
/** host cards and workload rows per page: the page shows what the filters ask for, "more" follows the cursor */
const HOST_PAGE = 48;
const WORKLOAD_PAGE = 100;
/** short pages of a narrow filter followed at once, at most (each examines up to ~5,000 records) */
const FOLLOW_SHORT_PAGES = 4;
/** a host card lists this many of its workloads, the host's page every one */
const CARD_WORKLOADS = 12;
/** events the list opens with (the API keeps the latest of them) */
const RECENT_EVENTS = 50;
/** how long a workload that just arrived on its new host stays highlighted */
const ARRIVED_MS = 10_000;
/** the shown hosts are read again this often: capacity and usage change with every report, which makes no event */
const HOSTS_EVERY_MS = 10_000;

function fill(table, rows) {
  $(`#${table} tbody`).innerHTML = rows.join('');
}

const state = {
  filters: { ...EMPTY_FILTERS },
  hosts: [],
  workloads: [],
  migrations: new Map(),
  plans: [],
  failovers: [],
  /** the cursors of the next pages (null: the last page is shown) */
  hostsCursor: null,
  workloadsCursor: null,
  /** moves started from this page: workload → {migrationId, from, to} until it arrived or failed */
  moves: new Map(),
  /** workload → when it arrived on its new host (highlighted a while) */
  arrived: new Map(),
};

/** One host as a card: its state, capacity bars and the workloads its newest report lists. */
function hostCard(h) {
  const c = h.capacity;
  // CPU its workloads used over the last report (their cgroups): the host's own figure,
  // where the load average is the kernel's (one machine's for every host of a lab)
  const used = c.containers.reduce((sum, k) => sum + (k.usage?.cpuPercent ?? 0), 0) / 100;
  // its workloads' working sets, not the kernel's figure (one machine's for every host of a lab)
  const mem = c.containers.reduce((sum, k) => sum + (k.usage?.memoryBytes ?? 0), 0);
  const disk = c.pools.reduce((a, p) => ({ used: a.used + p.totalBytes - p.freeBytes, total: a.total + p.totalBytes }), { used: 0, total: 0 });
  const chips = c.containers
    .slice(0, CARD_WORKLOADS)
    .map(
      (k) =>
        `<a class="chip ${esc(k.state)}" href="#/workloads/${encodeURIComponent(k.id)}" title="${esc(k.id)}: ${esc(k.state)}${k.usage ? `, ${k.usage.cpuPercent}% CPU, ${mib(k.usage.memoryBytes)}` : ''}">${esc(k.id)}</a>`,
    );
  const rest = c.containers.length - CARD_WORKLOADS;
  if (rest > 0) chips.push(`<a class="chip more" href="#/hosts/${encodeURIComponent(h.id)}">+${rest} more</a>`);
  return `<article class="host-card" data-host="${esc(h.id)}">
    <header><a class="host-link" href="#/hosts/${encodeURIComponent(h.id)}">${esc(h.id)}</a> ${badge(h.state)}${h.isolated ? ' <span title="silent on the control plane, alive on storage: nothing restarted elsewhere">isolated</span>' : ''}${h.maintenance ? ` <span class="badge entering">${h.maintenance.state === 'in' ? 'in maintenance' : 'entering maintenance'}</span>` : ''}</header>
    <div class="bars" title="load average ${c.load.one.toFixed(2)}: the whole machine's, shared by every host of a lab on one machine">
      ${bar(used / c.cpu.count, `CPU ${used.toFixed(2)} of ${c.cpu.count}`)}
      ${bar(mem / c.memory.totalBytes, `memory ${mem < 2 ** 30 ? mib(mem) : gib(mem)} of ${gib(c.memory.totalBytes)}`)}
      ${bar(disk.total ? disk.used / disk.total : 0, `disk ${gib(disk.used)} of ${gib(disk.total)}`)}
    </div>
    <div class="chips" aria-label="workloads on ${esc(h.id)}">${chips.join('') || '<span class="muted">no workloads</span>'}</div>
    ${hostCell(h)}
  </article>`;
}

function renderHosts() {
  fillCreateChoices(state.hosts);
  $('#hosts').innerHTML = state.hosts.map(hostCard).join('') || '<p class="muted">No host matches.</p>';
  $('#more-hosts').hidden = state.hostsCursor === null;
  $('#hosts-count').textContent = `${state.hosts.length}${state.hostsCursor ? '+' : ''} shown`;
  markHosts();
}

function renderWorkloads() {
  const now = Date.now();
  fill(
    'workloads',
    state.workloads.map((w) => {
      const u = w.observed?.usage;
      const drag = draggable(w) ? ` draggable="true" title="drag onto a host to migrate ${esc(w.spec.id)}"` : '';
      const arrived = now - (state.arrived.get(w.spec.id) ?? 0) < ARRIVED_MS ? ' class="arrived"' : '';
      const link = `<a href="#/workloads/${encodeURIComponent(w.spec.id)}">${esc(w.spec.id)}</a>`;
      return `<tr data-workload="${esc(w.spec.id)}"${drag}${arrived}><td>${drag ? '<span class="grip" aria-hidden="true">⠿</span> ' : ''}${link}</td><td class="host">${esc(w.hostId ?? '—')}</td><td>${badge(w.phase)}</td><td>${w.epoch}</td>
        <td>${w.spec.ha.enabled ? `yes (${w.spec.ha.priority})` : 'no'}</td>
        <td>${u ? bar(u.memoryBytes / u.memoryLimitBytes, `${mib(u.memoryBytes)} of ${mib(u.memoryLimitBytes)}`) : ''}</td>
        <td>${u ? `${u.cpuPercent}%` : ''}</td>${workloadCell(w)}</tr>`;
    }),
  );
  $('#more-workloads').hidden = state.workloadsCursor === null;
  $('#workloads-count').textContent = state.workloads.length ? `${state.workloads.length}${state.workloadsCursor ? '+' : ''} shown` : 'No workload matches.';
  const f = filtersToQuery(state.filters);
  $('#workloads-filter').textContent = f ? `filtered: ${decodeURIComponent(f).replaceAll('&', ', ')}` : '';
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

/** The shown hosts again (one request for as many as are shown): their capacity changes with every report. */
async function loadHosts(more = false) {
  const limit = more ? HOST_PAGE : Math.min(1000, Math.max(HOST_PAGE, state.hosts.length));
  const page = await api(hostQuery(state.filters, limit, more ? state.hostsCursor : null));
  state.hosts = more ? state.hosts.concat(page.hosts) : page.hosts;
  state.hostsCursor = page.nextCursor;
}

/**
 * The shown workloads again (or the next page): the filters decide, server-side. A filter that
 * matches few records gets partial pages (the API examines a bounded number per request), so a
 * short page with a cursor is followed a few times to fill the view before "more" is left to the reader.
 */
async function loadWorkloads(more = false) {
  const limit = more ? WORKLOAD_PAGE : Math.min(1000, Math.max(WORKLOAD_PAGE, state.workloads.length));
  let cursor = more ? state.workloadsCursor : null;
  const found = [];
  for (let round = 0; round < FOLLOW_SHORT_PAGES; round++) {
    const page = await api(workloadQuery(state.filters, limit - found.length, cursor));
    found.push(...page.workloads);
    cursor = page.nextCursor;
    if (!cursor || found.length >= limit) break;
  }
  state.workloads = more ? state.workloads.concat(found) : found;
  state.workloadsCursor = cursor;
  followMoves(null);
}

/** Only the migrations in progress (a few), the newest plans and failovers. */
async function loadActivity() {
  const [queued, running, rollingBack, plans, failovers] = await Promise.all([
    ...[...ACTIVE].map((s) => apiPages(`/v1/migrations?state=${s}`, 'migrations', 1000)),
    api('/v1/plans?limit=10'),
    api('/v1/failovers?limit=10'),
  ]);
  // the migrations in progress now, with the live copy progress events brought
  const previous = state.migrations;
  state.migrations = new Map([...queued.items, ...running.items, ...rollingBack.items].map((m) => [m.id, { ...previous.get(m.id), ...m }]));
  state.plans = plans.plans.sort((a, b) => b.createdAt - a.createdAt);
  state.failovers = failovers.failovers.sort((a, b) => b.detectedAt - a.detectedAt);
  followMoves(null);
}

/**
 * Everything shown, read again (after an action of this page, and when the filters change). The
 * hosts and the workloads are drawn as soon as each is read: the first paint waits for no other
 * request — not for the role (the rows are drawn again with their actions once it is known, see
 * open()), nor for the activity lists, read once the two are there so that they do not compete
 * with them for the API (measured at 1,000 hosts: bench/RESULTS.md "Console first paint").
 */
async function refresh() {
  const drawn = (draw) => () => {
    if (!dragging()) draw();
  };
  await Promise.all([loadHosts().then(drawn(renderHosts)), loadWorkloads().then(drawn(renderWorkloads))]);
  await loadActivity();
  renderMigrations();
  renderPlans();
  renderFailovers();
}

let pending = null;
const refreshSoon = () => {
  pending ??= setTimeout(() => {
    pending = null;
    refresh().catch(() => undefined);
  }, 300);
};

let activityPending = null;
const activitySoon = () => {
  activityPending ??= setTimeout(() => {
    activityPending = null;
    loadActivity()
      .then(() => {
        renderMigrations();
        renderPlans();
        renderFailovers();
      })
      .catch(() => undefined);
  }, 500);
};

/**
 * The workloads events named, read again one by one (a burst of events for one workload during a
 * migration is one read) and put where they belong: in the list when the filters take them and
 * they fall within the pages shown, out of it otherwise. Nothing else is read again.
 */
const touchedWorkloads = new Set();
let touchPending = null;
function touchWorkload(id) {
  touchedWorkloads.add(id);
  touchPending ??= setTimeout(() => {
    touchPending = null;
    const ids = [...touchedWorkloads];
    touchedWorkloads.clear();
    Promise.all(ids.map((wid) => api(`/v1/workloads/${encodeURIComponent(wid)}`).catch(() => null)))
      .then((records) => {
        ids.forEach((wid, i) => placeWorkload(wid, records[i]));
        followMoves(null);
        if (!dragging()) renderWorkloads();
      })
      .catch(() => undefined);
  }, 250);
}

function placeWorkload(id, record) {
  const at = state.workloads.findIndex((w) => w.spec.id === id);
  const last = state.workloads.at(-1)?.spec.id ?? null;
  const belongs = record && workloadMatches(record, state.filters) && withinLoaded(id, last, state.workloadsCursor !== null);
  if (!belongs) {
    if (at >= 0) state.workloads.splice(at, 1);
    return;
  }
  if (at >= 0) state.workloads[at] = record;
  else {
    const before = state.workloads.findIndex((w) => w.spec.id > id);
    state.workloads.splice(before < 0 ? state.workloads.length : before, 0, record);
  }
}

/** A host whose state changed, read again when it is shown. */
async function touchHost(id) {
  if (!state.hosts.some((h) => h.id === id)) return;
  const host = await api(`/v1/hosts/${encodeURIComponent(id)}`).catch(() => null);
  const at = state.hosts.findIndex((h) => h.id === id);
  if (host && at >= 0) state.hosts[at] = host;
  if (!dragging()) renderHosts();
}

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
  line.textContent = eventLine(event);
  $('#events').prepend(line);
  while ($('#events').children.length > 100) $('#events').lastChild.remove();
  if (replayed) return;
  if (event.type.startsWith('migration.')) {
    // live progress straight from the event; the full record follows
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
    activitySoon(); // the record as it is now (started, phase ended, finished)
    if (event.workloadId) touchWorkload(event.workloadId);
    return;
  }
  if (event.type.startsWith('workload.')) touchWorkload(event.workloadId);
  else if (event.type === 'host.state') void touchHost(event.hostId);
  else activitySoon(); // a failover
}

/**
 * Reads the event stream until it ends, then comes back after a pause (the API restarted, …). It
 * opens with the latest events, so the list is not empty on load; a reconnect asks for what it
 * missed since the last event it saw (Last-Event-ID), which the same API process can replay.
 */
async function follow() {
  let lastEventId = null;
  let reconnected = false;
  for (;;) {
    try {
      const headers = { authorization: `Bearer ${session.token}`, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) };
      const res = await fetch(`/v1/events?recent=${RECENT_EVENTS}`, { headers });
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
      $('#status').textContent = 'live';
      let replaying = true; // until the server's `: live`: events that already happened
      await readEventStream(res.body, ({ id, data, comments }) => {
        if (id) lastEventId = id;
        if (comments.includes(': live')) {
          replaying = false;
          if (reconnected) refreshSoon(); // what it missed while away, the lists show as it is now
          reconnected = true;
        }
        if (data) onEvent(JSON.parse(data), replaying);
      });
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
/** the token's role and what it may do (access.js), read once per sign-in */
let accessReady = Promise.resolve();
async function open() {
  $('#login').hidden = true;
  $('#main').hidden = false;
  // the role is read while the lists are; rows drawn before it is known have no actions, and are
  // drawn again with those it allows
  accessReady = loadAccess().then(() => {
    applyAccess();
    render();
  });
  if (!opened) {
    opened = true;
    const context = { state, refreshSoon, render };
    initActions(context);
    initDrag(context);
    initFilters();
    initPages();
    window.addEventListener('hashchange', () => void route());
    // capacity makes no event: the shown hosts are read again; plans and failovers likewise
    setInterval(() => {
      if (document.hidden || dragging() || !$('#page').hidden) return;
      Promise.all([loadHosts(), loadActivity()])
        .then(() => {
          renderHosts();
          renderMigrations();
          renderPlans();
          renderFailovers();
        })
        .catch(() => undefined);
    }, HOSTS_EVERY_MS);
  }
  void follow();
  await Promise.all([accessReady, route()]);
}

/** The form's filters, applied from the address (#/?phase=running): a filtered view can be linked and reloaded. */
function initFilters() {
  const form = $('#filters');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const filters = Object.fromEntries(Object.keys(EMPTY_FILTERS).map((key) => [key, form.elements[key].value.trim()]));
    const query = filtersToQuery(filters);
    location.hash = `#/${query ? `?${query}` : ''}`;
  });
  form.addEventListener('reset', () => setTimeout(() => form.requestSubmit(), 0));
  $('#more-hosts').addEventListener('click', () => void loadHosts(true).then(renderHosts));
  $('#more-workloads').addEventListener('click', () => void loadWorkloads(true).then(renderWorkloads));
}

let overviewShown = false;
/** #/ (the overview, with its filters), #/workloads/<id> or #/hosts/<id> (their pages). */
async function route() {
  const target = parseRoute(location.hash);
  $('#overview').hidden = target.kind !== 'overview';
  $('#page').hidden = target.kind === 'overview';
  if (target.kind !== 'overview') {
    await accessReady; // a page's tools (console, logs, suspend) are drawn for the role
    await showPage(target);
    return;
  }
  closePage();
  const filters = filtersFromQuery(target.query);
  const form = $('#filters');
  for (const [key, value] of Object.entries(filters)) form.elements[key].value = value;
  const changed = filtersToQuery(filters) !== filtersToQuery(state.filters);
  state.filters = filters;
  if (changed || !overviewShown) {
    // a new view: its first pages, not more of the old one
    state.hosts = [];
    state.workloads = [];
  }
  overviewShown = true;
  await refresh();
}

$('#login').addEventListener('submit', (e) => {
  e.preventDefault();
  signIn($('#token').value.trim());
  open().catch(() => undefined);
});

if (session.token) open().catch(() => undefined);
else showLogin();
