//! Helpers of the tests that drive the real `crier` binary (crash.rs, cli.rs).
#![allow(dead_code)] // not every test uses every helper

pub mod server;
