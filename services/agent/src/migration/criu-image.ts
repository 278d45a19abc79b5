/**
 * Reading CRIU's image files: a header of magics, then entries, each a 32-bit little-endian size
 * and a protobuf message (criu/protobuf-desc, images/*.proto). Only what Ferry reads: the wire
 * format's fields, without a generated schema.
 */

/** CRIU's image header: the common magic, then the image's own. */
const IMG_COMMON_MAGIC = 0x54564319;
const IMG_SERVICE_MAGIC = 0x55105940;

export interface Field {
  number: number;
  wireType: number;
  /** offset of the field's value (after the tag) */
  valueAt: number;
  /** for varints, the value; for length-delimited fields, the payload's bounds */
  varint?: bigint;
  payload?: { start: number; end: number };
  end: number;
}

export function readVarint(buf: Buffer, at: number, end: number): { value: bigint; next: number } {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < end && shift < 70n; i++) {
    const byte = buf[i]!;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
    shift += 7n;
  }
  throw new Error(`truncated or overlong varint at byte ${at}`);
}

/** The fields of one protobuf message in buf[start, end). */
export function fieldsOf(buf: Buffer, start: number, end: number): Field[] {
  const fields: Field[] = [];
  let at = start;
  while (at < end) {
    const tag = readVarint(buf, at, end);
    const number = Number(tag.value >> 3n);
    const wireType = Number(tag.value & 7n);
    const valueAt = tag.next;
    switch (wireType) {
      case 0: {
        const v = readVarint(buf, valueAt, end);
        fields.push({ number, wireType, valueAt, varint: v.value, end: v.next });
        at = v.next;
        break;
      }
      case 1:
        at = valueAt + 8;
        fields.push({ number, wireType, valueAt, end: at });
        break;
      case 2: {
        const len = readVarint(buf, valueAt, end);
        const payload = { start: len.next, end: len.next + Number(len.value) };
        fields.push({ number, wireType, valueAt, payload, end: payload.end });
        at = payload.end;
        break;
      }
      case 5:
        at = valueAt + 4;
        fields.push({ number, wireType, valueAt, end: at });
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${wireType} at byte ${at}`);
    }
    if (at > end) throw new Error(`protobuf field ${number} runs past its message`);
  }
  return fields;
}

/** The entries of an image held in buf: each protobuf message's bounds. Throws on a malformed image. */
export function* imageEntries(buf: Buffer): Generator<{ start: number; end: number }> {
  if (buf.length < 4) throw new Error('not a CRIU image: too short');
  const first = buf.readUInt32LE(0);
  let at = first === IMG_COMMON_MAGIC || first === IMG_SERVICE_MAGIC ? 8 : 4;
  while (at < buf.length) {
    if (at + 4 > buf.length) throw new Error(`truncated entry size at byte ${at}`);
    const size = buf.readUInt32LE(at);
    const start = at + 4;
    const end = start + size;
    if (end > buf.length) throw new Error(`entry at byte ${at} runs past the image`);
    yield { start, end };
    at = end;
  }
}
