// A client holding ONE TCP connection to a ferry-workload: sends `inc` every 20 ms, checks that
// every reply is the previous one plus one, records the longest wait. Prints one JSON line when
// stdin closes (or on SIGTERM). Run inside a lab host: nsenter --net=... node tcp-client.mjs ADDR PORT
import net from 'node:net';

const [address, port] = process.argv.slice(2);
const started = Date.now();
let first = null;
let last = null;
let requests = 0;
let error = null;
let maxGapMs = 0;
let sentAt = 0;
let buffer = '';
let done = false;
let stopping = false;
let inFlight = false;

const socket = net.connect({ host: address, port: Number(port) });
socket.setNoDelay(true);

function finish() {
  if (done) return;
  done = true;
  // A request still unanswered counts with what it has waited so far: before, a reply held up by
  // TCP's retransmission back-off past the end went uncounted, and a client that waited seconds
  // reported its longest *answered* wait — ~0 ms in 5 of 24 benchmark runs (issue 14, part 6).
  if (inFlight) {
    maxGapMs = Math.max(maxGapMs, Date.now() - sentAt);
    error ??= `the last request was unanswered after ${Date.now() - sentAt} ms`;
  }
  process.stdout.write(`${JSON.stringify({ ok: error === null && requests > 0, error, requests, first, last, maxGapMs, ms: Date.now() - started })}\n`);
  socket.destroy();
  process.exit(0);
}

function send() {
  if (done) return;
  if (stopping) return finish();
  sentAt = Date.now();
  inFlight = true;
  socket.write('inc\n');
}

// Stop after the reply to the request in flight, so `requests` counts every `inc` the server saw.
// After a freeze of seconds the client's next retransmission can come seconds later (the RTO
// doubles at each loss), so the reply is waited for that long.
function stop() {
  stopping = true;
  if (!inFlight) finish();
  else setTimeout(finish, 15_000).unref();
}

socket.on('connect', send);
socket.on('data', (chunk) => {
  buffer += chunk.toString();
  let nl;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    const value = Number(line);
    inFlight = false;
    maxGapMs = Math.max(maxGapMs, Date.now() - sentAt);
    if (!Number.isInteger(value)) error ??= `bad reply ${JSON.stringify(line)}`;
    else if (last !== null && value !== last + 1) error ??= `counter jumped ${last} -> ${value}`;
    first ??= value;
    last = value;
    requests++;
    if (stopping) finish();
    else setTimeout(send, 20);
  }
});
socket.on('error', (err) => {
  error ??= `${err.code ?? ''} ${err.message}`.trim();
  finish();
});
socket.on('close', () => {
  error ??= 'connection closed';
  finish();
});
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', finish);
