//! Training stream of the video probe.

use candle_core::{Device, Tensor};
use mmgen_eval::probe::video::FEATURES;
use mmgen_eval::probe::video_data::scene_features;
use mmgen_world::rng::mix64;

use crate::error::Result;

/// A training batch: features (b, FEATURES) and motion ids (b).
pub struct VideoBatch {
    /// Features.
    pub xs: Tensor,
    /// Motion class ids.
    pub motions: Tensor,
}

/// Batch `index` of the training stream under `seed` (`batch` objects).
pub fn video_batch(batch: usize, seed: u64, index: u64, device: &Device) -> Result<VideoBatch> {
    let (mut data, mut motions) = (Vec::with_capacity(batch * FEATURES), Vec::with_capacity(batch));
    let mut scene = 0u64;
    while motions.len() < batch {
        for (features, motion) in scene_features(mix64(seed ^ mix64(index * 1000 + scene)), None, true)? {
            if motions.len() < batch {
                data.extend(features);
                motions.push(motion.index() as u32);
            }
        }
        scene += 1;
    }
    Ok(VideoBatch {
        xs: Tensor::from_vec(data, (batch, FEATURES), device)?,
        motions: Tensor::from_vec(motions, batch, device)?,
    })
}
