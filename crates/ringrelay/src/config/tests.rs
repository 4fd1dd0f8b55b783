//! Unit tests of config loading: defaults, layering, secrets and error messages.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const ONE_ACCOUNT: &str = r#"
[[accounts]]
id = "acme"
client_id = "cid"
client_secret = "env:ACME_SECRET"
jwt = "env:ACME_JWT"

[[sinks]]
name = "crm"
type = "webhook"
url = "https://crm.example.com/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
types = ["call.*"]
"#;

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let s = load("", &HashMap::new()).unwrap();
    assert_eq!(s.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(s.server.max_body_bytes, 256 * 1024);
    assert!(s.server.admin_token.is_none());
    assert_eq!(s.store.url, StoreUrl::Sqlite("ringrelay.db".into()));
    assert_eq!(s.store.inbox_retention, Duration::from_secs(30 * 86400));
    assert_eq!(s.keeper.reconcile_interval, Duration::from_secs(300));
    assert!(s.accounts.is_empty() && s.sinks.is_empty());
}

#[test]
fn accounts_get_default_filters_lifetime_and_a_renewal_reminder() {
    let s = load(
        ONE_ACCOUNT,
        &env(&[("ACME_SECRET", "cs"), ("ACME_JWT", "jwt")]),
    )
    .unwrap();
    let a = &s.accounts[0];
    assert_eq!(a.id.as_str(), "acme");
    assert_eq!(a.jwt.expose(), "jwt");
    assert_eq!(
        a.event_filters,
        DEFAULT_EVENT_FILTERS.map(String::from).to_vec()
    );
    assert_eq!(a.expires_in, Duration::from_secs(7 * 86400));
    assert_eq!(a.renew_before, a.expires_in / 3);
    assert_eq!(
        a.reminder_filter().unwrap(),
        "/restapi/v1.0/subscription/~?threshold=172800&interval=43200"
    );
    assert_eq!(
        s.server.webhook_url(&a.id).as_str(),
        "http://localhost:8080/webhooks/ringcentral/acme"
    );
    let sink = &s.sinks[0];
    assert_eq!(sink.retry_schedule.len(), 7);
    assert!(
        matches!(&sink.kind, SinkKind::Webhook { timeout, .. } if *timeout == Duration::from_secs(15))
    );
}

#[test]
fn environment_variables_override_the_file() {
    let s = load(
        "[server]\nlisten = \"127.0.0.1:1\"\n",
        &env(&[
            ("RINGRELAY_SERVER__LISTEN", "127.0.0.1:2"),
            ("RINGRELAY_STORE__URL", "postgres://x/y"),
        ]),
    )
    .unwrap();
    assert_eq!(s.server.listen.port(), 2);
    assert_eq!(s.store.url, StoreUrl::Postgres("postgres://x/y".into()));
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let err = load("[server]\nlisen = \"x\"\n", &HashMap::new()).unwrap_err();
    let p = &err.problems[0];
    assert_eq!(p.key, "server.lisen");
    assert!(p.message.contains("unknown field `lisen`"), "{}", p.message);
}

#[test]
fn every_problem_is_listed_with_its_key() {
    let text = r#"
[server]
public_url = "ftp://x"
[log]
format = "xml"
[[accounts]]
id = "Bad_Id"
client_id = ""
client_secret = "env:MISSING"
jwt = "j"
expires_in = "forever"
[[sinks]]
name = "s"
type = "webhook"
secret = "nope"
accounts = ["ghost"]
"#;
    let err = load(text, &HashMap::new()).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "server.public_url",
        "log.format",
        "accounts[0].id",
        "accounts[0].client_id",
        "accounts[0].client_secret",
        "accounts[0].expires_in",
        "sinks[0].url",
        "sinks[0].secret",
        "sinks[0].accounts[0]",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert!(err.to_string().contains("MISSING is not set"));
}

#[test]
fn invalid_toml_says_so() {
    let err = load("[server\n", &HashMap::new()).unwrap_err();
    assert_eq!(err.problems[0].key, "(file)");
    assert!(err.problems[0].message.contains("not valid TOML"));
}

#[test]
fn the_printed_default_config_loads_and_lists_every_section() {
    let s = load(DEFAULT_CONFIG, &HashMap::new());
    assert!(s.is_ok());
    for section in [
        "[server]",
        "[store]",
        "[log]",
        "[keeper]",
        "[sync]",
        "[[accounts]]",
        "[[sinks]]",
    ] {
        assert!(DEFAULT_CONFIG.contains(section), "{section}");
    }
}

#[test]
fn the_configuration_reference_shows_the_printed_default_config_verbatim() {
    let doc = include_str!("../../../../docs/configuration.md");
    assert!(
        doc.contains(DEFAULT_CONFIG),
        "docs/configuration.md is out of date: paste `ringrelay config print-default` into it"
    );
}

#[test]
fn the_scope_defaults_to_company_and_takes_self_or_extension_ids() {
    let secrets = env(&[("ACME_SECRET", "cs"), ("ACME_JWT", "jwt")]);
    let s = load(ONE_ACCOUNT, &secrets).unwrap();
    assert_eq!(s.accounts[0].scope, Scope::Company);
    assert_eq!(s.keeper.extension_refresh, Duration::from_secs(3600));
    let with = |scope: &str| {
        ONE_ACCOUNT.replace(
            "jwt = \"env:ACME_JWT\"",
            &format!("jwt = \"env:ACME_JWT\"\nscope = {scope}"),
        )
    };
    let s = load(&with("\"self\""), &secrets).unwrap();
    assert_eq!(s.accounts[0].scope, Scope::SelfOnly);
    let s = load(&with("[\"62295327016\", 62295327017]"), &secrets).unwrap();
    assert_eq!(
        s.accounts[0].scope,
        Scope::Extensions(vec!["62295327016".into(), "62295327017".into()])
    );
    assert_eq!(
        s.accounts[0].scope.to_string(),
        "[62295327016, 62295327017]"
    );
    let mut by_env = secrets;
    by_env.insert("RINGRELAY_ACCOUNTS__0__SCOPE".into(), "self".into());
    assert_eq!(
        load(ONE_ACCOUNT, &by_env).unwrap().accounts[0].scope,
        Scope::SelfOnly
    );
}

#[test]
fn a_bad_scope_or_refresh_is_named_with_how_to_fix_it() {
    let secrets = env(&[("ACME_SECRET", "cs"), ("ACME_JWT", "jwt")]);
    let with = |scope: &str| {
        ONE_ACCOUNT.replace(
            "jwt = \"env:ACME_JWT\"",
            &format!("jwt = \"env:ACME_JWT\"\nscope = {scope}"),
        )
    };
    let problems = |text: &str| load(text, &secrets).unwrap_err().problems;
    let p = problems(&with("\"all\""));
    assert_eq!(p[0].key, "accounts[0].scope");
    assert!(
        p[0].message.contains("\"company\", \"self\""),
        "{}",
        p[0].message
    );
    let p = problems(&with("[]"));
    assert!(p[0].message.contains("empty list"), "{}", p[0].message);
    let p = problems(&with("[\"101\", \"x1\", \"101\"]"));
    let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["accounts[0].scope[1]", "accounts[0].scope[2]"]);
    assert!(p[1].message.contains("twice"));
    let p = problems(&format!(
        "[keeper]\nextension_refresh = \"10s\"\n{ONE_ACCOUNT}"
    ));
    assert_eq!(p[0].key, "keeper.extension_refresh");
}

#[test]
fn max_filters_per_subscription_defaults_overrides_and_is_checked() {
    let s = load("", &HashMap::new()).unwrap();
    assert_eq!(
        s.keeper.max_filters_per_subscription,
        crate::keeper::pack::DEFAULT_MAX_FILTERS
    );
    let s = load(
        "",
        &env(&[("RINGRELAY_KEEPER__MAX_FILTERS_PER_SUBSCRIPTION", "120")]),
    )
    .unwrap();
    assert_eq!(s.keeper.max_filters_per_subscription, 120);
    for bad in ["1", "0", "10001"] {
        let text = format!("[keeper]\nmax_filters_per_subscription = {bad}\n");
        let err = load(&text, &HashMap::new()).unwrap_err();
        assert_eq!(err.problems[0].key, "keeper.max_filters_per_subscription");
        assert!(err.to_string().contains("out of range"), "{err}");
    }
}

#[test]
fn cluster_defaults_and_replica_id() {
    let s = load("", &HashMap::new()).unwrap();
    assert_eq!(s.cluster.lease_ttl, Duration::from_secs(30));
    assert_eq!(s.cluster.lease_renew, Duration::from_secs(10));
    assert_eq!(s.server.replica_id, None, "empty: host name and process id");
    let s = load(
        "[server]\nreplica_id = \"pod-7\"\n[cluster]\nlease_ttl = \"6s\"\nlease_renew = \"2s\"\n",
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(s.server.replica_id.as_deref(), Some("pod-7"));
    assert_eq!(s.cluster.lease_ttl, Duration::from_secs(6));
    let s = load("", &env(&[("RINGRELAY_SERVER__REPLICA_ID", "pod-8")])).unwrap();
    assert_eq!(s.server.replica_id.as_deref(), Some("pod-8"));
}

#[test]
fn a_lease_renewed_too_rarely_for_its_ttl_or_a_bad_replica_id_is_refused() {
    let err = load(
        "[server]\nreplica_id = \"has space\"\n[cluster]\nlease_ttl = \"10s\"\nlease_renew = \"6s\"\n",
        &HashMap::new(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"server.replica_id"), "{keys:?}");
    assert!(keys.contains(&"cluster.lease_ttl"), "{keys:?}");
    assert!(err.to_string().contains("at least twice"), "{err}");
    let err = load("[cluster]\nlease_renew = \"0s\"\n", &HashMap::new()).unwrap_err();
    assert_eq!(err.problems[0].key, "cluster.lease_renew");
}
