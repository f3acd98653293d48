//! Runnable examples live next to this crate's manifest; see `README.md`.
