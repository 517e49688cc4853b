//! The token verification engine (being built: see issue 3).
