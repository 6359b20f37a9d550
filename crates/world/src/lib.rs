//! # mmgen-world
//!
//! The procedural world: a generator of aligned multimodal data that trains every
//! mmgen model and judges every output. From a [`SceneSpec`] and a seed it renders
//! captions in English and Chinese, images of any size, videos and audio, all
//! deterministic and all with exact ground truth.
//!
//! **The rule** (README, "Architecture"): the world is data and ground truth, never output.
//! No inference crate may depend on this one; only training and evaluation do.
//!
//! Layout: [`spec`] (what a scene is), [`sampler`] (random specs and the held-out
//! split), [`layout`] (where objects stand and how they move), [`caption`] (EN/ZH text),
//! [`render`] (images and videos), [`audio`] (music and ambience), [`augment`],
//! [`stream`] (training batches), [`analysis`] (tempo and pitch measurement),
//! [`edit`] (before/instruction/after edit pairs for the scene editor).
#![warn(missing_docs)]

pub mod analysis;
pub mod audio;
pub mod augment;
pub mod caption;
pub mod edit;
mod error;
pub mod layout;
pub mod render;
pub mod rng;
pub mod sampler;
pub mod spec;
pub mod stream;

pub use audio::render_audio;
pub use caption::{caption, caption_for_seed, CaptionOptions, Lang, Medium};
pub use error::{Result, WorldError};
pub use render::{render_image, render_video};
pub use sampler::{SpecSampler, Split};
pub use spec::*;
pub use stream::{Batch, Modality, OrderedWorkers, StreamConfig, WorldStream};
