//! The file parsers on any input: the baseline file (`BaselineFile::parse`), a run's `results.json`
//! (`RunResults::parse`) and a scenario binary's results and spec (`protocol::parse`). What the fuzz
//! targets (`fuzz/`, through the `fuzz` feature) and a short property test here check:
//! - garbage is an error, never a panic;
//! - a document that parses is written back by the CLI's own writer into one that parses again to
//!   the same document.

use perfgate_runtime::format::{ScenarioResult, ScenarioSpec};

use crate::baseline::BaselineFile;
use crate::protocol;
use crate::results::RunResults;

/// `BaselineFile::parse` on `data` (as text, invalid UTF-8 replaced).
pub fn check_baseline(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(file) = BaselineFile::parse(&text, "fuzz") else {
        return;
    };
    let written = file.to_toml().expect("a parsed baseline serialises");
    let back = BaselineFile::parse(&written, "rewritten").unwrap_or_else(|e| {
        panic!("a parsed baseline does not parse once written: {e}\n{written}")
    });
    // Compared as text: NaN, which TOML allows, is not equal to itself.
    assert_eq!(
        back.to_toml().unwrap(),
        written,
        "the baseline does not round-trip"
    );
}

/// `RunResults::parse` on `data`.
pub fn check_results(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(results) = RunResults::parse(&text, "fuzz") else {
        return;
    };
    let written = serde_json::to_string(&results).expect("parsed results serialise");
    let back = RunResults::parse(&written, "rewritten")
        .unwrap_or_else(|e| panic!("parsed results do not parse once written: {e}\n{written}"));
    assert_eq!(serde_json::to_string(&back).unwrap(), written);
}

/// `protocol::parse` of a scenario's results and of its spec on `data`.
pub fn check_scenario_files(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(result) = protocol::parse::<ScenarioResult>(&text, "results", true) {
        let written = serde_json::to_string(&result).unwrap();
        let back: ScenarioResult = protocol::parse(&written, "results", true)
            .unwrap_or_else(|e| panic!("a parsed result does not parse once written: {e}"));
        assert_eq!(serde_json::to_string(&back).unwrap(), written);
    }
    if let Ok(spec) = protocol::parse::<ScenarioSpec>(&text, "spec", false) {
        let written = serde_json::to_string(&spec).unwrap();
        let back: ScenarioSpec = protocol::parse(&written, "spec", false)
            .unwrap_or_else(|e| panic!("a parsed spec does not parse once written: {e}"));
        assert_eq!(serde_json::to_string(&back).unwrap(), written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A valid document with a few bytes changed, cut short, or with a piece repeated.
    fn mutated(seed: String) -> impl Strategy<Value = Vec<u8>> {
        let len = seed.len();
        (
            vec((0..len, any::<u8>()), 0..4),
            prop::option::of(0..len),
            prop::option::of((0..len, 0..len)),
        )
            .prop_map(move |(flips, cut, repeat)| {
                let mut d = seed.clone().into_bytes();
                for (at, byte) in flips {
                    d[at] = byte;
                }
                if let Some((a, b)) = repeat {
                    let piece = d[a.min(b)..a.max(b)].to_vec();
                    d.splice(a.min(b)..a.min(b), piece);
                }
                if let Some(c) = cut {
                    d.truncate(c);
                }
                d
            })
    }

    fn baseline_text() -> String {
        crate::baseline::tests::file(&["pkg::a"]).to_toml().unwrap()
    }

    fn results_text() -> String {
        serde_json::to_string(&crate::results::tests::report()).unwrap()
    }

    fn scenario_text() -> String {
        let sp = crate::slo::tests::spec(vec![]);
        serde_json::to_string(&crate::slo::tests::result(&sp, 10.0)).unwrap()
    }

    #[test]
    fn the_seeds_parse_and_round_trip() {
        assert!(BaselineFile::parse(&baseline_text(), "seed").is_ok());
        assert!(RunResults::parse(&results_text(), "seed").is_ok());
        assert!(protocol::parse::<ScenarioResult>(&scenario_text(), "results", true).is_ok());
        check_baseline(baseline_text().as_bytes());
        check_results(results_text().as_bytes());
        check_scenario_files(scenario_text().as_bytes());
    }

    proptest! {
        // Bounded: the fuzz targets (scripts/fuzz.sh) are where long runs go.
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_baseline_parser_rejects_damage_without_panicking(d in mutated(baseline_text())) {
            check_baseline(&d);
        }

        #[test]
        fn the_results_parser_rejects_damage_without_panicking(d in mutated(results_text())) {
            check_results(&d);
        }

        #[test]
        fn the_scenario_file_parser_rejects_damage_without_panicking(d in mutated(scenario_text())) {
            check_scenario_files(&d);
        }

        #[test]
        fn the_file_parsers_reject_any_bytes_without_panicking(d in vec(any::<u8>(), 0..256)) {
            check_baseline(&d);
            check_results(&d);
            check_scenario_files(&d);
        }
    }
}
