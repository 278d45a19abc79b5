import { stringify } from 'yaml';

export type Format = 'table' | 'json' | 'yaml';

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | null | undefined;
}

export function table<T>(rows: T[], columns: Array<Column<T>>): string {
  const cells = rows.map((row) => columns.map((c) => String(c.value(row) ?? '')));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n');
}

/** Prints `data` as JSON or YAML as the API returned it, or as a table of the chosen columns. */
export function print<T>(format: Format, data: unknown, rows: T[], columns: Array<Column<T>>): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(stringify(data));
  else process.stdout.write(`${rows.length === 0 ? '(none)' : table(rows, columns)}\n`);
}

/** One object as `label  value` lines (labels aligned); pairs without a value are left out. */
export function details(pairs: Array<[string, string | number | null | undefined]>): string {
  const shown = pairs.filter((p): p is [string, string | number] => p[1] !== null && p[1] !== undefined && p[1] !== '');
  const width = Math.max(...shown.map(([label]) => label.length));
  return shown.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

/** Bytes in the largest unit that keeps the number at least 1 (B, KiB, MiB, GiB). */
export function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
export const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;
export const seconds = (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
export const time = (at: number | null | undefined) => (at ? new Date(at).toISOString().replace('T', ' ').slice(0, 19) : '—');
