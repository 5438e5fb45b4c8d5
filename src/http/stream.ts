import type { Writable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import { drained } from '../stream.js';

/** Writes a piece, waiting for the client when its buffer is full; false if it went away. */
export async function send(out: Writable, text: string): Promise<boolean> {
  if (out.destroyed) return false;
  return out.write(text) || drained(out);
}

export type TableFormat = 'json' | 'csv';

/**
 * Streams rows produced in batches as CSV (header first; formula-looking cells escaped, since
 * names come from identity providers and end up in spreadsheets) or as one JSON object
 * `{"items":[…]}`, without holding more than one batch.
 */
export async function streamTable<R extends Record<string, unknown>>(
  out: Writable,
  format: TableFormat,
  columns: (keyof R & string)[],
  batches: AsyncIterable<R[]>,
): Promise<void> {
  try {
    await writeTable(out, format, columns, batches);
  } catch (err) {
    // The 200 and part of the table are on the wire: only a cut connection tells the client the
    // table is incomplete, and the error handler must not try to answer again.
    out.destroy();
    throw err;
  }
}

async function writeTable<R extends Record<string, unknown>>(
  out: Writable,
  format: TableFormat,
  columns: (keyof R & string)[],
  batches: AsyncIterable<R[]>,
): Promise<void> {
  let first = true;
  if (format === 'csv') {
    if (!(await send(out, stringify([columns], { escape_formulas: true })))) return;
  } else if (!(await send(out, '{"items":['))) return;
  for await (const batch of batches) {
    if (!batch.length) continue;
    const text =
      format === 'csv'
        ? stringify(
            batch.map((r) => columns.map((c) => r[c] as unknown)),
            { escape_formulas: true, cast: { boolean: (v) => String(v) } },
          )
        : batch.map((r) => (first ? ((first = false), '') : ',') + JSON.stringify(r)).join('');
    if (!(await send(out, text))) return;
  }
  if (format === 'json') await send(out, ']}');
  out.end();
}
