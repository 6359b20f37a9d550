//! Training stream of the audio probe.

use candle_core::{Device, Tensor};
use mmgen_eval::probe::audio::{audio_features, AudioProbeConfig, FEATURES};
use mmgen_eval::probe::audio_data::probe_clip;
use mmgen_world::rng::mix64;

use crate::error::Result;

/// A training batch: features (b, FEATURES), instrument ids (b), mood ids (b).
pub struct AudioBatch {
    /// Features.
    pub xs: Tensor,
    /// Instrument class ids.
    pub instruments: Tensor,
    /// Mood class ids.
    pub moods: Tensor,
}

/// Batch `index` of the training stream under `seed`.
pub fn audio_batch(
    config: &AudioProbeConfig,
    batch: usize,
    seed: u64,
    index: u64,
    device: &Device,
) -> Result<AudioBatch> {
    let (mut feats, mut instruments, mut moods) = (Vec::with_capacity(batch * FEATURES), Vec::new(), Vec::new());
    for j in 0..batch {
        let (spec, samples) = probe_clip(mix64(seed ^ mix64(index * batch as u64 + j as u64)), config, None, true)?;
        let music = spec.music.expect("sampled with music");
        feats.extend(audio_features(&samples, config.sample_rate));
        instruments.push(music.instrument.index() as u32);
        moods.push(music.mood.index() as u32);
    }
    Ok(AudioBatch {
        xs: Tensor::from_vec(feats, (batch, FEATURES), device)?,
        instruments: Tensor::from_vec(instruments, batch, device)?,
        moods: Tensor::from_vec(moods, batch, device)?,
    })
}
