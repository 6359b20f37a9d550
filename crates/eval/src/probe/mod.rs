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

/// Index of the largest value (the first one on ties; 0 for an empty input).
pub fn argmax(values: impl IntoIterator<Item = f32>) -> usize {
    values
        .into_iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (k, v)| if v > best.1 { (k, v) } else { best },
        )
        .0
}
