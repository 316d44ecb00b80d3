//! The engine that needs no model.
