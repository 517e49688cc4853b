// Issue 13: after Settings are saved (a switch to a real gateway, new keys) the desk restarts. A
// conversation opened meanwhile is refused with "the desk is starting": the detail pane waits
// (loading), never says "This conversation could not be loaded", and loads it once the list is
// listed again (the same row's values, a new row object), instead of keeping the refusal.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import DetailPane from './DetailPane.svelte';
import type { ConversationDetail } from '../../ipc';
import { en } from '../../i18n/strings';
import { DESK_STARTING } from '../header/feed';
import { identity, row } from './fixtures';

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('detail pane while the desk restarts', () => {
  it('waits instead of failing, and loads the conversation when the list is listed again', async () => {
    let running = false;
    let asked = 0;
    mockIPC((cmd, args) => {
      if (cmd === 'get_conversation') {
        asked += 1;
        if (!running) throw { code: 'internal', message: DESK_STARTING };
        const d: ConversationDetail = { row: row({ id: (args as { id: string }).id }), identity: identity(), timeline: [], alerts: [] };
        return d;
      }
      if (cmd === 'get_history') return { userId: 'user-42', groups: [] };
      throw `unknown command ${cmd}`;
    });
    const { rerender } = render(DetailPane, { props: { id: 'c-1', row: row() } });
    await waitFor(() => expect(asked).toBe(1));
    await Promise.resolve();
    expect(screen.queryByText(new RegExp(en.detailFailed))).toBeNull();
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.getByText(en.detailLoading)).toBeInTheDocument();

    // The new service runs and the list answered again: the same values, a new row object.
    running = true;
    await rerender({ id: 'c-1', row: row() });
    await waitFor(() => expect(screen.getByTestId('identity-card')).toBeInTheDocument());
    expect(asked).toBe(2);
    expect(screen.queryByText(new RegExp(en.detailFailed))).toBeNull();
  });

  it('still says a real failure', async () => {
    mockIPC((cmd) => {
      if (cmd === 'get_conversation') throw { code: 'not_found', message: 'no conversation c-1' };
      throw `unknown command ${cmd}`;
    });
    render(DetailPane, { props: { id: 'c-1', row: row() } });
    await waitFor(() => expect(screen.getByRole('alert')).toHaveTextContent(`${en.detailFailed}: no conversation c-1`));
  });
});
