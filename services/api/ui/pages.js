// A page per workload (#/workloads/<id>) and per host (#/hosts/<id>): what the API knows of it,
// its last hour of usage as small charts (asked of the agents: GET …/usage), its migrations with
// the predicted and measured freeze and duration of each move, its history and events. Each
// page reads only its own records, and again while it is shown.
import { api, session } from './api.js';
import { sparkline } from './chart.js';
import { moveFigures } from './measured.js';
import { $, ago, badge, bar, esc, eventLine, gib, mib, ms } from './util.js';
import { suspendButtons, suspendOrResume } from './actions.js';
import { toolsHtml, wireTools } from './workload-tools.js';

/** how often a shown page reads its records again (usage: a sample a minute, the latest each read) */
const PAGE_EVERY_MS = 10_000;
const HOUR_MS = 3_600_000;

/** the page shown: {kind, id, timer, stream: AbortController, unlisten, …} */
let shown = null;

/** The workload page's own buttons (suspend, resume): the action, then the page read again. */
export function initPages() {
  $('#page').addEventListener('click', async (e) => {
    const action = e.target.closest('.page-actions button[data-action]')?.dataset.action;
    const page = shown;
    if (!action || page?.kind !== 'workload' || !page.workload) return;
    e.target.disabled = true;
    await suspendOrResume(action, page.workload);
    if (shown === page) void drawWorkload(page);
  });
}

/** `#/workloads/a` → {kind: 'workload', id: 'a'}; `#/hosts/h1` → host; anything else the overview (with its query). */
export function parseRoute(hash) {
  const path = hash.replace(/^#\/?/, '');
  const [head, query = ''] = path.split('?');
  const match = /^(workloads|hosts)\/([^/]+)$/.exec(head);
  if (match) return { kind: match[1] === 'workloads' ? 'workload' : 'host', id: decodeURIComponent(match[2]) };
  return { kind: 'overview', query };
}

export function closePage() {
  if (!shown) return;
  clearInterval(shown.timer);
  shown.stream?.abort();
  shown.unlisten?.();
  shown.closeTools?.();
  shown = null;
}

export async function showPage(target) {
  if (shown && shown.kind === target.kind && shown.id === target.id) return;
  closePage();
  const page = { ...target, timer: null, stream: null, unlisten: null };
  shown = page;
  $('#page').innerHTML = `<p class="muted">Loading ${esc(target.id)}…</p>`;
  if (target.kind === 'workload') {
    // the head and the rest are drawn again every 10 s; the tools between them (an open console, a
    // followed log) are drawn once and stay
    $('#page').innerHTML = `<div id="page-head"><p class="muted">Loading ${esc(target.id)}…</p></div><div id="workload-tools">${toolsHtml()}</div><div id="page-rest"></div>`;
    page.closeTools = wireTools(target.id);
  }
  const draw = target.kind === 'workload' ? () => drawWorkload(page) : () => drawHost(page);
  await draw();
  if (shown !== page) return;
  page.timer = setInterval(() => {
    if (!document.hidden) void draw();
  }, PAGE_EVERY_MS);
  if (target.kind === 'workload') followEvents(page, `workload=${encodeURIComponent(target.id)}`, () => true);
  else followEvents(page, 'kinds=host,workload,failover', (event) => event.hostId === target.id || event.failover?.hostId === target.id);
}

/** What the page shows is read again at most this soon after an event about it. */
function soon(page, draw) {
  page.pending ??= setTimeout(() => {
    page.pending = null;
    if (shown === page) void draw();
  }, 400);
}

const section = (title, body, id = '') => `<section${id ? ` id="${id}"` : ''}><h2>${title}</h2>${body}</section>`;
const table = (id, head, rows, empty) =>
  rows.length ? `<table id="${id}"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>` : `<p class="muted" id="${id}">${empty}</p>`;

/** Four small charts of one series (CPU, memory, disk, processes) over the last hour. */
function charts(samples, now, note = '') {
  const opts = { from: now - HOUR_MS, to: now };
  const chart = (title, pick, format, max) => `<figure class="chart"><figcaption>${title}</figcaption>${sparkline(samples, pick, { ...opts, label: title, format, max })}</figure>`;
  return `<div class="charts" data-samples="${samples.length}">
    ${chart(
      'CPU (% of one core)',
      (s) => s.cpuPercent,
      (v) => `${v.toFixed(1)}%`,
    )}
    ${chart(
      'memory',
      (s) => s.memoryBytes,
      (v) => mib(v),
    )}
    ${chart(
      'disk',
      (s) => s.diskBytes,
      (v) => mib(v),
    )}
    ${chart(
      'processes',
      (s) => s.pids,
      (v) => String(v),
    )}
  </div><p class="muted">${samples.length} sample${samples.length === 1 ? '' : 's'} in the last hour (one a minute and the latest report)${note}</p>`;
}

// ---- a workload's page ----------------------------------------------------------------------

async function drawWorkload(page) {
  const id = page.id;
  const [w, migrations, usage] = await Promise.all([
    api(`/v1/workloads/${encodeURIComponent(id)}`).catch((err) => ({ error: err.message })),
    api(`/v1/migrations?workload=${encodeURIComponent(id)}&limit=50`).catch(() => ({ migrations: [] })),
    api(`/v1/workloads/${encodeURIComponent(id)}/usage`).catch(() => null),
  ]);
  if (shown !== page) return;
  if (w.error) {
    $('#page-head').innerHTML = `<p><a href="#/">← overview</a></p><h2>Workload ${esc(id)}</h2><p class="bad-text">Not found (${esc(w.error)}).</p>`;
    $('#page-rest').innerHTML = '';
    return;
  }
  const now = Date.now();
  const spec = w.spec;
  const u = w.observed?.usage;
  const unavailable = (usage?.hosts ?? []).filter((h) => h.unavailable).map((h) => ` · ${esc(h.unavailable)}`);
  const moves = migrations.migrations.map((m) => {
    const f = moveFigures(m);
    const off = f.freezeRatio === null ? '' : ` <small class="muted">(×${f.freezeRatio.toFixed(2)})</small>`;
    return `<tr data-migration="${esc(m.id)}"><td title="${esc(new Date(m.createdAt).toLocaleString())}">${ago(m.createdAt)}</td><td><a href="#/hosts/${encodeURIComponent(m.source)}">${esc(m.source)}</a> → <a href="#/hosts/${encodeURIComponent(m.destination)}">${esc(m.destination)}</a></td>
      <td>${esc(m.strategy)}</td><td>${badge(m.state)}${m.error ? ` <small title="${esc(m.error.message)}">${esc(m.error.code)}</small>` : ''}</td>
      <td class="num predicted-freeze">${f.predictedFreezeMs === null ? '—' : ms(f.predictedFreezeMs)}</td><td class="num measured-freeze">${f.measuredFreezeMs === null ? '—' : ms(f.measuredFreezeMs)}${off}</td>
      <td class="num">${f.predictedSeconds === null ? '—' : `${f.predictedSeconds.toFixed(1)} s`}</td><td class="num">${f.measuredSeconds === null ? '—' : `${f.measuredSeconds.toFixed(1)} s`}</td>
      <td class="num">${mib(m.bytes.sent)}</td></tr>`;
  });
  const labels = Object.entries(spec.labels ?? {}).map(([k, v]) => `<code>${esc(k)}=${esc(v)}</code>`);
  page.workload = w;
  const actions = suspendButtons(w);
  $('#page-head').innerHTML = `<p><a href="#/">← overview</a></p>
    <h2 class="page-title">Workload <span id="page-id">${esc(id)}</span> <span id="page-phase">${badge(w.phase)}</span></h2>
    ${actions.length ? `<p class="page-actions">${actions.join(' ')}</p>` : ''}
    <dl class="facts">
      <dt>host</dt><dd>${w.hostId ? `<a href="#/hosts/${encodeURIComponent(w.hostId)}">${esc(w.hostId)}</a>` : '—'}${w.migratingTo ? ` → ${esc(w.migratingTo)}` : ''}</dd>
      <dt>epoch</dt><dd>${w.epoch}</dd>
      <dt>desired</dt><dd>${esc(w.desired)}</dd>
      <dt>template</dt><dd>${esc(spec.template)}</dd>
      <dt>resources</dt><dd>${spec.resources.vcpus} vCPU, ${spec.resources.memoryMiB} MiB memory, ${spec.resources.diskMiB} MiB disk</dd>
      <dt>HA</dt><dd>${spec.ha.enabled ? `yes (priority ${spec.ha.priority})` : 'no'}</dd>
      <dt>labels</dt><dd>${labels.join(' ') || '—'}</dd>
      <dt>now</dt><dd>${u ? `${u.cpuPercent}% CPU · ${bar(u.memoryBytes / u.memoryLimitBytes, `${mib(u.memoryBytes)} of ${mib(u.memoryLimitBytes)}`)} · ${u.pids} processes` : '—'}</dd>
      ${w.error ? `<dt>error</dt><dd class="bad-text">${esc(typeof w.error === 'string' ? w.error : JSON.stringify(w.error))}</dd>` : ''}
      ${w.suspended ? `<dt>checkpoint</dt><dd>${mib(w.suspended.bytes)} of images in pool ${esc(w.suspended.pool)}${w.suspended.shared ? ' (shared storage: it may resume on another host)' : ''}, dumped on ${esc(w.suspended.hostId)} ${ago(w.suspended.at)}</dd>` : ''}
    </dl>`;
  $('#page-rest').innerHTML = `
    ${section('Usage over the last hour', charts(usage?.samples ?? [], now, `${usage?.hosts?.length ? ` · on ${usage.hosts.map((h) => esc(h.hostId)).join(', ')}` : ''}${unavailable.join('')}`), 'usage')}
    ${section(
      'Migrations',
      table('moves', ['when', 'from → to', 'strategy', 'state', 'freeze predicted', 'freeze measured', 'duration predicted', 'duration measured', 'sent'], moves, 'Never migrated.') +
        '<p class="muted">Measured: the freeze as the agents timed it (dump to running again), the duration from the first phase to the end. (×n): measured ÷ predicted.</p>',
      'migration-history',
    )}
    <section><h2>Spec</h2><pre class="spec">${esc(JSON.stringify(spec, null, 2))}</pre></section>
    <section><h2>Events</h2><ol id="page-events" class="events">${(page.eventLines ?? []).join('')}</ol></section>`;
}

// ---- a host's page --------------------------------------------------------------------------

async function drawHost(page) {
  const id = page.id;
  const [h, history, failovers, usage] = await Promise.all([
    api(`/v1/hosts/${encodeURIComponent(id)}`).catch((err) => ({ error: err.message })),
    api(`/v1/hosts/${encodeURIComponent(id)}/history`).catch(() => ({ history: [] })),
    api(`/v1/failovers?host=${encodeURIComponent(id)}&limit=20`).catch(() => ({ failovers: [] })),
    api(`/v1/hosts/${encodeURIComponent(id)}/usage`).catch(() => null),
  ]);
  if (shown !== page) return;
  if (h.error) {
    $('#page').innerHTML = `<p><a href="#/">← overview</a></p><h2>Host ${esc(id)}</h2><p class="bad-text">Not found (${esc(h.error)}).</p>`;
    return;
  }
  const c = h.capacity;
  const now = Date.now();
  const disk = c.pools.map((p) => `${esc(p.id)}${p.shared ? ' (shared)' : ''}: ${bar((p.totalBytes - p.freeBytes) / p.totalBytes, `${gib(p.totalBytes - p.freeBytes)} of ${gib(p.totalBytes)}`)}`);
  const entries = history.history.map(
    (e) => `<tr class="history-${esc(e.kind)}"><td title="${esc(new Date(e.at).toLocaleString())}">${ago(e.at)}</td><td>${badge(e.kind)}</td><td>${esc(e.message)}</td></tr>`,
  );
  const fails = failovers.failovers.map((f) => {
    const restarted = f.restarts.filter((r) => r.status === 'restarted');
    return `<tr><td>${ago(f.detectedAt)}</td><td>${badge(f.state)}</td><td>${restarted.map((r) => `${esc(r.workload)} → ${esc(r.to)}`).join(', ') || '—'}</td><td>${f.restarts.length - restarted.length + f.unrecoverable.length}</td></tr>`;
  });
  $('#page').innerHTML = `<p><a href="#/">← overview</a></p>
    <h2 class="page-title">Host <span id="page-id">${esc(id)}</span> ${badge(h.state)}${h.maintenance ? ` <span class="badge entering">${h.maintenance.state === 'in' ? 'in maintenance' : 'entering maintenance'}</span>` : ''}</h2>
    <dl class="facts">
      <dt>CPU</dt><dd>${c.cpu.count} CPUs, ${esc(c.cpu.vendor ?? '')} ${esc(c.cpu.model ?? '')} · load ${c.load.one.toFixed(2)} (the machine's)</dd>
      <dt>memory</dt><dd>${bar((c.memory.totalBytes - c.memory.availableBytes) / c.memory.totalBytes, `${gib(c.memory.totalBytes - c.memory.availableBytes)} of ${gib(c.memory.totalBytes)} in use`)}</dd>
      <dt>storage pools</dt><dd>${disk.join('<br>') || '—'}</dd>
      <dt>networks</dt><dd>${c.networks.map((n) => esc(n.name)).join(', ') || '—'}</dd>
      <dt>templates</dt><dd>${c.templates.map((t) => esc(t.name)).join(', ') || '—'}</dd>
      <dt>last report</dt><dd>${ms(h.lastReportAgeMs)} ago</dd>
    </dl>
    ${section('Usage over the last hour', charts(usage?.samples ?? [], now, usage?.unavailable ? ` · ${esc(usage.unavailable)}` : ' · CPU, disk and processes: its workloads’; memory: the host’s in use'), 'usage')}
    ${section(
      `Workloads <small class="muted">${c.containers.length}</small>`,
      table('host-workloads', ['workload', 'state', 'epoch', 'CPU', 'memory', 'processes'], c.containers.map(containerRow), 'None.') +
        '<p class="muted">What its latest report lists (every copy it runs or keeps, whatever the records say); each links to its workload’s page.</p>',
    )}
    ${section('History', table('host-history', ['when', 'what', ''], entries, 'Nothing recorded yet.') + '<p class="muted">State changes, fencing, failovers, restarts (newest first).</p>', 'history')}
    ${section('Failovers', table('host-failovers', ['detected', 'state', 'restarted', 'not restarted'], fails, 'None.'))}
    <section><h2>Events</h2><ol id="page-events" class="events">${(page.eventLines ?? []).join('')}</ol></section>`;
}

function containerRow(k) {
  const u = k.usage;
  return `<tr data-workload="${esc(k.id)}"><td><a href="#/workloads/${encodeURIComponent(k.id)}">${esc(k.id)}</a></td><td>${badge(k.state)}</td><td>${k.epoch}</td><td>${u ? `${u.cpuPercent}%` : ''}</td><td>${u ? `${mib(u.memoryBytes)} of ${mib(u.memoryLimitBytes)}` : ''}</td><td>${u ? u.pids : ''}</td></tr>`;
}

// ---- a page's events ------------------------------------------------------------------------

/**
 * The page's own event stream (the API filters a workload's; a host's are picked here): it opens
 * with the recent ones, and each live one reads the page again.
 */
function followEvents(page, query, wanted) {
  page.stream = new AbortController();
  page.eventLines = [];
  const draw = page.kind === 'workload' ? () => drawWorkload(page) : () => drawHost(page);
  void (async () => {
    try {
      const res = await fetch(`/v1/events?recent=200&${query}`, { headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' }, signal: page.stream.signal });
      if (!res.ok || !res.body) return;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let live = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done || shown !== page) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end).split('\n');
          buffer = buffer.slice(end + 2);
          if (block.includes(': live')) live = true;
          const data = block
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (!data) continue;
          const event = JSON.parse(data);
          if (!wanted(event) || event.type === 'migration.progress') continue;
          const line = `<li>${esc(eventLine(event))}</li>`;
          page.eventLines = [line, ...page.eventLines.slice(0, 99)];
          $('#page-events')?.insertAdjacentHTML('afterbegin', line);
          if (live) soon(page, draw);
        }
      }
    } catch {
      // aborted (the page closed) or the stream ended: the timer still reads the page again
    }
  })();
}
