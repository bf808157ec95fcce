//! Retrains the small model from `data/train.jsonl`, writes `model/small.tsv` and reports the
//! held-out accuracy of both models on `data/test.jsonl`.
//!
//! Run from anywhere: `cargo run -p predict-service --bin train --release`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use predict_service::model::naive_bayes::{Counts, NaiveBayes};
use predict_service::model::{accuracy, parse_examples, Example, Model, ModelKind};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    // Read the files, not the copies compiled into the library, so edited data is picked up.
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| {
        std::fs::read_to_string(crate_dir.join(p)).map_err(|e| format!("reading {p}: {e}"))
    };
    let train = parse_examples(&read("data/train.jsonl")?)?;
    let test = parse_examples(&read("data/test.jsonl")?)?;

    let counts = Counts::train(&train);
    let out = crate_dir.join("model/small.tsv");
    std::fs::write(&out, counts.to_tsv()).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!(
        "wrote {} ({} labels, {} features, {} training messages)",
        out.display(),
        counts.labels.len(),
        counts.features.len(),
        train.len()
    );

    let small = Model::Small(NaiveBayes::from_counts(&counts));
    report("small", &small, &test);
    let start = Instant::now();
    let large = Model::load(ModelKind::Large)?;
    println!(
        "large: trained in {:.2?} from the compiled-in training data",
        start.elapsed()
    );
    report("large", &large, &test);
    Ok(())
}

/// Accuracy, and the mean time of one prediction: the model's own cost, without HTTP.
fn report(name: &str, model: &Model, test: &[Example]) {
    let start = Instant::now();
    let acc = accuracy(model, test);
    let per_message = start.elapsed() / test.len() as u32;
    println!(
        "{name}: test accuracy {acc:.3} on {} messages, {per_message:.2?} per prediction",
        test.len()
    );
}
