// Issue 13 §3: alerts speak the advisor's language, weighted by risk; technical evidence (codes,
// hashes, sequence numbers, raw Unix times) only behind a "Technical details" disclosure.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import Alerts from './Alerts.svelte';
import Timeline from './Timeline.svelte';
import { setLanguage } from '../../i18n/index.svelte';
import type { DeskAlert, EvidenceItem } from '../../ipc';
import { dateTime } from './present';
import { T0 } from './fixtures';

const AT_SECS = Math.floor(T0 / 1000);
const SHA = 'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c';

/** An alert as the desk sends it (lockdesk-api desk_map::alert: userId, visitorId, then the
 * conversation core's fields and the presentation's). */
let n = 0;
function alert(kind: DeskAlert['kind'], extra: EvidenceItem[]): DeskAlert {
  return {
    id: `a-${++n}`,
    conversationId: 'c-1',
    kind,
    atMs: T0,
    evidence: [
      { label: 'userId', value: 'user-42' },
      { label: 'visitorId', value: 'v-1' },
      { label: 'alert', value: kind },
      ...extra,
      { label: 'at', value: String(AT_SECS) },
      { label: 'tokenSha256', value: SHA },
      { label: 'presentationSeq', value: '17' },
    ],
  };
}
const forged = alert('verification_failed', [{ label: 'reason', value: 'bad_signature' }]);
const late = alert('verification_failed', [{ label: 'reason', value: 'expired' }]);
const lapsed = alert('session_lapsed', [{ label: 'user_id', value: 'user-42' }]);

/** What the card shows without opening its disclosure. */
function visibleText(el: HTMLElement): string {
  const copy = el.cloneNode(true) as HTMLElement;
  copy.querySelectorAll('details').forEach((d) => d.remove());
  return copy.textContent ?? '';
}

afterEach(() => setLanguage('en'));

describe('alert cards', () => {
  it('name no imitator when two look-alikes cannot be told apart, and one when they can', () => {
    const tie = alert('lookalike_user_id', [
      { label: 'imitator', value: 'cust-48151623' },
      { label: 'imitates', value: 'cust-4815l623' },
      { label: 'mixedScript', value: 'false' },
      { label: 'ambiguous', value: 'true' },
    ]);
    const { unmount } = render(Alerts, { props: { alerts: [tie] } });
    const summary = screen.getByTestId('alert-summary');
    expect(summary).toHaveTextContent('cust-48151623 and cust-4815l623 look alike; either may be the genuine one.');
    expect(summary).not.toHaveTextContent('looks like');
    unmount();
    const directed = alert('lookalike_user_id', [
      { label: 'imitator', value: 'сust-48151623' },
      { label: 'imitates', value: 'cust-48151623' },
      { label: 'mixedScript', value: 'true' },
    ]);
    render(Alerts, { props: { alerts: [directed] } });
    expect(screen.getByTestId('alert-summary')).toHaveTextContent('сust-48151623 looks like cust-48151623, an identity this desk already knows.');
  });

  it('word the evidence and keep codes, hashes, sequence numbers and raw times behind the disclosure', () => {
    render(Alerts, { props: { alerts: [forged] } });
    const card = screen.getByTestId('alert');
    expect(screen.getByTestId('alert-headline')).toHaveTextContent('Verification failed: bad signature (forged or altered)');
    const shown = visibleText(card);
    for (const raw of ['verification_failed', 'bad_signature', String(AT_SECS), 'tokenSha256', SHA, 'presentationSeq', 'visitorId']) {
      expect(shown, raw).not.toContain(raw);
    }
    const facts = within(screen.getByTestId('alert-evidence'));
    expect(facts.getByText('Person (userId)')).toBeInTheDocument();
    expect(facts.getByText(dateTime(AT_SECS * 1000, 'en'))).toBeInTheDocument();
    const technical = screen.getByTestId('alert-technical');
    expect(technical.tagName).toBe('DETAILS');
    expect(technical).not.toHaveAttribute('open');
    expect(technical).toHaveTextContent('Technical details');
    expect(technical).toHaveTextContent(SHA);
    expect(technical).toHaveTextContent('presentationSeq17');
  });

  it('show userId and user_id of the same person once', () => {
    render(Alerts, { props: { alerts: [lapsed] } });
    expect(within(screen.getByTestId('alert-evidence')).getAllByText('user-42')).toHaveLength(1);
    expect(visibleText(screen.getByTestId('alert'))).not.toContain('user_id');
  });

  it('weigh by risk: a forged token is an alarm, a late token or a lapsed session is routine', () => {
    render(Alerts, { props: { alerts: [forged, late, lapsed, alert('shared_device', [])] } });
    const cards = screen.getAllByTestId('alert');
    expect(cards.map((c) => c.dataset.severity)).toEqual(['alarm', 'notice', 'notice', 'warning']);
    expect(cards.map((c) => within(c).getByTestId('alert-severity').textContent)).toEqual(['Alarm', 'Routine', 'Routine', 'Check']);
    // Each severity's mark is drawn (an SVG of its own shape), never a font glyph that may be missing.
    expect(cards.map((c) => c.querySelector('svg.alert-mark')?.getAttribute('data-mark'))).toEqual(['alarm', 'notice', 'notice', 'warning']);
    expect(cards.map((c) => c.querySelector('.alert-mark')?.textContent)).toEqual(['', '', '', '']);
    expect(cards[1]).toHaveClass('severity-notice');
    expect(cards[1]).not.toHaveClass('severity-alarm');
  });

  it('a verification failure with no reason, or one this build does not know, stays an alarm', () => {
    render(Alerts, { props: { alerts: [alert('verification_failed', []), alert('identity_switched', [{ label: 'reason', value: 'expired' }])] } });
    expect(screen.getAllByTestId('alert').map((c) => c.dataset.severity)).toEqual(['alarm', 'alarm']);
  });

  it('speak French', () => {
    setLanguage('fr');
    render(Alerts, {
      props: {
        alerts: [
          alert('identity_switched', [
            { label: 'verified_user_id', value: 'user-42' },
            { label: 'other_user_id', value: 'user-99' },
            { label: 'source', value: 'platform' },
          ]),
        ],
      },
    });
    const shown = visibleText(screen.getByTestId('alert'));
    expect(shown).toContain('Alarme');
    expect(shown).toContain('Vérifié dans cette conversation');
    expect(shown).toContain('Désigné à la place');
    expect(shown).toContain('Désigné parle profil de la plateforme');
    expect(shown).not.toMatch(/verified_user_id|other_user_id|identity_switched|platform\b/);
    expect(screen.getByTestId('alert-technical')).toHaveTextContent('Détails techniques');
  });
});

describe('timeline reasons', () => {
  it('say the reason once in words; its code is behind the disclosure', () => {
    render(Timeline, {
      props: {
        timeline: [{ atMs: T0, verdict: 'rejected', reasonCode: 'expired', reasonText: 'exp 1763802000 < now', issuer: null, expiresAtMs: null, userId: null, beforeLogin: false }],
      },
    });
    const reason = screen.getByTestId('presentation-reason');
    expect(visibleText(reason).replace(/\s+/g, ' ').trim()).toBe('Reason: expired');
    const technical = within(reason).getByTestId('presentation-technical');
    expect(technical).not.toHaveAttribute('open');
    expect(technical).toHaveTextContent('expired');
    expect(technical).toHaveTextContent('exp 1763802000 < now');
  });
});
