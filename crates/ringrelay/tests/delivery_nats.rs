//! The NATS JetStream sink against `RINGRELAY_TEST_NATS_URL` (skipped when unset): the
//! stream is created, activities arrive once with `Nats-Msg-Id` = activity id, and a
//! re-published activity is de-duplicated by JetStream. Each test uses its own stream and
//! subject prefix and deletes the stream afterwards.

use std::time::Duration;

use chrono::DateTime;
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::delivery::nats::{NatsSink, render_subject, stream_subjects};
use ringrelay::delivery::{AttemptOutcome, Sink};

fn activity(key: &str) -> Activity {
    Activity::new(
        key.into(),
        ActivityKind::CallAnswered,
        AccountId::parse("acme").unwrap(),
        "s-1".into(),
        ActivitySource::Webhook,
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .to_utc(),
        serde_json::Map::new(),
    )
}

#[test]
fn subjects_are_rendered_from_the_template() {
    assert_eq!(
        render_subject("ringrelay.{account}.{type}", "acme", "call.answered"),
        "ringrelay.acme.call.answered"
    );
    assert_eq!(stream_subjects("ringrelay.{account}.{type}"), "ringrelay.>");
    assert_eq!(stream_subjects("a.b.{type}"), "a.b.>");
    assert_eq!(stream_subjects("fixed.subject"), "fixed.subject");
    assert_eq!(stream_subjects("{account}.x"), ">");
}

#[tokio::test]
async fn activities_arrive_once_and_a_republish_is_deduplicated() {
    let Ok(url) = std::env::var("RINGRELAY_TEST_NATS_URL") else {
        eprintln!("RINGRELAY_TEST_NATS_URL unset: skipping");
        return;
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let stream = format!("RRTEST_{tag}");
    let template = format!("rrtest{tag}.{{account}}.{{type}}");
    let sink = NatsSink::connect(&url, &template, &stream, true, Duration::from_secs(5))
        .await
        .unwrap();
    let a = activity("acme:s-1:p-1:answered");
    let b = activity("acme:s-1:p-1:ended");
    let (u, st_name, t) = (url.clone(), stream.clone(), tag.clone());
    let result = tokio::spawn(async move {
        let (url, stream, tag) = (u, st_name, t);
        assert_eq!(sink.send(&a).await, AttemptOutcome::Delivered);
        assert_eq!(sink.send(&b).await, AttemptOutcome::Delivered);
        // A redelivery (retry after a lost ack, or a replay) of the same activity.
        assert_eq!(sink.send(&a).await, AttemptOutcome::Delivered);

        let client = async_nats::connect(&url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut st = js.get_stream(&stream).await.unwrap();
        let info = st.info().await.unwrap();
        assert_eq!(
            info.state.messages, 2,
            "the republished copy was de-duplicated"
        );
        let first = st.get_raw_message(1).await.unwrap();
        assert_eq!(
            first.subject.as_str(),
            format!("rrtest{tag}.acme.call.answered")
        );
        let id = first
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned());
        assert_eq!(id, Some(a.id.to_wire()));
        let payload: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
        assert_eq!(payload, a.payload);
    })
    .await;
    // Delete the stream also when an assertion failed.
    let client = async_nats::connect(&url).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await
        .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
