//! One module per subcommand.

pub mod bench;
pub mod config;
pub mod keys;
pub mod token;
pub mod verify;
