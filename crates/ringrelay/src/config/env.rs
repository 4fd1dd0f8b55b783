//! `RINGRELAY_<SECTION>__<KEY>` environment overrides, applied to the parsed TOML tree.

use std::collections::HashMap;

use toml::Value;

/// The prefix of override variables.
const PREFIX: &str = "RINGRELAY_";

/// Applies every `RINGRELAY_A__B__C=value` variable to `tree` at path `a.b.c` (numeric
/// segments index arrays, e.g. `RINGRELAY_ACCOUNTS__0__JWT`). Variables without `__`
/// (such as `RINGRELAY_CONFIG`) are not overrides. Values are read as TOML when they parse
/// (numbers, booleans, arrays) and as strings otherwise.
///
/// # Errors
/// A message naming the variable when its path does not fit the tree.
pub fn apply(tree: &mut Value, env: &HashMap<String, String>) -> Result<(), String> {
    let mut vars: Vec<_> = env
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && k.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(format!("{name}: empty key segment"));
        }
        set(tree, &path, parse_value(raw)).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

fn parse_value(raw: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn set(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    match node {
        Value::Table(t) => {
            let child = t
                .entry(head.clone())
                .or_insert_with(|| Value::Table(toml::Table::new()));
            set(child, rest, value)
        }
        Value::Array(items) => {
            let idx: usize = head
                .parse()
                .map_err(|_| format!("'{head}' must be an array index"))?;
            if idx > items.len() {
                return Err(format!(
                    "index {idx} skips entries (there are {})",
                    items.len()
                ));
            }
            if idx == items.len() {
                items.push(Value::Table(toml::Table::new()));
            }
            set(&mut items[idx], rest, value)
        }
        _ => Err(format!("'{head}' is below a value that is not a table")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn section_keys_and_array_entries_are_overridden() {
        let mut tree: Value =
            toml::from_str("[server]\nlisten='x'\n[[accounts]]\nid='a'\n").unwrap();
        apply(
            &mut tree,
            &env(&[
                ("RINGRELAY_SERVER__LISTEN", "127.0.0.1:1"),
                ("RINGRELAY_SERVER__MAX_BODY_BYTES", "10"),
                ("RINGRELAY_ACCOUNTS__0__JWT", "env:J"),
                ("RINGRELAY_CONFIG", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(tree["server"]["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(tree["server"]["max_body_bytes"].as_integer(), Some(10));
        assert_eq!(tree["accounts"][0]["jwt"].as_str(), Some("env:J"));
    }

    #[test]
    fn an_index_that_skips_entries_is_an_error_naming_the_variable() {
        let mut tree: Value = toml::from_str("accounts = []").unwrap();
        let err = apply(&mut tree, &env(&[("RINGRELAY_ACCOUNTS__3__ID", "x")])).unwrap_err();
        assert!(err.starts_with("RINGRELAY_ACCOUNTS__3__ID"), "{err}");
    }
}
