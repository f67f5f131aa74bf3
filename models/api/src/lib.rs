//! The interface of the local models, usable without candle.

pub mod error;
pub mod worker;

pub use error::{Error, Result};
