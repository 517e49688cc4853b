// Is the desk receiving? Every state of the feed other than "connected" means the list shows
// what was stored when the feed was last live, not the present: the header's banner says so in
// words, and the list and detail draw their padlocks stale until the feed is live again. So does
// a desk connected but behind the gateway's log for longer than the catch-up limit (2 min: the
// desk's own clock takes over then); before that, a catch-up is live, and the header says how
// far it has to go ("Catching up with the gateway: 1,240 changes to go").
import type { FeedStatus } from '../../ipc';
import type { StringKey } from '../../i18n/strings';
import { plural, t } from '../../i18n/index.svelte';
import { clockTime } from '../conversations/present';

export { clockTime };

export type Receiving =
  | {
      live: true;
      /** Connected, still applying the gateway's log: entries to go (absent when caught up). */
      catchingUp?: number;
    }
  | {
      live: false;
      /** Why, in words (never the raw reason, which stays in the header's detail). */
      cause: StringKey;
      /** A fault the advisor should act on or know now (an alert), rather than a passing state. */
      fault: boolean;
      /** Behind the gateway's log for too long: entries still to go. */
      toGo?: number;
    };

// The feed client's reasons (lockdesk-feed-client DisconnectReason / StopReason Display texts),
// first match wins. The reason is the only signal the status DTO carries; unknown texts fall
// back to the generic cause, never to "live".
const CAUSES: [RegExp, StringKey][] = [
  [/credential|HTTP 40[13]\b/i, 'notReceivingRefused'],
  [/beyond the gateway's log|serves another log/i, 'notReceivingLogDisagrees'],
  [/no frame for|heartbeat/i, 'notReceivingStalled'],
  [/^cannot connect/i, 'notReceivingUnreachable'],
  [/connection was lost|closed the connection/i, 'notReceivingLost'],
  [/local store/i, 'notReceivingStore'],
  [/protocol/i, 'notReceivingProtocol'],
  [/starting/i, 'notReceivingStarting'],
];

/** What the feed status means for the list's trustworthiness. `demo`: the in-process simulator
 * feeds the desk (its engine stopping is the feed stopping). */
export function receiving(feed: FeedStatus | null, demo: boolean): Receiving {
  if (!feed) return { live: false, cause: 'notReceivingStarting', fault: false };
  switch (feed.state) {
    case 'connected': {
      const c = feed.catchingUp;
      if (!c) return { live: true };
      if (c.stale) return { live: false, cause: 'notReceivingBehind', fault: true, toGo: c.toGo };
      return { live: true, catchingUp: c.toGo };
    }
    case 'connecting':
      return { live: false, cause: 'notReceivingConnecting', fault: false };
    case 'not_configured':
      return { live: false, cause: 'notReceivingNotConfigured', fault: true };
    case 'config_unreadable':
      return { live: false, cause: 'notReceivingConfig', fault: true };
    case 'disconnected': {
      if (demo) return { live: false, cause: 'notReceivingDemoStopped', fault: true };
      const hit = CAUSES.find(([re]) => re.test(feed.reason));
      const cause = hit ? hit[1] : 'notReceivingOther';
      return { live: false, cause, fault: cause !== 'notReceivingStarting' };
    }
  }
}

/** "1,240 changes to go" / "1 240 changements restants", in the UI's language. */
export function toGoText(n: number, lang: string): string {
  const words = plural(n, 'changesToGoOne', 'changesToGoOther');
  return words.replace('{n}', new Intl.NumberFormat(lang).format(n));
}

/** The banner's cause in words, with how far behind when the desk is behind for too long. */
export function causeText(r: Receiving, lang: string): string {
  if (r.live) return '';
  return r.toGo !== undefined ? `${t(r.cause)} (${toGoText(r.toGo, lang)})` : t(r.cause);
}

/**
 * When the feed was last live, as this window saw it: `null` while live, and while it has not
 * been live since the window opened. `observe` is called with every status the window receives.
 */
export class LastLive {
  #wasLive = false;
  /** The moment the window last saw the feed live (ms since the epoch), once it stopped. */
  at = $state<number | null>(null);

  observe(live: boolean, nowMs: number): void {
    if (live) {
      this.#wasLive = true;
      this.at = null;
    } else if (this.#wasLive) {
      this.#wasLive = false;
      this.at = nowMs;
    }
  }

  /** Back to a new window's record (nothing seen yet). */
  forget(): void {
    this.#wasLive = false;
    this.at = null;
  }
}

/** The window's one record (the header observes, the list and detail read). */
export const lastLive = new LastLive();

/** What the list and detail need to draw themselves stale: `null` when live. `asOf` is the
 * time of day the feed was last live, or `null` when it was not live since the window opened. */
export type Staleness = { asOf: string | null } | null;

export function staleness(r: Receiving, lastLiveAt: number | null, lang: string): Staleness {
  if (r.live) return null;
  return { asOf: lastLiveAt !== null ? clockTime(lastLiveAt, lang) : null };
}
