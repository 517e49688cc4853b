// The detail pane's parts: identity card (signed vs unverified, differences, markup as text),
// timeline, alerts and cross-device history.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import IdentityCard from './IdentityCard.svelte';
import Timeline from './Timeline.svelte';
import Alerts from './Alerts.svelte';
import HistoryView from './HistoryView.svelte';
import { setLanguage } from '../../i18n/index.svelte';
import type { History, Presentation } from '../../ipc';
import { identity, T0 } from './fixtures';

afterEach(() => {
  setLanguage('en');
  delete (window as { __pwned?: unknown }).__pwned;
});

const PAYLOADS = [
  '<script>window.__pwned=1</script>',
  '<img src=x onerror="window.__pwned=2">',
  '<a href="https://evil.example">click</a>',
  '"><svg onload="window.__pwned=3">',
  '**markdown** [link](https://evil.example)',
];

describe('identity card', () => {
  it('marks the userId and every signed field as signed by the brand', () => {
    render(IdentityCard, { props: { identity: identity(), now: T0 } });
    const user = screen.getByTestId('identity-user-id');
    expect(user).toHaveTextContent('user-42');
    expect(within(user).getByText('Signed by the brand')).toBeInTheDocument();
    const signed = screen.getAllByTestId('signed-field');
    expect(signed.map((f) => f.dataset.key)).toEqual(['firstName', 'email']);
    for (const f of signed) {
      expect(within(f).getByText('Signed by the brand')).toBeInTheDocument();
      expect(within(f).queryByText('Unverified')).toBeNull();
    }
    expect(signed[0]).toHaveTextContent('First name');
    expect(signed[0]).toHaveTextContent('Alice');
  });

  it('marks platform fields unverified and highlights the ones that differ', () => {
    render(IdentityCard, { props: { identity: identity(), now: T0 } });
    const platform = screen.getAllByTestId('platform-field');
    expect(platform).toHaveLength(2);
    for (const f of platform) {
      expect(within(f).getByText('Unverified')).toBeInTheDocument();
      expect(within(f).queryByText('Signed by the brand')).toBeNull();
    }
    const [same, differs] = platform;
    expect(same).not.toHaveClass('differs');
    expect(within(same!).queryByTestId('differs')).toBeNull();
    expect(differs).toHaveClass('differs');
    expect(differs).toHaveAttribute('data-key', 'externalUserId');
    expect(within(differs!).getByTestId('differs')).toHaveTextContent('Differs from the signed data');
  });

  it('shows issuer, key thumbprint and when the session lapses', () => {
    render(IdentityCard, { props: { identity: identity(), now: T0 } });
    expect(screen.getByTestId('identity-issuer')).toHaveTextContent('https://brand.example');
    expect(screen.getByTestId('identity-thumbprint')).toHaveTextContent('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    expect(screen.getByTestId('identity-lapses')).toHaveTextContent('in 30 minutes');
  });

  it('speaks French', () => {
    setLanguage('fr');
    render(IdentityCard, { props: { identity: identity(), now: T0 } });
    expect(screen.getAllByText('Signé par la marque')).toHaveLength(3);
    expect(screen.getAllByText('Non vérifié')).toHaveLength(2);
    expect(screen.getByText(/Diffère des données signées/)).toBeInTheDocument();
  });

  it('shows HTML, script and markdown payloads as literal text and runs nothing', () => {
    const card = identity({
      userId: PAYLOADS[0]!,
      issuer: PAYLOADS[2]!,
      signedVisitorData: PAYLOADS.map((value, i) => ({ key: i === 0 ? '<b>k</b>' : `f${i}`, value })),
      platformProfile: PAYLOADS.map((value, i) => ({ key: `p${i}`, value, differs: true })),
    });
    const { container } = render(IdentityCard, { props: { identity: card, now: T0 } });
    expect(container.querySelector('script, img, a, b, svg[onload]')).toBeNull();
    const values = screen.getAllByTestId('signed-field').map((f) => f.querySelector('.value')?.textContent);
    expect(values).toEqual(PAYLOADS);
    expect(screen.getByTestId('identity-user-id')).toHaveTextContent(PAYLOADS[0]!);
    expect(screen.getByText('<b>k</b>')).toBeInTheDocument();
    expect((window as { __pwned?: unknown }).__pwned).toBeUndefined();
  });
});

const timeline: Presentation[] = [
  { atMs: T0 - 120_000, verdict: 'rejected', reasonCode: 'bad_signature', reasonText: 'the signature does not verify with key <k1>', issuer: 'https://brand.example', expiresAtMs: null, userId: null, beforeLogin: true },
  { atMs: T0 - 60_000, verdict: 'verified', reasonCode: null, reasonText: null, issuer: 'https://brand.example', expiresAtMs: T0, userId: 'user-42', beforeLogin: false },
];

describe('timeline', () => {
  it('lists every presentation with its verdict and, when rejected, its reason', () => {
    render(Timeline, { props: { timeline } });
    const items = screen.getAllByTestId('presentation');
    expect(items.map((i) => i.dataset.verdict)).toEqual(['rejected', 'verified']);
    expect(items[0]).toHaveTextContent('Rejected token');
    expect(items[0]).toHaveTextContent('Before login');
    const reason = within(items[0]!).getByTestId('presentation-reason');
    expect(reason).toHaveTextContent('Reason: bad signature (forged or altered)');
    expect(reason).toHaveTextContent('bad_signature');
    expect(reason).toHaveTextContent('the signature does not verify with key <k1>');
    expect(items[1]).toHaveTextContent('Valid token');
    expect(items[1]).toHaveTextContent('user-42');
    expect(within(items[1]!).queryByTestId('presentation-reason')).toBeNull();
    expect(items[0]!.querySelector('time')).toHaveAttribute('datetime', new Date(T0 - 120_000).toISOString());
  });

  it('says when nothing was presented', () => {
    render(Timeline, { props: { timeline: [] } });
    expect(screen.getByText('No token was presented in this conversation.')).toBeInTheDocument();
  });
});

describe('alerts', () => {
  it('shows each alert with its evidence as text', () => {
    render(Alerts, {
      props: {
        alerts: [
          { id: 'a1', conversationId: 'c-1', kind: 'shared_device', atMs: T0, evidence: [
            { label: 'visitorId', value: 'v-1' },
            { label: 'previous userId', value: '<script>x</script>' },
          ] },
          { id: 'a2', conversationId: 'c-1', kind: 'verification_failed', atMs: T0, evidence: [] },
        ],
      },
    });
    const alerts = screen.getAllByTestId('alert');
    expect(alerts.map((a) => a.dataset.kind)).toEqual(['shared_device', 'verification_failed']);
    expect(alerts[0]).toHaveTextContent('Shared device: another verified person on this device');
    expect(alerts[0]).toHaveTextContent('previous userId<script>x</script>');
    expect(alerts[0]!.querySelector('script')).toBeNull();
  });
});

const history: History = {
  userId: 'user-42',
  groups: [
    { visitorId: 'v-laptop', device: 'Firefox on Linux', channel: 'CHAT', source: 'web', domain: 'shop.example', conversations: [
      { id: 'c-3', openedAtMs: T0 - 3_600_000, closedAtMs: null, state: 'secured', securedPart: true, beforeLoginPart: true },
      { id: 'c-1', openedAtMs: T0 - 86_400_000, closedAtMs: T0 - 86_000_000, state: 'closed', securedPart: false, beforeLoginPart: false },
    ] },
    { visitorId: 'v-phone', device: 'iPhone app', channel: 'MOBILE_APP', source: 'app', domain: null, conversations: [
      { id: 'c-4', openedAtMs: T0 - 7_200_000, closedAtMs: T0 - 7_000_000, state: 'closed', securedPart: true, beforeLoginPart: false },
    ] },
    { visitorId: 'v-laptop', device: 'Firefox on Linux', channel: 'VIDEO', source: 'web', domain: 'shop.example', conversations: [
      { id: 'c-5', openedAtMs: T0 - 9_000_000, closedAtMs: T0 - 8_000_000, state: 'closed', securedPart: true, beforeLoginPart: false },
    ] },
    { visitorId: 'v-tablet', device: 'Safari on iPad', channel: 'CHAT', source: 'web', domain: 'm.shop.example', conversations: [
      { id: 'c-6', openedAtMs: T0 - 9_500_000, closedAtMs: T0 - 9_400_000, state: 'closed', securedPart: true, beforeLoginPart: false },
    ] },
  ],
};

describe('cross-device history', () => {
  it('groups by device and channel, marks secured and before-login parts and the open one', () => {
    render(HistoryView, { props: { history, currentId: 'c-3' } });
    const groups = screen.getAllByTestId('history-group');
    expect(groups.map((g) => `${g.dataset.visitorId}/${g.dataset.channel}`)).toEqual([
      'v-laptop/CHAT', 'v-phone/MOBILE_APP', 'v-laptop/VIDEO', 'v-tablet/CHAT',
    ]);
    // Three devices, even though the laptop has two channels.
    expect(screen.getByTestId('history-device-count')).toHaveTextContent('3');
    expect(groups[0]).toHaveTextContent('Firefox on Linux');
    expect(groups[0]).toHaveTextContent('Chat · Web · shop.example');
    expect(groups[1]).toHaveTextContent('iPhone app');
    expect(groups[1]).toHaveTextContent('Mobile app · Mobile app');
    const inLaptopChat = within(groups[0]!).getAllByTestId('history-conversation');
    expect(inLaptopChat.map((c) => c.dataset.id)).toEqual(['c-3', 'c-1']);
    const [current, old] = inLaptopChat;
    expect(current).toHaveClass('current');
    expect(within(current!).getByText('Anonymous before login')).toBeInTheDocument();
    expect(within(current!).getByText('Secured')).toBeInTheDocument();
    expect(within(current!).getByText('this conversation')).toBeInTheDocument();
    expect(current).toHaveTextContent('ongoing');
    expect(within(old!).queryByText('Secured')).toBeNull();
    expect(within(old!).queryByText('Anonymous before login')).toBeNull();
    expect(within(old!).getByRole('img', { name: 'Closed' })).toBeInTheDocument();
  });
});

describe('history states (issue 13)', () => {
  it('says each state in words, and marks them stale with their time when the feed is not live', () => {
    const { unmount } = render(HistoryView, { props: { history, currentId: 'c-3' } });
    const items = screen.getAllByTestId('history-conversation');
    const closed = items.find((i) => i.dataset.id === 'c-1')!;
    expect(within(closed).getByTestId('history-state')).toHaveTextContent('Closed');
    expect(screen.queryByTestId('history-stale')).toBeNull();
    unmount();
    render(HistoryView, { props: { history, currentId: 'c-3', stale: { asOf: '14:02' } } });
    const again = screen.getAllByTestId('history-conversation');
    for (const item of again) {
      expect(within(item).getByTestId('history-stale')).toHaveTextContent('as of 14:02');
      expect(within(item).getByRole('img')).toHaveAttribute('data-stale', 'true');
    }
  });
});

describe('the device count of the history', () => {
  it('says "1 device", "2 devices" (and "1 appareil" in French), never "1 devices"', () => {
    const one: History = { ...history, groups: history.groups.slice(0, 1) };
    const two: History = { ...history, groups: history.groups.slice(0, 2) };
    const { unmount } = render(HistoryView, { props: { history: one } });
    expect(screen.getByTestId('history').querySelector('p')).toHaveTextContent(/· 1 device$/);
    unmount();
    const again = render(HistoryView, { props: { history: two } });
    expect(screen.getByTestId('history').querySelector('p')).toHaveTextContent(/· 2 devices$/);
    again.unmount();
    setLanguage('fr');
    render(HistoryView, { props: { history: one } });
    expect(screen.getByTestId('history').querySelector('p')).toHaveTextContent(/· 1 appareil$/);
  });
});
