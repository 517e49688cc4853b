// The list row: each state's icon is named after the state (English and French), and failed and
// mismatch can never be mistaken for anonymous.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen } from '@testing-library/svelte';
import ConversationRow from './ConversationRow.svelte';
import { setLanguage } from '../../i18n/index.svelte';
import type { AuthStateName } from '../../ipc';
import { row, T0 } from './fixtures';

const NAMES: Record<AuthStateName, { en: string; fr: string }> = {
  secured: { en: 'Secured', fr: 'Sécurisée' },
  anonymous: { en: 'Anonymous', fr: 'Anonyme' },
  lapsed: { en: 'Lapsed', fr: 'Expirée' },
  failed: { en: 'Verification failed', fr: 'Échec de la vérification' },
  mismatch: { en: 'Identity mismatch', fr: "Incohérence d'identité" },
  unsupported: { en: 'Not available on this channel', fr: 'Non disponible sur ce canal' },
  closed: { en: 'Closed', fr: 'Fermée' },
};
const STATES = Object.keys(NAMES) as AuthStateName[];

afterEach(() => setLanguage('en'));

describe('conversation row', () => {
  for (const lang of ['en', 'fr'] as const) {
    it(`names every state icon in ${lang}`, () => {
      setLanguage(lang);
      for (const state of STATES) {
        const { unmount } = render(ConversationRow, { props: { row: row({ state }), now: T0 } });
        const icon = screen.getByRole('img', { name: NAMES[state][lang] });
        expect(icon).toHaveAttribute('data-state', state);
        unmount();
      }
    });
  }

  it('shows the padlock, verified userId, signed name, channel, device, domain and how long ago', () => {
    const { container } = render(ConversationRow, { props: { row: row(), now: T0 } });
    const icon = screen.getByRole('img', { name: 'Secured' });
    expect(icon.querySelector('rect')).not.toBeNull(); // the padlock's body
    expect(screen.getByTestId('row-user-id')).toHaveTextContent('user-42');
    expect(container).toHaveTextContent('Alice Martin');
    expect(container).toHaveTextContent('Chat · Firefox on Linux · shop.example');
    expect(screen.getByTestId('row-verified')).toHaveTextContent('verified 5 minutes ago');
  });

  it('says how long ago in French', () => {
    setLanguage('fr');
    render(ConversationRow, { props: { row: row(), now: T0 } });
    expect(screen.getByTestId('row-verified')).toHaveTextContent('vérifiée il y a 5 minutes');
  });

  it('makes failed and mismatch alarms, each distinct from anonymous and from each other', () => {
    const shapes: Record<string, string> = {};
    for (const state of ['anonymous', 'failed', 'mismatch'] as const) {
      const r = row({ state, userId: state === 'anonymous' ? null : 'user-42', reasonCode: state === 'failed' ? 'bad_signature' : null });
      const { container, unmount } = render(ConversationRow, { props: { row: r, now: T0 } });
      const body = screen.getByTestId('conversation-row-body');
      const icon = screen.getByRole('img', { name: NAMES[state].en });
      shapes[state] = icon.innerHTML;
      if (state === 'anonymous') {
        expect(body).not.toHaveClass('alarm');
        expect(screen.queryByTestId('row-alarm')).toBeNull();
        expect(container).toHaveTextContent('Anonymous visitor');
      } else {
        expect(body).toHaveClass('alarm');
        expect(screen.getByTestId('row-alarm')).toHaveTextContent(NAMES[state].en);
      }
      if (state === 'failed') expect(screen.getByTestId('row-reason')).toHaveTextContent('bad signature');
      unmount();
    }
    expect(new Set(Object.values(shapes)).size).toBe(3);
  });

  it('says in words that a third-party channel cannot be authenticated', () => {
    const { container } = render(ConversationRow, {
      props: { row: row({ state: 'unsupported', channel: 'WHATSAPP', userId: null, lastVerifiedAtMs: null }), now: T0 },
    });
    expect(container.querySelector('.conv-user')).toHaveTextContent('Not available on this channel');
    expect(container).toHaveTextContent('WhatsApp');
    expect(screen.queryByTestId('row-verified')).toBeNull();
  });

  it('keeps a closed failed conversation alarming and says what it was', () => {
    render(ConversationRow, {
      props: { row: row({ state: 'closed', closedFrom: 'failed', reasonCode: 'expired', userId: null }), now: T0 },
    });
    expect(screen.getByRole('img', { name: 'Closed (was Verification failed)' })).toBeInTheDocument();
    expect(screen.getByTestId('conversation-row-body')).toHaveClass('alarm');
    expect(screen.getByTestId('row-reason')).toHaveTextContent('expired');
  });

  it('agrees the alert count with its number, in English and French', () => {
    const said: string[] = [];
    for (const lang of ['en', 'fr'] as const) {
      setLanguage(lang);
      for (const alertCount of [1, 2, 1200]) {
        const { unmount } = render(ConversationRow, { props: { row: row({ alertCount }), now: T0 } });
        said.push(screen.getByTestId('row-alerts').textContent ?? '');
        unmount();
      }
    }
    // The thousands separator is the language's (French: a narrow no-break space).
    expect(said.map((s) => s.replace(/\s/g, ' '))).toEqual(['1 alert', '2 alerts', '1,200 alerts', '1 alerte', '2 alertes', '1 200 alertes']);
  });

  it('words a closed conversation\'s verification as the last one, not a current one', () => {
    render(ConversationRow, { props: { row: row({ state: 'closed', closedFrom: 'secured' }), now: T0 } });
    expect(screen.getByTestId('row-verified')).toHaveTextContent('last verified 5 minutes ago');
    cleanup();
    setLanguage('fr');
    render(ConversationRow, { props: { row: row({ state: 'closed', closedFrom: 'secured' }), now: T0 } });
    expect(screen.getByTestId('row-verified')).toHaveTextContent('dernière vérification il y a 5 minutes');
  });

  it('says every state in words in the row, and what a closed conversation was (issue 13)', () => {
    const said = (over: Parameters<typeof row>[0]) => {
      const { unmount } = render(ConversationRow, { props: { row: row(over), now: T0 } });
      const text = screen.getByTestId('row-state').textContent;
      unmount();
      return text;
    };
    expect(said({ state: 'secured' })).toBe('Secured');
    expect(said({ state: 'lapsed' })).toBe('Session lapsed');
    expect(said({ state: 'anonymous', userId: null })).toBe('Anonymous');
    expect(said({ state: 'closed', closedFrom: 'secured' })).toBe('Closed · was secured');
    expect(said({ state: 'closed', closedFrom: 'lapsed' })).toBe('Closed · was session lapsed');
    expect(said({ state: 'closed', closedFrom: null })).toBe('Closed');
    setLanguage('fr');
    expect(said({ state: 'lapsed' })).toBe('Session expirée');
    expect(said({ state: 'closed', closedFrom: 'secured' })).toBe('Fermée · était sécurisée');
  });

  it('marks a stale row: greyed dashed padlock, and its words say as of when', () => {
    render(ConversationRow, { props: { row: row(), now: T0, stale: { asOf: '14:02' } } });
    expect(screen.getByTestId('row-state')).toHaveTextContent('Secured · as of 14:02');
    const icon = screen.getByRole('img', { name: 'Secured, stale: the feed is not live' });
    expect(icon).toHaveAttribute('data-stale', 'true');
    expect(icon.querySelector('rect[fill="currentColor"]')).toBeNull();
    cleanup();
    // An alarm row keeps its red badge and says its age too; never live since opening: "not current".
    render(ConversationRow, { props: { row: row({ state: 'failed', reasonCode: 'bad_signature' }), now: T0, stale: { asOf: null } } });
    expect(screen.getByTestId('row-alarm')).toHaveTextContent('Verification failed');
    expect(screen.getByTestId('row-state')).toHaveTextContent(/^not current$/);
  });

  it('shows a userId full of markup as text', () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    const { container } = render(ConversationRow, {
      props: { row: row({ userId: evil, displayName: '<b>bold</b>', domain: '<a href="https://evil">x</a>' }), now: T0 },
    });
    expect(screen.getByTestId('row-user-id').textContent).toBe(evil);
    expect(container.querySelector('img, script, b, a')).toBeNull();
    expect(container).toHaveTextContent('<b>bold</b>');
  });
});
