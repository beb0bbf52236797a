//! [`Secret`]: a value that must never reach a log (a password, a connection string, a signing
//! key). A leaf: it imports nothing from the crate, so every layer may hold one. Where secrets
//! come from (the config file, the environment) is the config module's business.

use std::fmt;

/// A value that must not be printed: `Debug` shows `Secret(***)`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that needs it (opening a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
        assert_eq!(Secret::new("pw").expose(), "pw");
    }
}
