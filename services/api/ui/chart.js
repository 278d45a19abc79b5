// Small charts as inline SVG strings (no library, no canvas): a line of samples over time, with
// a dot per sample so that a series of one or two still shows. Pure: the same samples give the
// same markup (unit-tested in services/api/src/console-ui.test.ts).

const escText = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * `samples`: [{at, …}] oldest first; `pick(sample)` → a number (null/undefined: no point).
 * The time axis spans `from`…`to` (default: the samples' own span), the value axis 0…the
 * largest value (or `max`). `label` names it for screen readers; `format(value)` the last value.
 */
export function sparkline(samples, pick, { width = 240, height = 48, from, to, max, label = 'usage', format = String } = {}) {
  const points = samples.flatMap((s) => {
    const value = pick(s);
    return value === null || value === undefined || !Number.isFinite(value) ? [] : [{ at: s.at, value, hostId: s.hostId }];
  });
  if (points.length === 0)
    return `<svg class="spark empty" role="img" aria-label="${escText(label)}: no samples yet" width="${width}" height="${height}"><text x="4" y="${height / 2}">no samples yet</text></svg>`;
  const start = from ?? points[0].at;
  const end = Math.max(to ?? points.at(-1).at, start + 1);
  const top = Math.max(max ?? 0, ...points.map((p) => p.value)) || 1;
  const pad = 3;
  const x = (at) => pad + ((at - start) / (end - start)) * (width - 2 * pad);
  const y = (value) => height - pad - (value / top) * (height - 2 * pad);
  const coords = points.map((p) => `${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`);
  const last = points.at(-1);
  const dots = points.map(
    (p, i) =>
      `<circle class="point" cx="${coords[i].split(',')[0]}" cy="${coords[i].split(',')[1]}" r="1.8"><title>${escText(`${new Date(p.at).toLocaleTimeString()}${p.hostId ? ` on ${p.hostId}` : ''}: ${format(p.value)}`)}</title></circle>`,
  );
  return `<svg class="spark" role="img" aria-label="${escText(`${label}: ${points.length} samples, latest ${format(last.value)}`)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><polyline points="${coords.join(' ')}" fill="none" stroke="currentColor" stroke-width="1.5"/>${dots.join('')}</svg>`;
}
