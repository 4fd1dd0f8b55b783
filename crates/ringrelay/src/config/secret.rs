//! Secrets in config: `env:NAME`, `file:/path` or a literal, resolved once at load and kept
//! in a type whose `Debug` and `Display` never show the value.

use std::collections::HashMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A resolved secret value. Printing it shows `[redacted]`.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a literal value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret text, for the few places that must send it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is empty (an unset optional secret).
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Resolves a config reference: `env:NAME` from `env`, `file:/path` from the file
    /// (surrounding white space trimmed), anything else as the literal value.
    ///
    /// # Errors
    /// A message saying which variable is unset or which file cannot be read.
    pub fn resolve(raw: &str, env: &HashMap<String, String>) -> Result<Self, String> {
        if let Some(name) = raw.strip_prefix("env:") {
            return env.get(name).map(|v| Self::new(v.clone())).ok_or_else(|| {
                format!("environment variable {name} is not set (referenced as \"env:{name}\")")
            });
        }
        if let Some(path) = raw.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|v| Self::new(v.trim().to_owned()))
                .map_err(|e| format!("cannot read secret file {path}: {e}"));
        }
        Ok(Self::new(raw))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_are_read_from_the_given_environment() {
        let env = HashMap::from([("X".to_owned(), "s3cret".to_owned())]);
        assert_eq!(Secret::resolve("env:X", &env).unwrap().expose(), "s3cret");
        let err = Secret::resolve("env:Y", &env).unwrap_err();
        assert!(err.contains("Y is not set"), "{err}");
    }

    #[test]
    fn file_references_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\n").unwrap();
        let s = Secret::resolve(&format!("file:{}", p.display()), &HashMap::new()).unwrap();
        assert_eq!(s.expose(), "abc");
    }

    #[test]
    fn a_secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
