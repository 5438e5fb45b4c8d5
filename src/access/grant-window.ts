import { DateTime } from 'luxon';

/** A grant's optional window: calendar days in an IANA time zone, both ends inclusive. */
export interface GrantWindow {
  startDate: string | null;
  endDate: string | null;
  timeZone: string;
}

/**
 * The instants a window covers: from 00:00 local on the start day to the first instant of the
 * day after the end day, computed in the zone so a DST change inside the window moves nothing.
 */
export function windowBounds(w: GrantWindow): { from: number | null; until: number | null } {
  const day = (d: string) => DateTime.fromISO(d, { zone: w.timeZone }).startOf('day');
  return {
    from: w.startDate ? day(w.startDate).toMillis() : null,
    until: w.endDate ? day(w.endDate).plus({ days: 1 }).toMillis() : null,
  };
}

export type WindowState = 'in_force' | 'not_started' | 'ended';

export function windowState(w: GrantWindow, at: number): WindowState {
  const { from, until } = windowBounds(w);
  if (from !== null && at < from) return 'not_started';
  if (until !== null && at >= until) return 'ended';
  return 'in_force';
}

/** "from 2024-12-01 until 2025-01-15 Europe/London", or '' for an open-ended grant. */
export function describeWindow(w: GrantWindow): string {
  if (!w.startDate && !w.endDate) return '';
  const parts = [w.startDate ? `from ${w.startDate}` : '', w.endDate ? `until ${w.endDate}` : ''].filter(Boolean);
  return `${parts.join(' ')} ${w.timeZone}`;
}

export function isValidDate(date: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(date) && DateTime.fromISO(date, { zone: 'UTC' }).isValid;
}
