//! JSON errors said without the text they are about: a frame, a payload or an API answer may hold
//! a token or whatever a stranger sent, and serde_json's own messages can quote it.

use serde_json::error::Category;

/// `invalid JSON at line 1 column 7`: the error's category and position, with no excerpt of the
/// input.
pub fn describe_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "invalid JSON",
        Category::Data => "unexpected content",
        Category::Eof => "truncated JSON",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}
