//! The most recent predictions, kept so that a support agent's tool can ask why a message went
//! where it went (`GET /predictions/{id}`): the message, the label and every score.
//!
//! It keeps the last [`DEFAULT_KEEP`] and forgets older ones. `PREDICT_LEAK=1` turns the
//! forgetting off — the classic bug of a cache without eviction: every prediction stays, and the
//! service's memory grows with every request until something kills it. perfgate's leak check is
//! meant to catch exactly that in a soak run (see the README).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::model::Prediction;

/// Predictions kept when eviction works: a few seconds of traffic at the perf test's rate.
pub const DEFAULT_KEEP: usize = 1024;

/// A kept prediction with the message it was made for.
#[derive(Serialize)]
pub struct Explained {
    pub id: u64,
    pub text: String,
    #[serde(flatten)]
    pub prediction: Prediction,
}

/// The kept predictions by id (ids increase, so the oldest is the first).
pub struct RecentPredictions {
    next: AtomicU64,
    entries: Mutex<BTreeMap<u64, Explained>>,
    /// None: never forget (the leak).
    keep: Option<usize>,
}

impl RecentPredictions {
    /// Keeps the last `keep` predictions.
    pub fn new(keep: usize) -> RecentPredictions {
        RecentPredictions {
            next: AtomicU64::new(1),
            entries: Mutex::new(BTreeMap::new()),
            keep: Some(keep),
        }
    }

    /// Keeps every prediction forever: the leak `PREDICT_LEAK=1` switches on.
    pub fn never_evicting() -> RecentPredictions {
        RecentPredictions {
            keep: None,
            ..RecentPredictions::new(0)
        }
    }

    /// Whether this store forgets old predictions.
    pub fn evicts(&self) -> bool {
        self.keep.is_some()
    }

    /// The id the next prediction is stored under.
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores prediction `id` (taking its message and result: no copies), forgetting the oldest
    /// beyond the number kept.
    pub fn insert(&self, id: u64, text: String, prediction: Prediction) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.insert(
            id,
            Explained {
                id,
                text,
                prediction,
            },
        );
        if let Some(keep) = self.keep {
            while e.len() > keep {
                e.pop_first();
            }
        }
    }

    /// The prediction `id` as JSON, if it is still kept.
    pub fn get_json(&self, id: u64) -> Option<Vec<u8>> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.get(&id)
            .map(|x| serde_json::to_vec(x).expect("a prediction serialises"))
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn prediction(label: &str) -> Prediction {
        Prediction {
            label: label.into(),
            confidence: 0.9,
            scores: BTreeMap::from([(label.to_string(), 0.9)]),
            model: "small".into(),
        }
    }

    #[test]
    fn keeps_the_last_ones_and_forgets_older() {
        let r = RecentPredictions::new(2);
        let ids: Vec<u64> = ["a", "b", "c"]
            .iter()
            .map(|l| {
                let id = r.next_id();
                r.insert(id, format!("text {l}"), prediction(l));
                id
            })
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(r.len(), 2);
        assert!(r.get_json(1).is_none(), "evicted");
        let v: serde_json::Value = serde_json::from_slice(&r.get_json(3).unwrap()).unwrap();
        assert_eq!(
            (v["id"].as_u64(), v["label"].as_str()),
            (Some(3), Some("c"))
        );
        assert_eq!(v["text"], "text c");
        assert!(r.get_json(4).is_none() && r.get_json(0).is_none());
    }

    #[test]
    fn the_leak_keeps_everything() {
        let r = RecentPredictions::never_evicting();
        assert!(!r.evicts());
        for i in 0..5000 {
            r.insert(r.next_id(), format!("message {i}"), prediction("billing"));
        }
        assert_eq!(r.len(), 5000);
        assert!(r.get_json(1).is_some());
    }
}
