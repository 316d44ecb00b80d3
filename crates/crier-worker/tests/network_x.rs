//! The network conformance suite for X against its fake (crier-fakes/src/x.rs).
mod conformance;
suite!(crier_fakes::x::XFake::start);
