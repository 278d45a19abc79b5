import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { CLOSE, OPCODE, WebSocketProtocolError, WebSocketReader, acceptKey, closePayload, encodeFrame, type ConsoleTicket, type Opcode } from '@ferry/protocol';
import { CliError, EXIT } from './errors.ts';
import type { Target } from './config.ts';

/** How a console session ended: the shell's exit code (null: it was ended otherwise) and why. */
export interface ConsoleEnded {
  exitCode: number | null;
  reason: string;
}

const readBody = async (res: IncomingMessage): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
};

/**
 * The client end of a console's WebSocket (RFC 6455 over node:http/https, the cluster CA for an
 * https API; console-socket.ts in the API is the other end): terminal bytes as binary frames,
 * resizes as text frames, output to `onData`, the end once in `ended`.
 */
export class ConsoleConnection {
  onData: (bytes: Uint8Array) => void = () => undefined;
  readonly ended: Promise<ConsoleEnded>;
  private resolveEnded!: (ended: ConsoleEnded) => void;
  private end: ConsoleEnded | null = null;

  private constructor(private readonly socket: Duplex) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** Opens the ticket's WebSocket; a refusal (expired ticket, workload gone, agent down) is a CliError with the API's message. */
  static async open(target: Target, ticket: ConsoleTicket): Promise<ConsoleConnection> {
    const url = new URL(ticket.path, target.url);
    const key = randomBytes(16).toString('base64');
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const { socket, head } = await new Promise<{ socket: Duplex; head: Buffer }>((resolve, reject) => {
      const req = request(url, {
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Protocol': 'ferry.console.v1' },
        ...(target.ca && url.protocol === 'https:' ? { ca: target.ca } : {}),
      });
      req.on('upgrade', (res: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (res.headers['sec-websocket-accept'] !== acceptKey(key)) {
          socket.destroy();
          reject(new CliError('the API answered the console upgrade with a wrong Sec-WebSocket-Accept', EXIT.failed));
        } else resolve({ socket, head });
      });
      req.on('response', (res: IncomingMessage) => {
        void readBody(res).then((text) => {
          let message = `${res.statusCode} ${res.statusMessage ?? ''}`;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? message;
          } catch {
            // not JSON: the status line says it
          }
          reject(new CliError(`the console was refused: ${message}`, res.statusCode === 409 ? EXIT.refused : res.statusCode === 401 || res.statusCode === 403 ? EXIT.unreachable : EXIT.failed));
        });
      });
      req.on('error', (err) => reject(new CliError(`cannot reach the Ferry API at ${target.url}: ${err.message}`, EXIT.unreachable)));
      req.end();
    });
    const connection = new ConsoleConnection(socket);
    connection.attach(head);
    return connection;
  }

  private attach(head: Buffer): void {
    const reader = new WebSocketReader({ role: 'client', maxMessageBytes: 16 * 1024 * 1024 });
    const take = (chunk: Uint8Array) => {
      try {
        for (const event of reader.push(chunk)) {
          if (event.kind === 'binary') this.onData(event.data);
          else if (event.kind === 'text') {
            const control = JSON.parse(event.text) as { type?: string; exitCode?: number | null; reason?: string };
            if (control.type === 'end') this.finish({ exitCode: control.exitCode ?? null, reason: control.reason ?? 'ended' });
          } else if (event.kind === 'ping') this.send(OPCODE.pong, event.data);
          else if (event.kind === 'close') {
            this.finish({ exitCode: null, reason: event.reason || 'the API closed the connection' });
            this.socket.end();
          }
        }
      } catch (err) {
        if (err instanceof WebSocketProtocolError) {
          this.send(OPCODE.close, closePayload(err.code, err.message));
          this.finish({ exitCode: null, reason: `protocol error: ${err.message}` });
          this.socket.end();
        } else throw err;
      }
    };
    if (head.byteLength > 0) take(head);
    this.socket.on('data', take);
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => this.finish({ exitCode: null, reason: 'the connection was lost' }));
  }

  private finish(ended: ConsoleEnded): void {
    if (this.end) return;
    this.end = ended;
    this.resolveEnded(ended);
  }

  /** every frame a client sends is masked (RFC 6455 §5.3) */
  private send(opcode: Opcode, payload: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame({ opcode, payload, mask: randomBytes(4) }));
  }

  write(bytes: Uint8Array): void {
    this.send(OPCODE.binary, bytes);
  }

  resize(rows: number, cols: number): void {
    this.send(OPCODE.text, new TextEncoder().encode(JSON.stringify({ type: 'resize', rows, cols })));
  }

  /** Detach: the API ends the shell. */
  close(): void {
    this.send(OPCODE.close, closePayload(CLOSE.normal, 'detached'));
    this.finish({ exitCode: null, reason: 'detached' });
    this.socket.end();
  }
}
