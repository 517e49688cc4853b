import { describe, expect, it } from 'vitest';
import { feedLabel } from './feed';
import { en } from '../../i18n/strings';

const t = (k: keyof typeof en) => en[k];

describe('feed label', () => {
  it('says why it is not connected', () => {
    expect(feedLabel({ state: 'disconnected', reason: 'gateway refused the credential' }, t)).toEqual({
      title: 'Not connected',
      detail: 'gateway refused the credential',
    });
    expect(feedLabel({ state: 'not_configured' }, t)).toEqual({ title: 'Not configured', detail: null });
    expect(feedLabel({ state: 'config_unreadable', reason: 'cannot read /c/config.toml: Is a directory (os error 21)' }, t)).toEqual({
      title: 'Configuration unreadable',
      detail: 'cannot read /c/config.toml: Is a directory (os error 21)',
    });
    expect(feedLabel({ state: 'connected', url: 'wss://gw/v1/feed' }, t).title).toBe('Connected');
  });
});
