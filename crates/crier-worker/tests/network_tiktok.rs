//! The network conformance suite for TikTok against its fake (crier-fakes/src/tiktok.rs).
mod conformance;
suite!(crier_fakes::tiktok::TikTokFake::start);
