// Issue 13: the status banners never move the list. The status strip under the header is always
// there, one element for the window's life, whatever the feed does; only its words, colours and
// role change (the alarm in it, the caution, the catching-up note, or a calm "Live"). Its height
// is fixed in styles.css (.status-strip), and the real window's e2e test
// (tests/e2e/list_stability.test.mjs) checks that a row under the pointer does not move.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import Header from './Header.svelte';
import { setLanguage } from '../../i18n/index.svelte';
import { lastLive } from './receiving.svelte';
import type { FeedStatus } from '../../ipc';

const live: FeedStatus = { state: 'connected', url: 'wss://gw.example/v1/feed' };
const down: FeedStatus = { state: 'disconnected', reason: 'cannot connect: connection refused; retrying in 2 s' };
const connecting: FeedStatus = { state: 'connecting', url: 'wss://gw.example/v1/feed' };
const behind: FeedStatus = { state: 'connected', url: 'wss://gw.example/v1/feed', catchingUp: { toGo: 1240, stale: false } };
const starting: FeedStatus = { state: 'disconnected', reason: 'the desk is starting' };
const unreadable: FeedStatus = { state: 'config_unreadable', reason: 'expected `=` at line 3' };

afterEach(() => {
  lastLive.forget();
  setLanguage('en');
});

const props = (feed: FeedStatus | null) => ({ feed, view: 'conversations' as const, onnavigate: () => {} });

describe('status strip', () => {
  it('is one element for the window’s life: every state of the feed is said in its one slot', async () => {
    const { rerender } = render(Header, { props: props(null) });
    const strip = screen.getByTestId('status-strip');
    const slot = () => {
      // Exactly one message in the strip, always inside it.
      expect(strip.children).toHaveLength(1);
      return strip.children[0] as HTMLElement;
    };
    expect(strip).toHaveAttribute('data-kind', 'starting');
    expect(slot()).toHaveTextContent('Starting…');
    expect(slot()).not.toHaveAttribute('role');

    await rerender(props(live));
    expect(screen.getByTestId('status-strip')).toBe(strip);
    expect(strip).toHaveAttribute('data-kind', 'live');
    expect(slot()).toHaveAttribute('data-testid', 'status-strip-calm');
    expect(slot()).toHaveTextContent(/^Live$/);

    await rerender(props(down));
    expect(screen.getByTestId('status-strip')).toBe(strip);
    expect(slot()).toHaveAttribute('data-testid', 'not-receiving-banner');
    expect(slot()).toHaveAttribute('role', 'alert');
    // The whole text in its title (the line may be cut), and focusable (focus shows it all).
    expect(slot().title).toBe(slot().textContent!.replace(/\s+/g, ' ').trim());
    expect(slot().title).toMatch(/^Not receiving: the gateway cannot be reached; retrying\. Padlocks show the state when the feed was last live \(/);
    expect(slot()).toHaveAttribute('tabindex', '0');
    // The header's reason is one line too (styles.css .feed), its whole text in its title.
    expect(document.querySelector('#feed-state .feed-detail')).toHaveAttribute('title', `\u2068${down.reason}\u2069`);

    await rerender(props(connecting));
    expect(screen.getByTestId('status-strip')).toBe(strip);
    expect(slot()).toHaveAttribute('data-testid', 'not-receiving-banner');
    expect(slot()).toHaveAttribute('role', 'status');

    await rerender(props(behind));
    expect(screen.getByTestId('status-strip')).toBe(strip);
    expect(slot()).toHaveAttribute('data-testid', 'catching-up-banner');
    expect(slot()).toHaveAttribute('role', 'status');
    expect(slot().title).toBe('Catching up with the gateway: 1,240 changes to go.');

    await rerender(props(live));
    expect(screen.getByTestId('status-strip')).toBe(strip);
    expect(slot()).toHaveTextContent(/^Live$/);
    // Nothing but the strip follows the header: no banner of the feed's comes and goes beside it.
    expect(strip.previousElementSibling?.tagName).toBe('HEADER');
    expect(strip.nextElementSibling).toBeNull();
  });

  it('never says "Live" when the feed is not: the desk starting, or the configuration unreadable', async () => {
    const { rerender } = render(Header, { props: props(starting) });
    expect(screen.getByTestId('status-strip')).toHaveTextContent(/^Starting…$/);
    await rerender(props(unreadable));
    // (The unreadable configuration's own alert banner says why, under the strip.)
    expect(screen.getByTestId('status-strip')).toHaveAttribute('data-kind', 'no-feed');
    expect(screen.getByTestId('status-strip')).toHaveTextContent(/^Not receiving$/);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('says its calm state in French', () => {
    setLanguage('fr');
    render(Header, { props: props(live) });
    expect(screen.getByTestId('status-strip')).toHaveTextContent(/^En direct$/);
  });
});
