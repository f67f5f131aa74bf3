//! The risk engine's text normalisation lives in `assist_protocol::normalize`,
//! because the phone's local guard must normalise exactly as the server does.

pub use assist_protocol::normalize::*;
