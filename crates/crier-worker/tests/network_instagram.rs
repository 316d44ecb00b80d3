//! The network conformance suite for Instagram against its fake (crier-fakes/src/instagram.rs).
mod conformance;
suite!(crier_fakes::instagram::InstagramFake::start);
