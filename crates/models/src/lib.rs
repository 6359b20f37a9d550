//! mmgen's networks and the pipelines built on them. Nothing here knows the
//! procedural world: models learn from it only through the train crate.

#![warn(missing_docs)]

pub mod dit;
pub mod error;
pub mod grounded;
pub mod hybrid_audio;
pub mod hybrid_image;
pub mod hybrid_video;
pub mod mel;
pub mod sampling;
pub mod text_encoder;
pub mod tokenizer;
pub mod vae;
pub mod weights;
pub mod windows;

pub use error::{ModelError, Result};
