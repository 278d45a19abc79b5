import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Subscription } from 'nats';
import {
  CLOSE,
  CONSOLE_PING_MS,
  CONSOLE_SILENCE_MS,
  ConsoleClientControl,
  ConsoleOpenResult,
  OPCODE,
  WebSocketProtocolError,
  WebSocketReader,
  acceptKey,
  closePayload,
  consoleSubjects,
  decodeConsoleMessage,
  encodeConsoleMessage,
  encodeFrame,
  isValidKey,
  type ConsoleMessage,
  type ConsoleServerControl,
  type Opcode,
} from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { ApiError } from './errors.ts';
import { unguessable, type AgentLink, type ConsoleTickets } from './operate.ts';

/** the subprotocol a client may ask for (browsers: new WebSocket(url, 'ferry.console.v1')) */
export const CONSOLE_SUBPROTOCOL = 'ferry.console.v1';
const PATH = /^\/v1\/console\/([A-Za-z0-9_-]{1,64})$/;
/** keystrokes and resizes are small; a paste is at most this */
const MAX_CLIENT_MESSAGE = 64 * 1024;
const OPEN_TIMEOUT_MS = 10_000;

/** An HTTP answer on a socket not yet a WebSocket (refusals before the upgrade), in the API's error shape. */
function refuse(socket: Duplex, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  const body = JSON.stringify({ code, message });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
  426: 'Upgrade Required',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * The console's WebSocket: `GET /v1/console/<ticket>` with `Upgrade: websocket` (RFC 6455).
 * The ticket (POST /v1/workloads/:id/console, operator role) is the credential, spent here. The
 * API then opens a session with the workload's agent (its own subjects, an unguessable id) and
 * relays: binary frames are the terminal's bytes both ways, text frames are JSON control
 * (client → API `{type:'resize',rows,cols}`; API → client `{type:'ready'}` first, `{type:'end',
 * exitCode, reason}` last, then a close frame). The session ends when the shell exits, the client
 * closes or goes away, the agent falls silent, or the workload is checkpointed (migration, suspend).
 */
export function installConsoleSocket(app: FastifyInstance, agents: AgentLink, tickets: ConsoleTickets, log: Logger): void {
  const open = new Set<Duplex>();
  app.addHook('preClose', async () => {
    for (const socket of open) socket.destroy();
  });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    void upgrade(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'console connection failed');
      if (!socket.destroyed) refuse(socket, 500, 'INTERNAL', 'the console connection failed');
    });
  });

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const match = PATH.exec(path);
    if (!match || req.method !== 'GET') return refuse(socket, 404, 'NOT_FOUND', `nothing to upgrade at ${path.slice(0, 100)}: a console is GET /v1/console/<ticket>`);
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return refuse(socket, 400, 'BAD_REQUEST', 'only a WebSocket upgrade is served here');
    if (req.headers['sec-websocket-version'] !== '13') return refuse(socket, 426, 'BAD_REQUEST', 'WebSocket version 13 only', { 'Sec-WebSocket-Version': '13' });
    const key = req.headers['sec-websocket-key'];
    if (!isValidKey(key)) return refuse(socket, 400, 'BAD_REQUEST', 'a missing or malformed Sec-WebSocket-Key');
    const ticket = await tickets.redeem(match[1]!);
    if (!ticket) return refuse(socket, 401, 'UNAUTHORIZED', 'unknown, used or expired console ticket: ask for one with POST /v1/workloads/:id/console');

    const sessionId = unguessable();
    const nc = agents.nc;
    if (!nc) return refuse(socket, 503, 'UNAVAILABLE', 'this API process has no NATS connection');
    const hostId = ticket.hostId;
    let lastHeard = Date.now();
    let closed = false;
    const toAgent = (message: ConsoleMessage) => nc.publish(consoleSubjects.input(hostId, sessionId), encodeConsoleMessage(message));
    const send = (opcode: Opcode, payload: Uint8Array) => {
      if (!socket.destroyed) socket.write(encodeFrame({ opcode, payload }));
    };
    const sendControl = (control: ConsoleServerControl) => send(OPCODE.text, new TextEncoder().encode(JSON.stringify(control)));
    const pending: ConsoleMessage[] = [];
    let relaying = false;
    const sessionLog = log.child({ workloadId: ticket.workloadId, hostId, who: ticket.who, sessionId: sessionId.slice(0, 6) });

    // The output subscription before the open: nothing the shell prints first is missed.
    const output: Subscription = nc.subscribe(consoleSubjects.output(hostId, sessionId), {
      callback: (err, msg) => {
        if (err) return;
        let message: ConsoleMessage;
        try {
          message = decodeConsoleMessage(msg.data);
        } catch {
          return;
        }
        lastHeard = Date.now();
        if (!relaying) pending.push(message);
        else fromAgent(message);
      },
    });
    const finish = (code: number, reason: string, tellAgent: boolean) => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      if (tellAgent) toAgent({ type: 'end', exitCode: null, reason });
      output.unsubscribe();
      send(OPCODE.close, closePayload(code, reason));
      socket.end();
      open.delete(socket);
      sessionLog.info({ reason }, 'console connection closed');
    };
    const fromAgent = (message: ConsoleMessage) => {
      if (message.type === 'data') send(OPCODE.binary, message.data);
      else if (message.type === 'end') {
        sendControl({ type: 'end', exitCode: message.exitCode, reason: message.reason });
        finish(CLOSE.normal, message.reason, false);
      }
    };
    const timer = setInterval(() => {
      if (Date.now() - lastHeard > CONSOLE_SILENCE_MS) finish(CLOSE.internal, `${hostId}'s agent stopped answering`, true);
      else toAgent({ type: 'ping' });
    }, CONSOLE_PING_MS);

    try {
      await agents.ask(
        hostId,
        consoleSubjects.open(hostId),
        { sessionId, workloadId: ticket.workloadId, epoch: ticket.epoch, rows: ticket.rows, cols: ticket.cols, term: ticket.term },
        ConsoleOpenResult,
        OPEN_TIMEOUT_MS,
      );
    } catch (err) {
      clearInterval(timer);
      output.unsubscribe();
      const e = err instanceof ApiError ? err : new ApiError('INTERNAL', (err as Error).message);
      return refuse(socket, e.status, e.code, e.message);
    }

    const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptKey(key)}`];
    if (protocols.includes(CONSOLE_SUBPROTOCOL)) lines.push(`Sec-WebSocket-Protocol: ${CONSOLE_SUBPROTOCOL}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    open.add(socket);
    sessionLog.info('console connection opened');
    sendControl({ type: 'ready', workloadId: ticket.workloadId, hostId });
    relaying = true;
    for (const message of pending.splice(0)) fromAgent(message);

    const reader = new WebSocketReader({ role: 'server', maxMessageBytes: MAX_CLIENT_MESSAGE });
    const fromClient = (chunk: Uint8Array) => {
      if (closed) return;
      try {
        for (const event of reader.push(chunk)) {
          if (event.kind === 'binary') toAgent({ type: 'data', data: event.data });
          else if (event.kind === 'text') {
            const control = ConsoleClientControl.safeParse(
              (() => {
                try {
                  return JSON.parse(event.text) as unknown;
                } catch {
                  return null;
                }
              })(),
            );
            if (!control.success) throw new WebSocketProtocolError(CLOSE.policy, 'a text message must be {"type":"resize","rows":R,"cols":C}');
            toAgent({ type: 'resize', rows: control.data.rows, cols: control.data.cols });
          } else if (event.kind === 'ping') send(OPCODE.pong, event.data);
          else if (event.kind === 'close') finish(CLOSE.normal, 'the client closed the session', true);
        }
      } catch (err) {
        if (err instanceof WebSocketProtocolError) finish(err.code, err.message, true);
        else throw err;
      }
    };
    if (head.byteLength > 0) fromClient(head);
    socket.on('data', fromClient);
    socket.on('close', () => finish(CLOSE.goingAway, 'the client went away', true));
  }
}
