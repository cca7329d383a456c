//! trybuild UI tests of `#[execution_route]` and `#[execution_router]`: the
//! expansions compile (and run) under `#![deny(warnings)]`, and each mistake is
//! a compile error on the literal at fault. Refresh the snapshots with
//! `TRYBUILD=overwrite cargo test -p tests --test ui`, then read them.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
