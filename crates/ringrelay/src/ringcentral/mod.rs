//! The RingCentral API client: the only code that talks to RingCentral.
