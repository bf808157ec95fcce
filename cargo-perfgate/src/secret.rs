//! Values that must never be printed or written anywhere.

/// A value that must never be printed (a webhook URL carries its token): `Debug` shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::from("http://hooks/T0KEN".to_string());
        assert!(!format!("{s:?}").contains("T0KEN"));
        assert_eq!(s.expose(), "http://hooks/T0KEN");
    }
}
