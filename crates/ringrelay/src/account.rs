//! Account identity: the slug an operator gives each customer RingCentral account.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated account slug (`[a-z0-9-]+`, 1 to 63 characters, no leading or trailing `-`).
///
/// It names the account in config, in the webhook path `/webhooks/ringcentral/{account}`,
/// in activity keys and in every log line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

/// Why a string is not a valid account slug.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid account id {given:?}: use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
)]
pub struct InvalidAccountId {
    /// The rejected text.
    pub given: String,
}

impl AccountId {
    /// Parses and validates a slug.
    ///
    /// # Errors
    /// [`InvalidAccountId`] when the text is empty, too long or has other characters.
    pub fn parse(s: &str) -> Result<Self, InvalidAccountId> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidAccountId {
                given: s.to_owned(),
            })
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AccountId {
    type Err = InvalidAccountId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AccountId {
    type Error = InvalidAccountId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> Self {
        id.0
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_of_lowercase_letters_digits_and_dashes_are_accepted() {
        for ok in ["acme", "acme-2", "a", "0-x"] {
            assert_eq!(AccountId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn other_text_is_rejected_with_the_rule_in_the_message() {
        for bad in [
            "",
            "Acme",
            "acme_2",
            "-acme",
            "acme-",
            "a b",
            &"x".repeat(64),
        ] {
            let err = AccountId::parse(bad).unwrap_err();
            assert!(err.to_string().contains("a-z, 0-9"), "{err}");
        }
    }
}
