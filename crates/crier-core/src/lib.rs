//! The pure domain of crier: typed ids, scopes, plans, the API key format, network address
//! rules and the error codes of the API contract. No I/O and no async here, so everything in
//! this crate is cheap to unit-test and safe to call on the hot path of a request.

pub mod accounts;
pub mod base62;
pub mod clock;
pub mod cron;
pub mod error;
pub mod ids;
pub mod keys;
pub mod net;
pub mod plans;
pub mod posts;
pub mod queue;
pub mod roles;
pub mod scopes;
pub mod tally;
pub mod tenant;
pub mod text;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorCode, Invalid};
pub use keys::{KeyDigest, KeyMode, SecretKey};
pub use plans::Plan;
pub use roles::Role;
pub use scopes::{Scope, ScopeSet};
pub use tenant::Tenant;
