//! The processor: inbox notifications → activities (telephony state machine, voicemail).
