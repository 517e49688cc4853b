// The live conversation list: subscribes to `desk://changed`, then asks for the snapshot, and
// applies events in one batch per animation frame. When the shell has no desk commands, the
// list stays `null` and the UI shows its honest "not connected" state.
import { tick } from 'svelte';
import {
  isIpcError,
  listConversations,
  onDeskEvent,
  onFocusConversation,
  type DeskAlert,
  type DeskEvent,
  type UnlistenFn,
} from '../../ipc';
import { applyEvents, fromSnapshot, type ListState } from './list';
import { installPerf, measureFirstRender, type LockdeskPerf } from './perf';
import { warmUp } from './warmup';

const nextFrame = (f: () => void): void => {
  if (typeof requestAnimationFrame === 'function') requestAnimationFrame(() => f());
  else setTimeout(f, 16);
};

export class DeskStore {
  /** The list, once `list_conversations` answered; `null` before, or when it cannot. */
  list = $state.raw<ListState | null>(null);
  /** Counts the list's answers (each reload after a `reset`): a selection no longer in the new
   *  list (the previous source's conversation, after a switch of gateway) is dropped. */
  reloads = $state(0);
  /** Why the list is unavailable (the command failed), for the record; not shown as data. */
  unavailable = $state<string | null>(null);
  /** Alerts that arrived live, newest last (the detail pane refreshes on them). */
  alerts = $state.raw<DeskAlert[]>([]);
  /** A conversation to bring on screen (a clicked notification); `n` makes repeats distinct. */
  focus = $state<{ id: string; n: number } | null>(null);
  /** The list's scrolling element, for the performance hooks. */
  viewport: HTMLElement | null = null;

  readonly perf: LockdeskPerf = installPerf(() => this.viewport);
  #pending: DeskEvent[] | null = null;
  #buffer: DeskEvent[] | null = [];
  #unlisten: UnlistenFn[] = [];
  #firstRender = true;
  #warm = false;

  /** Starts listening and loads the list; resolves when the first answer is in. */
  async start(): Promise<void> {
    try {
      this.#unlisten.push(await onDeskEvent((e) => this.#receive(e)));
      this.#unlisten.push(
        await onFocusConversation((id) => (this.focus = { id, n: (this.focus?.n ?? 0) + 1 })),
      );
    } catch {
      // No event system (no shell): the snapshot call below fails the same way and says so.
    }
    await this.reload();
  }

  stop(): void {
    for (const u of this.#unlisten) u();
    this.#unlisten = [];
  }

  async reload(): Promise<void> {
    this.#buffer ??= [];
    try {
      const answer = listConversations();
      if (!this.#warm) {
        // The first time, the wait for the answer pays the first row's one-off costs (a turn of
        // the event loop first, so the call is on its way).
        this.#warm = true;
        answer.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        await new Promise<void>((r) =>
          setTimeout(() => {
            try {
              warmUp();
            } catch {
              // Only a speed-up: the list renders without it.
            } finally {
              r();
            }
          }, 0),
        );
      }
      const snapshot = await answer;
      let state = fromSnapshot(snapshot);
      const early = this.#buffer ?? [];
      this.#buffer = null;
      if (early.length) state = applyEvents(state, early).state;
      const measure = this.#firstRender && state.rows.length > 0 ? measureFirstRender(this.perf, state.rows.length) : null;
      this.list = state;
      this.reloads += 1;
      this.unavailable = null;
      if (measure) {
        this.#firstRender = false;
        await tick();
        performance.mark('lockdesk:list-flushed');
        measure.done();
      }
    } catch (e) {
      this.#buffer = null;
      this.unavailable = isIpcError(e) ? e.message : String(e);
    }
  }

  #receive(e: DeskEvent): void {
    if (this.#buffer) {
      this.#buffer.push(e);
      return;
    }
    if (this.#pending) {
      this.#pending.push(e);
      return;
    }
    this.#pending = [e];
    nextFrame(() => this.#flush());
  }

  #flush(): void {
    const events = this.#pending ?? [];
    this.#pending = null;
    if (!this.list) return;
    const { state, alerts } = applyEvents(this.list, events);
    this.list = state;
    if (alerts.length) this.alerts = [...this.alerts.slice(-50), ...alerts];
    if (state.stale) void this.reload();
  }
}
