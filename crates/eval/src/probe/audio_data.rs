//! Training data of the audio probe, and its accuracy on fresh clips.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use mmgen_world::augment::{augment_audio, AugmentConfig};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{render_audio, SceneSpec, SpecSampler, Split, TempoClass};
use rand::Rng;

use super::audio::{audio_features, AudioProbe, AudioProbeConfig, FEATURES};
use super::image_data::Tally;
use crate::error::Result;

/// A spec with music (and sometimes ambience) from either split, and its clip.
fn clip(seed: u64, config: &AudioProbeConfig, split: Option<Split>, augment: bool) -> Result<(SceneSpec, Vec<f32>)> {
    let mut rng = rng_for(seed, Purpose::Augment);
    let split = split.unwrap_or(if rng.random_bool(0.25) {
        Split::Heldout
    } else {
        Split::Train
    });
    let spec = SpecSampler {
        p_music: 1.0,
        ..Default::default()
    }
    .sample(split, seed);
    let mut samples = render_audio(&spec, seed, config.seconds, config.sample_rate)?;
    if augment {
        augment_audio(
            &mut samples,
            &AugmentConfig {
                noise: rng.random_range(0.0..0.02),
                ..Default::default()
            },
            &mut rng,
        );
    }
    Ok((spec, samples))
}

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
        let (spec, samples) = clip(mix64(seed ^ mix64(index * batch as u64 + j as u64)), config, None, true)?;
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

/// Accuracy of instrument, mood, tempo class (analytic) and tempo within 10% on `n`
/// fresh clips of `split`.
pub fn audio_probe_accuracy(
    probe: &AudioProbe,
    n: usize,
    seed: u64,
    split: Split,
    device: &Device,
) -> Result<BTreeMap<&'static str, Tally>> {
    audio_probe_accuracy_through(probe, n, seed, split, device, |clip| Ok(clip.to_vec()))
}

/// The same on clips passed through `through` first (a codec, a vocoder): what the
/// probe still hears after it.
pub fn audio_probe_accuracy_through(
    probe: &AudioProbe,
    n: usize,
    seed: u64,
    split: Split,
    device: &Device,
    mut through: impl FnMut(&[f32]) -> Result<Vec<f32>>,
) -> Result<BTreeMap<&'static str, Tally>> {
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for start in (0..n).step_by(64) {
        let clips = (start..(start + 64).min(n))
            .map(|i| {
                clip(
                    mix64(seed ^ 0xA0D1_0000 ^ mix64(i as u64)),
                    probe.config(),
                    Some(split),
                    false,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let samples: Vec<Vec<f32>> = clips.iter().map(|(_, s)| through(s)).collect::<Result<_>>()?;
        for ((spec, _), reading) in clips.iter().zip(probe.read(&samples, device)?) {
            let music = spec.music.expect("sampled with music");
            tallies
                .entry("instrument")
                .or_default()
                .add(reading.instrument == music.instrument);
            tallies.entry("mood").or_default().add(reading.mood == music.mood);
            let heard = reading.tempo_bpm.unwrap_or(0.0);
            tallies
                .entry("tempo_class")
                .or_default()
                .add(TempoClass::of(heard.round() as u32) == TempoClass::of(music.tempo_bpm));
            tallies
                .entry("tempo_within_10pct")
                .or_default()
                .add((heard - music.tempo_bpm as f32).abs() <= 0.1 * music.tempo_bpm as f32);
        }
    }
    Ok(tallies)
}
