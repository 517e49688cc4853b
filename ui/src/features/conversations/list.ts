// The conversation list as data: rows newest first, an id → index map, and how live events
// change it. Pure functions, so ordering and the revision rule are tested without Svelte.
import type { ConversationRow, DeskAlert, DeskEvent, DeskSnapshot, DeskStatus, StoreIntegrity } from '../../ipc';
import { isAlarm } from './present';

export interface ListState {
  rows: readonly ConversationRow[];
  index: ReadonlyMap<string, number>;
  revision: number;
  status: DeskStatus;
  /** Set when a `reset` event says the whole list must be asked for again. */
  stale: boolean;
  /** The store checked against the audit log (null until the check at desk start ends). */
  integrity: StoreIntegrity | null;
  /** Conversations whose rows disagree with the audit log. */
  unverifiable: ReadonlySet<string>;
}

/** Newest `updatedAtMs` first; ties by id so the order is stable. */
export function compareRows(a: ConversationRow, b: ConversationRow): number {
  if (a.updatedAtMs !== b.updatedAtMs) return b.updatedAtMs - a.updatedAtMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function indexRows(rows: readonly ConversationRow[]): Map<string, number> {
  const index = new Map<string, number>();
  rows.forEach((r, i) => index.set(r.id, i));
  return index;
}

export function fromSnapshot(s: DeskSnapshot): ListState {
  const rows = [...s.conversations].sort(compareRows);
  return {
    rows,
    index: indexRows(rows),
    revision: s.revision,
    status: s.status,
    stale: false,
    integrity: s.integrity,
    unverifiable: new Set(s.integrity?.conversationIds ?? []),
  };
}

/**
 * Applies a batch of events in order. Events at or below the state's revision are already in it
 * (they raced the snapshot) and are dropped; status events always apply. New alerts are returned
 * for whoever shows them (the detail pane of that conversation).
 */
export function applyEvents(state: ListState, events: readonly DeskEvent[]): { state: ListState; alerts: DeskAlert[] } {
  const changed = new Map<string, ConversationRow>();
  const alerts: DeskAlert[] = [];
  let { revision, status, stale } = state;
  for (const e of events) {
    if (e.kind === 'status') {
      status = e.status;
      continue;
    }
    if (e.revision <= revision) continue;
    revision = e.revision;
    if (e.kind === 'row') changed.set(e.row.id, e.row);
    else if (e.kind === 'alert') alerts.push(e.alert);
    else stale = true;
  }
  if (changed.size === 0) return { state: { ...state, revision, status, stale }, alerts };
  const { integrity, unverifiable } = state;
  const rows = state.rows.filter((r) => !changed.has(r.id));
  for (const row of [...changed.values()].sort(compareRows)) {
    // Binary search for the insertion point keeps a burst on 10,000 rows cheap.
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = rows[mid];
      if (m !== undefined && compareRows(m, row) < 0) lo = mid + 1;
      else hi = mid;
    }
    rows.splice(lo, 0, row);
  }
  return { state: { rows, index: indexRows(rows), revision, status, stale, integrity, unverifiable }, alerts };
}

// ---------------------------------------------------------------------------------------------
// What the list shows: the live order, or an order held while the user points at or works in
// the list (issue 13: a row must never move or change identity under the pointer or the keyboard
// focus). A held view keeps the rows it had, in their order, each with its latest data (a
// padlock turning red shows at once); conversations that arrived meanwhile are counted, not
// inserted, until the hold ends or the user asks for them.

/** The order captured when a hold began: conversation ids, top to bottom. */
export interface Hold {
  order: readonly string[];
  ids: ReadonlySet<string>;
}

/** The list as it is drawn. */
export interface ListView {
  rows: readonly ConversationRow[];
  index: ReadonlyMap<string, number>;
  /** Conversations in the list but not drawn (they arrived while the order was held). */
  fresh: number;
  /** How many of those show an alarm (verification failed, identity mismatch). */
  freshAlarms: number;
  /** The held rows are no longer in the live order (some were updated since the hold began). */
  reordered: boolean;
}

/** Holds the order the list has now. */
export function holdOrder(rows: readonly ConversationRow[]): Hold {
  const order = rows.map((r) => r.id);
  return { order, ids: new Set(order) };
}

// A closed conversation keeps showing what it was (as its row does).
const alarming = (r: ConversationRow): boolean => isAlarm(r.state === 'closed' ? (r.closedFrom ?? 'closed') : r.state);

/**
 * The rows to draw. Without a hold: the live order. With one: the held conversations in the held
 * order, each with its current row; a held conversation no longer in the list (a reset to another
 * source) is dropped, and when none is left the hold is moot and the live order shows.
 */
export function arrange(list: ListState, hold: Hold | null): ListView {
  const live = (): ListView => ({ rows: list.rows, index: list.index, fresh: 0, freshAlarms: 0, reordered: false });
  if (hold === null) return live();
  const rows: ConversationRow[] = [];
  for (const id of hold.order) {
    const i = list.index.get(id);
    const r = i === undefined ? undefined : list.rows[i];
    if (r !== undefined) rows.push(r);
  }
  if (rows.length === 0) return live();
  let fresh = 0;
  let freshAlarms = 0;
  let reordered = false;
  let k = 0; // position in `rows` of the next held row in live order
  for (const r of list.rows) {
    if (!hold.ids.has(r.id)) {
      fresh += 1;
      if (alarming(r)) freshAlarms += 1;
    } else if (!reordered) {
      if (rows[k]?.id !== r.id) reordered = true;
      k += 1;
    }
  }
  return { rows, index: indexRows(rows), fresh, freshAlarms, reordered };
}

/** The list's scroll position and geometry, in pixels. */
export interface Scroll {
  scrollTop: number;
  viewportPx: number;
  rowPx: number;
}

/**
 * Where to scroll after the drawn rows changed (a live update, or a hold that ended), so that
 * what the user was looking at stays put:
 * - scrolled down the list, the rows on screen stay where they are: the scroll follows the shift
 *   most of them had (rows inserted or moved above them), not a row that itself jumped to the top;
 * - at the top, the list stays at the top (newest first: new rows appear there);
 * - the selected conversation, when it was on screen, stays on screen (by id, wherever it went).
 * `prevKeyAt(i)` is the key drawn at index i before; `nextIndexOf(key)` its index now (-1: gone).
 */
export function followScroll(
  s: Scroll,
  count: number,
  prevKeyAt: (i: number) => string | undefined,
  nextIndexOf: (key: string) => number,
  selected: string | null,
): number {
  const { scrollTop, viewportPx, rowPx } = s;
  if (rowPx <= 0) return scrollTop;
  const first = Math.floor(Math.max(0, scrollTop) / rowPx);
  const last = Math.ceil((Math.max(0, scrollTop) + viewportPx) / rowPx); // exclusive
  let target = scrollTop;
  let selectedWasOnScreen = false;
  const shifts = new Map<number, number>();
  for (let i = first; i < last; i++) {
    const k = prevKeyAt(i);
    if (k === undefined) break;
    if (k === selected) selectedWasOnScreen = true;
    const j = nextIndexOf(k);
    if (j >= 0) shifts.set(j - i, (shifts.get(j - i) ?? 0) + 1);
  }
  // At the top (within half a row), a newest-first list stays at the top.
  if (scrollTop >= rowPx / 2 && shifts.size > 0) {
    let best = 0;
    let bestCount = -1;
    for (const [shift, n] of shifts) {
      // Most rows moved together; on a tie, the smaller move.
      if (n > bestCount || (n === bestCount && Math.abs(shift) < Math.abs(best))) {
        best = shift;
        bestCount = n;
      }
    }
    target = scrollTop + best * rowPx;
  }
  if (selectedWasOnScreen && selected !== null) {
    const j = nextIndexOf(selected);
    if (j >= 0) {
      const top = j * rowPx;
      if (top < target) target = top;
      else if (top + rowPx > target + viewportPx) target = top + rowPx - viewportPx;
    }
  }
  return Math.max(0, Math.min(target, count * rowPx - viewportPx));
}
