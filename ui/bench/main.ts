// Benchmark harness (never part of the app's build): the real App, with Tauri's IPC replaced by
// @tauri-apps/api's mock serving `?rows=N` generated conversations, so the list's first render
// and scrolling can be measured in a real WebKitGTK through window.__lockdeskPerf.
import { mount } from 'svelte';
import { mockIPC } from '@tauri-apps/api/mocks';
import App from '../src/App.svelte';
import { identity, manyRows } from '../src/features/conversations/fixtures';
import type { ConversationDetail, DeskSnapshot, History } from '../src/ipc';
import '../src/styles.css';

const n = Number(new URLSearchParams(location.search).get('rows') ?? '10000');
const rows = manyRows(n).map((r, i) => ({ ...r, updatedAtMs: Date.now() - i * 1000, lastVerifiedAtMs: r.lastVerifiedAtMs === null ? null : Date.now() - i * 7000 }));
mockIPC((cmd, args) => {
  switch (cmd) {
    case 'feed_status':
      return { state: 'connected', url: 'ws://127.0.0.1:1/v1/feed' };
    case 'list_conversations': {
      const snap: DeskSnapshot = {
        status: { feed: { state: 'connected', url: 'ws://127.0.0.1:1/v1/feed' }, demo: true, lastSeq: n },
        conversations: rows,
        revision: 1,
        integrity: null,
      };
      // Through JSON, as the real IPC delivers it.
      return JSON.parse(JSON.stringify(snap)) as DeskSnapshot;
    }
    case 'get_conversation': {
      const r = rows.find((x) => x.id === (args as { id: string }).id);
      if (!r) throw { code: 'internal', message: 'no such conversation' };
      const detail: ConversationDetail = {
        row: r,
        identity: r.userId ? identity({ userId: r.userId }) : null,
        timeline: [
          { atMs: r.updatedAtMs - 90_000, verdict: 'rejected', reasonCode: 'bad_signature', reasonText: 'the JWS signature does not verify with any key of https://brand.example', issuer: 'https://brand.example', expiresAtMs: null, userId: null, beforeLogin: true },
          { atMs: r.updatedAtMs - 60_000, verdict: 'verified', reasonCode: null, reasonText: null, issuer: 'https://brand.example', expiresAtMs: r.updatedAtMs, userId: r.userId, beforeLogin: false },
        ],
        alerts: [{ id: 'a1', conversationId: r.id, kind: 'platform_mismatch', atMs: r.updatedAtMs, evidence: [{ label: 'verified userId', value: r.userId ?? '' }, { label: 'platform externalUserId', value: 'user-99' }] }],
      };
      return detail;
    }
    case 'get_history': {
      const userId = (args as { userId: string }).userId;
      const h: History = { userId, groups: [
        { visitorId: 'v-a', device: 'Firefox on Linux', channel: 'CHAT', source: 'web', domain: 'shop.example', conversations: [
          { id: 'c-3', openedAtMs: Date.now() - 3_600_000, closedAtMs: null, state: 'secured', securedPart: true, beforeLoginPart: true },
        ] },
        { visitorId: 'v-b', device: 'Lockshop app on Android', channel: 'MOBILE_APP', source: 'app', domain: null, conversations: [
          { id: 'c-900', openedAtMs: Date.now() - 86_400_000, closedAtMs: Date.now() - 86_000_000, state: 'closed', securedPart: true, beforeLoginPart: false },
        ] },
      ] };
      return h;
    }
    default:
      throw { code: 'internal', message: `benchmark: no ${cmd}` };
  }
});
const target = document.getElementById('app');
if (target) mount(App, { target });
