//! Integration, trybuild UI and HTTP-level tests live in `tests/tests/` and `tests/ui/`.
//!
//! The crate documentation below is the repository's README: its Rust examples are compiled
//! and run as doctests, so the README cannot drift from the code.
#![doc = include_str!("../../README.md")]
