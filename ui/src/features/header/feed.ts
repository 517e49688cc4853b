import type { FeedStatus } from '../../ipc';
import type { StringKey } from '../../i18n/strings';

/** What the header says about the feed: a title, and the reason or address as detail. */
export function feedLabel(
  feed: FeedStatus,
  t: (key: StringKey) => string,
): { title: string; detail: string | null } {
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
