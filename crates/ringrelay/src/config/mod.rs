//! Typed, layered configuration (DESIGN §5): the embedded defaults ([`DEFAULT_CONFIG`]),
//! then the TOML file, then `RINGRELAY_<SECTION>__<KEY>` environment variables. Raw values
//! become real types (durations, URLs, resolved secrets) here, once, and every problem is
//! reported with the key it concerns and what to do about it.

mod env;
mod raw;
mod secret;
mod types;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub use secret::Secret;
pub use types::*;

/// The commented default config, printed by `ringrelay config print-default`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The filters a subscription asks for when an account sets none (DESIGN §5).
pub const DEFAULT_EVENT_FILTERS: [&str; 3] = [
    "/restapi/v1.0/account/~/telephony/sessions",
    "/restapi/v1.0/account/~/extension/~/voicemail",
    "/restapi/v1.0/account/~/extension/~/call-log",
];

/// One thing wrong with a config: the key it concerns and a message saying how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, e.g. `accounts[0].jwt` (or `(file)` for a syntax error).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the configuration has {} problem(s):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

/// Loads settings from config text and an environment (a pure function apart from
/// reading `file:` secrets).
///
/// # Errors
/// [`ConfigError`] listing every problem with its key.
pub fn load(text: &str, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    let mut tree: toml::Value = toml::from_str(DEFAULT_CONFIG)
        .map_err(|e| ConfigError::one("(defaults)", e.to_string()))?;
    let file: toml::Value = toml::from_str(text)
        .map_err(|e| ConfigError::one("(file)", format!("not valid TOML: {e}")))?;
    merge(&mut tree, file);
    env::apply(&mut tree, env).map_err(|e| ConfigError::one("(environment)", e))?;
    let raw: raw::RawConfig = serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::one(
            if key == "." { "(file)".into() } else { key },
            e.inner().to_string(),
        )
    })?;
    types::build(raw, env)
}

/// Reads the file at `path` and loads it with the process environment.
///
/// # Errors
/// [`ConfigError`] when the file cannot be read or has problems.
pub fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::one(
            "(file)",
            format!(
                "cannot read {}: {e}; pass --config PATH or create it from `ringrelay config print-default`",
                path.display()
            ),
        )
    })?;
    load(&text, &std::env::vars().collect())
}

/// Deep-merges `over` into `base`: tables merge key by key, everything else replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests;
