// Pure helpers of the supervisor screen: the filters form to the command's filters, and the
// charts' numbers (shares and bar lengths). No IPC, no DOM.
import type { AuthStateName, ReasonCode, SupervisorFilters } from '../../ipc';

/** The filters as the form holds them: '' means "any". */
export interface FilterForm {
  state: '' | AuthStateName;
  reason: '' | ReasonCode;
  operatorId: string;
  channel: string;
  /** `YYYY-MM-DD` from a date input, in the viewer's time zone. */
  from: string;
  to: string;
}

export const emptyForm = (): FilterForm => ({ state: '', reason: '', operatorId: '', channel: '', from: '', to: '' });

/** Local midnight of a `YYYY-MM-DD` (plus `days`), or null when the text is not a date. */
function localDayStart(text: string, days = 0): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return null;
  const t = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + days).getTime();
  return Number.isFinite(t) ? t : null;
}

export function toFilters(form: FilterForm, now: Date = new Date()): SupervisorFilters {
  const op = form.operatorId === '' ? null : Number(form.operatorId);
  const end = localDayStart(form.to, 1);
  return {
    state: form.state === '' ? null : form.state,
    reason: form.reason === '' ? null : form.reason,
    operatorId: op !== null && Number.isSafeInteger(op) ? op : null,
    channel: form.channel === '' ? null : form.channel,
    fromMs: localDayStart(form.from),
    toMs: end === null ? null : end - 1,
    tzOffsetMinutes: -now.getTimezoneOffset(),
  };
}

/** Whole percent of `part` in `whole` (0 for an empty whole). */
export function percent(part: number, whole: number): number {
  return whole > 0 ? Math.round((part / whole) * 100) : 0;
}

/** A bar's length out of 100 for `value` against the largest value (0 when nothing). */
export function barLength(value: number, max: number): number {
  return max > 0 ? (value / max) * 100 : 0;
}

/** What the per-day chart needs of a day (see `DayShare`). */
export interface DayCounts {
  conversations: number;
  secured: number;
  noData: number;
}

/** A day's whole percent of secured conversations among those with verification data, or null
 * when the day has none (only back-filled conversations the desk never watched): "no data",
 * never 0%. */
export function dayShare(d: DayCounts): number | null {
  const known = d.conversations - d.noData;
  return known > 0 ? percent(d.secured, known) : null;
}
