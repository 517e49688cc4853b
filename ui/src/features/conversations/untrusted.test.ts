// Issue 12 §1 on screen: a brand-signed `cust-4815<U+200B>1623`, `cust-<U+202E>32615184` or
// `cust-48151623<U+2066><U+2069>` no longer renders like `cust-48151623`: every untrusted string is
// direction-isolated with its hazardous characters shown as markers; a look-alike userId
// (`сust-48151623`, Cyrillic с) carries a badge naming the identity it imitates.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen, waitFor, within } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import ConversationRow from './ConversationRow.svelte';
import IdentityCard from './IdentityCard.svelte';
import Alerts from './Alerts.svelte';
import Timeline from './Timeline.svelte';
import HistoryView from './HistoryView.svelte';
import Supervisor from '../supervisor/Supervisor.svelte';
import { setLanguage } from '../../i18n/index.svelte';
import type { DeskAlert, ReasonCode, SupervisorOverview } from '../../ipc';
import { identity, row, T0 } from './fixtures';

afterEach(() => {
  setLanguage('en');
  clearMocks();
});

const GENUINE = 'cust-48151623';
const FORGERIES: [string, string][] = [
  ['cust-4815\u200B1623', 'cust-4815⟨U+200B⟩1623'],
  ['cust-\u202E32615184', 'cust-⟨U+202E⟩32615184'],
  ['cust-48151623\u2066\u2069', 'cust-48151623⟨U+2066⟩⟨U+2069⟩'],
];
/** Characters that draw nothing or reorder text: none may reach the screen from outside. */
const HIDDEN = /[\p{Cc}\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;

/** The text of an element outside any marker chip, and whether it sits in a <bdi>. */
function isolatedText(e: Element): { text: string; isolated: boolean } {
  const bdi = e.tagName === 'BDI' ? e : e.querySelector('bdi');
  return { text: e.textContent ?? '', isolated: bdi !== null && bdi.textContent === e.textContent };
}

describe('the list row', () => {
  for (const [forged, shown] of FORGERIES) {
    it(`shows ${JSON.stringify(forged)} as ${shown}, never like ${GENUINE}`, () => {
      render(ConversationRow, { props: { row: row({ userId: forged }), now: T0 } });
      const user = screen.getByTestId('row-user-id');
      expect(isolatedText(user)).toEqual({ text: shown, isolated: true });
      expect(user.textContent).not.toMatch(HIDDEN);
      expect(within(user).getAllByRole('img').length).toBeGreaterThan(0);
    });
  }

  it('isolates and escapes the name, channel, device and domain too', () => {
    const { container } = render(ConversationRow, {
      props: {
        row: row({ displayName: 'Ali\u202Ece', channel: 'NEW\u200BCHANNEL', device: 'Fire\u2066fox', domain: 'shop.example\u200F' }),
        now: T0,
      },
    });
    expect(container.textContent).not.toMatch(HIDDEN);
    expect(isolatedText(container.querySelector('.conv-name')!)).toEqual({ text: 'Ali⟨U+202E⟩ce', isolated: true });
    const meta = container.querySelector('.conv-meta')!;
    expect(meta.textContent).toBe('NEW⟨U+200B⟩CHANNEL · Fire⟨U+2066⟩fox · shop.example⟨U+200F⟩');
    expect(meta.querySelectorAll('bdi')).toHaveLength(3);
    expect(meta.querySelectorAll('.hazard')).toHaveLength(3);
  });

  it('marks a look-alike userId with a badge naming the identity it imitates, in English and French', () => {
    const lookAlike = row({ id: 'c-fake', userId: '\u0441ust-48151623', lookAlike: { imitates: GENUINE, mixedScript: true } });
    const { unmount } = render(ConversationRow, { props: { row: lookAlike, now: T0 } });
    // The badge names the imitated identity; "Mixed scripts" is a tag beside the userId.
    expect(screen.getByTestId('look-alike')).toHaveTextContent(new RegExp(`^\\W*Look-alike of ${GENUINE}$`));
    expect(screen.getByTestId('mixed-script')).toHaveTextContent('Mixed scripts');
    expect(screen.getByTestId('row-user-id').nextElementSibling).toBe(screen.getByTestId('mixed-script'));
    expect(screen.getByTestId('conversation-row-body')).toHaveClass('lookalike');
    // The padlock's spoken name says it too.
    expect(screen.getByRole('img', { name: `Secured (Look-alike of ${GENUINE})` })).toBeInTheDocument();
    unmount();

    setLanguage('fr');
    render(ConversationRow, { props: { row: lookAlike, now: T0 } });
    expect(screen.getByTestId('look-alike')).toHaveTextContent(`Sosie de ${GENUINE}`);
    expect(screen.getByTestId('mixed-script')).toHaveTextContent('Écritures mélangées');
    expect(screen.getByTestId('look-alike')).toHaveAttribute('title', expect.stringContaining('ressemble à une autre identité'));
  });

  it('says "Mixed scripts" when no known identity is imitated, and nothing for an ordinary userId', () => {
    const { unmount } = render(ConversationRow, {
      props: { row: row({ userId: 'p\u0430ypal-1', lookAlike: { imitates: null, mixedScript: true } }), now: T0 },
    });
    expect(screen.getByTestId('look-alike')).toHaveTextContent(/^\W*Mixed scripts$/);
    expect(screen.queryByTestId('mixed-script')).toBeNull(); // said once
    unmount();
    render(ConversationRow, { props: { row: row({ userId: GENUINE, lookAlike: null }), now: T0 } });
    expect(screen.queryByTestId('look-alike')).toBeNull();
    expect(screen.queryByTestId('mixed-script')).toBeNull();
    expect(screen.getByTestId('conversation-row-body')).not.toHaveClass('lookalike');
    expect(screen.getByRole('img', { name: 'Secured' })).toBeInTheDocument();
  });
});

describe('the identity card', () => {
  it('marks a look-alike userId, names the imitated identity, and shows invisible characters in signed data', () => {
    const card = identity({
      userId: '\u0441ust-48151623',
      signedVisitorData: [
        { key: 'email', value: 'alice\u200B@example.com' },
        { key: 'x\u202Ekey', value: 'v' },
      ],
      platformProfile: [{ key: 'externalUserId', value: 'cust-4815\u200B1623', differs: true }],
      issuer: 'https://brand.example\u2066',
      lookAlike: { imitates: GENUINE, mixedScript: true },
    });
    const { container } = render(IdentityCard, { props: { identity: card, now: T0 } });
    const user = screen.getByTestId('identity-user-id');
    expect(user).toHaveClass('lookalike');
    // On the card, one badge says both.
    expect(within(user).getByTestId('look-alike')).toHaveTextContent(`Look-alike of ${GENUINE} · Mixed scripts`);
    const signed = screen.getAllByTestId('signed-field');
    expect(signed[0]).toHaveTextContent('alice⟨U+200B⟩@example.com');
    expect(within(signed[0]!).getByRole('img', { name: 'Invisible character U+200B' })).toBeInTheDocument();
    expect(signed[1]).toHaveTextContent('x⟨U+202E⟩key');
    expect(screen.getByTestId('platform-field')).toHaveTextContent('cust-4815⟨U+200B⟩1623');
    expect(screen.getByTestId('identity-issuer')).toHaveTextContent('https://brand.example⟨U+2066⟩');
    expect(container.textContent).not.toMatch(HIDDEN);
  });

  it('shows no badge for an ordinary userId', () => {
    render(IdentityCard, { props: { identity: identity({ lookAlike: null }), now: T0 } });
    expect(screen.queryByTestId('look-alike')).toBeNull();
    expect(screen.getByTestId('identity-user-id')).not.toHaveClass('lookalike');
  });
});

describe('the look-alike alert', () => {
  const alert = (evidence: { label: string; value: string }[]): DeskAlert => ({
    id: 'a-9',
    conversationId: 'c-fake',
    kind: 'lookalike_user_id',
    atMs: T0,
    evidence,
  });
  const evidence = [
    { label: 'imitates', value: GENUINE },
    { label: 'imitator', value: '\u0441ust-48151623' },
    { label: 'mixedScript', value: 'true' },
    { label: 'scripts', value: '["Cyrillic","Latin"]' },
  ];

  it('says in the advisor\'s language which id looks like which known identity', () => {
    const { unmount } = render(Alerts, { props: { alerts: [alert(evidence)] } });
    expect(screen.getByTestId('alert-summary')).toHaveTextContent(`\u0441ust-48151623 looks like ${GENUINE}, an identity this desk already knows.`);
    const list = within(screen.getByTestId('alert'));
    expect(list.getByText('Identity it imitates')).toBeInTheDocument();
    expect(list.getByText('Look-alike userId')).toBeInTheDocument();
    expect(list.getByText('Cyrillic, Latin')).toBeInTheDocument();
    unmount();

    setLanguage('fr');
    render(Alerts, { props: { alerts: [alert(evidence)] } });
    expect(screen.getByTestId('alert-summary')).toHaveTextContent(`\u0441ust-48151623 ressemble à ${GENUINE}, une identité déjà connue de ce poste.`);
    expect(within(screen.getByTestId('alert')).getByText('Identité imitée')).toBeInTheDocument();
    expect(within(screen.getByTestId('alert')).getByText('oui')).toBeInTheDocument();
  });

  it('says a mixed-script id with no known counterpart mixes scripts', () => {
    render(Alerts, {
      props: { alerts: [alert([{ label: 'imitates', value: '' }, { label: 'imitator', value: 'p\u0430ypal' }, { label: 'mixedScript', value: 'true' }])] },
    });
    expect(screen.getByTestId('alert-summary')).toHaveTextContent('p\u0430ypal mixes letters of several scripts.');
  });
});

describe('alerts, timeline and history', () => {
  it('isolate and escape evidence, issuers, reason details, devices and domains', () => {
    const alerts = render(Alerts, {
      props: {
        alerts: [
          {
            id: 'a-1',
            conversationId: 'c-1',
            kind: 'reused_user_id',
            atMs: T0,
            evidence: [
              { label: 'userId', value: 'cust-\u202E32615184' },
              { label: 'previous\u200Buser', value: 'x' },
            ],
          },
        ],
      },
    });
    expect(screen.getByTestId('alert')).toHaveTextContent('cust-⟨U+202E⟩32615184');
    expect(screen.getByTestId('alert')).toHaveTextContent('previous⟨U+200B⟩user');
    expect(alerts.container.querySelectorAll('dd bdi')).toHaveLength(2);
    expect(alerts.container.textContent).not.toMatch(HIDDEN);
    alerts.unmount();

    const timeline = render(Timeline, {
      props: {
        timeline: [
          // A code outside ReasonCode (an older or newer desk): its generic label, never the code.
          { atMs: T0, verdict: 'rejected', reasonCode: 'new\u200Bcode' as ReasonCode, reasonText: 'detail\u2067', issuer: 'iss\u202E', expiresAtMs: null, userId: null, beforeLogin: false },
          { atMs: T0, verdict: 'verified', reasonCode: null, reasonText: null, issuer: 'https://brand.example', expiresAtMs: null, userId: 'cust-4815\u200B1623', beforeLogin: false },
        ],
      },
    });
    const text = timeline.container.textContent ?? '';
    expect(text).not.toMatch(HIDDEN);
    for (const s of ['detail⟨U+2067⟩', 'iss⟨U+202E⟩', 'cust-4815⟨U+200B⟩1623', 'a reason this version does not know']) expect(text).toContain(s);
    expect(text).not.toContain('new⟨U+200B⟩code');
    expect(text).not.toContain('new\u200Bcode');
    timeline.unmount();

    const history = render(HistoryView, {
      props: {
        history: {
          userId: 'cust-4815\u200B1623',
          groups: [{ visitorId: 'v-1', device: 'Fire\u202Efox', channel: 'CHAT', source: 'web', domain: 'shop\u200B.example', conversations: [] }],
        },
      },
    });
    expect(history.container.textContent).not.toMatch(HIDDEN);
    expect(screen.getByTestId('history')).toHaveTextContent('cust-4815⟨U+200B⟩1623');
    const group = screen.getByTestId('history-group');
    expect(group).toHaveTextContent('Fire⟨U+202E⟩fox');
    expect(group).toHaveTextContent('shop⟨U+200B⟩.example');
    // The group's spoken name: the device isolated (FSI … PDI), its own controls made visible.
    expect(group.getAttribute('aria-label')).toBe('\u2068Fire⟨U+202E⟩fox\u2069 · \u2068Chat\u2069');
  });
});

describe('the supervisor table', () => {
  it('isolates and escapes ids, channels and userIds in cells and filter choices', async () => {
    const overview: SupervisorOverview = {
      total: 1,
      matched: 1,
      secured: 1,
      failed: 0,
      noData: 0,
      rows: [{ id: 'c-\u202E1', state: 'secured', closedFrom: null, reasonCode: null, operatorId: 7, channel: 'NEW\u200B', userId: 'cust-4815\u200B1623', openedAtMs: T0, closedAtMs: null, securedAtMs: T0, noData: false }],
      perDay: [],
      failuresByReason: [],
      perAdvisor: [],
      noAdvisor: null,
      choices: { states: ['secured'], reasons: ['odd\u202Ereason' as ReasonCode], operatorIds: [7], channels: ['NEW\u200B'] },
    };
    mockIPC((cmd) => {
      if (cmd === 'supervisor_overview') return overview;
      if (cmd === 'audit_status') return { ok: true, entries: 0, headSeq: null, headHash: null, brokenAt: null, problem: null, file: '/tmp/x', storeProblemCount: 0, storeProblems: [] };
      throw { code: 'internal', message: cmd };
    });
    render(Supervisor, { props: { refreshDelayMs: 10 } });
    const tr = await screen.findByTestId('sup-row');
    await waitFor(() => expect(tr).toHaveTextContent('cust-4815⟨U+200B⟩1623'));
    expect(tr).toHaveTextContent('c-⟨U+202E⟩1');
    expect(tr).toHaveTextContent('NEW⟨U+200B⟩');
    expect(tr.textContent).not.toMatch(HIDDEN);
    // The titles that hold a cut cell's full value show the hidden characters too.
    expect(tr.querySelector('[data-col="user"]')).toHaveAttribute('title', 'cust-4815⟨U+200B⟩1623');
    expect(tr.querySelector('[data-col="id"]')).toHaveAttribute('title', 'c-⟨U+202E⟩1');
    for (const cell of tr.querySelectorAll('[title]')) expect(cell.getAttribute('title')).not.toMatch(HIDDEN);
    // <option>s hold only text: the choices are isolated with FSI … PDI, their controls visible.
    const channel = screen.getByTestId('filter-channel').querySelector('option[value="NEW\u200B"]');
    expect(channel!.textContent).toBe('\u2068NEW⟨U+200B⟩\u2069');
    const reason = screen.getByTestId('filter-reason').querySelector('option[value="odd\u202Ereason"]');
    // A reason outside ReasonCode is worded generically and its code is not shown.
    expect(reason!.textContent).toBe('\u2068a reason this version does not know\u2069');
  });
});
