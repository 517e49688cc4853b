// The list's data rules: order, the virtual window arithmetic, keys, events against revisions.
import { describe, expect, it } from 'vitest';
import { applyEvents, arrange, followScroll, fromSnapshot, holdOrder, type ListState } from './list';
import { navigate, scrollToShow, visibleWindow } from './window';
import { frameStats } from './perf';
import { relativeTime } from './present';
import type { DeskSnapshot, DeskStatus } from '../../ipc';
import { row, T0 } from './fixtures';

const status: DeskStatus = { feed: { state: 'connected', url: 'ws://127.0.0.1:1/v1/feed' }, demo: false, lastSeq: 10 };
const snap = (rows = [row({ id: 'a', updatedAtMs: T0 - 10 }), row({ id: 'b', updatedAtMs: T0 })], revision = 5): DeskSnapshot => ({
  status, conversations: rows, revision, integrity: null,
});

describe('visible window', () => {
  it('covers the viewport plus overscan, clamped to the list', () => {
    expect(visibleWindow(10_000, 80, 0, 800, 5)).toEqual({ start: 0, end: 15 });
    expect(visibleWindow(10_000, 80, 80_000, 800, 5)).toEqual({ start: 995, end: 1015 });
    expect(visibleWindow(10_000, 80, 80 * 9_995, 800, 5)).toEqual({ start: 9990, end: 10_000 });
    expect(visibleWindow(0, 80, 0, 800, 5)).toEqual({ start: 0, end: 0 });
    expect(visibleWindow(3, 80, 0, 800, 5)).toEqual({ start: 0, end: 3 });
  });

  it('scrolls as little as needed to show a row', () => {
    expect(scrollToShow(5, 80, 0, 800)).toBe(0);
    expect(scrollToShow(10, 80, 0, 800)).toBe(80);
    expect(scrollToShow(2, 80, 400, 800)).toBe(160);
  });

  it('maps navigation keys to indexes', () => {
    expect(navigate('ArrowDown', -1, 10, 5)).toBe(0);
    expect(navigate('ArrowDown', 9, 10, 5)).toBe(9);
    expect(navigate('ArrowUp', 0, 10, 5)).toBe(0);
    expect(navigate('PageDown', 0, 10, 5)).toBe(4);
    expect(navigate('PageUp', 9, 10, 5)).toBe(5);
    expect(navigate('End', 0, 10, 5)).toBe(9);
    expect(navigate('Home', 7, 10, 5)).toBe(0);
    expect(navigate('a', 1, 10, 5)).toBeNull();
    expect(navigate('ArrowDown', 0, 0, 5)).toBeNull();
  });
});

describe('live events', () => {
  it('orders the snapshot newest first and indexes it', () => {
    const s = fromSnapshot(snap());
    expect(s.rows.map((r) => r.id)).toEqual(['b', 'a']);
    expect(s.index.get('a')).toBe(1);
  });

  it('moves a changed row to its place, adds new ones, drops events the snapshot already had', () => {
    const s = fromSnapshot(snap());
    const { state, alerts } = applyEvents(s, [
      { kind: 'row', revision: 5, row: row({ id: 'stale', updatedAtMs: T0 + 99 }) },
      { kind: 'row', revision: 6, row: row({ id: 'a', state: 'failed', updatedAtMs: T0 + 5 }) },
      { kind: 'row', revision: 7, row: row({ id: 'c', updatedAtMs: T0 - 1 }) },
      { kind: 'alert', revision: 8, alert: { id: 'x', conversationId: 'a', kind: 'verification_failed', atMs: T0, evidence: [] } },
      { kind: 'status', status: { ...status, demo: true } },
    ]);
    expect(state.rows.map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(state.rows[0]?.state).toBe('failed');
    expect([...state.index.entries()]).toEqual([['a', 0], ['b', 1], ['c', 2]]);
    expect(state.revision).toBe(8);
    expect(state.status.demo).toBe(true);
    expect(alerts.map((a) => a.id)).toEqual(['x']);
    expect(state.stale).toBe(false);
  });

  it('applies the latest of several changes to one row in a batch, and marks a reset stale', () => {
    const s = fromSnapshot(snap());
    const { state } = applyEvents(s, [
      { kind: 'row', revision: 6, row: row({ id: 'b', state: 'secured', updatedAtMs: T0 + 1 }) },
      { kind: 'row', revision: 7, row: row({ id: 'b', state: 'lapsed', updatedAtMs: T0 + 2 }) },
      { kind: 'reset', revision: 8 },
    ]);
    expect(state.rows.map((r) => `${r.id}:${r.state}`)).toEqual(['b:lapsed', 'a:secured']);
    expect(state.stale).toBe(true);
  });
});

describe('the order held while the user is in the list (issue 13)', () => {
  const ids = (rows: readonly { id: string }[]) => rows.map((r) => r.id);
  const push = (s: ListState, revision: number, ...rows: ReturnType<typeof row>[]) =>
    applyEvents(s, rows.map((r, i) => ({ kind: 'row' as const, revision: revision + i, row: r }))).state;

  it('without a hold, draws the live order as it is', () => {
    const s = fromSnapshot(snap());
    const v = arrange(s, null);
    expect(v.rows).toBe(s.rows);
    expect(v.index).toBe(s.index);
    expect(v).toMatchObject({ fresh: 0, freshAlarms: 0, reordered: false });
  });

  it('keeps every held row at its place, counts new conversations instead of inserting them', () => {
    const s0 = fromSnapshot(snap([row({ id: 'a', updatedAtMs: T0 }), row({ id: 'b', updatedAtMs: T0 - 1 }), row({ id: 'c', updatedAtMs: T0 - 2 })]));
    const hold = holdOrder(s0.rows);
    const s1 = push(s0, 6,
      row({ id: 'n1', updatedAtMs: T0 + 1 }),
      row({ id: 'n2', state: 'failed', reasonCode: 'bad_signature', updatedAtMs: T0 + 2 }),
      row({ id: 'n3', state: 'closed', closedFrom: 'mismatch', updatedAtMs: T0 + 3 }));
    expect(ids(s1.rows)).toEqual(['n3', 'n2', 'n1', 'a', 'b', 'c']);
    const v = arrange(s1, hold);
    expect(ids(v.rows)).toEqual(['a', 'b', 'c']);
    expect([...v.index.entries()]).toEqual([['a', 0], ['b', 1], ['c', 2]]);
    expect(v.fresh).toBe(3);
    expect(v.freshAlarms).toBe(2); // failed, and closed but was mismatch
    expect(v.reordered).toBe(false);
  });

  it("shows a held row's new state at once, in place, and says the order is held when it would move", () => {
    const s0 = fromSnapshot(snap([row({ id: 'a', updatedAtMs: T0 }), row({ id: 'b', updatedAtMs: T0 - 1 }), row({ id: 'c', updatedAtMs: T0 - 2 })]));
    const hold = holdOrder(s0.rows);
    // The padlock of c turns red: live, c jumps to the top.
    const s1 = push(s0, 6, row({ id: 'c', state: 'failed', reasonCode: 'bad_signature', updatedAtMs: T0 + 5 }));
    expect(ids(s1.rows)).toEqual(['c', 'a', 'b']);
    const v = arrange(s1, hold);
    expect(ids(v.rows)).toEqual(['a', 'b', 'c']);
    expect(v.rows[2]?.state).toBe('failed');
    expect(v.rows[2]).toBe(s1.rows[0]); // the current row itself, not a copy of the old one
    expect(v.fresh).toBe(0);
    expect(v.reordered).toBe(true);
    // Updated without moving: nothing to say.
    const s2 = push(s0, 6, row({ id: 'a', state: 'lapsed', updatedAtMs: T0 + 5 }));
    expect(arrange(s2, hold).reordered).toBe(false);
    expect(arrange(s2, hold).rows[0]?.state).toBe('lapsed');
  });

  it('drops held conversations the list no longer has; with none left, the hold is moot', () => {
    const s0 = fromSnapshot(snap([row({ id: 'a', updatedAtMs: T0 }), row({ id: 'b', updatedAtMs: T0 - 1 })]));
    const hold = holdOrder(s0.rows);
    const reset = fromSnapshot(snap([row({ id: 'b', updatedAtMs: T0 - 1 }), row({ id: 'z', updatedAtMs: T0 + 9 })], 9));
    const v = arrange(reset, hold);
    expect(ids(v.rows)).toEqual(['b']);
    expect(v.fresh).toBe(1);
    const other = fromSnapshot(snap([row({ id: 'x', updatedAtMs: T0 })], 9));
    const w = arrange(other, hold);
    expect(ids(w.rows)).toEqual(['x']);
    expect(w.fresh).toBe(0);
  });
});

describe('the scroll follows what the user was looking at', () => {
  const keys = (n: number, prefix = 'k') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const at = (list: string[]) => (i: number) => list[i];
  const indexIn = (list: string[]) => {
    const m = new Map(list.map((k, i) => [k, i]));
    return (k: string) => m.get(k) ?? -1;
  };
  const geo = (scrollTop: number) => ({ scrollTop, viewportPx: 400, rowPx: 40 });

  it('scrolled down: rows inserted above leave the rows on screen where they are', () => {
    const before = keys(100);
    const after = [...keys(5, 'new'), ...before];
    expect(followScroll(geo(800), after.length, at(before), indexIn(after), null)).toBe(800 + 5 * 40);
  });

  it('follows the rows that moved together, not one that jumped to the top', () => {
    const before = keys(100);
    // k21 (on screen, rows 20..29) was updated and moved to the top; one new row too.
    const after = ['new0', 'k21', ...before.filter((k) => k !== 'k21')];
    // k20 shifted by 2, k22..k29 by 1: the bulk moved by one row.
    expect(followScroll(geo(800), after.length, at(before), indexIn(after), null)).toBe(840);
  });

  it('at the top, stays at the top (new rows appear there)', () => {
    const before = keys(100);
    const after = [...keys(3, 'new'), ...before];
    expect(followScroll(geo(0), after.length, at(before), indexIn(after), null)).toBe(0);
    expect(followScroll(geo(10), after.length, at(before), indexIn(after), null)).toBe(10);
  });

  it('keeps the selected conversation on screen when it was, wherever it went', () => {
    const before = keys(100);
    // At the top, k8 selected (on screen: rows 0..9); five new rows would push it off the bottom.
    const pushed = [...keys(5, 'new'), ...before];
    expect(followScroll(geo(0), pushed.length, at(before), indexIn(pushed), 'k8')).toBe(13 * 40 + 40 - 400);
    // Scrolled down, k25 selected; it was updated and went to the top: the list goes there.
    const moved = ['k25', ...before.filter((k) => k !== 'k25')];
    expect(followScroll(geo(800), moved.length, at(before), indexIn(moved), 'k25')).toBe(0);
    // A selection that was not on screen does not pull the list (which follows k20..k24, one
    // row down).
    expect(followScroll(geo(800), moved.length, at(before), indexIn(moved), 'k90')).toBe(840);
    // Nor one that is gone.
    expect(followScroll(geo(800), 99, at(before), indexIn(before.filter((k) => k !== 'k25')), 'k25')).toBe(800);
  });

  it('never scrolls past the end', () => {
    const before = keys(30);
    const after = before.slice(0, 12);
    expect(followScroll(geo(800), after.length, at(before), indexIn(after), null)).toBe(12 * 40 - 400);
  });
});

describe('frame statistics', () => {
  it('reports fps and slow frames from frame timestamps', () => {
    const stamps = [0, 16, 33, 50, 100, 116];
    const s = frameStats(stamps);
    expect(s.frames).toBe(5);
    expect(s.durationMs).toBe(116);
    expect(s.maxFrameMs).toBe(50);
    expect(s.longFrames).toBe(1);
    expect(Math.round(s.fps)).toBe(43);
  });
});

describe('relative time', () => {
  it('says now, seconds, minutes, hours and days, past and future, in both languages', () => {
    expect(relativeTime(T0 - 3_000, T0, 'en')).toBe('now');
    expect(relativeTime(T0 + 3_000, T0, 'en')).toBe('now');
    expect(relativeTime(T0 - 20_000, T0, 'en')).toBe('20 seconds ago');
    expect(relativeTime(T0 - 5 * 60_000, T0, 'en')).toBe('5 minutes ago');
    expect(relativeTime(T0 + 30 * 60_000, T0, 'en')).toBe('in 30 minutes');
    expect(relativeTime(T0 - 3 * 3_600_000, T0, 'en')).toBe('3 hours ago');
    expect(relativeTime(T0 - 2 * 86_400_000, T0, 'en')).toBe('2 days ago');
    expect(relativeTime(T0 - 5 * 60_000, T0, 'fr')).toBe('il y a 5 minutes');
    expect(relativeTime(T0 - 3_000, T0, 'fr')).toBe('maintenant');
  });
});
