//! # Untrusted text: one home for how Lockdesk inspects, shows and escapes strings from outside
//!
//! Every string Lockdesk did not write itself is hostile, signed or not: a token the brand really
//! signed can still carry a userId built to deceive a person (bidi controls that reverse what
//! follows, zero-width characters that make two different ids look identical, look-alike letters
//! from another script), a terminal (escape sequences) or a spreadsheet (formulas). This crate is
//! the one place that knows those characters; everything that shows or checks untrusted text goes
//! through it:
//!
//! - [`hazards`] / [`Hazard`]: the classes of deceptive characters in a string (the verifier
//!   refuses or warns on them, docs/verify.md).
//! - [`visible`] (and the [`Shown`] wrapper for `format!`): the string with every hazardous
//!   character replaced by a visible `⟨U+XXXX⟩` marker. It is also the terminal escaping routine:
//!   the CLI prints untrusted text only through it (C0, DEL, C1, bidi, invisibles, separators).
//! - [`isolated`]: [`visible`] wrapped in FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE, for text
//!   that sits inside a sentence of ours (notifications), so a right-to-left string cannot reorder
//!   the words around it.
//! - [`csv_field`]: a spreadsheet cell that cannot start a formula (OWASP's CSV injection rule).
//! - [`skeleton`], [`mixes_scripts`], [`confusable`]: Unicode UTS #39 look-alike checks, on the
//!   maintained confusables and script data of the `unicode-security` crate.
//! - [`json`]: a JSON parse error in words without any excerpt of the input (which may hold a
//!   token), for every crate that reads JSON from outside.
//! - [`time`]: dates and times from and to text (RFC 3339 from the wire, the clock in Unix
//!   milliseconds), bounded to the years 1970 to 9999: one home for every crate.
//!
//! Invariants: nothing here panics or allocates more than a small constant times the input;
//! [`visible`] output contains no hazardous character (tested over every code point); the
//! rendering is deterministic, so Rust and the UI's TypeScript twin (`ui/src/lib/text.ts`) agree,
//! checked by the shared table `tests/hazards.json`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, MixedScript};

/// The longest run of combining marks on one base character that is shown as it is. UTS #39
/// (section 5.4, "Optional Detection") suggests flagging more than four consecutive nonspacing
/// marks: no orthography needs more, and stacks of them ("Zalgo" text) overwrite the lines around.
pub const MAX_COMBINING_RUN: usize = 4;

/// A class of characters that can deceive a person or a program when shown as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hazard {
    /// C0 controls, DEL and C1 controls (escape sequences, carriage returns, NEL).
    Control,
    /// Bidirectional formatting characters (embeddings, overrides, isolates, marks): they reorder
    /// the text around them.
    Bidi,
    /// Invisible characters: zero-width and other default-ignorable code points, and format
    /// characters that draw nothing (U+200B, U+2060, U+FEFF, tag characters, fillers, ...).
    Invisible,
    /// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: a line break inside one field.
    LineSeparator,
    /// More than [`MAX_COMBINING_RUN`] combining marks on one character.
    CombiningRun,
}

impl Hazard {
    /// Every class, in a stable order.
    pub const ALL: [Hazard; 5] = [
        Hazard::Control,
        Hazard::Bidi,
        Hazard::Invisible,
        Hazard::LineSeparator,
        Hazard::CombiningRun,
    ];

    /// The stable spelling (used in warnings, documentation and the UI).
    pub fn code(self) -> &'static str {
        match self {
            Hazard::Control => "control",
            Hazard::Bidi => "bidi_control",
            Hazard::Invisible => "invisible",
            Hazard::LineSeparator => "line_separator",
            Hazard::CombiningRun => "combining_run",
        }
    }

    /// A plural noun phrase for messages: "contains {describe()}".
    pub fn describe(self) -> &'static str {
        match self {
            Hazard::Control => "control characters",
            Hazard::Bidi => "bidirectional control characters (they reorder the text around them)",
            Hazard::Invisible => "invisible or zero-width characters",
            Hazard::LineSeparator => "line or paragraph separators",
            Hazard::CombiningRun => "a run of more than 4 combining marks on one character",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The set of [`Hazard`]s found in a string.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hazards(u8);

impl Hazards {
    /// No hazard.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `h` was found.
    pub fn contains(self, h: Hazard) -> bool {
        self.0 & h.bit() != 0
    }

    fn insert(&mut self, h: Hazard) {
        self.0 |= h.bit();
    }

    /// The classes found, in [`Hazard::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Hazard> {
        Hazard::ALL.into_iter().filter(move |h| self.contains(*h))
    }
}

impl fmt::Debug for Hazards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Bidirectional formatting characters (UAX #9, table 1: explicit formatting, implicit marks).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Format characters (general category Cf) that are not default-ignorable but draw nothing or
/// change how neighbours draw: prepended concatenation marks, interlinear annotation controls,
/// Egyptian hieroglyph, shorthand and musical format controls.
fn is_other_format(c: char) -> bool {
    matches!(
        c,
        '\u{0600}'..='\u{0605}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1345F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Default-ignorable code points that UTS #39's identifier types do not label `Default_Ignorable`:
/// the deprecated format characters U+206A–206F and U+E0001 LANGUAGE TAG, and the code points
/// reserved for future invisible characters (U+2065, U+FFF0–FFF8, the rest of U+E0000–E0FFF),
/// which a renderer draws as nothing. With them, the invisible class holds every
/// Default_Ignorable_Code_Point, as the UI's `\p{Default_Ignorable_Code_Point}` does.
fn is_other_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{2065}' | '\u{206A}'..='\u{206F}' | '\u{FFF0}'..='\u{FFF8}' | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Characters that are blank but neither spaces nor default-ignorable (U+2800 BRAILLE PATTERN
/// BLANK is a favourite of invisible-name tricks).
fn is_blank_glyph(c: char) -> bool {
    matches!(c, '\u{2800}')
}

/// Whether `c` is a combining mark (general category M).
pub fn is_combining_mark(c: char) -> bool {
    unicode_normalization::char::is_combining_mark(c)
}

/// The hazard class of one character on its own (combining runs depend on context: see
/// [`hazards`]).
pub fn hazard_of(c: char) -> Option<Hazard> {
    if c.is_control() {
        Some(Hazard::Control)
    } else if is_bidi_control(c) {
        Some(Hazard::Bidi)
    } else if c == '\u{2028}' || c == '\u{2029}' {
        Some(Hazard::LineSeparator)
    } else if c.is_ascii() {
        None
    } else if c.identifier_type() == Some(IdentifierType::Default_Ignorable)
        || is_other_format(c)
        || is_other_ignorable(c)
        || is_blank_glyph(c)
    {
        Some(Hazard::Invisible)
    } else {
        None
    }
}

/// Walks `s`, calling `each(c, hazard)` for every character with its hazard, if any (a
/// combining mark beyond [`MAX_COMBINING_RUN`] on one character is [`Hazard::CombiningRun`]).
/// For escapers of other formats (the CLI's JSON) that must treat exactly what [`visible`]
/// treats.
pub fn walk(s: &str, mut each: impl FnMut(char, Option<Hazard>)) {
    let mut run = 0usize;
    for c in s.chars() {
        let mut h = hazard_of(c);
        if h.is_none() && is_combining_mark(c) {
            run += 1;
            if run > MAX_COMBINING_RUN {
                h = Some(Hazard::CombiningRun);
            }
        } else {
            run = 0;
        }
        each(c, h);
    }
}

/// The hazard classes present in `s`.
pub fn hazards(s: &str) -> Hazards {
    let mut found = Hazards::default();
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_control()) {
        return found;
    }
    walk(s, |_, h| {
        if let Some(h) = h {
            found.insert(h);
        }
    });
    found
}

/// The visible marker for a hazardous character: `⟨U+200B⟩`.
pub fn marker(c: char) -> String {
    format!("⟨U+{:04X}⟩", c as u32)
}

/// `s` with every hazardous character (see [`hazards`]) replaced by its [`marker`]. Borrowed when
/// there is nothing to replace. This is also the terminal escaping routine: nothing it returns can
/// move a terminal's cursor, change its title, clear it or reorder a line.
pub fn visible(s: &str) -> Cow<'_, str> {
    if hazards(s).is_empty() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    walk(s, |c, h| match h {
        Some(_) => {
            let _ = write!(out, "⟨U+{:04X}⟩", c as u32);
        }
        None => out.push(c),
    });
    Cow::Owned(out)
}

/// Displays a string through [`visible`] without an intermediate allocation when it is clean:
/// `println!("channel: {}", Shown(&channel))`.
#[derive(Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&visible(self.0))
    }
}

/// Quoted, with `"` and `\` escaped as Rust's `{:?}` does, so a value cannot fake where it
/// ends (`x"  ALERT ...`).
impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in visible(self.0).chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// FIRST STRONG ISOLATE: the isolated text takes the direction of its first strong character.
pub const FSI: char = '\u{2068}';
/// POP DIRECTIONAL ISOLATE: ends an isolate.
pub const PDI: char = '\u{2069}';

/// [`visible`] text between FSI and PDI, for untrusted text inside a sentence of ours (a
/// notification): a right-to-left string stays in its own box and cannot reorder our words. The
/// marks are ours; any in `s` were already made visible.
pub fn isolated(s: &str) -> String {
    let v = visible(s);
    let mut out = String::with_capacity(v.len() + 6);
    out.push(FSI);
    out.push_str(&v);
    out.push(PDI);
    out
}

/// Whether a spreadsheet could read a cell starting with `c` as a formula (OWASP "CSV
/// Injection": `=`, `+`, `-`, `@`, tab, carriage return; and their full-width forms, which some
/// spreadsheets normalise).
fn starts_formula(c: char) -> bool {
    matches!(
        c,
        '=' | '+'
            | '-'
            | '@'
            | '\t'
            | '\r'
            | '\n'
            | '\u{FF1D}'
            | '\u{FF0B}'
            | '\u{FF0D}'
            | '\u{FF20}'
    )
}

/// A CSV cell value that no spreadsheet evaluates: OWASP's rule, a leading `'` when the cell
/// starts (after any spaces) with a formula character. The CSV writer still quotes the cell.
/// Text is otherwise kept as it is; the caller decides whether to pass it through [`visible`]
/// first.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    match s
        .trim_start_matches([' ', '\u{00A0}', '\u{3000}'])
        .chars()
        .next()
    {
        Some(c) if starts_formula(c) => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// The UTS #39 skeleton of `s`: two strings are visually confusable when their skeletons are
/// equal. Default-ignorable characters are dropped, so a zero-width space does not make a new
/// identity either.
pub fn skeleton(s: &str) -> String {
    unicode_security::skeleton(s).collect()
}

/// Whether `s` mixes scripts (UTS #39 section 5.1, resolved script set empty): `сust-48151623`
/// with a Cyrillic `с` does; digits, punctuation and `cust-48151623` do not.
pub fn mixes_scripts(s: &str) -> bool {
    !s.is_single_script()
}

/// Whether `a` and `b` are different strings that look the same (UTS #39: equal skeletons).
pub fn confusable(a: &str, b: &str) -> bool {
    a != b && skeleton(a) == skeleton(b)
}

pub mod json;
pub mod time;

#[cfg(test)]
mod tests;
