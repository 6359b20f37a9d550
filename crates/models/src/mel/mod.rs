//! Log-mel spectrograms and the Griffin-Lim vocoder: the audio representation a
//! text-to-audio diffusion decoder generates, and the baseline way back to a waveform.
//!
//! The STFT is centred (reflect padding, as librosa and torchaudio do) with a periodic
//! Hann window and hop n_fft/4, which satisfies constant overlap-add, so
//! `istft(stft(x)) == x` up to rounding. Mel filters are Slaney-normalised triangles on
//! the HTK mel scale. The way back from mel is two steps: mel -> linear magnitudes by
//! a few projected-gradient steps of non-negative least squares (librosa's
//! `mel_to_stft` does NNLS too; the transpose alone smears energy upwards), then the
//! fast Griffin-Lim algorithm (Perraudin, Balazs & Sondergaard 2013: Griffin-Lim with
//! momentum 0.99), from a seeded random phase.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The shape of a mel spectrogram.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MelConfig {
    /// Samples per second of the audio.
    pub sample_rate: u32,
    /// FFT size (window length).
    pub n_fft: usize,
    /// Samples between frames (n_fft / 4 keeps overlap-add exact).
    pub hop: usize,
    /// Mel bands.
    pub n_mels: usize,
    /// Lowest band edge, Hz.
    pub f_min: f32,
    /// Highest band edge, Hz (at most sample_rate / 2).
    pub f_max: f32,
}

impl Default for MelConfig {
    /// 16 kHz, 32 ms windows, 8 ms hop, 128 bands to 8 kHz: chosen with
    /// `mmgen eval-vocoder` on the world's music, where longer windows smear onsets
    /// and fewer bands lose timbre (docs/models.md, "audio representation").
    fn default() -> MelConfig {
        MelConfig {
            sample_rate: 16_000,
            n_fft: 512,
            hop: 128,
            n_mels: 128,
            f_min: 0.0,
            f_max: 8_000.0,
        }
    }
}

/// The longest mel (in frames; 32.8 s at the default 8 ms hop) vocoded in one piece;
/// longer clips go block by block.
pub const VOCODE_BLOCK_FRAMES: usize = 4096;

/// Frames shared by consecutive vocoder blocks (1 s at the default hop).
const VOCODE_OVERLAP_FRAMES: usize = 128;

/// The seed of vocoder block `block` (block 0 keeps `seed`).
fn mix_seed(seed: u64, block: u64) -> u64 {
    seed ^ block.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Natural-log floor of mel energies (-11.5).
const LOG_FLOOR: f32 = 1e-5;

/// A log-mel spectrogram: `frames` rows of `n_mels` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LogMel {
    /// ln(max(energy, 1e-5)) per frame and band.
    pub values: Vec<f32>,
    /// Frames (one per hop, plus one).
    pub frames: usize,
    /// Bands per frame.
    pub n_mels: usize,
}

/// STFT, mel filterbank and Griffin-Lim for one [`MelConfig`].
pub struct MelSpectrogram {
    config: MelConfig,
    window: Vec<f32>,
    /// Per mel band: (first FFT bin, weights of consecutive bins).
    filters: Vec<(usize, Vec<f32>)>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl MelSpectrogram {
    /// Checks `config` and builds the window, filters and FFT plans.
    pub fn new(config: &MelConfig) -> Result<MelSpectrogram> {
        let c = config;
        let nyquist = c.sample_rate as f32 / 2.0;
        if c.n_fft < 16 || !c.n_fft.is_multiple_of(4) || c.hop == 0 || c.hop > c.n_fft / 4 {
            return Err(ModelError::Invalid(format!(
                "n_fft {} and hop {}: n_fft must be a multiple of 4 (>= 16) and hop at most n_fft / 4 (overlap-add must cover every sample)",
                c.n_fft, c.hop
            )));
        }
        if c.n_mels == 0 || !(0.0 <= c.f_min && c.f_min < c.f_max && c.f_max <= nyquist) {
            return Err(ModelError::Invalid(format!(
                "n_mels {}, f_min {} Hz, f_max {} Hz: need n_mels >= 1 and 0 <= f_min < f_max <= {nyquist} Hz",
                c.n_mels, c.f_min, c.f_max
            )));
        }
        let window = (0..c.n_fft)
            .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / c.n_fft as f32).cos())
            .collect();
        let mut planner = RealFftPlanner::<f32>::new();
        Ok(MelSpectrogram {
            filters: mel_filters(c),
            window,
            forward: planner.plan_fft_forward(c.n_fft),
            inverse: planner.plan_fft_inverse(c.n_fft),
            config: c.clone(),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &MelConfig {
        &self.config
    }

    /// FFT bins per frame (n_fft / 2 + 1).
    pub fn bins(&self) -> usize {
        self.config.n_fft / 2 + 1
    }

    /// Frames of `samples` samples: one per hop, plus one (the STFT is centred).
    pub fn frames_for(&self, samples: usize) -> usize {
        samples / self.config.hop + 1
    }

    /// The centred STFT: frames x bins.
    pub fn stft(&self, audio: &[f32]) -> Vec<Vec<Complex<f32>>> {
        let (n_fft, hop) = (self.config.n_fft, self.config.hop);
        let pad = n_fft / 2;
        // Reflect padding (repeats the edge for clips shorter than the pad).
        let at = |i: isize| -> f32 {
            if audio.is_empty() {
                return 0.0;
            }
            let n = audio.len() as isize;
            let mut j = i;
            for _ in 0..4 {
                if j < 0 {
                    j = -j;
                }
                if j >= n {
                    j = 2 * (n - 1) - j;
                }
            }
            audio[j.clamp(0, n - 1) as usize]
        };
        let mut input = vec![0f32; n_fft];
        let mut scratch = self.forward.make_scratch_vec();
        (0..self.frames_for(audio.len()))
            .map(|f| {
                let start = (f * hop) as isize - pad as isize;
                for (k, v) in input.iter_mut().enumerate() {
                    *v = at(start + k as isize) * self.window[k];
                }
                let mut spectrum = self.forward.make_output_vec();
                // The lengths match the plan, so the FFT cannot fail.
                let _ = self
                    .forward
                    .process_with_scratch(&mut input, &mut spectrum, &mut scratch);
                spectrum
            })
            .collect()
    }

    /// Inverse of [`Self::stft`] for `len` samples: windowed overlap-add, divided by
    /// the summed squared window (least-squares inverse; Griffin & Lim 1984).
    pub fn istft(&self, frames: &[Vec<Complex<f32>>], len: usize) -> Vec<f32> {
        let (n_fft, hop) = (self.config.n_fft, self.config.hop);
        let pad = n_fft / 2;
        let total = len + 2 * pad;
        let (mut out, mut norm) = (vec![0f32; total], vec![0f32; total]);
        let mut time = self.inverse.make_output_vec();
        let mut scratch = self.inverse.make_scratch_vec();
        for (f, spectrum) in frames.iter().enumerate() {
            let mut spectrum = spectrum.clone();
            // A real signal's DC and Nyquist bins are real; the inverse plan insists.
            spectrum[0].im = 0.0;
            if let Some(last) = spectrum.last_mut() {
                last.im = 0.0;
            }
            let _ = self
                .inverse
                .process_with_scratch(&mut spectrum, &mut time, &mut scratch);
            let start = f * hop;
            for k in 0..n_fft {
                if start + k < total {
                    out[start + k] += time[k] / n_fft as f32 * self.window[k];
                    norm[start + k] += self.window[k] * self.window[k];
                }
            }
        }
        out[pad..pad + len]
            .iter()
            .zip(&norm[pad..pad + len])
            .map(|(v, n)| if *n > 1e-8 { v / n } else { 0.0 })
            .collect()
    }

    /// Magnitudes (frames x bins) of the STFT.
    pub fn magnitudes(&self, audio: &[f32]) -> Vec<Vec<f32>> {
        self.stft(audio)
            .iter()
            .map(|frame| frame.iter().map(|c| c.norm()).collect())
            .collect()
    }

    /// The log-mel spectrogram of `audio` (mel energies of the power spectrum).
    pub fn log_mel(&self, audio: &[f32]) -> LogMel {
        self.log_mel_of(&self.magnitudes(audio))
    }

    /// The log-mel spectrogram of STFT magnitudes (frames x bins) already computed.
    pub fn log_mel_of(&self, magnitudes: &[Vec<f32>]) -> LogMel {
        let n_mels = self.config.n_mels;
        let mut values = Vec::with_capacity(magnitudes.len() * n_mels);
        for frame in magnitudes {
            for (first, weights) in &self.filters {
                let energy: f32 = weights
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * frame[first + k] * frame[first + k])
                    .sum();
                values.push(energy.max(LOG_FLOOR).ln());
            }
        }
        LogMel {
            frames: magnitudes.len(),
            n_mels,
            values,
        }
    }

    /// Linear magnitudes (frames x bins) whose mel energies best match `mel`: a
    /// non-negative least-squares fit of the power spectrum by projected gradient
    /// steps, started from the filters' transpose.
    pub fn magnitudes_from_mel(&self, mel: &LogMel) -> Result<Vec<Vec<f32>>> {
        if mel.n_mels != self.config.n_mels || mel.values.len() != mel.frames * mel.n_mels {
            return Err(ModelError::Invalid(format!(
                "a log-mel of {} bands x {} frames ({} values) does not fit a {}-band spectrogram",
                mel.n_mels,
                mel.frames,
                mel.values.len(),
                self.config.n_mels
            )));
        }
        let bins = self.bins();
        // Column sums of the filterbank: normalise the transpose's start and bound the
        // step size (the Lipschitz constant of the gradient is at most max row sum x
        // max column sum).
        let mut column = vec![0f32; bins];
        for (first, weights) in &self.filters {
            for (k, w) in weights.iter().enumerate() {
                column[first + k] += w;
            }
        }
        let row_max = self
            .filters
            .iter()
            .map(|(_, w)| w.iter().sum::<f32>())
            .fold(0f32, f32::max);
        let col_max = column.iter().cloned().fold(0f32, f32::max);
        let step = 1.0 / (row_max * col_max).max(1e-12);
        let mut out = Vec::with_capacity(mel.frames);
        for frame in mel.values.chunks(mel.n_mels) {
            let target: Vec<f32> = frame.iter().map(|v| v.exp()).collect();
            let mut power = vec![0f32; bins];
            for ((first, weights), t) in self.filters.iter().zip(&target) {
                for (k, w) in weights.iter().enumerate() {
                    if column[first + k] > 0.0 {
                        power[first + k] += w * t / column[first + k];
                    }
                }
            }
            for _ in 0..30 {
                let mut gradient = vec![0f32; bins];
                for ((first, weights), t) in self.filters.iter().zip(&target) {
                    let predicted: f32 = weights.iter().enumerate().map(|(k, w)| w * power[first + k]).sum();
                    let residual = predicted - t;
                    for (k, w) in weights.iter().enumerate() {
                        gradient[first + k] += w * residual;
                    }
                }
                for (p, g) in power.iter_mut().zip(&gradient) {
                    *p = (*p - step * g).max(0.0);
                }
            }
            out.push(power.iter().map(|p| p.sqrt()).collect());
        }
        Ok(out)
    }

    /// A waveform of `len` samples whose STFT magnitudes approach `magnitudes`: fast
    /// Griffin-Lim, `iters` rounds from a random phase drawn from `seed`.
    pub fn griffin_lim(&self, magnitudes: &[Vec<f32>], len: usize, iters: usize, seed: u64) -> Result<Vec<f32>> {
        let bins = self.bins();
        if magnitudes.iter().any(|f| f.len() != bins) || magnitudes.len() != self.frames_for(len) {
            return Err(ModelError::Invalid(format!(
                "Griffin-Lim needs {} frames of {bins} bins for {len} samples; got {} frames",
                self.frames_for(len),
                magnitudes.len()
            )));
        }
        let estimate = self.seeded_phases(magnitudes, seed);
        Ok(self.refine_phase(magnitudes, len, iters, estimate))
    }

    /// Unit phasors of uniform random angle, one per bin of `magnitudes`, from `seed`
    /// (SplitMix64).
    fn seeded_phases(&self, magnitudes: &[Vec<f32>], seed: u64) -> Vec<Vec<Complex<f32>>> {
        let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut angle = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            std::f32::consts::TAU * (z >> 40) as f32 / (1u64 << 24) as f32
        };
        magnitudes
            .iter()
            .map(|m| m.iter().map(|_| Complex::from_polar(1.0, angle())).collect())
            .collect()
    }

    /// Fast Griffin-Lim from the phases of `estimate` (frames x bins, same shape as
    /// `magnitudes`; only its phases are used).
    fn refine_phase(
        &self,
        magnitudes: &[Vec<f32>],
        len: usize,
        iters: usize,
        mut estimate: Vec<Vec<Complex<f32>>>,
    ) -> Vec<f32> {
        let with_phase = |phases: &[Vec<Complex<f32>>]| -> Vec<Vec<Complex<f32>>> {
            magnitudes
                .iter()
                .zip(phases)
                .map(|(m, p)| {
                    m.iter()
                        .zip(p)
                        .map(|(&a, c)| {
                            let n = c.norm();
                            if n > 1e-12 {
                                c * (a / n)
                            } else {
                                Complex::new(a, 0.0)
                            }
                        })
                        .collect()
                })
                .collect()
        };
        // t_{-1} = 0 (as torchaudio): the first round only rescales, keeping the phase.
        let mut previous: Vec<Vec<Complex<f32>>> =
            magnitudes.iter().map(|m| vec![Complex::default(); m.len()]).collect();
        const MOMENTUM: f32 = 0.99;
        for _ in 0..iters {
            let rebuilt = self.stft(&self.istft(&with_phase(&estimate), len));
            // t_n = P_C1(P_C2(c_{n-1})); c_n = t_n + alpha (t_n - t_{n-1}).
            for ((e, r), p) in estimate.iter_mut().zip(&rebuilt).zip(previous.iter_mut()) {
                for ((e, &r), p) in e.iter_mut().zip(r).zip(p.iter_mut()) {
                    *e = r + (r - *p) * MOMENTUM;
                    *p = r;
                }
            }
        }
        self.istft(&with_phase(&estimate), len)
    }

    /// Mel -> magnitudes -> Griffin-Lim: the baseline vocoder. A clip longer than
    /// [`VOCODE_BLOCK_FRAMES`] is vocoded block by block, each block's phase started
    /// from the audio of the one before over their overlap and the two cross-faded
    /// there, so that memory stays flat in the clip's length.
    pub fn vocode(&self, mel: &LogMel, len: usize, iters: usize, seed: u64) -> Result<Vec<f32>> {
        if mel.frames != self.frames_for(len) {
            return Err(ModelError::Invalid(format!(
                "a log-mel of {} frames does not fit {len} samples ({} frames)",
                mel.frames,
                self.frames_for(len)
            )));
        }
        if mel.frames <= VOCODE_BLOCK_FRAMES {
            return self.griffin_lim(&self.magnitudes_from_mel(mel)?, len, iters, seed);
        }
        self.vocode_in_blocks(mel, len, iters, seed, VOCODE_BLOCK_FRAMES, VOCODE_OVERLAP_FRAMES)
    }

    /// [`Self::vocode`] in blocks of `block_frames` mel frames sharing `overlap_frames`.
    fn vocode_in_blocks(
        &self,
        mel: &LogMel,
        len: usize,
        iters: usize,
        seed: u64,
        block_frames: usize,
        overlap_frames: usize,
    ) -> Result<Vec<f32>> {
        let (hop, n_mels) = (self.config.hop, mel.n_mels);
        let overlap = overlap_frames * hop;
        let mut audio: Vec<f32> = Vec::with_capacity(len);
        let mut first = 0;
        for block in 0u64.. {
            let last = (first + block_frames).min(mel.frames);
            let start = first * hop;
            // The block's samples: its frames' centres, the last block to the clip's end.
            let block_len = if last == mel.frames {
                len - start
            } else {
                (last - 1 - first) * hop
            };
            let block_mel = LogMel {
                values: mel.values[first * n_mels..last * n_mels].to_vec(),
                frames: last - first,
                n_mels,
            };
            let magnitudes = self.magnitudes_from_mel(&block_mel)?;
            let mut phases = self.seeded_phases(&magnitudes, mix_seed(seed, block));
            let shared = audio.len().saturating_sub(start);
            if shared > 0 {
                // Continue the phase of the audio already made where the blocks overlap.
                for (row, known) in phases.iter_mut().zip(self.stft(&audio[start..])) {
                    *row = known;
                }
            }
            let made = self.refine_phase(&magnitudes, block_len, iters, phases);
            for (k, &v) in made.iter().enumerate() {
                let at = start + k;
                if at < audio.len() {
                    let w = (k as f32 + 0.5) / shared as f32;
                    audio[at] = audio[at] * (1.0 - w) + v * w;
                } else {
                    audio.push(v);
                }
            }
            if last == mel.frames {
                break;
            }
            first = last - 1 - overlap / hop;
        }
        Ok(audio)
    }
}

/// Spectral convergence || |S| - |S'| ||_F / || |S| ||_F of two magnitude spectrograms
/// (0: identical; the usual Griffin-Lim quality measure).
pub fn spectral_convergence(reference: &[Vec<f32>], estimate: &[Vec<f32>]) -> f32 {
    let (mut diff, mut norm) = (0f64, 0f64);
    for (a, b) in reference.iter().zip(estimate) {
        for (&x, &y) in a.iter().zip(b) {
            diff += ((x - y) as f64).powi(2);
            norm += (x as f64).powi(2);
        }
    }
    (diff / norm.max(1e-20)).sqrt() as f32
}

fn hz_to_mel(hz: f32) -> f32 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f32) -> f32 {
    700.0 * (10f32.powf(mel / 2595.0) - 1.0)
}

/// Triangular filters between n_mels + 2 points evenly spaced in mel, each scaled by
/// 2 / (its width in Hz) (Slaney's area normalisation).
fn mel_filters(c: &MelConfig) -> Vec<(usize, Vec<f32>)> {
    let bins = c.n_fft / 2 + 1;
    let (lo, hi) = (hz_to_mel(c.f_min), hz_to_mel(c.f_max));
    let edges: Vec<f32> = (0..c.n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f32 / (c.n_mels + 1) as f32))
        .collect();
    let bin_hz = c.sample_rate as f32 / c.n_fft as f32;
    (0..c.n_mels)
        .map(|m| {
            let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
            let scale = 2.0 / (right - left);
            let weight = |k: usize| {
                let f = k as f32 * bin_hz;
                let rising = (f - left) / (centre - left);
                let falling = (right - f) / (right - centre);
                (rising.min(falling)).max(0.0) * scale
            };
            let first = (0..bins).find(|&k| weight(k) > 0.0).unwrap_or(0);
            let last = (0..bins).rev().find(|&k| weight(k) > 0.0).unwrap_or(first);
            (first, (first..=last).map(weight).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests;
