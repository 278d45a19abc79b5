// Migrate by dragging: a workload's row dragged onto a host's card. While it is over a host the
// migrate dry run checks that host (once per host per drag) and the hint says where and how it
// would move, or every reason it would not; nothing moves until the drop, and a drop on a host
// that refused moves nothing. The row of a moved workload shows its new host when it arrives.
import { $, esc } from './util.js';
import { checkMove, dryRunHtml, notify, perms, startMove } from './actions.js';
import { problemsOf } from './api.js';

let ctx = null;
/** the drag under way: {workload, from, checks: Map(host → Promise<answer>), results: Map(host → answer), over} */
let drag = null;

export const dragging = () => drag !== null;

const hint = (html, kind = '') => {
  const el = $('#drag-hint');
  el.className = `drag-hint ${kind}`;
  el.innerHTML = html;
  el.hidden = false;
};

/** Whether a workload's row may be dragged (the role may migrate, and it is settled on a host). */
export const draggable = (w) => perms.migrate && Boolean(w.hostId) && (w.phase === 'running' || w.phase === 'stopped');

export function initDrag(context) {
  ctx = context;
  const workloads = $('#workloads tbody');
  const hosts = $('#hosts');
  workloads.addEventListener('dragstart', (e) => {
    const row = e.target.closest?.('tr[data-workload][draggable="true"]');
    const w = row && ctx.state.workloads.find((x) => x.spec.id === row.dataset.workload);
    if (!w) return;
    e.dataTransfer.setData('text/plain', w.spec.id);
    e.dataTransfer.effectAllowed = 'move';
    drag = { workload: w.spec.id, from: w.hostId, checks: new Map(), results: new Map(), over: null };
    row.classList.add('dragged');
    document.body.classList.add('dragging');
    hint(`Drop <strong>${esc(w.spec.id)}</strong> (on ${esc(w.hostId)}) on a host to migrate it live: each host is checked as it passes over.`);
  });
  workloads.addEventListener('dragend', () => endDrag());
  // a host's card is a drop target: both events cancelled (the spec's way to accept a drop)
  const overHost = (e) => {
    const row = e.target.closest?.('[data-host]');
    if (!drag || !row) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = drag.results.get(row.dataset.host)?.ok === false ? 'none' : 'move';
    if (drag.over !== row.dataset.host) over(row.dataset.host);
  };
  hosts.addEventListener('dragenter', overHost);
  hosts.addEventListener('dragover', overHost);
  hosts.addEventListener('dragleave', (e) => {
    const row = e.target.closest?.('[data-host]');
    if (!drag || !row || row.contains(e.relatedTarget)) return;
    row.classList.remove('drop-over');
    if (drag.over === row.dataset.host) drag.over = null;
  });
  hosts.addEventListener('drop', (e) => {
    const row = e.target.closest?.('[data-host]');
    if (!drag || !row) return;
    e.preventDefault();
    drag.dropped = true;
    void drop(drag, row.dataset.host);
  });
}

/** The card of a host, for marks (re-rendered cards get them back from markHosts). */
const hostRow = (host) => document.querySelector(`#hosts [data-host="${CSS.escape(host)}"]`);

function over(host) {
  const d = drag;
  d.over = host;
  for (const row of document.querySelectorAll('#hosts .drop-over')) row.classList.remove('drop-over');
  hostRow(host)?.classList.add('drop-over');
  if (host === d.from) {
    hint(`<p><strong>${esc(d.workload)}</strong> already runs on ${esc(host)}.</p>`);
    return;
  }
  hint(`<p>Checking whether ${esc(host)} can take <strong>${esc(d.workload)}</strong>…</p>`, 'checking');
  check(d, host).then((answer) => {
    if (drag === d && d.over === host) hint(dryRunHtml(answer, d.workload, host), answer.ok ? 'ok' : 'refused');
  });
}

function check(d, host) {
  if (!d.checks.has(host)) {
    d.checks.set(
      host,
      checkMove(d.workload, host).then((answer) => {
        d.results.set(host, answer);
        markHosts();
        return answer;
      }),
    );
  }
  return d.checks.get(host);
}

/** Marks each host the drag has checked: can take it, or refuses (with the reasons as the row's title). */
export function markHosts() {
  for (const row of document.querySelectorAll('#hosts [data-host]')) {
    const answer = drag?.results.get(row.dataset.host);
    row.classList.toggle('compat-ok', answer?.ok === true);
    row.classList.toggle('compat-refused', answer?.ok === false);
    row.classList.toggle('drop-over', drag?.over === row.dataset.host);
    if (answer && !answer.ok)
      row.title = problemsOf(answer)
        .map((p) => p.message)
        .join('; ');
    else row.removeAttribute('title');
  }
}

async function drop(d, host) {
  if (host === d.from) return;
  const answer = await check(d, host);
  if (!answer.ok) {
    hint(`<p><strong>${esc(d.workload)}</strong> was not moved.</p>${dryRunHtml(answer, d.workload, host)}`, 'refused');
    return;
  }
  const w = ctx.state.workloads.find((x) => x.spec.id === d.workload);
  const started = await startMove(w, host);
  if (!started.ok) {
    hint(`<p><strong>${esc(d.workload)}</strong> was not moved.</p>${dryRunHtml(started.answer, d.workload, host)}`, 'refused');
    return;
  }
  hint(`<p>Migrating <strong>${esc(d.workload)}</strong> ${esc(d.from)} → ${esc(host)} (${esc(started.migration.id)}, ${esc(started.migration.strategy)})…</p>`, 'moving');
  notify(`Migrating ${d.workload} ${d.from} → ${host} (${started.migration.id})`);
}

function endDrag() {
  const d = drag;
  drag = null;
  // released where nothing happens: on a host that refused (no drop there), or off every host
  const refusal = d?.over ? d.results.get(d.over) : undefined;
  if (d && !d.dropped && refusal && !refusal.ok) hint(`<p><strong>${esc(d.workload)}</strong> was not moved.</p>${dryRunHtml(refusal, d.workload, d.over)}`, 'refused');
  else if (d && !d.dropped) hint(`<p>Dropped on no host: <strong>${esc(d.workload)}</strong> was not moved.</p>`);
  document.body.classList.remove('dragging');
  for (const row of document.querySelectorAll('#workloads tr.dragged')) row.classList.remove('dragged');
  markHosts();
  ctx.render();
}

/**
 * After each refresh and migration event: a move started here that ended says so — arrived
 * (the record names the new host and it runs) or not moved (rolled back, failed).
 */
export function followMoves(event) {
  for (const [id, move] of ctx.state.moves) {
    const w = ctx.state.workloads.find((x) => x.spec.id === id);
    if (event?.type === 'migration.finished' && event.migrationId === move.migrationId && event.state !== 'completed') {
      ctx.state.moves.delete(id);
      hint(`<p><strong>${esc(id)}</strong> was not moved: migration ${esc(move.migrationId)} ${esc(event.state)} (at ${esc(event.phase)}); it runs on ${esc(move.from)}.</p>`, 'refused');
      continue;
    }
    if (w && w.hostId === move.to && w.phase === 'running' && !w.migratingTo) {
      ctx.state.moves.delete(id);
      move.arrived = true;
      hint(`<p>✓ <strong>${esc(id)}</strong> arrived on ${esc(move.to)} (from ${esc(move.from)}, ${esc(move.migrationId)}).</p>`, 'ok');
      ctx.state.arrived.set(id, Date.now());
    }
  }
}
