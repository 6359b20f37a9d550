//! The audio probe: reads instrument and mood from a clip. Tempo is read analytically
//! (onset autocorrelation, `mmgen_world::analysis`), which is exact enough that a
//! learned head would only add error at the class borders.
//!
//! Features are fixed, not learned: a semitone-band log spectrogram (MIDI 28 to 119,
//! 41 Hz to 8 kHz, from a 4096-point STFT so that semitones resolve down to the bass)
//! summarised over time by each band's mean (pitch content: key and mode), standard
//! deviation and mean rise (attack: plucked and struck against bowed and blown). A
//! small MLP reads them.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use mmgen_world::{Instrument, Mood};
use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

use super::{argmax, Mlp};
use crate::error::{EvalError, Result};

/// Lowest band, MIDI.
const LOW_MIDI: f32 = 28.0;
/// Semitone bands.
pub const BANDS: usize = 92;
/// Feature width: mean, std and rise per band.
pub const FEATURES: usize = 3 * BANDS;
const N_INSTRUMENT: usize = 5;
const N_MOOD: usize = 4;

/// Semitone-band log spectrogram, (frames, BANDS), of mono `samples`.
pub fn band_spectrogram(samples: &[f32], sample_rate: u32) -> Vec<[f32; BANDS]> {
    let n_fft = 4096usize;
    let hop = (sample_rate as usize / 62).max(1); // ~16 ms
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(n_fft);
    let window: Vec<f32> = (0..n_fft)
        .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n_fft as f32).cos())
        .collect();
    // Each FFT bin goes to the band of its nearest semitone.
    let bin_band: Vec<Option<usize>> = (0..n_fft / 2 + 1)
        .map(|k| {
            let f = k as f32 * sample_rate as f32 / n_fft as f32;
            if f < 20.0 {
                return None;
            }
            let midi = 69.0 + 12.0 * (f / 440.0).log2();
            let band = (midi - LOW_MIDI).round();
            (band >= 0.0 && (band as usize) < BANDS).then_some(band as usize)
        })
        .collect();
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut frames = Vec::new();
    let mut start = 0;
    while start + n_fft <= samples.len().max(n_fft) {
        for (i, x) in input.iter_mut().enumerate() {
            *x = samples.get(start + i).copied().unwrap_or(0.0) * window[i];
        }
        if fft.process(&mut input, &mut spectrum).is_err() {
            break;
        }
        let mut bands = [0f32; BANDS];
        for (k, c) in spectrum.iter().enumerate() {
            if let Some(b) = bin_band[k] {
                bands[b] += c.norm_sqr();
            }
        }
        for b in bands.iter_mut() {
            *b = (1.0 + 10.0 * b.sqrt()).ln();
        }
        frames.push(bands);
        start += hop;
        if start + n_fft > samples.len() {
            break;
        }
    }
    frames
}

/// The probe's input features of a clip (length [`FEATURES`]); loudness-normalised so
/// that gain does not matter.
pub fn audio_features(samples: &[f32], sample_rate: u32) -> Vec<f32> {
    let peak = samples.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let normalised: Vec<f32> = samples.iter().map(|x| x / peak).collect();
    let frames = band_spectrogram(&normalised, sample_rate);
    let n = frames.len().max(1) as f32;
    let mut out = vec![0f32; FEATURES];
    for b in 0..BANDS {
        let mean = frames.iter().map(|f| f[b]).sum::<f32>() / n;
        let var = frames.iter().map(|f| (f[b] - mean).powi(2)).sum::<f32>() / n;
        let rise = frames.windows(2).map(|w| (w[1][b] - w[0][b]).max(0.0)).sum::<f32>() / n;
        out[b] = mean;
        out[BANDS + b] = var.sqrt();
        out[2 * BANDS + b] = 4.0 * rise;
    }
    out
}

/// Shape of an audio probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AudioProbeConfig {
    /// Hidden width of the MLP.
    pub hidden: usize,
    /// Sample rate of the clips it reads.
    pub sample_rate: u32,
    /// Clip length it was trained on, seconds.
    pub seconds: f32,
}

impl AudioProbeConfig {
    /// The shipped probe.
    pub fn base() -> AudioProbeConfig {
        AudioProbeConfig {
            hidden: 256,
            sample_rate: mmgen_world::audio::SAMPLE_RATE,
            seconds: 4.0,
        }
    }

    /// A tiny probe for tests.
    pub fn tiny() -> AudioProbeConfig {
        AudioProbeConfig {
            hidden: 8,
            sample_rate: mmgen_world::audio::SAMPLE_RATE,
            seconds: 1.0,
        }
    }
}

/// What the probe reads from a clip.
#[derive(Clone, Debug, Serialize)]
pub struct AudioReading {
    /// Most likely instrument.
    pub instrument: Instrument,
    /// Most likely mood.
    pub mood: Mood,
    /// Tempo from onsets, bpm (None if none found).
    pub tempo_bpm: Option<f32>,
    /// Penultimate-layer features (for the audio world-FD).
    pub features: Vec<f32>,
}

/// The audio probe network: a 3-layer MLP on [`audio_features`].
#[derive(Debug, Clone)]
pub struct AudioProbe {
    mlp: Mlp,
    config: AudioProbeConfig,
}

impl AudioProbe {
    /// Parameters `l1`, `l2`, `out`.
    pub fn new(config: &AudioProbeConfig, vb: VarBuilder) -> Result<AudioProbe> {
        if config.hidden == 0 {
            return Err(EvalError::Invalid("audio probe hidden width must be positive".into()));
        }
        Ok(AudioProbe {
            mlp: Mlp::new(FEATURES, config.hidden, N_INSTRUMENT + N_MOOD, vb)?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AudioProbeConfig {
        &self.config
    }

    /// xs: (b, FEATURES) -> (logits (b, 9), hidden features (b, hidden)).
    pub fn forward(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(self.mlp.forward(xs)?)
    }

    /// Cross-entropy on instrument and mood.
    pub fn loss(
        &self,
        xs: &Tensor,
        instruments: &Tensor,
        moods: &Tensor,
    ) -> Result<(Tensor, Vec<(&'static str, Tensor)>)> {
        let (logits, _) = self.forward(xs)?;
        let ce = candle_nn::loss::cross_entropy;
        let instrument = ce(&logits.narrow(1, 0, N_INSTRUMENT)?, instruments)?;
        let mood = ce(&logits.narrow(1, N_INSTRUMENT, N_MOOD)?, moods)?;
        Ok(((&instrument + &mood)?, vec![("instrument", instrument), ("mood", mood)]))
    }

    /// Reads clips.
    pub fn read(&self, clips: &[Vec<f32>], device: &Device) -> Result<Vec<AudioReading>> {
        let sr = self.config.sample_rate;
        let feats: Vec<f32> = clips.iter().flat_map(|c| audio_features(c, sr)).collect();
        let xs = Tensor::from_vec(feats, (clips.len(), FEATURES), device)?;
        let (logits, hidden) = self.forward(&xs)?;
        let logits: Vec<Vec<f32>> = logits.to_vec2()?;
        let hidden: Vec<Vec<f32>> = hidden.to_vec2()?;
        Ok(clips
            .iter()
            .zip(logits.iter().zip(hidden))
            .map(|(clip, (l, h))| AudioReading {
                instrument: Instrument::ALL[argmax(l[..N_INSTRUMENT].iter().copied())],
                mood: Mood::ALL[argmax(l[N_INSTRUMENT..].iter().copied())],
                tempo_bpm: mmgen_world::analysis::estimate_tempo(clip, sr, 60.0, 160.0),
                features: h,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn a_note_lands_in_its_band() {
        let sr = 16_000;
        // A4 = MIDI 69: band 69 - 28 = 41.
        let xs: Vec<f32> = (0..16_000)
            .map(|i| (std::f32::consts::TAU * 440.0 * i as f32 / sr as f32).sin())
            .collect();
        let frames = band_spectrogram(&xs, sr);
        let mean: Vec<f32> = (0..BANDS).map(|b| frames.iter().map(|f| f[b]).sum::<f32>()).collect();
        let loudest = mean
            .iter()
            .enumerate()
            .fold((0, 0f32), |m, (k, v)| if *v > m.1 { (k, *v) } else { m })
            .0;
        assert_eq!(loudest, 41);
        assert_eq!(audio_features(&xs, sr).len(), FEATURES);
    }

    #[test]
    fn reads_a_batch() {
        let dev = Device::Cpu;
        let probe = AudioProbe::new(&AudioProbeConfig::tiny(), VarBuilder::zeros(DType::F32, &dev)).unwrap();
        let clip = vec![0.1f32; 16_000];
        let readings = probe.read(&[clip.clone(), clip], &dev).unwrap();
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].features.len(), 8);
    }
}
