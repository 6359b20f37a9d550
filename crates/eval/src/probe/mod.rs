//! Probes: small networks trained only on world renders that read attributes back
//! from images, videos and audio. They are the evaluation's detectors.

pub mod audio;
pub mod audio_data;
pub mod conv;
pub mod fit;
pub mod image;
pub mod image_data;
pub mod train;
pub mod video;
pub mod video_data;
