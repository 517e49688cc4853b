// Issue 13 §4: what was verified and what the platform says stay apart, visually and in the
// document's structure, always (also once the platform's profile has loaded).
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import IdentityCard from './IdentityCard.svelte';
import { setLanguage } from '../../i18n/index.svelte';
import { identity, T0 } from './fixtures';

afterEach(() => setLanguage('en'));

describe('identity card provenance', () => {
  it('keeps the signed evidence (issuer, key, session lapse) in the verified part, the platform profile apart and after', () => {
    render(IdentityCard, { props: { identity: identity(), now: T0 } });
    const verified = screen.getByRole('region', { name: /^✓ Verified: signed by the brand/ });
    const platform = screen.getByRole('region', { name: "Platform's profile — what the platform says, not verified" });
    for (const id of ['identity-user-id', 'identity-issuer', 'identity-thumbprint', 'identity-lapses', 'signed-fields']) {
      expect(verified, id).toContainElement(screen.getByTestId(id));
      expect(platform, id).not.toContainElement(screen.getByTestId(id));
    }
    for (const field of screen.getAllByTestId('platform-field')) {
      expect(platform).toContainElement(field);
      expect(verified).not.toContainElement(field);
    }
    expect(verified.compareDocumentPosition(platform) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    expect(verified.contains(platform) || platform.contains(verified)).toBe(false);
  });

  it('frames the verified part even without a platform profile, in French too', () => {
    setLanguage('fr');
    render(IdentityCard, { props: { identity: identity({ platformProfile: [] }), now: T0 } });
    const verified = screen.getByRole('region', { name: /Vérifié : signé par la marque/ });
    expect(within(verified).getByTestId('identity-issuer')).toHaveTextContent('https://brand.example');
    expect(screen.queryByTestId('identity-platform')).toBeNull();
  });
});
