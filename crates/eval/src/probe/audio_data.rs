//! The audio probe's clips, and its accuracy on fresh ones (its training stream is in
//! the train crate).

use std::collections::BTreeMap;

use candle_core::Device;
use mmgen_world::augment::{augment_audio, AugmentConfig};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{render_audio, SceneSpec, SpecSampler, Split, TempoClass};
use rand::Rng;

use super::audio::{AudioProbe, AudioProbeConfig};
use super::image_data::Tally;
use crate::error::Result;

/// A spec with music (and sometimes ambience) of `split` (None: either, a quarter
/// held-out), and its clip, noised with `augment` (as the training stream is).
pub fn probe_clip(
    seed: u64,
    config: &AudioProbeConfig,
    split: Option<Split>,
    augment: bool,
) -> Result<(SceneSpec, Vec<f32>)> {
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
                probe_clip(
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
