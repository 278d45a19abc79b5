import { createHash } from 'node:crypto';

/**
 * RFC 6455 (WebSocket) framing, both ends: the API's console endpoint (server) and the CLI
 * (client). A browser's own WebSocket speaks to the same server (issue 18's console page).
 * Pure: bytes in, frames and messages out; sockets are the callers'.
 */

export const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;
export type Opcode = (typeof OPCODE)[keyof typeof OPCODE];
const KNOWN_OPCODES = new Set<number>(Object.values(OPCODE));
const isControl = (opcode: number) => opcode >= 0x8;

/** Close codes used here (RFC 6455 §7.4.1). */
export const CLOSE = { normal: 1000, goingAway: 1001, protocolError: 1002, invalidData: 1007, policy: 1008, tooBig: 1009, internal: 1011 } as const;

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (§4.2.2). */
export const acceptKey = (key: string): string =>
  createHash('sha1')
    .update(key + GUID)
    .digest('base64');

/** A client's Sec-WebSocket-Key: base64 of 16 bytes (§4.1). */
export const isValidKey = (key: string | undefined): key is string => typeof key === 'string' && /^[A-Za-z0-9+/]{22}==$/.test(key);

export interface Frame {
  fin: boolean;
  opcode: Opcode;
  payload: Uint8Array;
}

/** One frame's bytes; `mask` (4 bytes) for frames a client sends, none for a server's (§5.1). */
export function encodeFrame(frame: { opcode: Opcode; payload: Uint8Array; fin?: boolean; mask?: Uint8Array }): Uint8Array {
  const { opcode, payload, fin = true, mask } = frame;
  if (isControl(opcode) && (payload.byteLength > 125 || !fin)) throw new Error('a control frame carries at most 125 bytes and is never fragmented');
  if (mask && mask.byteLength !== 4) throw new Error('a mask is 4 bytes');
  const length = payload.byteLength;
  const lengthBytes = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const head = 2 + lengthBytes + (mask ? 4 : 0);
  const out = new Uint8Array(head + length);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out[1] = (mask ? 0x80 : 0) | (length < 126 ? length : length < 65_536 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (lengthBytes === 2) view.setUint16(2, length);
  if (lengthBytes === 8) view.setBigUint64(2, BigInt(length));
  if (mask) {
    out.set(mask, 2 + lengthBytes);
    for (let i = 0; i < length; i++) out[head + i] = payload[i]! ^ mask[i & 3]!;
  } else out.set(payload, head);
  return out;
}

/** A close frame's body: the code, then a UTF-8 reason cut to fit 125 bytes. */
export function closePayload(code: number, reason = ''): Uint8Array {
  let text = new TextEncoder().encode(reason);
  if (text.byteLength > 123) text = text.subarray(0, 123);
  const out = new Uint8Array(2 + text.byteLength);
  new DataView(out.buffer).setUint16(0, code);
  out.set(text, 2);
  return out;
}

export function parseClose(payload: Uint8Array): { code: number | null; reason: string } {
  if (payload.byteLength < 2) return { code: null, reason: '' };
  return { code: new DataView(payload.buffer, payload.byteOffset).getUint16(0), reason: new TextDecoder().decode(payload.subarray(2)) };
}

/** The peer broke the protocol: close the connection with `code`. */
export class WebSocketProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'WebSocketProtocolError';
  }
}

/** A complete message (fragments joined) or a control frame, in arrival order. */
export type WebSocketEvent =
  | { kind: 'text'; text: string }
  | { kind: 'binary'; data: Uint8Array }
  | { kind: 'ping'; data: Uint8Array }
  | { kind: 'pong'; data: Uint8Array }
  | { kind: 'close'; code: number | null; reason: string };

export interface ReaderOptions {
  /** a server's reader: every frame must be masked; a client's: none may be (§5.1) */
  role: 'server' | 'client';
  /** largest message (all fragments together) accepted; more is a 1009 */
  maxMessageBytes: number;
}

/**
 * Reads a byte stream into messages: push what the socket gave, take the events it completed.
 * Throws WebSocketProtocolError (with the close code to send) on anything RFC 6455 forbids:
 * reserved bits, unknown opcodes, a fragmented or oversized control frame, a continuation with
 * nothing to continue, masking the wrong way, invalid UTF-8 in a text message, a message too large.
 */
export class WebSocketReader {
  private buffer: Uint8Array = new Uint8Array(0);
  private fragments: Uint8Array[] = [];
  private fragmentOpcode: Opcode | null = null;
  private fragmentBytes = 0;

  constructor(private readonly options: ReaderOptions) {}

  push(chunk: Uint8Array): WebSocketEvent[] {
    this.buffer = this.buffer.byteLength === 0 ? chunk : concat([this.buffer, chunk]);
    const events: WebSocketEvent[] = [];
    for (;;) {
      const frame = this.nextFrame();
      if (!frame) break;
      const event = this.accept(frame);
      if (event) events.push(event);
    }
    return events;
  }

  private nextFrame(): Frame | null {
    const b = this.buffer;
    if (b.byteLength < 2) return null;
    const first = b[0]!;
    const second = b[1]!;
    if (first & 0x70) throw new WebSocketProtocolError(CLOSE.protocolError, 'reserved bits set (no extension was agreed)');
    const opcode = first & 0x0f;
    if (!KNOWN_OPCODES.has(opcode)) throw new WebSocketProtocolError(CLOSE.protocolError, `unknown opcode ${opcode}`);
    const fin = (first & 0x80) !== 0;
    const masked = (second & 0x80) !== 0;
    if (this.options.role === 'server' && !masked) throw new WebSocketProtocolError(CLOSE.protocolError, 'a client frame must be masked');
    if (this.options.role === 'client' && masked) throw new WebSocketProtocolError(CLOSE.protocolError, 'a server frame must not be masked');
    let length = second & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.byteLength < 4) return null;
      length = new DataView(b.buffer, b.byteOffset).getUint16(2);
      offset = 4;
    } else if (length === 127) {
      if (b.byteLength < 10) return null;
      const big = new DataView(b.buffer, b.byteOffset).getBigUint64(2);
      if (big > BigInt(this.options.maxMessageBytes)) throw new WebSocketProtocolError(CLOSE.tooBig, `a frame of ${big} bytes is over the limit of ${this.options.maxMessageBytes}`);
      length = Number(big);
      offset = 10;
    }
    if (isControl(opcode) && (length > 125 || !fin)) throw new WebSocketProtocolError(CLOSE.protocolError, 'a control frame carries at most 125 bytes and is never fragmented');
    if (length > this.options.maxMessageBytes) throw new WebSocketProtocolError(CLOSE.tooBig, `a frame of ${length} bytes is over the limit of ${this.options.maxMessageBytes}`);
    const maskBytes = masked ? 4 : 0;
    if (b.byteLength < offset + maskBytes + length) return null;
    const mask = masked ? b.subarray(offset, offset + 4) : null;
    const start = offset + maskBytes;
    // a copy: the buffer's bytes may be reused by the next chunk
    const payload = b.slice(start, start + length);
    if (mask) for (let i = 0; i < length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
    this.buffer = b.subarray(start + length);
    return { fin, opcode: opcode as Opcode, payload };
  }

  private accept(frame: Frame): WebSocketEvent | null {
    switch (frame.opcode) {
      case OPCODE.ping:
        return { kind: 'ping', data: frame.payload };
      case OPCODE.pong:
        return { kind: 'pong', data: frame.payload };
      case OPCODE.close: {
        if (frame.payload.byteLength === 1) throw new WebSocketProtocolError(CLOSE.protocolError, 'a close frame body of 1 byte');
        const close = parseClose(frame.payload);
        return { kind: 'close', ...close };
      }
      case OPCODE.continuation:
        if (this.fragmentOpcode === null) throw new WebSocketProtocolError(CLOSE.protocolError, 'a continuation frame with no message to continue');
        return this.collect(frame.payload, frame.fin);
      default:
        if (this.fragmentOpcode !== null) throw new WebSocketProtocolError(CLOSE.protocolError, 'a new message before the last one was finished');
        this.fragmentOpcode = frame.opcode;
        return this.collect(frame.payload, frame.fin);
    }
  }

  private collect(payload: Uint8Array, fin: boolean): WebSocketEvent | null {
    this.fragmentBytes += payload.byteLength;
    if (this.fragmentBytes > this.options.maxMessageBytes) throw new WebSocketProtocolError(CLOSE.tooBig, `a message over the limit of ${this.options.maxMessageBytes} bytes`);
    this.fragments.push(payload);
    if (!fin) return null;
    const data = this.fragments.length === 1 ? this.fragments[0]! : concat(this.fragments);
    const opcode = this.fragmentOpcode;
    this.fragments = [];
    this.fragmentOpcode = null;
    this.fragmentBytes = 0;
    if (opcode === OPCODE.text) {
      try {
        return { kind: 'text', text: new TextDecoder('utf-8', { fatal: true }).decode(data) };
      } catch {
        throw new WebSocketProtocolError(CLOSE.invalidData, 'a text message that is not UTF-8');
      }
    }
    return { kind: 'binary', data };
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
