//! The network conformance suite for YouTube against its fake (crier-fakes/src/youtube.rs).
mod conformance;
suite!(crier_fakes::youtube::YouTubeFake::start);
