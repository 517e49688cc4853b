//! The simulator: it plays iAdvize (webhook deliveries, HMAC-signed exactly as documented) and
//! the brand's token provider (evidence carrying tokens minted in iAdvize's format), so that
//! everything downstream of the gateway runs against real traffic. It is also what the desktop
//! app's demo mode runs.
//!
//! Architecture invariants:
//! - [`plan`] is pure and deterministic: the same seed gives the same scenarios, ids, people and
//!   timings; tokens are minted when a step is sent (they must be fresh then), so their bytes
//!   differ between runs but their claims do not;
//! - the simulator knows the brand's private key and the desk's public key, like a real brand;
//!   it never needs the desk's private key.

pub mod plan;
pub mod send;
pub mod sign;
pub mod tokens;

pub use plan::{plan, Action, Evidence, Scenario, Signer, Source, Step, TokenSpec};
pub use send::{SendError, Sender, Tally, Target};
pub use sign::{sign_webhook, webhook_signature};
pub use tokens::{read_desk_public, SimKeys, BRAND_KID, ROTATED_KID};
