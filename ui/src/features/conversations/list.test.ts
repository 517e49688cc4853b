// The list's data rules: order, the virtual window arithmetic, keys, events against revisions.
import { describe, expect, it } from 'vitest';
import { applyEvents, fromSnapshot } from './list';
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
