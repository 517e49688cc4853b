// The one component every untrusted string goes through: isolated in a <bdi>, each hazardous
// character a visible, named chip, and nothing else changed.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import UntrustedText from './UntrustedText.svelte';
import { setLanguage } from '../i18n/index.svelte';

afterEach(() => setLanguage('en'));

const CONTROLS = /[\p{Cc}\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u;

describe('untrusted text', () => {
  it('renders a clean string as plain text in a <bdi>', () => {
    const { container } = render(UntrustedText, { props: { value: 'cust-48151623' } });
    const bdi = container.querySelector('bdi');
    expect(bdi).not.toBeNull();
    // One text node (beside the framework's empty comment anchor), no element.
    const texts = [...bdi!.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE);
    expect(texts.map((n) => n.textContent)).toEqual(['cust-48151623']);
    expect(bdi!.children).toHaveLength(0);
    expect(bdi!.textContent).toBe('cust-48151623');
  });

  it('isolates right-to-left text without changing it', () => {
    const { container } = render(UntrustedText, { props: { value: 'محمد 12' } });
    expect(container.querySelector('bdi')!.textContent).toBe('محمد 12');
    expect(container.querySelector('.hazard')).toBeNull();
  });

  for (const [value, shown, name] of [
    ['cust-4815\u200B1623', 'cust-4815⟨U+200B⟩1623', 'Invisible character U+200B'],
    ['cust-\u202E32615184', 'cust-⟨U+202E⟩32615184', 'Text-direction control character U+202E'],
    ['cust-48151623\u2066', 'cust-48151623⟨U+2066⟩', 'Text-direction control character U+2066'],
    ['web\u001b[2J', 'web⟨U+001B⟩[2J', 'Control character U+001B'],
    ['line\u2028two', 'line⟨U+2028⟩two', 'Line separator U+2028'],
    ['z\u0300\u0301\u0302\u0303\u0304', 'z\u0300\u0301\u0302\u0303⟨U+0304⟩', 'Extra combining mark U+0304'],
  ] as const) {
    it(`shows ${JSON.stringify(value)} as ${shown}, the marker named "${name}"`, () => {
      const { container } = render(UntrustedText, { props: { value } });
      const bdi = container.querySelector('bdi')!;
      expect(bdi.textContent).toBe(shown);
      expect(bdi.textContent).not.toMatch(CONTROLS);
      const chip = screen.getByRole('img', { name });
      expect(chip).toHaveClass('hazard');
      expect(chip).toHaveAttribute('title', name);
      expect(chip.textContent).toMatch(/^⟨U\+[0-9A-F]{4}⟩$/);
    });
  }

  it('names the markers in French', () => {
    setLanguage('fr');
    render(UntrustedText, { props: { value: 'a\u200Bb\u202Ec' } });
    expect(screen.getByRole('img', { name: 'Caractère invisible U+200B' })).toBeInTheDocument();
    expect(screen.getByRole('img', { name: 'Caractère de contrôle du sens du texte U+202E' })).toBeInTheDocument();
  });

  it('keeps markup as text', () => {
    const { container } = render(UntrustedText, { props: { value: '<img src=x onerror=alert(1)>\u200B' } });
    expect(container.querySelector('img')).toBeNull();
    expect(container.textContent).toBe('<img src=x onerror=alert(1)>⟨U+200B⟩');
  });

  it('follows a changed value', async () => {
    const { container, rerender } = render(UntrustedText, { props: { value: 'a\u200Bb' } });
    expect(container.querySelectorAll('.hazard')).toHaveLength(1);
    await rerender({ value: 'plain' });
    expect(container.querySelector('bdi')!.textContent).toBe('plain');
    expect(container.querySelector('.hazard')).toBeNull();
  });
});
