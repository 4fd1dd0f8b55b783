//! Which activities a sink takes: an account list (empty = every account) and activity
//! type globs (`call.*`, `voicemail.received`, `*`).

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::account::AccountId;
use crate::activity::Activity;

/// A sink's filter.
#[derive(Debug, Clone)]
pub struct Matcher {
    accounts: Vec<AccountId>,
    types: GlobSet,
}

impl Matcher {
    /// A filter for `accounts` (empty = all) and type `globs` (empty = none).
    ///
    /// # Errors
    /// A message naming the glob that does not parse.
    pub fn new(accounts: &[AccountId], globs: &[String]) -> Result<Self, String> {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            b.add(Glob::new(g).map_err(|e| format!("{g:?} is not a glob ({e})"))?);
        }
        let types = b.build().map_err(|e| e.to_string())?;
        Ok(Self {
            accounts: accounts.to_vec(),
            types,
        })
    }

    /// Whether an activity of `kind` (wire name) for `account` goes to this sink.
    pub fn matches_parts(&self, account: &AccountId, kind: &str) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(account)) && self.types.is_match(kind)
    }

    /// Whether `activity` goes to this sink.
    pub fn matches(&self, activity: &Activity) -> bool {
        self.matches_parts(&activity.account, activity.kind.as_str())
    }
}

/// The names of the sinks among `sinks` that take `activity` (what the processor stores as
/// its deliveries).
pub fn sinks_for<'a>(
    sinks: impl IntoIterator<Item = (&'a str, &'a Matcher)>,
    activity: &Activity,
) -> Vec<String> {
    sinks
        .into_iter()
        .filter(|(_, m)| m.matches(activity))
        .map(|(n, _)| n.to_owned())
        .collect()
}
