//! The webhook endpoint RingCentral calls: handshake, token check, persist then acknowledge.
