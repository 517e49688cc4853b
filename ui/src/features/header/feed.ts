import type { FeedStatus } from '../../ipc';
import type { Translate } from '../../i18n/strings';

/** The reason the shell gives while no desk service runs yet and none failed to start
 * (`src-tauri/src/desk.rs`, `DeskHolder::status`): at launch, and while a saved setting restarts
 * it. The feed client's own reasons always name what failed, so none is ever exactly this. */
export const DESK_STARTING = 'the desk is starting';

/** Before the service's first status (no answer at all yet, or the shell's "starting"): a neutral
 * state, never the red "Not connected" alarm. A desk that could not start says why instead. */
export function isStarting(feed: FeedStatus | null): boolean {
  return feed === null || (feed.state === 'disconnected' && feed.reason === DESK_STARTING);
}

/** What the header says about the feed: a title, and the reason or address as detail. */
export function feedLabel(
  feed: FeedStatus | null,
  t: Translate,
): { title: string; detail: string | null } {
  if (feed === null || isStarting(feed)) return { title: t('feedStarting'), detail: null };
  switch (feed.state) {
    case 'not_configured':
      return { title: t('feedNotConfigured'), detail: null };
    case 'disconnected':
      return { title: t('feedDisconnected'), detail: feed.reason };
    case 'connecting':
      return { title: t('feedConnecting'), detail: feed.url };
    case 'connected':
      return { title: t('feedConnected'), detail: feed.url };
    case 'config_unreadable':
      return { title: t('feedConfigUnreadable'), detail: feed.reason };
  }
}
