//! The product catalogue behind `GET /items/{id}`, loaded once at start.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// `data/catalogue.jsonl`, compiled in so the binary needs no working directory.
pub const CATALOGUE_DATA: &str = include_str!("../data/catalogue.jsonl");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: u64,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub price: f64,
    pub currency: String,
    pub stock: u32,
    pub rating: f32,
}

pub struct Catalogue {
    items: HashMap<u64, Item>,
}

impl Catalogue {
    /// Parses JSON Lines of items; a duplicate id is an error rather than a silent overwrite.
    pub fn parse(jsonl: &str) -> Result<Catalogue, String> {
        let mut items = HashMap::new();
        for (n, line) in jsonl.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let item: Item =
                serde_json::from_str(line).map_err(|e| format!("catalogue line {}: {e}", n + 1))?;
            if let Some(old) = items.insert(item.id, item) {
                return Err(format!("catalogue line {}: duplicate id {}", n + 1, old.id));
            }
        }
        Ok(Catalogue { items })
    }

    pub fn bundled() -> Result<Catalogue, String> {
        Catalogue::parse(CATALOGUE_DATA)
    }

    pub fn get(&self, id: u64) -> Option<&Item> {
        self.items.get(&id)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_catalogue_loads() {
        let c = Catalogue::bundled().unwrap();
        assert_eq!(c.len(), 400);
        let item = c.get(1).unwrap();
        assert_eq!(item.id, 1);
        assert!(!item.sku.is_empty() && item.price > 0.0);
        assert!(c.get(0).is_none() && c.get(401).is_none());
    }

    #[test]
    fn rejects_duplicates_and_bad_lines() {
        let line = r#"{"id":1,"sku":"A","name":"n","category":"c","price":1.0,"currency":"USD","stock":0,"rating":4.0}"#;
        let err = Catalogue::parse(&format!("{line}\n{line}\n"))
            .err()
            .unwrap();
        assert!(err.contains("duplicate id 1"), "{err}");
        assert!(Catalogue::parse("{\"id\": \"x\"}")
            .err()
            .unwrap()
            .contains("line 1"));
        assert!(Catalogue::parse("\n").unwrap().is_empty());
    }
}
