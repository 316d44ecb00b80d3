//! The network conformance suite for Facebook against its fake (crier-fakes/src/facebook.rs).
mod conformance;
suite!(crier_fakes::facebook::FacebookFake::start);
