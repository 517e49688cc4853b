// Test data builders (used by the component tests only).
import type { ConversationRow, IdentityCard } from '../../ipc';

export const T0 = Date.UTC(2026, 10, 22, 9, 0, 0);

export function row(over: Partial<ConversationRow> = {}): ConversationRow {
  return {
    id: 'c-1',
    visitorId: 'v-1',
    state: 'secured',
    closedFrom: null,
    userId: 'user-42',
    displayName: 'Alice Martin',
    channel: 'CHAT',
    source: 'web',
    device: 'Firefox on Linux',
    domain: 'shop.example',
    lastVerifiedAtMs: T0 - 5 * 60_000,
    reasonCode: null,
    alertCount: 0,
    updatedAtMs: T0,
    lookAlike: null,
    ...over,
  };
}

export function identity(over: Partial<IdentityCard> = {}): IdentityCard {
  return {
    userId: 'user-42',
    signedVisitorData: [
      { key: 'firstName', value: 'Alice' },
      { key: 'email', value: 'alice@example.com' },
    ],
    platformProfile: [
      { key: 'email', value: 'alice@example.com', differs: false },
      { key: 'externalUserId', value: 'user-99', differs: true },
    ],
    issuer: 'https://brand.example',
    keyThumbprint: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
    sessionLapsesAtMs: T0 + 30 * 60_000,
    lookAlike: null,
    ...over,
  };
}

/** `n` rows, newest first, with every state represented. */
export function manyRows(n: number): ConversationRow[] {
  const states = ['secured', 'anonymous', 'lapsed', 'failed', 'mismatch', 'unsupported', 'closed'] as const;
  return Array.from({ length: n }, (_, i) => {
    const state = states[i % states.length] ?? 'anonymous';
    return row({
      id: `c-${i}`,
      visitorId: `v-${i % 500}`,
      state,
      closedFrom: state === 'closed' ? 'secured' : null,
      userId: state === 'anonymous' || state === 'unsupported' ? null : `user-${i}`,
      reasonCode: state === 'failed' ? 'bad_signature' : null,
      updatedAtMs: T0 - i * 1000,
    });
  });
}
