//! The network conformance suite for Threads against its fake (crier-fakes/src/threads.rs).
mod conformance;
suite!(crier_fakes::threads::ThreadsFake::start);
