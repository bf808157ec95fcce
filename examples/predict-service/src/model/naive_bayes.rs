//! The small model: multinomial naive Bayes over word 1–2-grams.
//!
//! The shipped file (`model/small.tsv`) holds the sufficient statistics — per-queue feature counts
//! and message counts — rather than log-probabilities: integers are exact, diff well in review and
//! keep the smoothing a load-time choice recorded in the same file.

use std::collections::{BTreeMap, HashMap};

use super::{features, Example};

/// Features seen fewer times than this in the whole training set are dropped: they are mostly
/// one-off bigrams that add file size and noise, not accuracy.
const MIN_COUNT: u32 = 2;
/// Laplace smoothing; 0.2 and 0.5 were no better on data/test.jsonl.
const ALPHA: f64 = 1.0;
const HEADER: &str = "# predict-service naive Bayes counts v1";

/// Training output: what `src/bin/train.rs` writes and the service reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub labels: Vec<String>,
    pub alpha: f64,
    /// Training messages per label.
    pub docs: Vec<u32>,
    /// Occurrences of each feature per label, sorted by feature for a stable file.
    pub features: BTreeMap<String, Vec<u32>>,
}

impl Counts {
    pub fn train(examples: &[Example]) -> Counts {
        let (labels, index) = super::label_index(examples);
        let mut docs = vec![0; labels.len()];
        let mut features: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for e in examples {
            let c = index[e.label.as_str()];
            docs[c] += 1;
            for f in features::word_ngrams(&e.text) {
                features.entry(f).or_insert_with(|| vec![0; labels.len()])[c] += 1;
            }
        }
        features.retain(|_, counts| counts.iter().sum::<u32>() >= MIN_COUNT);
        Counts {
            labels,
            alpha: ALPHA,
            docs,
            features,
        }
    }

    pub fn to_tsv(&self) -> String {
        let mut out = format!(
            "{HEADER}\n# features: word 1-2-grams; regenerate with `cargo run -p predict-service --bin train`\n"
        );
        out.push_str(&format!("labels\t{}\n", self.labels.join("\t")));
        out.push_str(&format!("alpha\t{}\n", self.alpha));
        out.push_str(&format!("docs\t{}\n", join(&self.docs)));
        for (f, counts) in &self.features {
            out.push_str(&format!("f\t{f}\t{}\n", join(counts)));
        }
        out
    }

    pub fn from_tsv(tsv: &str) -> Result<Counts, String> {
        let mut labels = None;
        let mut alpha = None;
        let mut docs = None;
        let mut features = BTreeMap::new();
        for (n, line) in tsv.lines().enumerate() {
            let err = |what: &str| format!("model line {}: {what}", n + 1);
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            match fields.next() {
                Some("labels") => labels = Some(fields.map(str::to_owned).collect::<Vec<_>>()),
                Some("alpha") => {
                    alpha = Some(
                        fields
                            .next()
                            .and_then(|a| a.parse::<f64>().ok())
                            .filter(|a| *a > 0.0)
                            .ok_or_else(|| err("alpha must be a positive number"))?,
                    )
                }
                Some("docs") => docs = Some(parse_counts(fields).map_err(|e| err(&e))?),
                Some("f") => {
                    let feature = fields.next().ok_or_else(|| err("missing feature"))?;
                    let counts = parse_counts(fields).map_err(|e| err(&e))?;
                    features.insert(feature.to_owned(), counts);
                }
                _ => return Err(err("unknown record")),
            }
        }
        let labels = labels.ok_or("model has no `labels` line")?;
        let docs: Vec<u32> = docs.ok_or("model has no `docs` line")?;
        if labels.is_empty() || docs.len() != labels.len() {
            return Err("model: `docs` must have one count per label".into());
        }
        if let Some((f, _)) = features.iter().find(|(_, c)| c.len() != labels.len()) {
            return Err(format!(
                "model: feature {f:?} does not have one count per label"
            ));
        }
        Ok(Counts {
            labels,
            alpha: alpha.ok_or("model has no `alpha` line")?,
            docs,
            features,
        })
    }
}

fn join(counts: &[u32]) -> String {
    counts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("\t")
}

fn parse_counts<'a>(fields: impl Iterator<Item = &'a str>) -> Result<Vec<u32>, String> {
    fields
        .map(|f| f.parse::<u32>().map_err(|_| format!("bad count {f:?}")))
        .collect()
}

/// The servable model: smoothed log-probabilities in one flat table, one row per feature.
pub struct NaiveBayes {
    labels: Vec<String>,
    log_prior: Vec<f32>,
    index: HashMap<String, usize>,
    log_prob: Vec<f32>,
}

impl NaiveBayes {
    pub fn from_counts(counts: &Counts) -> NaiveBayes {
        let c = counts.labels.len();
        let vocab = counts.features.len() as f64;
        let total_docs: u32 = counts.docs.iter().sum();
        let log_prior = counts
            .docs
            .iter()
            .map(|&d| (f64::from(d) / f64::from(total_docs)).ln() as f32)
            .collect();
        let mut per_label = vec![0u64; c];
        for row in counts.features.values() {
            for (t, &n) in per_label.iter_mut().zip(row) {
                *t += u64::from(n);
            }
        }
        let mut index = HashMap::with_capacity(counts.features.len());
        let mut log_prob = Vec::with_capacity(counts.features.len() * c);
        for (i, (feature, row)) in counts.features.iter().enumerate() {
            index.insert(feature.clone(), i);
            for (label, &n) in row.iter().enumerate() {
                let p = (f64::from(n) + counts.alpha)
                    / (per_label[label] as f64 + counts.alpha * vocab);
                log_prob.push(p.ln() as f32);
            }
        }
        NaiveBayes {
            labels: counts.labels.clone(),
            log_prior,
            index,
            log_prob,
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Log-posterior (up to a constant) per label. Features never seen in training carry no
    /// evidence either way, so they are skipped rather than smoothed.
    pub fn log_scores(&self, text: &str) -> Vec<f32> {
        let c = self.labels.len();
        let mut scores = self.log_prior.clone();
        for f in features::word_ngrams(text) {
            if let Some(&row) = self.index.get(&f) {
                for (s, lp) in scores
                    .iter_mut()
                    .zip(&self.log_prob[row * c..(row + 1) * c])
                {
                    *s += lp;
                }
            }
        }
        scores
    }
}
