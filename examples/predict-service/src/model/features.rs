//! Text → features. Shared by both models and by the trainer, so training and serving can never
//! tokenise differently.

/// Lower-cased word tokens. Apostrophes are dropped inside words ("don't" → "dont") and every run
/// of digits becomes `<num>`, so order numbers and prices share one feature instead of thousands.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<String>| {
        if current.is_empty() {
            return;
        }
        if current.chars().all(|c| c.is_ascii_digit()) {
            out.push("<num>".to_owned());
            current.clear();
        } else {
            out.push(std::mem::take(current));
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            // Part of a contraction: keep the word together.
        } else {
            flush(&mut current, &mut out);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Word unigrams and bigrams (bigrams joined by a space, which no unigram contains).
pub fn word_ngrams(text: &str) -> Vec<String> {
    let words = words(text);
    let mut out = Vec::with_capacity(words.len() * 2);
    for (i, w) in words.iter().enumerate() {
        out.push(w.clone());
        if let Some(next) = words.get(i + 1) {
            out.push(format!("{w} {next}"));
        }
    }
    out
}

/// 64-bit FNV-1a: small, fast, stable across platforms and releases (std's hasher is neither).
pub fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Calls `emit(bucket)` for every hashed feature of `text`: word 1–2-grams plus character 3–5-grams
/// of each word padded as `<word>`. Character n-grams make the model robust to typos and
/// inflections ("refund" / "refunded" / "refnud") at the price of many more features per message.
pub fn hashed_features(text: &str, buckets: usize, mut emit: impl FnMut(usize)) {
    let buckets = buckets as u64;
    // Different seeds keep a word and an identical character n-gram from sharing a bucket.
    const WORD_SEED: u64 = 1;
    const CHAR_SEED: u64 = 2;
    for gram in word_ngrams(text) {
        emit((fnv1a(gram.as_bytes(), WORD_SEED) % buckets) as usize);
    }
    let mut padded: Vec<char> = Vec::new();
    let mut buf = String::new();
    for word in words(text) {
        padded.clear();
        padded.push('<');
        padded.extend(word.chars());
        padded.push('>');
        for n in 3..=5 {
            for window in padded.windows(n) {
                buf.clear();
                buf.extend(window);
                emit((fnv1a(buf.as_bytes(), CHAR_SEED) % buckets) as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_normalise_case_digits_and_contractions() {
        assert_eq!(
            words("I DON'T have order #123456, charged $19.99!"),
            ["i", "dont", "have", "order", "<num>", "charged", "<num>", "<num>"]
        );
        assert!(words("  ...  ").is_empty());
    }

    #[test]
    fn ngrams_include_bigrams() {
        assert_eq!(word_ngrams("Wrong size"), ["wrong", "wrong size", "size"]);
    }

    #[test]
    fn hashed_features_cover_words_and_char_grams() {
        let mut n = 0;
        hashed_features("refund", 1 << 10, |b| {
            assert!(b < 1 << 10);
            n += 1;
        });
        // 1 word + "<refund>" has 8 chars: 6 trigrams, 5 four-grams, 4 five-grams.
        assert_eq!(n, 1 + 6 + 5 + 4);
    }
}
