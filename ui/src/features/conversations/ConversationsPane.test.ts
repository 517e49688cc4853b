// The main window's conversation area against Tauri's IPC mock: 10,000 rows render only a
// window, the keyboard drives the list, Enter opens the detail, live events update it, and a
// shell without the desk commands shows the honest "not connected" state.
import { afterEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import { tick } from 'svelte';
import ConversationsPane from './ConversationsPane.svelte';
import { DeskStore } from './desk.svelte';
import type { ConversationDetail, ConversationRow, DeskEvent, DeskSnapshot, History, StoreIntegrity } from '../../ipc';
import { identity, manyRows, row, T0 } from './fixtures';
import { clockTime, lastLive } from '../header/receiving.svelte';

const snapshot = (rows: ConversationRow[], revision = 1): DeskSnapshot => ({
  status: { feed: { state: 'connected', url: 'ws://127.0.0.1:9/v1/feed' }, demo: false, lastSeq: 3 },
  conversations: rows,
  revision,
  integrity,
});

/** What the desk's latest check of its store against the audit log found (null: not yet). */
let integrity: StoreIntegrity | null = null;

let calls: { cmd: string; args: unknown }[] = [];

function serve(rows: ConversationRow[]): void {
  calls = [];
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args });
      switch (cmd) {
        case 'list_conversations':
          return snapshot(rows);
        case 'get_conversation': {
          const id = (args as { id: string }).id;
          const r = rows.find((x) => x.id === id);
          if (!r) throw { code: 'internal', message: `no conversation ${id}` };
          const d: ConversationDetail = { row: r, identity: r.userId ? identity({ userId: r.userId }) : null, timeline: [], alerts: [] };
          return d;
        }
        case 'get_history': {
          const h: History = { userId: (args as { userId: string }).userId, groups: [] };
          return h;
        }
        default:
          throw `unknown command ${cmd}`;
      }
    },
    { shouldMockEvents: true },
  );
}

async function mount(rows: ConversationRow[]): Promise<DeskStore> {
  serve(rows);
  const desk = new DeskStore();
  render(ConversationsPane, { props: { feed: { state: 'connected', url: 'ws://127.0.0.1:9/v1/feed' }, desk } });
  await desk.start();
  return desk;
}

afterEach(() => {
  lastLive.forget();
  clearMocks();
  integrity = null;
});

describe('conversation list', () => {
  it('shows a row that disagrees with the audit log as unverifiable, without its padlock', async () => {
    integrity = {
      ok: false,
      problemCount: 1,
      problems: ['conversation b shows secured/user-42 but the audit log says failed (bad_signature) (entry #7)'],
      conversationIds: ['b'],
      chainBroken: false,
      checkedAtMs: T0,
    };
    const desk = await mount([row({ id: 'a', updatedAtMs: T0 }), row({ id: 'b', updatedAtMs: T0 - 1 })]);
    const list = await screen.findByRole('listbox', { name: 'Conversations, newest first' });
    const bodies = within(list).getAllByTestId('conversation-row-body');
    expect(bodies).toHaveLength(2);
    const [a, b] = bodies as [HTMLElement, HTMLElement];
    expect(b).toHaveAttribute('data-unverifiable', 'true');
    expect(within(b).getByTestId('row-unverifiable')).toHaveTextContent('Unverifiable');
    expect(within(b).getByRole('img', { name: 'Unverifiable' })).toBeInTheDocument();
    expect(b.querySelector('svg.state-icon')).toBeNull();
    // The untouched row keeps its state icon.
    expect(a).not.toHaveAttribute('data-unverifiable');
    expect(a.querySelector('svg.state-icon[data-state="secured"]')).not.toBeNull();
    desk.stop();
  });

  it('renders only a window of 10,000 rows and says how many there are', async () => {
    const desk = await mount(manyRows(10_000));
    const list = await screen.findByRole('listbox', { name: 'Conversations, newest first' });
    const options = within(list).getAllByRole('option');
    expect(options.length).toBeGreaterThan(5);
    expect(options.length).toBeLessThan(60);
    expect(options[0]).toHaveAttribute('aria-setsize', '10000');
    expect(options[0]).toHaveAttribute('aria-posinset', '1');
    expect(screen.getByTestId('conversation-count')).toHaveTextContent('10,000 conversations');
    expect(desk.perf.renderedRows()).toBe(options.length);
    await waitFor(() => expect(desk.perf.firstRender?.rows).toBe(10_000));
    desk.stop();
  });

  it('still renders only a window when the list is not height-bound yet (clientHeight = content)', async () => {
    // Regression: in WebKitGTK the first measure could run before the stylesheet applied, when
    // the list's clientHeight was the whole content height, and all 10,000 rows were rendered.
    const original = Object.getOwnPropertyDescriptor(HTMLElement.prototype, 'clientHeight');
    Object.defineProperty(HTMLElement.prototype, 'clientHeight', { configurable: true, get: () => 760_000 });
    try {
      const desk = await mount(manyRows(10_000));
      const list = await screen.findByRole('listbox');
      await tick();
      expect(within(list).getAllByRole('option').length).toBeLessThan(100);
      desk.stop();
    } finally {
      if (original) Object.defineProperty(HTMLElement.prototype, 'clientHeight', original);
    }
  });

  it('moves with the arrow keys, End and Home, and opens with Enter', async () => {
    const desk = await mount(manyRows(10_000));
    const list = await screen.findByRole('listbox');
    list.focus();
    await tick();
    expect(list).toHaveAttribute('aria-activedescendant', 'conv-0');
    await fireEvent.keyDown(list, { key: 'ArrowDown' });
    await fireEvent.keyDown(list, { key: 'ArrowDown' });
    expect(list).toHaveAttribute('aria-activedescendant', 'conv-2');
    const active = document.getElementById('conv-2')!;
    expect(active).toHaveClass('active');
    expect(active).toHaveAttribute('data-key', 'c-2');
    await fireEvent.keyDown(list, { key: 'ArrowUp' });
    expect(list).toHaveAttribute('aria-activedescendant', 'conv-1');

    await fireEvent.keyDown(list, { key: 'End' });
    expect(list).toHaveAttribute('aria-activedescendant', 'conv-9999');
    const last = document.getElementById('conv-9999');
    expect(last).not.toBeNull();
    expect(last).toHaveAttribute('aria-posinset', '10000');
    expect(document.getElementById('conv-0')).toBeNull(); // scrolled out, not rendered
    expect(within(list).getAllByRole('option').length).toBeLessThan(60);

    await fireEvent.keyDown(list, { key: 'Home' });
    await fireEvent.keyDown(list, { key: 'Enter' });
    await waitFor(() => expect(calls.some((c) => c.cmd === 'get_conversation')).toBe(true));
    expect(calls.find((c) => c.cmd === 'get_conversation')?.args).toEqual({ id: 'c-0' });
    expect(document.getElementById('conv-0')).toHaveAttribute('aria-selected', 'true');
    const detail = await screen.findByTestId('detail');
    expect(detail).toHaveAttribute('data-id', 'c-0');
    await within(detail).findByTestId('identity-card');
    await waitFor(() => expect(calls.some((c) => c.cmd === 'get_history')).toBe(true));
    expect(calls.find((c) => c.cmd === 'get_history')?.args).toEqual({ userId: 'user-0' });
    // Regression: the answer must not trigger the request again (it once looped forever).
    await new Promise((r) => setTimeout(r, 100));
    expect(calls.filter((c) => c.cmd === 'get_conversation')).toHaveLength(1);
    expect(calls.filter((c) => c.cmd === 'get_history')).toHaveLength(1);
    desk.stop();
  });

  it('applies live rows from desk://changed', async () => {
    const desk = await mount([row({ id: 'a' })]);
    await screen.findByRole('listbox');
    const event: DeskEvent = { kind: 'row', revision: 2, row: row({ id: 'new', state: 'failed', userId: null, reasonCode: 'bad_signature', updatedAtMs: T0 + 1 }) };
    await emit('desk://changed', event);
    await waitFor(() => expect(screen.getAllByRole('option')).toHaveLength(2));
    const first = screen.getAllByRole('option')[0]!;
    expect(first).toHaveAttribute('data-key', 'new');
    expect(within(first).getByRole('img', { name: 'Verification failed' })).toBeInTheDocument();
    // An event the snapshot already reflected is not applied again.
    await emit('desk://changed', { kind: 'row', revision: 1, row: row({ id: 'old' }) } satisfies DeskEvent);
    await new Promise((r) => setTimeout(r, 50));
    expect(screen.getAllByRole('option')).toHaveLength(2);
    desk.stop();
  });

  it('draws every padlock stale, with its time, while the feed is not receiving, and current again once live', async () => {
    const desk = await mount([row({ id: 'a' }), row({ id: 'b', state: 'lapsed' })]);
    await screen.findByRole('listbox');
    await emit('desk://focus', { conversationId: 'a' });
    await waitFor(() => expect(screen.getByTestId('detail-state')).toHaveTextContent('Secured'));
    const padlock = () => within(screen.getAllByRole('option')[0]!).getByRole('img');
    expect(padlock()).not.toHaveAttribute('data-stale');
    expect(screen.queryByTestId('detail-stale')).toBeNull();

    const revoked: DeskEvent = {
      kind: 'status',
      status: { feed: { state: 'disconnected', reason: 'the gateway no longer accepts this credential (revoked)' }, demo: false, lastSeq: 3 },
    };
    const before = Date.now();
    await emit('desk://changed', revoked);
    await waitFor(() => expect(padlock()).toHaveAttribute('data-stale', 'true'));
    const after = Date.now();
    // The time the feed stopped, as the window saw it (between the two reads of the clock).
    const asOf = within(screen.getAllByRole('option')[0]!).getByTestId('row-state').textContent ?? '';
    expect([clockTime(before, 'en'), clockTime(after, 'en')].map((h) => `Secured · as of ${h}`)).toContain(asOf);
    expect(padlock()).toHaveAccessibleName('Secured, stale: the feed is not live');
    expect(padlock().querySelector('rect[fill="currentColor"]')).toBeNull(); // outlined, not solid
    expect(within(screen.getAllByRole('option')[1]!).getByTestId('row-state')).toHaveTextContent(/^Session lapsed · as of/);
    expect(screen.getByTestId('detail-stale')).toHaveTextContent('as of');
    expect(within(screen.getByTestId('detail')).getByRole('img', { name: 'Secured, stale: the feed is not live' })).toHaveAttribute('data-stale', 'true');

    await emit('desk://changed', { kind: 'status', status: snapshot([]).status } satisfies DeskEvent);
    await waitFor(() => expect(padlock()).not.toHaveAttribute('data-stale'));
    expect(within(screen.getAllByRole('option')[0]!).getByTestId('row-state')).toHaveTextContent(/^Secured$/);
    expect(screen.queryByTestId('detail-stale')).toBeNull();
    desk.stop();
  });

  it('opens the conversation a clicked notification names', async () => {
    const desk = await mount(manyRows(100));
    await screen.findByRole('listbox');
    await emit('desk://focus', { conversationId: 'c-42' });
    await waitFor(() => expect(screen.getByTestId('detail')).toHaveAttribute('data-id', 'c-42'));
    expect(document.getElementById('conv-42')).toHaveAttribute('aria-selected', 'true');
    desk.stop();
  });

  it('drops the selection of a conversation the new source does not have after a reset (issue 13)', async () => {
    const served = manyRows(10);
    const desk = await mount(served);
    await screen.findByRole('listbox');
    await emit('desk://focus', { conversationId: 'c-4' });
    await waitFor(() => expect(screen.getByTestId('detail')).toHaveAttribute('data-id', 'c-4'));
    // Settings now name a real gateway: the desk restarts on it and says `reset`.
    served.splice(0, served.length, row({ id: 'real-1' }));
    await emit('desk://changed', { kind: 'reset', revision: 7 } satisfies DeskEvent);
    await waitFor(() => expect(screen.getAllByRole('option')).toHaveLength(1));
    await tick();
    expect(screen.queryByTestId('detail')).toBeNull();
    expect(screen.queryByText(/could not be loaded/)).toBeNull();
    // A conversation still in the list stays selected across a reset.
    await emit('desk://focus', { conversationId: 'real-1' });
    await waitFor(() => expect(screen.getByTestId('detail')).toHaveAttribute('data-id', 'real-1'));
    await emit('desk://changed', { kind: 'reset', revision: 8 } satisfies DeskEvent);
    await new Promise((r) => setTimeout(r, 50));
    expect(screen.getByTestId('detail')).toHaveAttribute('data-id', 'real-1');
    desk.stop();
  });

  const keys = () => screen.getAllByRole('option').map((o) => o.getAttribute('data-key'));
  const rowEvents = (revision: number, ...rows: ConversationRow[]) =>
    Promise.all(rows.map((r, i) => emit('desk://changed', { kind: 'row', revision: revision + i, row: r } satisfies DeskEvent)));

  it('holds the order under the pointer: held rows change in place, new ones wait behind an announced bar (issue 13)', async () => {
    const desk = await mount([row({ id: 'a', updatedAtMs: T0 }), row({ id: 'b', updatedAtMs: T0 - 1 }), row({ id: 'c', updatedAtMs: T0 - 2 })]);
    const list = await screen.findByRole('listbox');
    const section = list.closest('section')!;
    const news = screen.getByTestId('list-news');
    expect(news).toHaveAttribute('aria-live', 'polite');
    expect(news).toBeEmptyDOMElement();
    await fireEvent.pointerEnter(section);
    await rowEvents(2,
      row({ id: 'n', state: 'failed', userId: null, reasonCode: 'bad_signature', updatedAtMs: T0 + 1 }),
      row({ id: 'c', state: 'failed', reasonCode: 'bad_signature', updatedAtMs: T0 + 2 }));
    await waitFor(() => expect(within(news).getByTestId('held-text')).toHaveTextContent('1 new conversation (1 with an alarm)'));
    // The row under the pointer is the same conversation at the same place; c's padlock turned
    // red where it is, at once.
    expect(keys()).toEqual(['a', 'b', 'c']);
    expect(document.getElementById('conv-2')).toHaveAttribute('data-key', 'c');
    expect(within(document.getElementById('conv-2')!).getByRole('img', { name: 'Verification failed' })).toBeInTheDocument();
    expect(screen.getByTestId('conversation-count')).toHaveTextContent('4 conversations');
    expect(within(news).getByRole('button', { name: 'Show' })).toBeInTheDocument();
    // The pointer leaves: the live order, the bar gone.
    await fireEvent.pointerLeave(section);
    await waitFor(() => expect(keys()).toEqual(['c', 'n', 'a', 'b']));
    expect(news).toBeEmptyDOMElement();
    desk.stop();
  });

  it('holds the order while the keyboard is in the list, so Enter opens the row the arrows reached (issue 13)', async () => {
    const desk = await mount(manyRows(50));
    const list = await screen.findByRole('listbox');
    list.focus();
    await tick();
    await fireEvent.keyDown(list, { key: 'ArrowDown' });
    await fireEvent.keyDown(list, { key: 'ArrowDown' });
    expect(list).toHaveAttribute('aria-activedescendant', 'conv-2');
    await rowEvents(60, ...[1, 2, 3].map((i) => row({ id: `new-${i}`, updatedAtMs: T0 + i })));
    await waitFor(() => expect(screen.getByTestId('held-text')).toHaveTextContent('3 new conversations'));
    expect(document.getElementById('conv-2')).toHaveAttribute('data-key', 'c-2');
    expect(list).toHaveAttribute('aria-activedescendant', 'conv-2');
    // ↓ moves by what is on screen: to c-3, not to a row that was pushed in.
    await fireEvent.keyDown(list, { key: 'ArrowDown' });
    await fireEvent.keyDown(list, { key: 'Enter' });
    await waitFor(() => expect(screen.getByTestId('detail')).toHaveAttribute('data-id', 'c-3'));
    // The bar's button draws them, at the top, and gives the focus back to the list.
    await fireEvent.click(screen.getByRole('button', { name: 'Show' }));
    await waitFor(() => expect(keys().slice(0, 4)).toEqual(['new-3', 'new-2', 'new-1', 'c-0']));
    await waitFor(() => expect(document.activeElement).toBe(list));
    expect(screen.getByTestId('list-news')).toBeEmptyDOMElement();
    // Still in the list: the next one waits too; leaving the list draws it.
    await rowEvents(70, row({ id: 'new-4', updatedAtMs: T0 + 4 }));
    await waitFor(() => expect(screen.getByTestId('held-text')).toHaveTextContent('1 new conversation'));
    expect(keys()[0]).toBe('new-3');
    list.blur();
    await waitFor(() => expect(keys()[0]).toBe('new-4'));
    expect(screen.getByTestId('list-news')).toBeEmptyDOMElement();
    desk.stop();
  });

  it('keeps the selected conversation on screen and the rows on screen in place when the list re-sorts (issue 13)', async () => {
    const desk = await mount(manyRows(100));
    const list = await screen.findByRole('listbox');
    await emit('desk://focus', { conversationId: 'c-5' });
    await waitFor(() => expect(screen.getByTestId('detail')).toHaveAttribute('data-id', 'c-5'));
    await waitFor(() => expect(document.activeElement).toBe(list));
    list.blur();
    const rowPx = 4.75 * 16; // jsdom: no layout, the row's height in rem
    list.scrollTop = 3 * rowPx;
    await fireEvent.scroll(list);
    // c-5 (on screen) is updated and goes to the top of the live order: the list follows it.
    await rowEvents(2, row({ ...manyRows(6)[5]!, state: 'lapsed', updatedAtMs: T0 + 10 }));
    await waitFor(() => expect(keys()[0]).toBe('c-5'));
    expect(list.scrollTop).toBe(0);
    expect(document.getElementById('conv-0')).toHaveAttribute('aria-selected', 'true');
    // Scrolled down, twenty new conversations arrive above: the rows on screen stay put.
    list.scrollTop = 3 * rowPx;
    await fireEvent.scroll(list);
    expect(document.getElementById('conv-3')).toHaveAttribute('data-key', 'c-2');
    await rowEvents(3, ...Array.from({ length: 20 }, (_, i) => row({ id: `new-${i}`, updatedAtMs: T0 + 20 + i })));
    await waitFor(() => expect(screen.getByTestId('conversation-count')).toHaveTextContent('120 conversations'));
    expect(list.scrollTop).toBe(23 * rowPx);
    expect(document.getElementById('conv-23')).toHaveAttribute('data-key', 'c-2');
    desk.stop();
  });

  it('holds the first rows to arrive under a pointer that was over the empty list', async () => {
    const desk = await mount([]);
    await screen.findByText('No conversations yet');
    await fireEvent.pointerEnter(screen.getByTestId('list-news').closest('section')!);
    await rowEvents(2, row({ id: 'first', updatedAtMs: T0 }));
    await waitFor(() => expect(keys()).toEqual(['first']));
    await rowEvents(3, row({ id: 'second', updatedAtMs: T0 + 1 }));
    await waitFor(() => expect(screen.getByTestId('held-text')).toHaveTextContent('1 new conversation'));
    expect(keys()).toEqual(['first']);
    desk.stop();
  });

  it('draws a conversation held back behind the bar when a notification names it', async () => {
    const desk = await mount(manyRows(10));
    const list = await screen.findByRole('listbox');
    await fireEvent.pointerEnter(list.closest('section')!);
    await rowEvents(2, row({ id: 'late', updatedAtMs: T0 + 1 }));
    await waitFor(() => expect(screen.getByTestId('held-text')).toHaveTextContent('1 new conversation'));
    expect(keys()).not.toContain('late');
    await emit('desk://focus', { conversationId: 'late' });
    await waitFor(() => expect(screen.getByTestId('detail')).toHaveAttribute('data-id', 'late'));
    await waitFor(() => expect(document.querySelector('[role="option"][data-key="late"]')).toHaveAttribute('aria-selected', 'true'));
    expect(screen.getByTestId('list-news')).toBeEmptyDOMElement();
    desk.stop();
  });

  it('shows the honest not-connected state when the shell has no desk commands', async () => {
    mockIPC(() => {
      throw 'Command list_conversations not found';
    });
    const desk = new DeskStore();
    render(ConversationsPane, { props: { feed: { state: 'disconnected', reason: 'no feed client' }, desk } });
    await desk.start();
    expect(desk.list).toBeNull();
    expect(desk.unavailable).toContain('not found');
    expect(screen.queryByRole('listbox')).toBeNull();
    expect(screen.getByText('Not connected')).toBeInTheDocument();
    expect(screen.getByText('No feed is connected, so no conversations can arrive.')).toBeInTheDocument();
  });
});
