// The desk's commands and events, as the UI uses them. The Rust types live in
// crates/lockdesk-api/src/desk.rs (generated into ./bindings.ts); src-tauri implements these.
//
// Commands (all async, errors as IpcError `{code, message}`):
//
//   list_conversations() -> DeskSnapshot
//     Rust: async fn list_conversations(state) -> Result<DeskSnapshot, IpcError>
//     Every conversation row (newest `updatedAtMs` first), the desk status (feed state, demo flag,
//     last applied seq) and the revision the snapshot reflects.
//
//   get_conversation({ id: string }) -> ConversationDetail
//     Rust: async fn get_conversation(state, id: String) -> Result<ConversationDetail, IpcError>
//     The row again, the identity card (null until a valid token), every presentation oldest
//     first, and the conversation's alerts oldest first. Unknown id: IpcError code `internal`
//     with a message such as "no conversation c-123".
//
//   get_history({ userId: string }) -> History
//     Rust: async fn get_history(state, user_id: String) -> Result<History, IpcError>
//     (Tauri maps the JS `userId` argument to the Rust `user_id` parameter.)
//     The verified person's conversations on every linked device, grouped by device and channel.
//
//   feed_status() -> FeedStatus            (exists; still used until list_conversations exists)
//
// Events (emitted to the main window):
//
//   "desk://changed"  payload DeskEvent
//     {kind: "row", revision, row} | {kind: "alert", revision, alert} |
//     {kind: "status", status} | {kind: "reset", revision}
//     Revisions increase by at least one per change. The UI listens first, then calls
//     list_conversations, and drops events whose revision is <= the snapshot's.
//     A burst is fine: the UI applies what arrived within one animation frame at once.
//
//   "desk://focus"    payload FocusConversation {conversationId}
//     A notification was clicked: the shell brings the window forward and emits this; the UI
//     selects and opens that conversation.
//
// When a command is missing (an older shell), the calls reject and the UI keeps showing the
// honest "not connected" state from feed_status: nothing is invented.
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { call } from './call';
import type {
  ConversationDetail,
  DeskEvent,
  DeskSnapshot,
  FocusConversation,
  History,
} from './bindings';

export const DESK_CHANGED = 'desk://changed';
export const DESK_FOCUS = 'desk://focus';

export const listConversations = (): Promise<DeskSnapshot> => call('list_conversations');
export const getConversation = (id: string): Promise<ConversationDetail> =>
  call('get_conversation', { id });
export const getHistory = (userId: string): Promise<History> => call('get_history', { userId });

/** Subscribes to live desk updates; resolves once the listener is registered. */
export function onDeskEvent(handler: (event: DeskEvent) => void): Promise<UnlistenFn> {
  return listen<DeskEvent>(DESK_CHANGED, (e) => handler(e.payload));
}

/** Subscribes to "open this conversation" requests (a clicked notification). */
export function onFocusConversation(handler: (conversationId: string) => void): Promise<UnlistenFn> {
  return listen<FocusConversation>(DESK_FOCUS, (e) => handler(e.payload.conversationId));
}

export type { UnlistenFn };
