import { InvalidInput } from '../errors.js';

/**
 * A caller's `date-time` as epoch milliseconds. The schemas' format admits RFC 3339's leap second
 * (…T23:59:60Z), which Date cannot represent: a NaN would compare false against every bound and
 * make ended grants look in force, so it is refused here, naming the field (`query.at`, `body.at`).
 */
export function parseInstant(value: string, path: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    const [code, message] = path.startsWith('body')
      ? ['invalid_body', 'the request body is invalid']
      : ['invalid_query', 'the query string is invalid'];
    throw new InvalidInput(code, message, { fields: [{ path, message: 'is not a representable instant' }] });
  }
  return ms;
}

/** An optional instant parameter: the caller's, or `fallback` (usually now) when absent. */
export function instantOr(value: string | undefined, path: string, fallback: number): number {
  return value === undefined ? fallback : parseInstant(value, path);
}
