//! # mmgen-eval
//!
//! Evaluation on the world: probes that read attributes back from generated media,
//! GenEval-style alignment per category, and Frechet distances between probe features
//! of generated and real renders (world-FD). Model families plug in through the
//! [`generator::Generator`] trait.
#![warn(missing_docs)]

pub mod align;
pub mod edit_eval;
mod error;
pub mod fd;
pub mod generator;
pub mod grounded;
pub mod grounded_sound;
pub mod plan_eval;
pub mod probe;
pub mod probes;
pub mod report;
pub mod run;
mod score;
pub mod shipped;
pub mod track;
pub mod vocoder;

pub use error::{EvalError, Result};
