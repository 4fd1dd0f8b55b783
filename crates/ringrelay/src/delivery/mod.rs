//! Sinks (HTTP with Standard Webhooks signatures, NATS JetStream, JSONL), retry policy and replay.
