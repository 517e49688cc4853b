// The TypeScript twin renders untrusted text exactly as crates/lockdesk-text does: the shared
// table (read by the Rust tests too), and the properties the components rely on.
import { describe, expect, it } from 'vitest';
import { hazards, isClean, isolated, segments, visible, type HazardClass } from './text';
import shared from '../../../crates/lockdesk-text/tests/hazards.json';

interface Case {
  input: string;
  visible: string;
  hazards: HazardClass[];
}
const table = shared as { cases: Case[] };

describe('untrusted text, as the Rust crate shows it', () => {
  it('reads the shared table', () => {
    expect(table.cases.length).toBeGreaterThanOrEqual(10);
  });

  for (const c of table.cases) {
    it(`renders ${JSON.stringify(c.input)} as ${JSON.stringify(c.visible)}`, () => {
      expect(visible(c.input)).toBe(c.visible);
      expect(hazards(c.input)).toEqual(c.hazards);
      expect(isClean(c.input)).toBe(c.hazards.length === 0);
      // The segments are the same text, each hazard its own marker.
      const segs = segments(c.input);
      expect(segs.map((s) => s.text).join('')).toBe(c.visible);
      for (const s of segs) if (s.kind === 'marker') expect(s.text).toMatch(/^⟨U\+[0-9A-F]{4,6}⟩$/);
    });
  }

  it('catches the issue\'s four forgeries of cust-48151623, except the look-alike letter', () => {
    expect(visible('cust-4815\u200B1623')).toBe('cust-4815⟨U+200B⟩1623');
    expect(visible('cust-\u202E32615184')).toBe('cust-⟨U+202E⟩32615184');
    expect(visible('cust-48151623\u2066\u2069')).toBe('cust-48151623⟨U+2066⟩⟨U+2069⟩');
    // A Cyrillic с is a letter, not a hazard: the look-alike check (Rust, on the row) flags it.
    expect(isClean('\u0441ust-48151623')).toBe(true);
  });

  it('leaves a clean string as it is, in one text segment', () => {
    for (const s of ['cust-48151623', 'Zoë Ångström', 'محمد', 'יוסי', '山田', 'e\u0301\u0301\u0301\u0301', '👍🏽']) {
      expect(segments(s)).toEqual([{ kind: 'text', text: s }]);
      expect(visible(s)).toBe(s);
    }
    expect(segments('')).toEqual([]);
  });

  it('keeps the text around each marker in order', () => {
    expect(segments('a\u200Bb\u202Ec')).toEqual([
      { kind: 'text', text: 'a' },
      { kind: 'marker', hazard: 'invisible', codePoint: 0x200b, text: '⟨U+200B⟩' },
      { kind: 'text', text: 'b' },
      { kind: 'marker', hazard: 'bidi_control', codePoint: 0x202e, text: '⟨U+202E⟩' },
      { kind: 'text', text: 'c' },
    ]);
    expect(segments('\u200B')).toEqual([{ kind: 'marker', hazard: 'invisible', codePoint: 0x200b, text: '⟨U+200B⟩' }]);
    expect(isClean('\u200B')).toBe(false);
  });

  it('isolates text for attributes, with only its own marks left as controls', () => {
    const s = isolated('abc\u202Edef');
    expect(s).toBe('\u2068abc⟨U+202E⟩def\u2069');
    expect([...s].filter((c) => /[\u202A-\u202E\u2066-\u2069]/u.test(c))).toHaveLength(2);
  });

  it('leaves no hazardous character in what it shows, over every code point', () => {
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const v = visible(`x${String.fromCodePoint(cp)}y`);
      if (!isClean(v)) throw new Error(`U+${cp.toString(16)} survives as ${JSON.stringify(v)}`);
    }
  });
});
