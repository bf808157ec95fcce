//! The attribute's compile errors, checked against `.stderr` snapshots (regenerate with
//! `TRYBUILD=overwrite cargo test -p perfgate-macros --test ui`, then read the diff), and inputs
//! that must compile.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
