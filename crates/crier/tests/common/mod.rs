//! Helpers of the tests that drive the real `crier` binary (crash.rs, cli.rs, nodes.rs).
#![allow(dead_code)] // not every test uses every helper

pub mod posts;
pub mod server;
