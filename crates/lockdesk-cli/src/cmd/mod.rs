//! One module per subcommand.

pub mod audit;
pub mod bench;
pub mod bench_audit;
pub mod bench_gateway;
pub mod config;
pub mod desk;
pub mod gateway;
pub mod gateway_migrate;
pub mod keys;
pub mod simulate;
pub mod token;
pub mod verify;
