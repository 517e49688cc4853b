// The first screen (issue 13, "First impressions"): before the desk service's first status the
// whole window is a neutral "Starting…" (header, list), never the red "Not connected / no
// conversations can arrive" alarm; the alarm still appears as soon as the desk really is not
// connected (it could not start, or its feed is down).
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import App from './App.svelte';
import type { DeskEvent, DeskSnapshot, FeedStatus } from './ipc';
import { en } from './i18n/strings';
import { setLanguage } from './i18n/index.svelte';
import { lastLive } from './features/header/receiving.svelte';
import { DESK_STARTING, feedLabel, isStarting } from './features/header/feed';

const STARTING: FeedStatus = { state: 'disconnected', reason: DESK_STARTING };

/** The shell as it answers while its desk service is still being built (desk.rs). */
function shellStarting(feed: FeedStatus = STARTING): void {
  mockIPC(
    (cmd) => {
      switch (cmd) {
        case 'get_settings':
          throw { code: 'internal', message: 'not needed here' };
        case 'feed_status':
          return feed;
        case 'list_conversations': {
          const s: DeskSnapshot = { status: { feed, demo: false, lastSeq: null }, conversations: [], revision: 1, integrity: null };
          return s;
        }
        default:
          throw `unknown command ${cmd}`;
      }
    },
    { shouldMockEvents: true },
  );
}

const feedText = (): string => document.getElementById('feed-state')?.textContent ?? '';
const emptyText = (): string => document.getElementById('conversations-empty')?.textContent ?? '';

afterEach(() => {
  cleanup(); // unmounts (the desk stops listening) while the event mock is still there
  lastLive.forget();
  clearMocks();
  setLanguage('en');
});

describe('first screen', () => {
  it('is a neutral "Starting…" before the service’s first status, then the alarm when the desk could not start', async () => {
    shellStarting();
    render(App);
    // The very first frame, before any answer: neutral already.
    expect(feedText()).toContain(en.feedStarting);
    // The desk's first answer (still starting) is in.
    await waitFor(() => expect(document.querySelector('section.list')).toHaveAttribute('data-revision', '1'));
    expect(emptyText()).toContain(en.emptyStarting);
    expect(feedText()).toContain(en.feedStarting);
    expect(feedText()).not.toContain(en.feedDisconnected);
    expect(document.getElementById('feed-state')).toHaveAttribute('data-state', 'starting');
    expect(emptyText()).not.toContain(en.emptyNotConnectedHint);
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.queryByTestId('not-receiving-banner')).toBeNull();

    // The desk then fails to start: now it is an alarm, with the reason.
    const failed: DeskEvent = {
      kind: 'status',
      status: { feed: { state: 'disconnected', reason: 'the desk could not start: the store is locked' }, demo: false, lastSeq: null },
    };
    await emit('desk://changed', failed);
    await waitFor(() => expect(feedText()).toContain(en.feedDisconnected));
    expect(feedText()).toContain('the store is locked');
    expect(document.getElementById('feed-state')).toHaveAttribute('data-state', 'disconnected');
    expect(screen.getByRole('alert')).toHaveAttribute('data-testid', 'not-receiving-banner');
    expect(emptyText()).toContain(en.emptyNotConnectedHint);
    expect(emptyText()).not.toContain(en.emptyStarting);
  });

  it('shows the red alarm from the first answer when the feed really is down', async () => {
    shellStarting({ state: 'disconnected', reason: 'cannot connect to ws://127.0.0.1:9/v1/feed: refused' });
    render(App);
    await waitFor(() => expect(feedText()).toContain(en.feedDisconnected));
    expect(screen.getByRole('alert')).toHaveAttribute('data-testid', 'not-receiving-banner');
    await waitFor(() => expect(emptyText()).toContain(en.emptyNotConnectedHint));
  });

  it('while the feed’s first connection is under way, says "Connecting…", not "no conversations can arrive"', async () => {
    shellStarting({ state: 'connecting', url: 'ws://127.0.0.1:9/v1/feed' });
    render(App);
    await waitFor(() => expect(document.querySelector('section.list')).toHaveAttribute('data-revision', '1'));
    expect(feedText()).toContain(en.feedConnecting);
    expect(emptyText()).toContain(en.feedConnecting);
    expect(emptyText()).toContain(en.emptyConnectingHint);
    expect(emptyText()).not.toContain(en.emptyNotConnectedHint);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('says it in French too', async () => {
    setLanguage('fr');
    shellStarting();
    render(App);
    await waitFor(() => expect(emptyText()).toContain('Démarrage…'));
    expect(feedText()).toContain('Démarrage…');
    expect(feedText()).not.toContain('Non connecté');
  });
});

describe('isStarting', () => {
  it('is the shell’s exact starting reason or no status at all, nothing else', () => {
    expect(isStarting(null)).toBe(true);
    expect(isStarting(STARTING)).toBe(true);
    // A failure to start, or a feed reason that merely mentions it, is not "starting".
    expect(isStarting({ state: 'disconnected', reason: 'the desk could not start: boom' })).toBe(false);
    expect(isStarting({ state: 'disconnected', reason: `protocol error: ${DESK_STARTING}` })).toBe(false);
    expect(isStarting({ state: 'connecting', url: 'wss://gw' })).toBe(false);
    const t = (k: keyof typeof en): string => en[k];
    expect(feedLabel(null, t)).toEqual({ title: 'Starting…', detail: null });
    expect(feedLabel(STARTING, t)).toEqual({ title: 'Starting…', detail: null });
  });
});
