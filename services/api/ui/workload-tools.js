// A workload page's tools that live longer than one drawing of the page: its console (a shell
// over the API's WebSocket) and its logs (tail, then follow). Both are shown only to roles the
// API allows (operator and up: access.js), and both end when the page closes.
import { call, problemsOf, session } from './api.js';
import { perms } from './actions.js';
import { $, readEventStream } from './util.js';
import { Screen, keyBytes, stripAnsi } from './terminal.js';

/** the console's size: the pre shows this many columns and rows */
const COLS = 100;
const ROWS = 24;
/** lines the logs panel opens with; characters it keeps */
const LOG_TAIL = 200;
const LOG_KEEP = 200_000;

/** The tools' HTML (empty for a role allowed neither); `wire` then makes them work. */
export function toolsHtml() {
  const parts = [];
  if (perms.console)
    parts.push(`<section id="console-panel"><h2>Console</h2>
      <p><button type="button" id="console-open">Open console</button> <button type="button" id="console-close" hidden>Close console</button>
      <span id="console-state" class="muted" role="status" aria-live="polite">A shell in the workload (its own namespaces, as root). Click the screen and type.</span></p>
      <pre id="console-screen" class="terminal" tabindex="0" aria-label="console: click here and type" hidden></pre></section>`);
  if (perms.logs)
    parts.push(`<section id="logs-panel"><h2>Logs</h2>
      <p><button type="button" id="logs-follow">Follow logs</button> <button type="button" id="logs-stop" hidden>Stop</button>
      <span id="logs-state" class="muted" role="status" aria-live="polite">Its console output (stdout and stderr), the last ${LOG_TAIL} lines, then live.</span></p>
      <pre id="logs-text" class="terminal logs" hidden></pre></section>`);
  return parts.join('');
}

/** Makes the tools work for workload `id`; returns what closes them (the page closing). */
export function wireTools(id) {
  const closers = [];
  if (perms.console) closers.push(wireConsole(id));
  if (perms.logs) closers.push(wireLogs(id));
  return () => closers.forEach((close) => close());
}

function wireConsole(id) {
  let socket = null;
  const screen$ = $('#console-screen');
  const state = (text, kind = 'muted') => {
    $('#console-state').className = kind;
    $('#console-state').textContent = text;
  };
  const showing = (open) => {
    $('#console-open').hidden = open;
    $('#console-close').hidden = !open;
  };

  async function open() {
    $('#console-open').disabled = true;
    state('asking for a ticket…');
    const answer = await call('POST', `/v1/workloads/${encodeURIComponent(id)}/console`, { cols: COLS, rows: ROWS });
    $('#console-open').disabled = false;
    if (!answer.ok) {
      state(
        `Refused: ${problemsOf(answer)
          .map((p) => p.message)
          .join('; ')}`,
        'bad-text',
      );
      return;
    }
    const screen = new Screen();
    const decoder = new TextDecoder();
    const draw = () => {
      screen$.textContent = screen.text();
      screen$.scrollTop = screen$.scrollHeight;
    };
    // the ticket is the credential (a WebSocket cannot send an Authorization header): one use, 30 s
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${answer.body.path}`, 'ferry.console.v1');
    ws.binaryType = 'arraybuffer';
    socket = ws;
    let ended = null;
    screen$.hidden = false;
    screen$.textContent = '';
    showing(true);
    state(`connecting to ${answer.body.hostId}…`);
    ws.addEventListener('message', (e) => {
      if (typeof e.data === 'string') {
        const control = JSON.parse(e.data);
        if (control.type === 'ready') {
          state(`connected: ${control.workloadId} on ${control.hostId}`, 'ok-text');
          screen$.focus();
        } else if (control.type === 'end') ended = control;
        return;
      }
      screen.write(decoder.decode(new Uint8Array(e.data), { stream: true }));
      draw();
    });
    ws.addEventListener('close', (e) => {
      if (socket === ws) socket = null;
      showing(false);
      const why = ended ? `${ended.reason}${ended.exitCode === null || ended.exitCode === undefined ? '' : ` (exit ${ended.exitCode})`}` : e.reason || `the connection closed (${e.code})`;
      state(`Console ended: ${why}`, ended?.exitCode === 0 || e.code === 1000 ? 'muted' : 'bad-text');
      screen$.dataset.ended = 'true';
    });
    screen$.dataset.ended = 'false';
  }

  const send = (text) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(new TextEncoder().encode(text));
  };
  const onKey = (e) => {
    const bytes = keyBytes(e);
    if (bytes === null || !socket) return;
    // Ctrl-C copies when text is selected, as elsewhere in the page
    if (e.ctrlKey && e.key.toLowerCase() === 'c' && String(getSelection()).length > 0) return;
    e.preventDefault();
    send(bytes);
  };
  const onPaste = (e) => {
    if (!socket) return;
    e.preventDefault();
    send(e.clipboardData.getData('text').replace(/\r?\n/g, '\r'));
  };
  const close = () => socket?.close(1000, 'closed in the browser');

  $('#console-open').addEventListener('click', () => void open());
  $('#console-close').addEventListener('click', close);
  screen$.addEventListener('keydown', onKey);
  screen$.addEventListener('paste', onPaste);
  return close;
}

function wireLogs(id) {
  let stream = null;
  const text$ = $('#logs-text');
  const state = (text, kind = 'muted') => {
    $('#logs-state').className = kind;
    $('#logs-state').textContent = text;
  };
  const showing = (following) => {
    $('#logs-follow').hidden = following;
    $('#logs-stop').hidden = !following;
  };
  const append = (chunkText) => {
    const atBottom = text$.scrollTop + text$.clientHeight >= text$.scrollHeight - 4;
    text$.textContent = (text$.textContent + stripAnsi(chunkText).replace(/\r\n/g, '\n')).slice(-LOG_KEEP);
    if (atBottom) text$.scrollTop = text$.scrollHeight;
  };

  // Server-sent events read through fetch, as the events stream is: EventSource cannot send the
  // token's Authorization header, and the token must not go in the URL (logs, history).
  async function follow() {
    const controller = new AbortController();
    stream = controller;
    showing(true);
    text$.hidden = false;
    text$.textContent = '';
    state('reading…');
    try {
      const res = await fetch(`/v1/workloads/${encodeURIComponent(id)}/logs?follow=1&tail=${LOG_TAIL}`, {
        headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' },
        signal: controller.signal,
      });
      if (!res.ok || !res.body) {
        let message = `the API answered ${res.status}`;
        try {
          message = (await res.json()).message ?? message;
        } catch {
          // not JSON
        }
        state(`Refused: ${message}`, 'bad-text');
        return;
      }
      state('following: new output appears as the workload writes it', 'ok-text');
      await readEventStream(res.body, ({ event, data }) => {
        if (!data) return;
        const body = JSON.parse(data);
        if (event === 'chunk') {
          if (body.skipped > 0) append(`[… ${body.skipped} bytes rotated away …]\n`);
          append(body.text);
          text$.dataset.host = body.hostId;
        } else if (event === 'end') state(`Ended: ${body.reason}`);
      });
      if (stream === controller) state('The stream ended.');
    } catch (err) {
      if (!controller.signal.aborted) state(`The stream broke: ${err.message}`, 'bad-text');
      else state('Stopped.');
    } finally {
      if (stream === controller) stream = null;
      showing(false);
    }
  }
  const stop = () => stream?.abort();

  $('#logs-follow').addEventListener('click', () => void follow());
  $('#logs-stop').addEventListener('click', stop);
  return stop;
}
