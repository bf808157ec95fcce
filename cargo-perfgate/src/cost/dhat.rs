//! Totals of a DHAT profile (`valgrind --tool=dhat`, JSON, file version 2).
//!
//! DHAT has no monitor command to mark a window, so its totals cover the whole process:
//! per-iteration figures come from two runs that differ only in their iteration count
//! ([`per_iteration_between`]). The window pass uses massif's xtree dumps instead (one run);
//! this stays as the fallback and as a cross-check.

use serde::Deserialize;

/// Heap totals over a whole DHAT run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhatTotals {
    /// Bytes allocated (every block counted once, freed or not).
    pub bytes: u64,
    /// Blocks allocated.
    pub blocks: u64,
    /// Instructions executed by the end of the run (DHAT's clock, `te`).
    pub end_instructions: u64,
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "dhatFileVersion")]
    version: u32,
    mode: String,
    #[serde(default)]
    te: u64,
    pps: Vec<ProgramPoint>,
}

#[derive(Deserialize)]
struct ProgramPoint {
    tb: u64,
    tbk: u64,
}

/// Reads the JSON DHAT writes with `--dhat-out-file`.
pub fn parse(text: &str) -> Result<DhatTotals, String> {
    let file: File =
        serde_json::from_str(text).map_err(|e| format!("not a DHAT JSON profile: {e}"))?;
    if file.version != 2 {
        return Err(format!(
            "DHAT file version {} (only version 2 is understood)",
            file.version
        ));
    }
    // copy and ad-hoc modes count other things in the same fields.
    if file.mode != "heap" {
        return Err(format!(
            "DHAT ran in {} mode; heap mode is needed",
            file.mode
        ));
    }
    Ok(DhatTotals {
        bytes: file.pps.iter().map(|p| p.tb).sum(),
        blocks: file.pps.iter().map(|p| p.tbk).sum(),
        end_instructions: file.te,
    })
}

/// Bytes and blocks per iteration from a short and a long run (same warm-up, `short_n` and
/// `long_n` measured iterations): startup and shutdown cancel out. None when the counts do not
/// make a difference to divide by, or the long run allocated less than the short one.
pub fn per_iteration_between(
    short: &DhatTotals,
    short_n: u64,
    long: &DhatTotals,
    long_n: u64,
) -> Option<(f64, f64)> {
    if long_n <= short_n || long.bytes < short.bytes || long.blocks < short.blocks {
        return None;
    }
    let n = (long_n - short_n) as f64;
    Some((
        (long.bytes - short.bytes) as f64 / n,
        (long.blocks - short.blocks) as f64 / n,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/cost/testdata")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn dhat_totals_sum_every_program_point() {
        // The four largest program points of a run of GET /items/{id} (50 warm-up + 20).
        let t = parse(&testdata("dhat-item.json")).unwrap();
        assert_eq!(t.bytes, 573_440 + 143_616 + 135_184 + 131_708);
        assert_eq!(t.blocks, 70 + 264 + 1 + 8);
        assert_eq!(t.end_instructions, 11_965_790);
    }

    #[test]
    fn dhat_refuses_other_modes_and_versions() {
        let copy = r#"{"dhatFileVersion":2,"mode":"copy","te":1,"pps":[]}"#;
        assert!(parse(copy).unwrap_err().contains("copy mode"));
        let v1 = r#"{"dhatFileVersion":1,"mode":"heap","te":1,"pps":[]}"#;
        assert!(parse(v1).unwrap_err().contains("version 1"));
        assert!(parse("callgrind").is_err());
    }

    #[test]
    fn dhat_difference_of_two_runs_gives_the_per_iteration_figures() {
        // Measured on predict-service, POST /predict, 50 warm-up then 100 or 300 iterations.
        let short = DhatTotals {
            bytes: 2_794_020,
            blocks: 27_265,
            end_instructions: 23_540_391,
        };
        let long = DhatTotals {
            bytes: 5_525_033,
            blocks: 49_225,
            end_instructions: 39_305_024,
        };
        let (bytes, blocks) = per_iteration_between(&short, 100, &long, 300).unwrap();
        assert!((bytes - 13_655.065).abs() < 1e-9, "{bytes}");
        assert!((blocks - 109.8).abs() < 1e-9, "{blocks}");
        assert_eq!(per_iteration_between(&long, 300, &short, 100), None);
        assert_eq!(per_iteration_between(&short, 100, &long, 100), None);
    }
}
