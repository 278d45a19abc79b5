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
