//! The large model: a memory-based classifier.
//!
//! Every training message is kept as a dense, L2-normalised TF-IDF vector over hashed word 1–2-grams
//! and character 3–5-grams, and a message is labelled by a similarity-weighted vote of its k nearest
//! training messages (cosine similarity, brute force). It is what an embedding + vector-search
//! classifier without an index does: accurate and robust to typos, but every request scans the whole
//! table (tens of MB), so it is markedly slower and hungrier than the naive Bayes model — which is
//! exactly what the example needs to show a perf gate catching a model swap.

use super::{features, Example};

/// Hash buckets per vector. 16384 × 1000 training messages × 4 bytes ≈ 64 MiB.
pub const DIM: usize = 16384;
pub const K: usize = 7;

pub struct Knn {
    labels: Vec<String>,
    idf: Vec<f32>,
    /// `rows.len() == row_labels.len() * DIM`, row-major so a scan is one sequential pass.
    rows: Vec<f32>,
    row_labels: Vec<usize>,
}

impl Knn {
    pub fn train(examples: &[Example]) -> Knn {
        let (labels, index) = super::label_index(examples);

        let mut rows = vec![0f32; examples.len() * DIM];
        let mut df = vec![0u32; DIM];
        for (e, row) in examples.iter().zip(rows.chunks_exact_mut(DIM)) {
            term_frequencies(&e.text, row);
            for (d, &v) in df.iter_mut().zip(row.iter()) {
                *d += u32::from(v > 0.0);
            }
        }
        let n = examples.len() as f32;
        // Smoothed IDF, as if one extra document held every feature (no division by zero).
        let idf: Vec<f32> = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        for row in rows.chunks_exact_mut(DIM) {
            weigh_and_normalise(row, &idf);
        }
        let row_labels = examples.iter().map(|e| index[e.label.as_str()]).collect();
        Knn {
            labels,
            idf,
            rows,
            row_labels,
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Share of the neighbours' similarity mass per label (sums to 1 unless nothing is similar).
    pub fn scores(&self, text: &str) -> Vec<f32> {
        let mut query = vec![0f32; DIM];
        term_frequencies(text, &mut query);
        weigh_and_normalise(&mut query, &self.idf);

        // Top-K by similarity, kept sorted descending; K is tiny so insertion beats a heap.
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(K + 1);
        for (row, &label) in self.rows.chunks_exact(DIM).zip(&self.row_labels) {
            let sim = dot(&query, row);
            if best.len() < K || sim > best[best.len() - 1].0 {
                let at = best.partition_point(|&(s, _)| s >= sim);
                best.insert(at, (sim, label));
                best.truncate(K);
            }
        }
        let mut scores = vec![0f32; self.labels.len()];
        for &(sim, label) in &best {
            scores[label] += sim.max(0.0);
        }
        let total: f32 = scores.iter().sum();
        if total > 0.0 {
            scores.iter_mut().for_each(|s| *s /= total);
        }
        scores
    }

    /// Bytes held by the model's tables (for the startup line and the README).
    pub fn table_bytes(&self) -> usize {
        (self.rows.len() + self.idf.len()) * std::mem::size_of::<f32>()
    }
}

fn term_frequencies(text: &str, row: &mut [f32]) {
    let buckets = row.len();
    features::hashed_features(text, buckets, |b| row[b] += 1.0);
}

/// Sublinear TF (1 + ln tf) times IDF, then unit length so a dot product is the cosine.
fn weigh_and_normalise(row: &mut [f32], idf: &[f32]) {
    let mut norm = 0.0;
    for (v, &w) in row.iter_mut().zip(idf) {
        if *v > 0.0 {
            *v = (1.0 + v.ln()) * w;
            norm += *v * *v;
        }
    }
    if norm > 0.0 {
        let inv = norm.sqrt().recip();
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Eight independent accumulators let the compiler vectorise the loop (a single running sum
/// would force strict left-to-right float addition).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let tail: f32 = a
        .chunks_exact(8)
        .remainder()
        .iter()
        .zip(b.chunks_exact(8).remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn normalised_rows_have_unit_length() {
        let mut row = vec![0f32; 64];
        term_frequencies("my parcel never arrived", &mut row);
        weigh_and_normalise(&mut row, &[1.5; 64]);
        let norm: f32 = row.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
