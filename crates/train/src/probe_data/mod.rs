//! The probes' training streams: world renders, augmented, as batches (the probes
//! themselves and their accuracy are in the eval crate).

mod audio;
mod image;
mod video;

pub use audio::{audio_batch, AudioBatch};
pub use image::{image_batch, image_sample, shape_batch, ImageBatch, ImageSample, ShapeBatch, StreamFocus, StyleShare};
pub use video::{video_batch, VideoBatch};
