// Small helpers the dashboard's modules share: DOM lookup, escaping and formatting.
export const $ = (selector, root = document) => root.querySelector(selector);
export const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
export const badge = (text) => `<span class="badge ${esc(text)}">${esc(text)}</span>`;
export const mib = (bytes) => `${Math.round(bytes / 2 ** 20)} MiB`;
export const gib = (bytes) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;
export const ms = (value) => (value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`);
export const ago = (at) => {
  const s = Math.max(0, Math.round((Date.now() - at) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : new Date(at).toLocaleString();
};
export function bar(fraction, label) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  return `<span class="bar" title="${esc(label)}"><span style="width:${pct.toFixed(1)}%"></span><em>${esc(label)}</em></span>`;
}

/** One cluster event in a line of words (the events lists). */
export function eventLine(event) {
  const what =
    event.type === 'host.state'
      ? `${event.hostId}: ${event.from ?? 'new'} → ${event.to}`
      : event.type.startsWith('workload.')
        ? `${event.workloadId}: ${event.phase ?? 'destroyed'}${event.hostId ? ` on ${event.hostId}` : ''}`
        : event.type === 'migration.progress'
          ? `${event.migrationId}: ${event.phase} ${event.percent}%`
          : event.type.startsWith('migration.')
            ? `${event.workloadId}: ${event.phase} ${event.status}${event.bytes?.sent ? ` (${mib(event.bytes.sent)})` : ''}`
            : `failover of ${event.failover.hostId}: ${event.failover.state}`;
  return `${new Date(event.at).toLocaleTimeString()}  ${event.type}  ${what}`;
}

/**
 * Reads a server-sent-event stream (a fetch() body: fetch, not EventSource, because it carries the
 * Authorization header) to its end, calling `onEvent` with each event's fields: `event`, `id`,
 * `data` (its data lines joined) and `comments` (its lines starting with ':').
 */
export async function readEventStream(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const lines = buffer.slice(0, end).split('\n');
      buffer = buffer.slice(end + 2);
      const field = (name) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
      const data = lines
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      onEvent({ event: field('event'), id: field('id'), data, comments: lines.filter((l) => l.startsWith(':')) });
    }
  }
}
