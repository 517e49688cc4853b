// Reasons are worded in the advisor's language, never shown as codes: every reason the desk can
// send (ReasonCode, generated from Rust) has a label in English and French, mismatch reasons
// included, and a code this build does not know gets a generic label.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import ConversationRow from './ConversationRow.svelte';
import DetailPane from './DetailPane.svelte';
import Timeline from './Timeline.svelte';
import { setLanguage, t } from '../../i18n/index.svelte';
import type { ConversationDetail, ConversationRow as Row, History, ReasonCode } from '../../ipc';
import { REASON_CODES, reasonCode, reasonLabel } from './present';
import { identity, row, T0 } from './fixtures';

afterEach(() => {
  setLanguage('en');
  clearMocks();
});

/** The desk behind the detail pane, through Tauri's IPC mock: it answers with `detail`. */
function serveDetail(detail: ConversationDetail): void {
  mockIPC((cmd, args) => {
    switch (cmd) {
      case 'get_conversation':
        return detail;
      case 'get_history': {
        const h: History = { userId: (args as { userId: string }).userId, groups: [] };
        return h;
      }
      default:
        throw `unknown command ${cmd}`;
    }
  });
}

const MISMATCH: Record<'en' | 'fr', Record<'token_user_id_differs' | 'platform_user_id_differs', string>> = {
  en: {
    token_user_id_differs: 'a valid token proved another userId',
    platform_user_id_differs: 'iAdvize’s profile names another userId',
  },
  fr: {
    token_user_id_differs: 'un jeton valide a prouvé un autre userId',
    platform_user_id_differs: 'le profil iAdvize désigne un autre userId',
  },
};
const GENERIC = { en: 'a reason this version does not know', fr: 'une raison que cette version ne connaît pas' };

describe('reason labels', () => {
  it('cover the verifier reasons, the mismatch reasons and unknown', () => {
    expect(REASON_CODES).toHaveLength(19);
    for (const code of ['bad_signature', 'token_user_id_differs', 'platform_user_id_differs', 'unknown']) {
      expect(REASON_CODES).toContain(code);
    }
  });

  for (const lang of ['en', 'fr'] as const) {
    it(`word every reason in ${lang}, never as its code`, () => {
      setLanguage(lang);
      const labels = new Set<string>();
      for (const code of REASON_CODES) {
        const label = reasonLabel(code, t);
        // ('expired' is its own English word; no label is a snake_case code.)
        expect(label, code).not.toMatch(/_/);
        labels.add(label);
      }
      expect(labels.size, 'two reasons share a label').toBe(REASON_CODES.length);
    });

    it(`show a mismatch's reason in words on the row in ${lang}`, () => {
      setLanguage(lang);
      for (const code of ['token_user_id_differs', 'platform_user_id_differs'] as const) {
        const { unmount } = render(ConversationRow, {
          props: { row: row({ state: 'mismatch', userId: 'user-42', reasonCode: code }), now: T0 },
        });
        const shown = screen.getByTestId('row-reason');
        expect(shown).toHaveTextContent(MISMATCH[lang][code]);
        expect(shown.textContent).not.toContain(code);
        unmount();
      }
    });

    // Issue 14's visible defect: the detail pane showed a mismatch's reason as its raw code.
    it(`show a mismatch's reason in words in the detail pane in ${lang}`, async () => {
      setLanguage(lang);
      const cases: [string, Partial<Row>, 'token_user_id_differs' | 'platform_user_id_differs'][] = [
        ['open', { state: 'mismatch' }, 'token_user_id_differs'],
        // A platform mismatch is found by the backfill, after the close.
        ['closed', { state: 'closed', closedFrom: 'mismatch' }, 'platform_user_id_differs'],
      ];
      for (const [name, over, code] of cases) {
        const r = row({ id: `c-${name}`, userId: 'user-42', reasonCode: code, ...over });
        serveDetail({ row: r, identity: identity(), timeline: [], alerts: [] });
        const { container, unmount } = render(DetailPane, { props: { id: r.id, row: r } });
        await waitFor(() => expect(screen.getByTestId('identity-user-id')).toBeInTheDocument());
        const shown = screen.getByTestId('detail-reason');
        expect(shown, name).toHaveTextContent(MISMATCH[lang][code]);
        expect(container.textContent, name).not.toContain(code);
        unmount();
        clearMocks();
      }
    });

    it(`give a code this build does not know the generic label in ${lang}`, () => {
      setLanguage(lang);
      for (const code of ['unknown', 'signature_revoked', '__proto__', 'constructor']) {
        expect(reasonLabel(code as ReasonCode, t)).toBe(GENERIC[lang]);
        expect(reasonCode(code as ReasonCode)).toBeNull();
      }
      const { container, unmount } = render(ConversationRow, {
        props: { row: row({ state: 'failed', userId: null, reasonCode: 'signature_revoked' as ReasonCode }), now: T0 },
      });
      expect(screen.getByTestId('row-reason')).toHaveTextContent(GENERIC[lang]);
      expect(container.textContent).not.toContain('signature_revoked');
      unmount();
    });
  }

  it('keeps a known code beside its label in the timeline, and hides an unknown one', () => {
    const { container } = render(Timeline, {
      props: {
        timeline: [
          { atMs: T0, verdict: 'rejected', reasonCode: 'expired', reasonText: null, issuer: null, expiresAtMs: null, userId: null, beforeLogin: false },
          { atMs: T0, verdict: 'rejected', reasonCode: 'unknown', reasonText: null, issuer: null, expiresAtMs: null, userId: null, beforeLogin: false },
        ],
      },
    });
    const codes = [...container.querySelectorAll('.tl-reason code')].map((c) => c.textContent);
    expect(codes).toEqual(['expired']);
    expect(container.textContent).toContain(GENERIC.en);
  });
});
