// WebKit pays some costs once per process, the first time a row is drawn: building the ICU
// formatters for relative times and counts (10–20 ms in WebKitGTK), instantiating the row's
// fonts at their sizes and weights (monospace, small, bold, italic: 10–15 ms each) and running
// the row's code for the first time. Paid when the first 10,000 rows arrive, they made up about
// half of the list's first render. `warmUp` pays them earlier, while the list's IPC call is in
// flight (the shell is busy reading the store then, the WebView is idle): it lays out one row of
// each kind in a hidden, off-screen container and removes it. The sample rows are never shown
// nor announced (aria-hidden, visibility hidden, off screen) and hold no real data.
import { mount, unmount } from 'svelte';
import type { ConversationRow as Row } from '../../ipc';
import ConversationRow from './ConversationRow.svelte';

/** One sample of each text style a row can use: verified (monospace userId, name, "verified
 * ago", a look-alike badge), alarm (badge, reason, alert count, a hazard's ⟨U+200B⟩ chip) and
 * anonymous (italic placeholder). */
function samples(now: number): Row[] {
  const base: Row = {
    id: 'warm-up',
    visitorId: 'warm-up',
    state: 'secured',
    closedFrom: null,
    userId: 'user-0',
    displayName: 'Sample',
    channel: 'CHAT',
    source: 'web',
    device: 'Browser',
    domain: 'example.invalid',
    lastVerifiedAtMs: now,
    reasonCode: null,
    alertCount: 0,
    updatedAtMs: now,
    lookAlike: null,
  };
  return [
    { ...base, lookAlike: { imitates: 'user-1', mixedScript: true } },
    { ...base, state: 'failed', reasonCode: 'bad_signature', alertCount: 2, displayName: 'Sample\u200B' },
    { ...base, state: 'anonymous', userId: null, displayName: null, lastVerifiedAtMs: null },
  ];
}

/** Pays the first row's one-off costs now (the caller calls it once). */
export function warmUp(): void {
  if (typeof document === 'undefined') return;
  const now = Date.now();
  const box = document.createElement('div');
  box.className = 'warmup';
  box.setAttribute('aria-hidden', 'true');
  document.body.appendChild(box);
  const rows = samples(now).map((row) => mount(ConversationRow, { target: box, props: { row, now } }));
  void box.offsetHeight; // the layout that loads the fonts
  for (const r of rows) void unmount(r);
  box.remove();
}
