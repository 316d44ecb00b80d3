//! The network conformance suite for LinkedIn against its fake (crier-fakes/src/linkedin.rs).
mod conformance;
suite!(crier_fakes::linkedin::LinkedInFake::start);
