//! What makes two measurements of a scenario comparable: a hash over its spec parts, and a sentence
//! naming the parts that changed.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of the parts, in their (sorted) order.
pub fn spec_hash(parts: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    format!("sha256:{}", &hex(&h.finalize())[..32])
}

/// Which parts differ between two specs, for the "not comparable" note.
pub fn describe_spec_change(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> String {
    let mut changes = Vec::new();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (old.get(k), new.get(k)) {
            (Some(a), Some(b)) if a != b => {
                if k.starts_with("data ") {
                    changes.push(format!("{k} changed"));
                } else {
                    changes.push(format!("{k}: `{a}` → `{b}`"));
                }
            }
            (Some(_), None) => changes.push(format!("{k} removed")),
            (None, Some(_)) => changes.push(format!("{k} added")),
            _ => {}
        }
    }
    if changes.is_empty() {
        "the scenario's spec hash changed".to_string()
    } else {
        changes.join("; ")
    }
}

/// The tiers of two measurements when they differ (`("smoke", "nightly")`); a measurement without a
/// tier part is of the smoke tier.
pub fn tier_change(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Option<(String, String)> {
    let tier = |p: &BTreeMap<String, String>| p.get("tier").cloned().unwrap_or("smoke".into());
    let (a, b) = (tier(old), tier(new));
    (a != b).then_some((a, b))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
