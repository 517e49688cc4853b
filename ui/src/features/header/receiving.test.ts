// Issue 13: a lost feed must not look like a healthy one. Every non-live state of the feed gets a
// prominent banner saying what is wrong and what it means for the padlocks on screen.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import Header from './Header.svelte';
import { setLanguage } from '../../i18n/index.svelte';
import { en } from '../../i18n/strings';
import { clockTime, LastLive, lastLive, receiving, staleness } from './receiving.svelte';
import type { FeedStatus } from '../../ipc';

const T1 = Date.UTC(2026, 10, 22, 13, 2, 0);
const live: FeedStatus = { state: 'connected', url: 'wss://gw.example/v1/feed' };
const revoked: FeedStatus = { state: 'disconnected', reason: 'the gateway no longer accepts this credential (revoked)' };

afterEach(() => {
  lastLive.forget();
  vi.useRealTimers();
  setLanguage('en');
});

describe('receiving', () => {
  it('names the cause of every way the feed client stops receiving, never calling it live', () => {
    const cause = (reason: string) => {
      const r = receiving({ state: 'disconnected', reason }, false);
      return r.live ? 'live' : r.cause;
    };
    expect(cause('the gateway no longer accepts this credential (revoked)')).toBe('notReceivingRefused');
    expect(cause('the gateway refused the credential (HTTP 401)')).toBe('notReceivingRefused');
    expect(cause('the gateway refused the upgrade with HTTP 403; retrying in 5 s')).toBe('notReceivingRefused');
    expect(cause('cannot connect: connection refused; retrying in 2 s')).toBe('notReceivingUnreachable');
    expect(cause('no frame for 45s: the connection is dead; retrying in 1 s')).toBe('notReceivingStalled');
    expect(cause('the connection was lost: reset; retrying in 1 s')).toBe('notReceivingLost');
    expect(cause("the local cursor (9) is beyond the gateway's log (its data was reset?)")).toBe('notReceivingLogDisagrees');
    expect(cause('the gateway serves another log (id b) than the one this desk’s data belongs to (id a)')).toBe('notReceivingLogDisagrees');
    expect(cause('the local store failed: disk full; retrying in 1 s')).toBe('notReceivingStore');
    expect(cause('something new')).toBe('notReceivingOther');
    expect(receiving({ state: 'disconnected', reason: 'the simulator panicked' }, true)).toMatchObject({ live: false, cause: 'notReceivingDemoStopped', fault: true });
    expect(receiving({ state: 'connecting', url: 'wss://gw' }, false)).toMatchObject({ live: false, fault: false });
    expect(receiving({ state: 'not_configured' }, false).live).toBe(false);
    expect(receiving(null, false).live).toBe(false);
    expect(receiving(live, false).live).toBe(true);
  });

  it('remembers when the feed was last live, and forgets it once live again', () => {
    const l = new LastLive();
    l.observe(false, T1 - 1000);
    expect(l.at).toBeNull(); // never live: no time to claim
    l.observe(true, T1 - 500);
    l.observe(false, T1);
    l.observe(false, T1 + 60_000); // still down: the time stays the moment it stopped
    expect(l.at).toBe(T1);
    expect(staleness(receiving(revoked, false), l.at, 'en')).toEqual({ asOf: clockTime(T1, 'en') });
    l.observe(true, T1 + 120_000);
    expect(l.at).toBeNull();
    expect(staleness(receiving(live, false), l.at, 'en')).toBeNull();
  });
});

describe('not-receiving banner', () => {
  it('is absent while live, and says what is wrong and what it means once the credential is revoked', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T1);
    const { rerender } = render(Header, { props: { feed: live, view: 'conversations', onnavigate: () => {} } });
    expect(screen.queryByTestId('not-receiving-banner')).toBeNull();
    await rerender({ feed: revoked, view: 'conversations', onnavigate: () => {} });
    const banner = screen.getByRole('alert');
    expect(banner).toHaveAttribute('data-testid', 'not-receiving-banner');
    expect(banner).toHaveTextContent(
      `Not receiving: the gateway refused this desk’s credential. Padlocks show the state when the feed was last live (${clockTime(T1, 'en')}).`,
    );
    await rerender({ feed: live, view: 'conversations', onnavigate: () => {} });
    expect(screen.queryByTestId('not-receiving-banner')).toBeNull();
  });

  it('says it in French, and that the padlocks are not current when the feed was never live', () => {
    setLanguage('fr');
    render(Header, { props: { feed: { state: 'disconnected', reason: 'cannot connect: refused' }, view: 'conversations', onnavigate: () => {} } });
    const banner = screen.getByRole('alert');
    expect(banner).toHaveTextContent('Réception interrompue : la passerelle est injoignable');
    expect(banner).toHaveTextContent('pas l’état actuel');
  });

  it('says the demo stopped when the simulator feeding the desk stops', () => {
    render(Header, { props: { feed: { state: 'disconnected', reason: 'the demo failed: boom' }, demo: true, view: 'conversations', onnavigate: () => {} } });
    expect(screen.getByRole('alert')).toHaveTextContent(`${en.notReceivingLead} ${en.notReceivingDemoStopped}.`);
  });

  it('is a polite status, not an alarm, while connecting', () => {
    render(Header, { props: { feed: { state: 'connecting', url: 'wss://gw' }, view: 'conversations', onnavigate: () => {} } });
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.getByTestId('not-receiving-banner')).toHaveAttribute('role', 'status');
  });
});

// Issue 13: a desk behind the gateway's log says how far; behind for longer than the catch-up
// limit, it is not receiving (the list drawn stale), as when disconnected.
describe('catching up', () => {
  const behind = (toGo: number, stale: boolean): FeedStatus => ({
    state: 'connected',
    url: 'wss://gw.example/v1/feed',
    catchingUp: { toGo, stale },
  });

  it('is live while the catch-up is recent, and stale once it has lasted too long', () => {
    expect(receiving(behind(1240, false), false)).toEqual({ live: true, catchingUp: 1240 });
    expect(staleness(receiving(behind(1240, false), false), null, 'en')).toBeNull();
    const late = receiving(behind(1240, true), false);
    expect(late).toEqual({ live: false, cause: 'notReceivingBehind', fault: true, toGo: 1240 });
    expect(staleness(late, null, 'en')).toEqual({ asOf: null });
    expect(receiving(live, false)).toEqual({ live: true });
  });

  it('says how many changes are to go in the header, then that the desk is behind for too long', async () => {
    const { rerender } = render(Header, { props: { feed: behind(1240, false), view: 'conversations', onnavigate: () => {} } });
    expect(screen.queryByTestId('not-receiving-banner')).toBeNull();
    const note = screen.getByTestId('catching-up-banner');
    expect(note).toHaveAttribute('role', 'status');
    expect(note).toHaveTextContent('Catching up with the gateway: 1,240 changes to go.');
    await rerender({ feed: behind(1, false), view: 'conversations', onnavigate: () => {} });
    expect(screen.getByTestId('catching-up-banner')).toHaveTextContent('Catching up with the gateway: 1 change to go.');
    await rerender({ feed: behind(1240, true), view: 'conversations', onnavigate: () => {} });
    expect(screen.queryByTestId('catching-up-banner')).toBeNull();
    const banner = screen.getByRole('alert');
    expect(banner).toHaveAttribute('data-cause', 'notReceivingBehind');
    expect(banner).toHaveTextContent(
      'Not receiving: this desk has been catching up with the gateway for over 2 minutes (1,240 changes to go).',
    );
    await rerender({ feed: live, view: 'conversations', onnavigate: () => {} });
    expect(screen.queryByTestId('catching-up-banner')).toBeNull();
    expect(screen.queryByTestId('not-receiving-banner')).toBeNull();
  });

  it('says it in French, with French digit grouping', () => {
    setLanguage('fr');
    render(Header, { props: { feed: behind(1240, false), view: 'conversations', onnavigate: () => {} } });
    // (French groups digits with a narrow no-break space.)
    expect(screen.getByTestId('catching-up-banner')).toHaveTextContent(
      /^Rattrapage de la passerelle : encore 1\s240 changements\.$/u,
    );
  });
});
