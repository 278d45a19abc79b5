// Actions on workloads and hosts: the buttons of each row, the create form, confirmations, the
// migrate dialog, maintenance and rebalance. Only what the token's role allows is shown
// (access.js); every action is an API call, and its refusal is shown as the API words it.
import { call, problemsOf } from './api.js';
import { allowed, me } from './access.js';
import { $, esc, ms, mib } from './util.js';

let ctx = null;
export let perms = {};

/** Wires the actions to the dashboard's state and refresh (once). */
export function initActions(context) {
  ctx = context;
  $('#workloads tbody').addEventListener('click', onWorkloadClick);
  $('#hosts').addEventListener('click', onHostClick);
  $('#migrations tbody').addEventListener('click', onMigrationClick);
  $('#create').addEventListener('submit', (e) => {
    e.preventDefault();
    void createWorkload();
  });
  $('#rebalance').addEventListener('click', () => void rebalance());
}

/** Shows what the signed-in token's role allows, and nothing else (after each sign-in). */
export function applyAccess() {
  perms = allowed();
  const role = me.role ?? 'unknown';
  $('#whoami').textContent = me.name ? `${me.name} (${role})` : '';
  document.body.dataset.role = role;
  for (const th of document.querySelectorAll('#workloads th.act')) th.hidden = !workloadActionsAllowed();
  for (const th of document.querySelectorAll('#migrations th.act')) th.hidden = !perms.cancelMigration;
  $('#create-section').hidden = !perms.create;
  $('#rebalance').hidden = !perms.rebalance;
}

export const workloadActionsAllowed = () => perms.start || perms.stop || perms.suspend || perms.resume || perms.destroy || perms.migrate;
export const hostActionsAllowed = () => perms.enterMaintenance || perms.exitMaintenance;

/** A message for the person at the screen (an action's result or refusal), in the status region. */
export function notify(text, kind = 'ok') {
  const notice = $('#notice');
  notice.className = `notice ${kind}`;
  notice.textContent = text;
  notice.hidden = false;
}

const button = (action, label, extra = '') => `<button type="button" data-action="${action}"${extra}>${esc(label)}</button>`;

/** The actions cell of a workload's row ('' when the role allows none). */
export function workloadCell(w) {
  if (!workloadActionsAllowed()) return '';
  const id = esc(w.spec.id);
  const parts = [];
  const settled = w.phase === 'running' || w.phase === 'stopped';
  if (perms.stop && w.phase === 'running') parts.push(button('stop', 'Stop', ` aria-label="Stop ${id}"`));
  if (perms.start && (w.phase === 'stopped' || w.phase === 'failed')) parts.push(button('start', 'Start', ` aria-label="Start ${id}"`));
  parts.push(...suspendButtons(w));
  if (perms.migrate && settled && w.hostId) parts.push(button('migrate', 'Migrate…', ` aria-label="Migrate ${id}"`));
  if (perms.destroy && w.phase !== 'destroying') parts.push(button('destroy', 'Destroy…', ` class="danger" aria-label="Destroy ${id}"`));
  return `<td class="act">${parts.join(' ')}</td>`;
}

/** The actions of a host's card. */
export function hostCell(h) {
  if (!hostActionsAllowed()) return '';
  const id = esc(h.id);
  const parts = [];
  if (h.maintenance && perms.exitMaintenance) parts.push(button('exit-maintenance', 'Exit maintenance', ` aria-label="Exit maintenance on ${id}"`));
  if (!h.maintenance && h.state === 'up' && perms.enterMaintenance) parts.push(button('enter-maintenance', 'Maintenance…', ` aria-label="Enter maintenance on ${id}"`));
  return `<div class="act">${parts.join(' ')}</div>`;
}

/** The cancel button of a migration in progress. */
export function migrationCell(m) {
  if (!perms.cancelMigration) return '';
  const cancellable = m.state === 'queued' || (m.state === 'running' && !['commit', 'cleanup'].includes(m.phase));
  return `<td class="act">${cancellable ? button('cancel-migration', 'Cancel', ` aria-label="Cancel migration ${esc(m.id)}"`) : ''}</td>`;
}

/** Suspend (a running workload) and Resume (a suspended one), as its role allows; none while either runs (the phase badge says so). */
export function suspendButtons(w) {
  const id = esc(w.spec.id);
  if (perms.suspend && w.phase === 'running' && !w.migratingTo) return [button('suspend', 'Suspend', ` aria-label="Suspend ${id}"`)];
  if (perms.resume && w.phase === 'suspended') return [button('resume', 'Resume', ` aria-label="Resume ${id}"`)];
  return [];
}

/** Suspend or resume `w` (the API's job; the phase goes suspending → suspended, resuming → running). */
export async function suspendOrResume(action, w) {
  const id = w.spec.id;
  const path = `/v1/workloads/${encodeURIComponent(id)}/${action}`;
  if (action === 'suspend') return act('POST', path, `Suspending ${id}: its memory goes to disk, it holds no host until resumed`);
  return act('POST', path, `Resuming ${id} from its checkpoint…`, {});
}

const workloadOf = (target) => ctx.state.workloads.find((w) => w.spec.id === target.closest('tr[data-workload]')?.dataset.workload);
const hostOf = (target) => ctx.state.hosts.find((h) => h.id === target.closest('[data-host]')?.dataset.host);

async function act(method, path, done, body) {
  const answer = await call(method, path, body);
  if (answer.ok) {
    notify(done);
    ctx.refreshSoon();
  } else {
    notify(
      `Refused: ${problemsOf(answer)
        .map((p) => p.message)
        .join('; ')}`,
      'error',
    );
  }
  return answer;
}

async function onWorkloadClick(e) {
  const action = e.target.closest('button[data-action]')?.dataset.action;
  const w = action && workloadOf(e.target);
  if (!w) return;
  const id = w.spec.id;
  const path = `/v1/workloads/${encodeURIComponent(id)}`;
  if (action === 'start') await act('POST', `${path}/start`, `Starting ${id}…`);
  else if (action === 'stop') await act('POST', `${path}/stop`, `Stopping ${id}…`);
  else if (action === 'suspend' || action === 'resume') await suspendOrResume(action, w);
  else if (action === 'destroy') {
    const yes = await confirmDialog(`Destroy ${id}?`, `This stops ${id} and deletes it and its root filesystem on ${w.hostId ?? 'no host'}. It cannot be undone.`, `Destroy ${id}`);
    if (yes) await act('DELETE', path, `Destroying ${id}…`);
  } else if (action === 'migrate') await migrateDialog(w);
}

async function onHostClick(e) {
  const action = e.target.closest('button[data-action]')?.dataset.action;
  const h = action && hostOf(e.target);
  if (!h) return;
  const path = `/v1/hosts/${encodeURIComponent(h.id)}/maintenance`;
  if (action === 'exit-maintenance') await act('DELETE', path, `${h.id} leaves maintenance`);
  else if (action === 'enter-maintenance') await maintenanceDialog(h, path);
}

async function onMigrationClick(e) {
  const row = e.target.closest('button[data-action="cancel-migration"]')?.closest('tr[data-migration]');
  if (!row) return;
  await act('DELETE', `/v1/migrations/${encodeURIComponent(row.dataset.migration)}`, `Cancelling ${row.dataset.migration}: honoured before its commit`);
}

/** The one modal dialog: `html` inside a form; resolves with the button's value that closed it. */
function dialog(html, onOpen) {
  const d = $('#dialog');
  d.innerHTML = `<form method="dialog">${html}</form>`;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue), { once: true });
    d.returnValue = '';
    d.showModal();
    onOpen?.(d);
  });
}

async function confirmDialog(title, text, confirm) {
  const value = await dialog(`<h2>${esc(title)}</h2><p>${esc(text)}</p>
    <div class="buttons"><button value="cancel" autofocus>Cancel</button> <button value="ok" class="danger">${esc(confirm)}</button></div>`);
  return value === 'ok';
}

/** What a dry run said, as HTML: where and how it would move, or every reason it would not. */
export function dryRunHtml(answer, workload, host) {
  if (answer.ok) {
    const b = answer.body;
    const p = b.predicted;
    return `<p class="ok-text">✓ ${esc(host)} can take ${esc(workload)}: ${esc(b.strategy)}, freeze about ${ms(p.freezeMs)}, ${p.seconds.toFixed(1)} s in all${p.bytes ? `, ${mib(p.bytes)} to send` : ''}.</p>`;
  }
  const problems = problemsOf(answer);
  return `<p class="bad-text">✗ ${esc(host)} refuses ${esc(workload)}:</p><ul class="reasons">${problems
    .map((p) => `<li>${esc(p.message)}${p.code ? ` <code>${esc(p.code)}</code>` : ''}</li>`)
    .join('')}</ul>`;
}

/** Checks a move without making it: the migrate dry run. */
export const checkMove = (workload, host) => call('POST', `/v1/workloads/${encodeURIComponent(workload)}/migrate?dryRun=true`, { destination: host });

/** Starts a move; the notice and the migrations table follow it. */
export async function startMove(w, host) {
  const answer = await call('POST', `/v1/workloads/${encodeURIComponent(w.spec.id)}/migrate`, { destination: host });
  if (!answer.ok) return { ok: false, answer };
  const migration = answer.body.migration;
  ctx.state.moves.set(w.spec.id, { migrationId: migration.id, from: w.hostId, to: host });
  ctx.refreshSoon();
  return { ok: true, migration };
}

async function migrateDialog(w) {
  const id = w.spec.id;
  const hosts = ctx.state.hosts.filter((h) => h.id !== w.hostId);
  const value = await dialog(
    `<h2>Migrate ${esc(id)}</h2><p>From ${esc(w.hostId)} to:</p>
    <label>destination <select name="destination" id="migrate-to"><option value="">choose a host</option>${hosts.map((h) => `<option>${esc(h.id)}</option>`).join('')}</select></label>
    <div id="migrate-check" role="status" aria-live="polite"></div>
    <div class="buttons"><button value="cancel">Cancel</button> <button value="go" id="migrate-go" disabled>Migrate</button></div>`,
    (d) => {
      const select = $('#migrate-to', d);
      select.addEventListener('change', async () => {
        const host = select.value;
        $('#migrate-go', d).disabled = true;
        if (!host) return ($('#migrate-check', d).innerHTML = '');
        $('#migrate-check', d).innerHTML = `<p>checking ${esc(host)}…</p>`;
        const answer = await checkMove(id, host);
        if (select.value !== host) return;
        $('#migrate-check', d).innerHTML = dryRunHtml(answer, id, host);
        $('#migrate-go', d).disabled = !answer.ok;
      });
    },
  );
  const host = $('#migrate-to')?.value;
  if (value !== 'go' || !host) return;
  const started = await startMove(w, host);
  if (started.ok) notify(`Migrating ${id} ${w.hostId} → ${host} (${started.migration.id})`);
  else
    notify(
      `${id} was not moved: ${problemsOf(started.answer)
        .map((p) => p.message)
        .join('; ')}`,
      'error',
    );
}

/**
 * Maintenance: first the evacuation plan it would run (POST …/maintenance?dryRun=true: every move
 * with its destination, strategy and predicted freeze, and what could not leave), then enter.
 */
async function maintenanceDialog(h, path) {
  const preview = await call('POST', `${path}?dryRun=true`, {});
  let body;
  if (!preview.ok) {
    body = `<p class="bad-text">${esc(h.id)} cannot be emptied now: ${esc(problemsOf(preview)[0].message)}</p>`;
  } else if (preview.body.plan.moves.length === 0) {
    body = `<p>${esc(h.id)} leaves placement; it runs no workload, so nothing moves.</p>`;
  } else {
    const moves = preview.body.plan.moves
      .map((m) => `<tr><td>${esc(m.workload)}</td><td>→ ${esc(m.to)}</td><td>${esc(m.strategy)}, freeze ~${ms(m.predicted?.freezeMs)}</td><td>${esc(String(m.stage ?? 1))}</td></tr>`)
      .join('');
    body = `<p>${esc(h.id)} leaves placement and this plan live-migrates every workload away (checked now; the plan is made again when it starts):</p>
    <table class="plan"><thead><tr><th>workload</th><th>to</th><th>how</th><th>stage</th></tr></thead><tbody>${moves}</tbody></table>`;
  }
  const value = await dialog(`<h2>Maintenance on ${esc(h.id)}</h2>
    ${body}
    <label>reason <input name="reason" id="maintenance-reason" maxlength="500"></label>
    <div class="buttons"><button value="cancel">Cancel</button> <button value="ok"${preview.ok ? '' : ' disabled'}>Enter maintenance</button></div>`);
  if (value !== 'ok') return;
  const reason = $('#maintenance-reason')?.value.trim();
  const answer = await act('POST', path, `${h.id} enters maintenance`, reason ? { reason } : {});
  if (answer.ok) notify(`${h.id}: ${answer.body.maintenance?.state === 'in' ? 'in maintenance' : 'entering maintenance'}, ${answer.body.plan.moves.length} workload(s) to move`);
}

/** Rebalance: a dry run, its moves and score for review, then execute that very plan. */
async function rebalance() {
  const planned = await call('POST', '/v1/rebalance?dryRun=true', {});
  if (!planned.ok)
    return notify(
      `Rebalance refused: ${problemsOf(planned)
        .map((p) => p.message)
        .join('; ')}`,
      'error',
    );
  const plan = planned.body;
  const score = (v) => (v === null || v === undefined ? '—' : v.toFixed(4));
  const moves = plan.moves
    .map((m) => `<tr><td>${esc(m.workload)}</td><td>${esc(m.from)} → ${esc(m.to)}</td><td>${esc(m.strategy)}</td><td>~${ms(m.predicted.freezeMs)}</td><td>${esc(m.reason)}</td></tr>`)
    .join('');
  const value = await dialog(`<h2>Rebalance: plan ${esc(plan.id)}</h2>
    <p>Score ${score(plan.scoreBefore)} → ${score(plan.scoreAfter)} (lower is better); ${plan.moves.length} move(s).</p>
    ${plan.moves.length ? `<table class="plan"><thead><tr><th>workload</th><th>move</th><th>strategy</th><th>freeze</th><th>why</th></tr></thead><tbody>${moves}</tbody></table>` : '<p>Nothing to gain: the cluster is balanced.</p>'}
    <div class="buttons"><button value="cancel">Close</button>${plan.moves.length && perms.executePlan ? ' <button value="ok">Execute</button>' : ''}</div>`);
  if (value === 'ok') await act('POST', `/v1/plans/${encodeURIComponent(plan.id)}/execute`, `Executing ${plan.id}: ${plan.moves.length} move(s)`);
}

// ---- the create form ------------------------------------------------------------------------

/** Fills the form's choices from what the hosts report: templates, networks, pools. */
export function fillCreateChoices(hosts) {
  if (!perms.create) return;
  const names = (pick) => [...new Set(hosts.flatMap(pick))].sort();
  const set = (id, values) => {
    const select = $(id);
    const current = select.value;
    const options = values.map((v) => `<option${v === current ? ' selected' : ''}>${esc(v)}</option>`).join('');
    if (select.dataset.options !== options) {
      select.innerHTML = options;
      select.dataset.options = options;
    }
  };
  set(
    '#c-template',
    names((h) => h.capacity.templates.map((t) => t.name)),
  );
  set('#c-network', ['', ...names((h) => h.capacity.networks.map((n) => n.name))]);
  set(
    '#c-pool',
    names((h) => h.capacity.pools.map((p) => p.id)),
  );
}

function clearErrors(form) {
  for (const el of form.querySelectorAll('.error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  $('#create-problems').innerHTML = '';
}

/** Shows each problem next to its field (the longest field name that prefixes the problem's), the rest above the button. */
function showProblems(form, problems) {
  const fields = [...form.querySelectorAll('[data-field]')].map((el) => el.dataset.field).sort((a, b) => b.length - a.length);
  const general = [];
  for (const p of problems) {
    const name = (p.field ?? '').replace(/^body\./, '');
    const field = fields.find((f) => name === f || name.startsWith(`${f}.`));
    if (!field) {
      general.push(p);
      continue;
    }
    const input = form.querySelector(`[data-field="${field}"]`);
    input.setAttribute('aria-invalid', 'true');
    const error = $(`#${input.getAttribute('aria-describedby')}`);
    error.textContent = error.textContent ? `${error.textContent}; ${p.message}` : p.message;
  }
  $('#create-problems').innerHTML = general.map((p) => `<li>${p.field ? `<code>${esc(p.field)}</code>: ` : ''}${esc(p.message)}</li>`).join('');
  form.querySelector('[aria-invalid="true"]')?.focus();
}

async function createWorkload() {
  const form = $('#create');
  clearErrors(form);
  const v = (name) => form.elements[name].value.trim();
  const num = (name) => (v(name) === '' ? undefined : Number(v(name)));
  const spec = {
    id: v('id'),
    template: v('template'),
    command: v('command').split(/\s+/).filter(Boolean),
    resources: { vcpus: num('vcpus'), memoryMiB: num('memoryMiB'), diskMiB: num('diskMiB') },
    networks: v('network') || v('address') ? [{ network: v('network'), address: v('address') }] : [],
    pool: v('pool'),
    ha: { enabled: form.elements.ha.checked, priority: form.elements.ha.checked ? 5 : 0 },
  };
  const start = form.elements.start.checked;
  const answer = await call('POST', `/v1/workloads${start ? '' : '?start=false'}`, spec);
  if (answer.ok) {
    const warnings = answer.body.warnings ?? [];
    notify(`Creating ${spec.id}${warnings.length ? ` — ${warnings.map((w) => w.message).join('; ')}` : ''}`, warnings.length ? 'warn' : 'ok');
    form.elements.id.value = '';
    if (v('network')) form.elements.address.value = '';
    ctx.refreshSoon();
    return;
  }
  showProblems(form, problemsOf(answer));
  notify(`${spec.id || 'The workload'} was not created: ${answer.body?.message ?? answer.status}`, 'error');
}
