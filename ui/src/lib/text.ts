// Untrusted text for the screen: the TypeScript twin of crates/lockdesk-text's `hazards` and
// `visible`. Every string Lockdesk did not write itself (userIds, visitorData, channels, devices,
// domains, alert evidence, reason details, ids) can carry characters built to deceive a person:
// bidi controls that reverse what follows, zero-width characters that make two different ids look
// identical, controls, line separators, stacks of combining marks. `segments` splits a string
// into plain text and one marker per hazardous character (`⟨U+200B⟩`), so a component can show
// the markers distinctly; `visible` is the same as one string (attributes, <option>s).
//
// The classes and the rendering are the Rust crate's, character for character; the shared table
// crates/lockdesk-text/tests/hazards.json is checked by both test suites (text.test.ts here).

/** A class of deceptive characters (the Rust `Hazard::code()` spellings). */
export type HazardClass = 'control' | 'bidi_control' | 'invisible' | 'line_separator' | 'combining_run';

/** Every class, in the Rust `Hazard::ALL` order. */
export const HAZARD_CLASSES: readonly HazardClass[] = ['control', 'bidi_control', 'invisible', 'line_separator', 'combining_run'];

/** The longest run of combining marks on one character shown as it is (UTS #39 section 5.4). */
export const MAX_COMBINING_RUN = 4;

/** A piece of a string: text shown as it is, or one hazardous character shown as a marker. */
export type Segment =
  | { kind: 'text'; text: string }
  | { kind: 'marker'; hazard: HazardClass; codePoint: number; text: string };

const CONTROL = /^\p{Cc}$/u;
const BIDI = /^[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]$/u;
const LINE_SEPARATOR = /^[\u2028\u2029]$/u;
// Default-ignorable code points (zero-width, joiners, fillers, tags, variation selectors, and the
// code points reserved for future ones, which a browser draws as nothing), format characters that
// draw nothing although not default-ignorable, and U+2800 BRAILLE PATTERN BLANK. The Rust side
// spells the same set from UTS #39's identifier types plus its own list.
const INVISIBLE =
  /^[\p{Default_Ignorable_Code_Point}\u0600-\u0605\u06DD\u070F\u0890\u0891\u08E2\u{110BD}\u{110CD}\u{13430}-\u{1345F}\u{1BCA0}-\u{1BCA3}\u{1D173}-\u{1D17A}\uFFF9-\uFFFB\u2800]$/u;
const MARK = /^\p{M}$/u;

// A string that might hold a hazard: any hazardous character, or five combining marks in a row.
// Most strings (ASCII ids, names) fail this one test and are returned as they are.
const MAYBE =
  /[\p{Cc}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069\u2028\u2029\p{Default_Ignorable_Code_Point}\u0600-\u0605\u06DD\u070F\u0890\u0891\u08E2\u{110BD}\u{110CD}\u{13430}-\u{1345F}\u{1BCA0}-\u{1BCA3}\u{1D173}-\u{1D17A}\uFFF9-\uFFFB\u2800]|\p{M}{5}/u;

/** False when `s` certainly holds no hazard (one regular-expression test: the components' fast
 * path). True does not mean it does (five combining marks may include invisible ones). */
export function mayHaveHazards(s: string): boolean {
  return MAYBE.test(s);
}

/** The hazard class of one character on its own (combining runs depend on context). */
export function hazardOf(c: string): HazardClass | null {
  if (CONTROL.test(c)) return 'control';
  if (BIDI.test(c)) return 'bidi_control';
  if (LINE_SEPARATOR.test(c)) return 'line_separator';
  if (c.length === 1 && c.charCodeAt(0) < 0x80) return null;
  if (INVISIBLE.test(c)) return 'invisible';
  return null;
}

/** The visible marker of a code point: `⟨U+200B⟩` (at least four hex digits, upper case). */
export function marker(codePoint: number): string {
  return `⟨U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}⟩`;
}

/** `U+200B`: how labels name a code point. */
export function codePointName(codePoint: number): string {
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Whether `s` holds no hazardous character (the common case, answered by one regex test). */
export function isClean(s: string): boolean {
  return !MAYBE.test(s) || segments(s).every((seg) => seg.kind === 'text');
}

/**
 * `s` as text and markers, in order. A clean string is one text segment (an empty string: none).
 * Lone surrogates (JavaScript strings may hold them; the desk's JSON never does) are kept as text.
 */
export function segments(s: string): Segment[] {
  if (!MAYBE.test(s)) return s === '' ? [] : [{ kind: 'text', text: s }];
  const out: Segment[] = [];
  let text = '';
  let run = 0;
  for (const c of s) {
    let h = hazardOf(c);
    if (h === null && MARK.test(c)) {
      run += 1;
      if (run > MAX_COMBINING_RUN) h = 'combining_run';
    } else {
      run = 0;
    }
    if (h === null) {
      text += c;
      continue;
    }
    if (text !== '') out.push({ kind: 'text', text });
    text = '';
    const codePoint = c.codePointAt(0) ?? 0;
    out.push({ kind: 'marker', hazard: h, codePoint, text: marker(codePoint) });
  }
  if (text !== '') out.push({ kind: 'text', text });
  return out;
}

/** The hazard classes present in `s`, in `HAZARD_CLASSES` order. */
export function hazards(s: string): HazardClass[] {
  const found = new Set<HazardClass>();
  for (const seg of segments(s)) if (seg.kind === 'marker') found.add(seg.hazard);
  return HAZARD_CLASSES.filter((h) => found.has(h));
}

/** `s` with every hazardous character replaced by its marker (Rust's `visible`). */
export function visible(s: string): string {
  if (!MAYBE.test(s)) return s;
  let out = '';
  for (const seg of segments(s)) out += seg.text;
  return out;
}

/** FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE. */
export const FSI = '\u2068';
export const PDI = '\u2069';

/** `visible(s)` between FSI and PDI (Rust's `isolated`): for untrusted text inside a string of
 * ours where no element can isolate it (an <option>, an aria-label, a title). */
export function isolated(s: string): string {
  return `${FSI}${visible(s)}${PDI}`;
}
