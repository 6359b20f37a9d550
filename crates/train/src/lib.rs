//! Training of mmgen's models on the procedural world. This crate (with eval) is
//! where models meet the world: it renders training data; the models never see the
//! world's code.

#![warn(missing_docs)]

pub mod bench;
pub mod corpus;
pub mod denoiser;
pub mod editor;
pub mod ema;
pub mod error;
pub mod fit;
pub mod music;
pub mod music_planner;
pub mod planner;
pub mod probe_data;
pub mod probes;
pub mod renderer;
pub mod text_audio;
pub mod text_image;
pub mod text_video;
pub mod trajectory;
pub mod vae;

pub use error::{Result, TrainError};
