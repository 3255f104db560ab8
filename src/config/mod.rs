//! What every component's configuration is built from; imports nothing else of the crate.
//!
//! - [`duration`]: human durations (`"15s"`) and their serde helper;
//! - [`reference`](mod@reference): `${VAR}` and `${file:PATH}` references inside values;
//! - [`secret`]: secrets read at run time from an environment variable or a file (`*_env` /
//!   `*_file`), with one rule for secret files;
//! - [`position`]: byte offsets to lines, and the key a line assigns;
//! - [`key_error`]: [`KeyError`], the one error of a rejected key.
//!
//! Each component validates its own keys with these (`src/deps/config.rs`,
//! `src/process/config.rs`, `src/store/config.rs`, `src/probe/config.rs`,
//! `src/security/config.rs`); `src/settings/` parses the file and assembles their parts.

pub mod duration;
pub mod key_error;
pub mod position;
pub mod reference;
pub mod secret;

pub use duration::{DurationError, parse_duration};
pub use key_error::KeyError;
pub use position::SourceText;
pub use secret::{SecretError, SecretSource};
