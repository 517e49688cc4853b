// The conversation list as data: rows newest first, an id → index map, and how live events
// change it. Pure functions, so ordering and the revision rule are tested without Svelte.
import type { ConversationRow, DeskAlert, DeskEvent, DeskSnapshot, DeskStatus, StoreIntegrity } from '../../ipc';

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
