//! The shared harness of the integration tests, one subject per module.
//!
//! Conventions kept here: all traffic on 127.0.0.1, ports from the kernel (no fixed ports), every
//! wait bounded, every child process reaped, and one rule for a program a test needs that is
//! missing ([`tools`]).

pub mod daemon;
pub mod http;
pub mod net;
pub mod oauth;
pub mod paths;
pub mod postgres;
pub mod process_table;
pub mod processes;
pub mod prometheus;
pub mod scrape;
pub mod servers;
pub mod tls;
pub mod tools;
pub mod traffic;
pub mod wait;
