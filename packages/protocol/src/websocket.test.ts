import { describe, expect, it } from 'vitest';
import { CLOSE, OPCODE, WebSocketProtocolError, WebSocketReader, acceptKey, closePayload, encodeFrame, isValidKey, parseClose } from './websocket.ts';

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (s: string) => new TextEncoder().encode(s);
const MASK = bytes(0x37, 0xfa, 0x21, 0x3d);
const server = () => new WebSocketReader({ role: 'server', maxMessageBytes: 100_000 });
const client = () => new WebSocketReader({ role: 'client', maxMessageBytes: 100_000 });
const protocolError = (fn: () => unknown, code: number) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WebSocketProtocolError);
    expect((err as WebSocketProtocolError).code).toBe(code);
    return;
  }
  throw new Error('no protocol error');
};

describe('RFC 6455 framing', () => {
  it('computes the handshake accept key of the RFC’s example and checks client keys', () => {
    expect(acceptKey('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    expect(isValidKey('dGhlIHNhbXBsZSBub25jZQ==')).toBe(true);
    expect(isValidKey('short==')).toBe(false);
    expect(isValidKey(undefined)).toBe(false);
  });

  it('encodes the RFC’s examples byte for byte: an unmasked and a masked "Hello"', () => {
    expect([...encodeFrame({ opcode: OPCODE.text, payload: text('Hello') })]).toEqual([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    expect([...encodeFrame({ opcode: OPCODE.text, payload: text('Hello'), mask: MASK })]).toEqual([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
  });

  it('reads the RFC’s fragmented "Hel" + "lo" with a ping between the fragments', () => {
    const reader = client();
    const events = reader.push(bytes(0x01, 0x03, 0x48, 0x65, 0x6c, 0x89, 0x02, 0x68, 0x69, 0x80, 0x02, 0x6c, 0x6f));
    expect(events).toEqual([
      { kind: 'ping', data: text('hi') },
      { kind: 'text', text: 'Hello' },
    ]);
  });

  it('uses 16- and 64-bit lengths at 126 and 65,536 bytes, and reads them back split at every awkward place', () => {
    for (const size of [0, 125, 126, 65_535, 65_536, 70_000]) {
      const payload = new Uint8Array(size).map((_, i) => i % 251);
      const frame = encodeFrame({ opcode: OPCODE.binary, payload, mask: MASK });
      expect(frame[1]! & 0x7f).toBe(size < 126 ? size : size < 65_536 ? 126 : 127);
      const reader = server();
      const events = [];
      // one byte at a time for the header, then the rest in two parts
      for (let i = 0; i < 14 && i < frame.byteLength; i++) events.push(...reader.push(frame.subarray(i, i + 1)));
      events.push(...reader.push(frame.subarray(14, 14 + Math.floor(size / 2))), ...reader.push(frame.subarray(14 + Math.floor(size / 2))));
      expect(events).toEqual([{ kind: 'binary', data: payload }]);
    }
  });

  it('reads several frames from one chunk, and a close with its code and reason', () => {
    const chunk = new Uint8Array([
      ...encodeFrame({ opcode: OPCODE.binary, payload: bytes(1, 2), mask: MASK }),
      ...encodeFrame({ opcode: OPCODE.text, payload: text('{"type":"resize"}'), mask: MASK }),
      ...encodeFrame({ opcode: OPCODE.close, payload: closePayload(CLOSE.normal, 'bye'), mask: MASK }),
    ]);
    expect(server().push(chunk)).toEqual([
      { kind: 'binary', data: bytes(1, 2) },
      { kind: 'text', text: '{"type":"resize"}' },
      { kind: 'close', code: 1000, reason: 'bye' },
    ]);
    expect(parseClose(new Uint8Array(0))).toEqual({ code: null, reason: '' });
    expect(closePayload(1000, 'x'.repeat(300)).byteLength).toBe(125);
  });

  it('refuses what the RFC forbids, each with its close code', () => {
    protocolError(() => server().push(encodeFrame({ opcode: OPCODE.text, payload: text('hi') })), CLOSE.protocolError); // unmasked from a client
    protocolError(() => client().push(encodeFrame({ opcode: OPCODE.text, payload: text('hi'), mask: MASK })), CLOSE.protocolError); // masked from a server
    protocolError(() => client().push(bytes(0xc1, 0x00)), CLOSE.protocolError); // RSV1 without an extension
    protocolError(() => client().push(bytes(0x83, 0x00)), CLOSE.protocolError); // reserved opcode 3
    protocolError(() => client().push(bytes(0x80, 0x00)), CLOSE.protocolError); // a continuation of nothing
    protocolError(() => client().push(bytes(0x01, 0x01, 0x41, 0x01, 0x01, 0x42)), CLOSE.protocolError); // a new message inside a fragmented one
    protocolError(() => client().push(bytes(0x09, 0x00)), CLOSE.protocolError); // a fragmented ping
    protocolError(() => client().push(bytes(0x89, 0x7e, 0x00, 0x7e)), CLOSE.protocolError); // a 126-byte ping
    protocolError(() => client().push(bytes(0x88, 0x01, 0x03)), CLOSE.protocolError); // a 1-byte close body
    protocolError(() => client().push(bytes(0x81, 0x02, 0xc3, 0x28)), CLOSE.invalidData); // invalid UTF-8 text
    const small = new WebSocketReader({ role: 'client', maxMessageBytes: 10 });
    protocolError(() => small.push(bytes(0x82, 0x0b)), CLOSE.tooBig); // refused from the header, before the bytes come
    protocolError(() => new WebSocketReader({ role: 'client', maxMessageBytes: 10 }).push(bytes(0x02, 0x06, 1, 2, 3, 4, 5, 6, 0x80, 0x06, 1, 2, 3, 4, 5, 6)), CLOSE.tooBig); // fragments adding up
    protocolError(() => client().push(bytes(0x82, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0)), CLOSE.tooBig); // a 2^63-byte length
    expect(() => encodeFrame({ opcode: OPCODE.ping, payload: new Uint8Array(126) })).toThrow(/125 bytes/);
  });
});
