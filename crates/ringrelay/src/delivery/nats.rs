//! The NATS JetStream sink: publishes the activity JSON to a subject built from a template
//! (`ringrelay.{account}.{type}` by default) with `Nats-Msg-Id` = the activity id, so
//! JetStream drops a re-published copy inside the stream's duplicate window, and waits for
//! the publish ack. Creates the stream on first use when configured to.

use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{AttemptOutcome, Sink};
use crate::activity::Activity;

/// How long a publish waits for JetStream's ack.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A JetStream publisher.
#[derive(Debug)]
pub struct NatsSink {
    js: jetstream::Context,
    subject: String,
    stream: String,
    create_stream: bool,
    stream_ready: Mutex<bool>,
}

impl NatsSink {
    /// Connects to `url` (retrying in the background when the server is not up yet).
    ///
    /// # Errors
    /// A message when the URL is invalid.
    pub async fn connect(
        url: &str,
        subject: &str,
        stream: &str,
        create_stream: bool,
        ack_timeout: Duration,
    ) -> Result<Self, String> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .name(concat!("ringrelay/", env!("CARGO_PKG_VERSION")))
            .connect(url)
            .await
            .map_err(|e| format!("cannot connect to NATS at {url}: {e}"))?;
        let mut js = jetstream::new(client);
        js.set_timeout(ack_timeout);
        Ok(Self {
            js,
            subject: subject.to_owned(),
            stream: stream.to_owned(),
            create_stream,
            stream_ready: Mutex::new(!create_stream),
        })
    }

    /// The subject an activity is published to.
    pub fn subject_for(&self, activity: &Activity) -> String {
        render_subject(
            &self.subject,
            activity.account.as_str(),
            activity.kind.as_str(),
        )
    }

    async fn ensure_stream(&self) -> Result<(), String> {
        let mut ready = self.stream_ready.lock().await;
        if *ready || !self.create_stream {
            return Ok(());
        }
        let config = jetstream::stream::Config {
            name: self.stream.clone(),
            subjects: vec![stream_subjects(&self.subject)],
            ..Default::default()
        };
        self.js
            .get_or_create_stream(config)
            .await
            .map_err(|e| format!("cannot create stream {}: {e}", self.stream))?;
        *ready = true;
        Ok(())
    }
}

/// Fills `{account}` and `{type}` in a subject template.
pub fn render_subject(template: &str, account: &str, kind: &str) -> String {
    template
        .replace("{account}", account)
        .replace("{type}", kind)
}

/// The subject filter of a created stream: the template's literal prefix followed by `>`
/// (`ringrelay.{account}.{type}` → `ringrelay.>`), or the template itself without
/// placeholders.
pub fn stream_subjects(template: &str) -> String {
    match template.find('{') {
        None => template.to_owned(),
        Some(0) => ">".to_owned(),
        Some(i) => {
            let prefix = &template[..i];
            match prefix.rfind('.') {
                Some(dot) => format!("{}.>", &prefix[..dot]),
                None => ">".to_owned(),
            }
        }
    }
}

#[async_trait]
impl Sink for NatsSink {
    async fn send(&self, activity: &Activity) -> AttemptOutcome {
        if let Err(e) = self.ensure_stream().await {
            return AttemptOutcome::error(e);
        }
        let body = match super::body(activity) {
            Ok(b) => b,
            Err(e) => return AttemptOutcome::error(format!("cannot serialize: {e}")),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            activity.id.to_wire().as_str(),
        );
        headers.insert("Content-Type", "application/json");
        let subject = self.subject_for(activity);
        let ack = match self
            .js
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
        {
            Ok(ack) => ack,
            Err(e) => return AttemptOutcome::error(format!("publish to {subject} failed: {e}")),
        };
        match ack.await {
            Ok(_) => AttemptOutcome::Delivered,
            Err(e) => AttemptOutcome::error(format!("no JetStream ack for {subject}: {e}")),
        }
    }
}
