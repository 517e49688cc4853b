//! How the CLI prints text it did not write (tokens' claims, webhooks' fields, a gateway's close
//! reason, the store's rows): never as it is.
//!
//! - Human output: through [`Shown`] / [`visible`] from `lockdesk-text`, the one terminal
//!   escaping routine (C0, DEL, C1, bidi controls, invisibles, line separators and runs of
//!   combining marks become a visible `⟨U+XXXX⟩` marker). `{:?}` of a [`Shown`] quotes it.
//! - `--json` output: [`json`], exact JSON (a parser gets back exactly the received strings) in
//!   which the same hazardous characters are written as `\uXXXX` escapes, so the raw line cannot
//!   drive or reorder a terminal either.
//!
//! Architecture invariant (ARCHITECTURE.md): every `print!`/`println!`/`eprintln!`/`writeln!` of
//! untrusted text in this crate goes through one of these.

use std::io;

use serde::Serialize;

pub use lockdesk_text::{visible, Shown};

/// serde_json's compact formatter, except that every character `lockdesk-text` classes as
/// hazardous is written as a `\uXXXX` escape (UTF-16 surrogate pairs above U+FFFF). serde_json
/// already escapes C0 controls, `"` and `\`; the rest (DEL, C1, bidi, invisibles, U+2028/U+2029)
/// reaches [`write_string_fragment`](serde_json::ser::Formatter::write_string_fragment), in
/// member names and string values alike.
struct HazardEscaping;

impl serde_json::ser::Formatter for HazardEscaping {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // The same walk as `visible()`, so runs of combining marks are escaped too. serde_json
        // splits a string into fragments only around characters it escapes itself (never a
        // combining mark), so a run never straddles two fragments.
        let mut start = 0;
        let mut at = 0;
        let mut result: io::Result<()> = Ok(());
        lockdesk_text::walk(fragment, |c, hazard| {
            let i = at;
            at += c.len_utf8();
            if hazard.is_none() || result.is_err() {
                return;
            }
            result = writer
                .write_all(&fragment.as_bytes()[start..i])
                .and_then(|()| {
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units)
                        .iter()
                        .try_for_each(|unit| write!(writer, "\\u{unit:04x}"))
                });
            start = at;
        });
        result?;
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `value` as one line of JSON (no newline), safe to print on a terminal: see the module header.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut buf = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, HazardEscaping);
    // Serialising strings, numbers, maps and `Value`s into memory does not fail; if a type's
    // `Serialize` ever did, an empty object is printed rather than a half line.
    if value.serialize(&mut ser).is_err() {
        return "{}".into();
    }
    // The formatter writes valid UTF-8 only (whole fragments and ASCII escapes).
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn json_escapes_every_hazard_and_decodes_to_the_same_value() {
        let hostile = "a\u{1b}]0;pwned\u{7}\u{1b}[2J\u{7f}\u{85}\u{9b}\u{202e}\u{2066}\u{200b}\u{2028}\u{e0041}é中";
        let v = json!({ "channel": hostile, hostile: [hostile, 1, null] });
        let line = json(&v);
        for c in line.chars() {
            assert!(lockdesk_text::hazard_of(c).is_none(), "{c:?} raw in {line}");
        }
        assert!(line.contains("\\u001b]0;pwned\\u0007"), "{line}");
        assert!(line.contains("\\u007f\\u0085\\u009b\\u202e\\u2066\\u200b\\u2028"));
        assert!(line.contains("\\udb40\\udc41"), "surrogate pair: {line}");
        assert!(line.contains("é中"), "other text stays as it is: {line}");
        // A run of combining marks (Zalgo text) keeps its first four marks, like visible().
        let zalgo = json!({ "name": "z\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}" });
        let zline = json(&zalgo);
        assert!(
            zline.contains("z\u{300}\u{301}\u{302}\u{303}\\u0304\\u0305"),
            "{zline}"
        );
        assert_eq!(serde_json::from_str::<Value>(&zline).unwrap(), zalgo);
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v);
        // Clean text is byte for byte what serde_json writes.
        let plain = json!({"a": "cust-1 Chloé", "n": 3});
        assert_eq!(json(&plain), serde_json::to_string(&plain).unwrap());
    }
}
