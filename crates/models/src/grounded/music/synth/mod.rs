//! The neural synthesiser (DDSP, Engel et al. 2020). A small network maps each
//! note's controls at frame rate (its timbre, pitch, velocity and nominal length, the
//! time since its onset and past its end) to:
//! - the loudness and the spectral shape of a bank of harmonic oscillators, with a
//!   pitch offset (a vibrato for pitched notes, a kick drum's fall for drums);
//! - the gains of fixed noise bands (breath, bow and hammer noise, snares, hats).
//!
//! Why a note at a time: a note's sound depends on the note alone, so a score of any
//! length renders note after note into a buffer that only has to hold the notes still
//! ringing ([`render_stream`]), and blocks of any size give the same samples.
//!
//! Every step is differentiable, so that the trainer fits the network through a
//! multi-resolution STFT loss ([`stft_loss`]). A synthesiser folder holds
//! `config.json` ([`SynthConfig`]) and `model.safetensors` (f16).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use mmgen_nn::{gelu, Dense};
use rand::{Rng, SeedableRng};
use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::weights::{load_weights_folder, FolderFiles};

mod fast;

const TAU: f64 = std::f64::consts::TAU;
/// Samples of each band of the inference noise table (4.1 s at 16 kHz): longer than
/// most notes, and a cyclic read of band-limited noise has no seam.
const NOISE_TABLE: usize = 1 << 16;
const NOISE_TABLE_SEED: u64 = 0x4E4F_4953;

/// Shape of a synthesiser.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    /// Timbre names, in id order (melody instruments, the bass, each drum).
    pub timbres: Vec<String>,
    /// Output sample rate, Hz.
    pub sample_rate: u32,
    /// Samples per control frame.
    pub hop: usize,
    /// Harmonic oscillators.
    pub harmonics: usize,
    /// Noise bands.
    pub noise_bands: usize,
    /// Width of the timbre embedding.
    pub timbre_dim: usize,
    /// Hidden units of each of the three hidden layers.
    pub hidden: usize,
    /// Fourier octaves of the time since the onset.
    pub octaves: usize,
    /// How long a note may ring past its nominal end, seconds.
    pub tail_seconds: f32,
    /// Longest a note sounds, seconds (longer notes are cut, with the network's own
    /// release at their end).
    pub max_note_seconds: f32,
}

impl SynthConfig {
    /// The shipped shape.
    pub fn base(timbres: Vec<String>) -> SynthConfig {
        SynthConfig {
            timbres,
            sample_rate: 16_000,
            hop: 128,
            harmonics: 32,
            noise_bands: 16,
            timbre_dim: 16,
            hidden: 128,
            octaves: 7,
            tail_seconds: 0.6,
            max_note_seconds: 4.5,
        }
    }

    /// A tiny shape for tests.
    pub fn tiny(timbres: Vec<String>) -> SynthConfig {
        SynthConfig {
            harmonics: 8,
            noise_bands: 4,
            timbre_dim: 4,
            hidden: 16,
            octaves: 3,
            ..SynthConfig::base(timbres)
        }
    }

    /// The id of timbre `name` (errors name the allowed values).
    pub fn timbre_id(&self, name: &str) -> Result<u32> {
        self.timbres
            .iter()
            .position(|t| t == name)
            .map(|i| i as u32)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "timbre: unknown value {name:?}; allowed: {}",
                    self.timbres.join(", ")
                ))
            })
    }

    fn check(&self) -> Result<()> {
        if self.timbres.is_empty()
            || self.hop == 0
            || self.harmonics == 0
            || self.noise_bands < 2
            || self.hidden == 0
            || !(8_000..=96_000).contains(&self.sample_rate)
            || !(self.max_note_seconds > 0.0 && self.tail_seconds >= 0.0)
        {
            return Err(ModelError::Invalid(format!(
                "synthesiser config is not usable: {self:?}"
            )));
        }
        Ok(())
    }

    /// Inputs of the network per frame.
    fn input_dim(&self) -> usize {
        self.timbre_dim + 7 + 2 * self.octaves
    }
}

/// One note to render.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SynthNote {
    /// Start, seconds.
    pub onset: f32,
    /// Nominal length, seconds.
    pub duration: f32,
    /// Timbre id ([`SynthConfig::timbres`]).
    pub timbre: u32,
    /// MIDI pitch; None for unpitched timbres (drums), which sound at a fixed low f0.
    pub pitch: Option<f32>,
    /// Loudness, 0 to 1.
    pub velocity: f32,
}

/// The f0 of an unpitched timbre's oscillators (MIDI 33, 55 Hz): the network shapes
/// its harmonics and offsets its pitch as the training sounds need.
const UNPITCHED_MIDI: f32 = 33.0;
/// Largest pitch offset of a pitched note, log f0 (1%, a sixth of a semitone: the
/// world's vibratos are a third of that).
const PITCHED_RANGE: f64 = 0.01;
/// Largest pitch offset of an unpitched note, log f0 (a factor of e).
const UNPITCHED_RANGE: f64 = 1.0;

fn midi_to_hz(midi: f32) -> f32 {
    440.0 * 2f32.powf((midi - 69.0) / 12.0)
}

/// The frame controls of a batch of notes, and what their synthesis needs.
#[derive(Debug)]
pub struct NoteControls {
    /// (b, F, inputs): the network's inputs at each frame boundary.
    pub inputs: Tensor,
    /// (b,): timbre ids.
    pub timbres: Tensor,
    /// (b,): f0 of each note, Hz.
    pub f0: Tensor,
}

/// The DDSP synthesiser. Parameters `timbres`, `hidden{1,2,3}`, `out`, `pitch`.
pub struct Synth {
    timbres: candle_nn::Embedding,
    hidden: [Dense; 3],
    out: Dense,
    pitch: Dense,
    band_edges: Vec<f32>,
    /// The noise notes read at inference, made on first use.
    noise_table: std::sync::OnceLock<Vec<f32>>,
    config: SynthConfig,
    device: Device,
}

impl Synth {
    /// Builds the synthesiser on `vb`.
    pub fn new(config: &SynthConfig, vb: VarBuilder, device: &Device) -> Result<Synth> {
        config.check()?;
        let (h, c) = (config.hidden, config);
        let outputs = 1 + c.harmonics + c.noise_bands;
        Ok(Synth {
            timbres: candle_nn::embedding(c.timbres.len(), c.timbre_dim, vb.pp("timbres"))?,
            hidden: [
                Dense::new(c.input_dim(), h, vb.pp("hidden1"))?,
                Dense::new(h, h, vb.pp("hidden2"))?,
                Dense::new(h, h, vb.pp("hidden3"))?,
            ],
            out: Dense::new(h, outputs, vb.pp("out"))?,
            // Zero at first: every note starts exactly at its pitch.
            pitch: Dense::zeros(h, 1, vb.pp("pitch"))?,
            band_edges: band_edges(c.noise_bands, c.sample_rate as f32),
            noise_table: std::sync::OnceLock::new(),
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Reads a synthesiser folder.
    pub fn load(dir: &Path, device: &Device) -> Result<Synth> {
        Synth::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<Synth> {
        load_weights_folder(files, device, "synthesiser", |c: &SynthConfig, vb| {
            Synth::new(c, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    /// Samples a note sounds for: its length plus the tail, capped, in whole frames.
    pub fn note_samples(&self, duration: f32) -> usize {
        let c = &self.config;
        let seconds = (duration.max(0.0) + c.tail_seconds).min(c.max_note_seconds);
        let frames = ((seconds * c.sample_rate as f32) / c.hop as f32).ceil().max(1.0) as usize;
        frames * c.hop
    }

    /// Controls of `notes` over `samples` samples starting `offset` seconds after
    /// each onset (`samples` a multiple of the hop).
    pub fn controls(&self, notes: &[SynthNote], offset: f32, samples: usize) -> Result<NoteControls> {
        let c = &self.config;
        let frames = samples / c.hop + 1;
        let sr = c.sample_rate as f32;
        let mut inputs = Vec::with_capacity(notes.len() * frames * (7 + 2 * c.octaves));
        let (mut timbres, mut f0) = (Vec::new(), Vec::new());
        for note in notes {
            if note.timbre as usize >= c.timbres.len() {
                return Err(ModelError::Invalid(format!(
                    "timbre id {} is out of range; this synthesiser has {}",
                    note.timbre,
                    c.timbres.len()
                )));
            }
            timbres.push(note.timbre);
            let midi = note.pitch.unwrap_or(UNPITCHED_MIDI);
            f0.push(midi_to_hz(midi));
            let duration = note.duration.max(0.01);
            for j in 0..frames {
                let t = offset + (j * c.hop) as f32 / sr;
                let past_end = t - duration;
                inputs.extend([
                    (midi - 60.0) / 24.0,
                    note.pitch.is_some() as u8 as f32,
                    note.velocity,
                    duration.ln(),
                    (1.0 + t / 0.01).ln() / 6.0,
                    (t / duration).min(4.0),
                    (past_end / 0.05).tanh(),
                ]);
                for o in 0..c.octaves {
                    let w = std::f32::consts::TAU * (1u32 << o) as f32 / 8.0;
                    inputs.extend([(w * t).sin(), (w * t).cos()]);
                }
            }
        }
        let b = notes.len();
        Ok(NoteControls {
            inputs: Tensor::from_vec(inputs, (b, frames, 7 + 2 * c.octaves), &self.device)?,
            timbres: Tensor::from_vec(timbres, b, &self.device)?,
            f0: Tensor::from_vec(f0, b, &self.device)?,
        })
    }

    /// What the network says at each frame of the controls: the harmonic amplitudes,
    /// the noise bands' gains and the oscillators' frequency.
    fn frame_params(&self, controls: &NoteControls) -> Result<FrameParams> {
        let c = &self.config;
        let (b, frames, _) = controls.inputs.dims3()?;
        let (k, bands) = (c.harmonics, c.noise_bands);
        let timbre = self.timbres.forward(&controls.timbres)?.unsqueeze(1)?;
        let timbre = timbre.broadcast_as((b, frames, c.timbre_dim))?.contiguous()?;
        let mut xs = Tensor::cat(&[timbre, controls.inputs.clone()], 2)?;
        for layer in &self.hidden {
            xs = gelu(&layer.forward(&xs)?)?;
        }
        let out = self.out.forward(&xs)?;
        let loudness = exp_sigmoid(&out.narrow(2, 0, 1)?)?; // (b, F, 1)
        let shape_logits = out.narrow(2, 1, k)?;
        let noise_gain = exp_sigmoid(&out.narrow(2, 1 + k, bands)?)?.affine(0.5, 0.0)?;
        // A pitched note keeps its pitch, within a vibrato; an unpitched one may glide
        // (a kick's fall). A free offset for every note let the drums' glide leak into
        // the melodies, a third above their pitch at each onset.
        let pitched = controls.inputs.narrow(2, 1, 1)?; // (b, F, 1): 1 for pitched notes
        let range = pitched.affine(PITCHED_RANGE - UNPITCHED_RANGE, UNPITCHED_RANGE)?;
        let ratio = (self.pitch.forward(&xs)?.tanh()? * range)?.squeeze(2)?; // (b, F) log f0 ratio
        let sr = c.sample_rate as f64;
        let freq = ratio.exp()?.broadcast_mul(&controls.f0.unsqueeze(1)?)?; // (b, F) Hz
        let orders = Tensor::arange(1u32, k as u32 + 1, &self.device)?.to_dtype(DType::F32)?;
        // Harmonic amplitudes: a distribution over the harmonics below Nyquist.
        let audible = freq
            .unsqueeze(2)?
            .broadcast_mul(&orders.reshape((1, 1, k))?)?
            .lt(0.45 * sr)?
            .to_dtype(DType::F32)?
            .detach();
        let shape = (shape_logits
            .broadcast_sub(&shape_logits.max_keepdim(2)?.detach())?
            .exp()?
            * audible)?;
        let shape = shape.broadcast_div(&(shape.sum_keepdim(2)? + 1e-7)?)?;
        Ok(FrameParams {
            amplitudes: shape.broadcast_mul(&loudness)?.transpose(1, 2)?, // (b, K, F)
            noise_gains: noise_gain.transpose(1, 2)?,                     // (b, bands, F)
            omega: freq.affine(TAU / sr, 0.0)?,                           // (b, F)
        })
    }

    /// The audio of the controls (b, F - 1 frames of hop samples), with `noise` (b,
    /// bands, samples) from [`Self::noise_bands`]: differentiable, for training.
    pub fn synthesise(&self, controls: &NoteControls, noise: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, frames, _) = controls.inputs.dims3()?;
        let (k, hop) = (c.harmonics, c.hop);
        let FrameParams {
            amplitudes,
            noise_gains,
            omega,
        } = self.frame_params(controls)?;
        // The phase at each frame start, then within the frame at the frame's frequency.
        let later = strictly_later(frames, &self.device)?;
        let phase = omega.affine(hop as f64, 0.0)?.matmul(&later)?; // (b, F)
        let orders = Tensor::arange(1u32, k as u32 + 1, &self.device)?
            .to_dtype(DType::F32)?
            .reshape((1, k, 1))?;
        let steps = frames - 1;
        let kphase = phase.narrow(1, 0, steps)?.unsqueeze(1)?.broadcast_mul(&orders)?; // (b, K, S)
        let wrapped = (&kphase - (kphase.affine(1.0 / TAU, 0.0)?.floor()?.detach() * TAU)?)?;
        let komega = omega.narrow(1, 0, steps)?.unsqueeze(1)?.broadcast_mul(&orders)?;
        let within = Tensor::arange(0u32, hop as u32, &self.device)?
            .to_dtype(DType::F32)?
            .reshape((1, 1, 1, hop))?;
        let sample_phase = wrapped
            .unsqueeze(3)?
            .broadcast_add(&komega.unsqueeze(3)?.broadcast_mul(&within)?)?
            .reshape((b, k, steps * hop))?;
        let harmonic = (interpolate(&amplitudes, hop)? * sample_phase.sin()?)?.sum(1)?;
        let gains = interpolate(&noise_gains, hop)?; // (b, B, S hop)
        let noisy = (gains * noise)?.sum(1)?;
        Ok((harmonic + noisy)?)
    }

    /// `samples` of white noise from `seed`, split into the synthesiser's noise bands:
    /// (bands, samples).
    pub fn noise_bands(&self, seed: u64, samples: usize) -> Result<Vec<f32>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut white: Vec<f32> = (0..samples).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let mut planner = RealFftPlanner::<f32>::new();
        let (forward, inverse) = (planner.plan_fft_forward(samples), planner.plan_fft_inverse(samples));
        let mut spectrum = forward.make_output_vec();
        forward
            .process(&mut white, &mut spectrum)
            .map_err(|e| ModelError::Invalid(format!("noise FFT: {e}")))?;
        let bin_hz = self.config.sample_rate as f32 / samples as f32;
        let mut out = Vec::with_capacity(self.config.noise_bands * samples);
        let mut band = spectrum.clone();
        let mut signal = vec![0f32; samples];
        for w in self.band_edges.windows(2) {
            for (i, (dst, src)) in band.iter_mut().zip(&spectrum).enumerate() {
                let f = i as f32 * bin_hz;
                *dst = if f >= w[0] && f < w[1] {
                    *src / samples as f32
                } else {
                    Default::default()
                };
            }
            // The DC and Nyquist bins of a real signal have no imaginary part.
            band[0].im = 0.0;
            if let Some(last) = band.last_mut() {
                last.im = 0.0;
            }
            inverse
                .process(&mut band, &mut signal)
                .map_err(|e| ModelError::Invalid(format!("noise FFT: {e}")))?;
            out.extend_from_slice(&signal);
        }
        Ok(out)
    }

    /// Renders notes whose lengths give the same frame count, each with its own noise
    /// seed: one sample vector per note. The network runs at frame rate; the
    /// oscillators and noise bands run sample by sample ([`fast`]), with each note's
    /// noise read from the synthesiser's band-limited noise table at an offset drawn
    /// from its seed.
    pub fn render_batch(&self, notes: &[SynthNote], seeds: &[u64], samples: usize) -> Result<Vec<Vec<f32>>> {
        let controls = self.controls(notes, 0.0, samples)?;
        let table = self.noise_table()?;
        let len = table.len() / self.config.noise_bands;
        let offsets: Vec<usize> = seeds
            .iter()
            .map(|&seed| (rand_chacha::ChaCha8Rng::seed_from_u64(seed).random::<u64>() % len as u64) as usize)
            .collect();
        self.synthesise_frames(&controls, |note, band, at| {
            table[band * len + (offsets[note] + at) % len]
        })
    }

    /// The synthesiser's noise: white noise split into its bands, [`NOISE_TABLE`]
    /// samples each (one period: read cyclically), made once.
    fn noise_table(&self) -> Result<&[f32]> {
        if let Some(table) = self.noise_table.get() {
            return Ok(table);
        }
        let table = self.noise_bands(NOISE_TABLE_SEED, NOISE_TABLE)?;
        Ok(self.noise_table.get_or_init(|| table))
    }

    /// The audio of the controls, as [`Self::synthesise`] makes it, with the network
    /// at frame rate and the rest sample by sample: `noise(note, band, sample)`.
    pub(crate) fn synthesise_frames(
        &self,
        controls: &NoteControls,
        noise: impl Fn(usize, usize, usize) -> f32,
    ) -> Result<Vec<Vec<f32>>> {
        let params = self.frame_params(controls)?;
        let amplitudes: Vec<Vec<Vec<f32>>> = params.amplitudes.to_vec3()?;
        let gains: Vec<Vec<Vec<f32>>> = params.noise_gains.to_vec3()?;
        let omega: Vec<Vec<f32>> = params.omega.to_vec2()?;
        let hop = self.config.hop;
        Ok((0..amplitudes.len())
            .map(|n| {
                let mut out = fast::oscillators(&amplitudes[n], &omega[n], hop);
                fast::add_noise(&mut out, &gains[n], hop, |band, at| noise(n, band, at));
                out
            })
            .collect())
    }
}

/// The network's output at each frame of a batch of notes.
struct FrameParams {
    /// (b, K, F): each harmonic's amplitude.
    amplitudes: Tensor,
    /// (b, bands, F): each noise band's gain.
    noise_gains: Tensor,
    /// (b, F): the fundamental's frequency, radians per sample.
    omega: Tensor,
}

/// DDSP's positive nonlinearity: 2 sigmoid(x)^ln(10) + 1e-7, in (0, 2].
fn exp_sigmoid(xs: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::sigmoid(xs)?.powf(10f64.ln())?.affine(2.0, 1e-7)?)
}

/// (F, F) with 1 where row < column: `x @ it` sums every earlier frame.
fn strictly_later(frames: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..frames * frames)
        .map(|i| ((i / frames) < (i % frames)) as u8 as f32)
        .collect();
    Ok(Tensor::from_vec(data, (frames, frames), device)?)
}

/// (b, c, F) frame values to (b, c, (F - 1) hop) samples, linear between frames.
fn interpolate(frames: &Tensor, hop: usize) -> Result<Tensor> {
    let (b, c, f) = frames.dims3()?;
    let steps = f - 1;
    let start = frames.narrow(2, 0, steps)?.unsqueeze(3)?;
    let end = frames.narrow(2, 1, steps)?.unsqueeze(3)?;
    let weights: Vec<f32> = (0..hop).map(|i| i as f32 / hop as f32).collect();
    let w = Tensor::from_vec(weights, (1, 1, 1, hop), frames.device())?;
    let out = start.broadcast_add(&(end - &start)?.broadcast_mul(&w)?)?;
    Ok(out.reshape((b, c, steps * hop))?)
}

/// Noise band edges, Hz: the first from 0, then log-spaced from 40 Hz to Nyquist.
fn band_edges(bands: usize, sample_rate: f32) -> Vec<f32> {
    let nyquist = sample_rate / 2.0;
    let mut edges = vec![0.0];
    for i in 1..bands {
        edges.push(40.0 * (nyquist / 40.0).powf(i as f32 / bands as f32));
    }
    edges.push(nyquist + 1.0);
    edges
}

/// The multi-resolution STFT loss of Engel et al. (2020) between audio `made` and
/// `target` (b, samples): over FFT sizes `sizes` (hop a quarter of each), the mean
/// absolute difference of magnitudes and of log magnitudes.
pub fn stft_loss(made: &Tensor, target: &Tensor, sizes: &[usize]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for &n in sizes {
        let (m, t) = (magnitudes(made, n)?, magnitudes(target, n)?);
        let linear = (&m - &t)?.abs()?.mean_all()?;
        let log = ((m + 1e-5)?.log()? - (t + 1e-5)?.log()?)?.abs()?.mean_all()?;
        let term = (linear + log)?;
        total = Some(match total {
            Some(sum) => (sum + term)?,
            None => term,
        });
    }
    total.ok_or_else(|| ModelError::Invalid("stft_loss needs at least one size".into()))
}

/// Hann-windowed STFT magnitudes (b, frames, n / 2 + 1) at FFT size `n`, hop n / 4,
/// as a matrix product of the frames with the DFT basis.
pub fn magnitudes(xs: &Tensor, n: usize) -> Result<Tensor> {
    let (b, samples) = xs.dims2()?;
    let hop = n / 4;
    if hop == 0 || samples < n || !samples.is_multiple_of(hop) {
        return Err(ModelError::Invalid(format!(
            "STFT of {samples} samples at size {n}: needs at least {n} samples, a multiple of {hop}"
        )));
    }
    let chunks = xs.reshape((b, samples / hop, hop))?;
    let count = samples / hop - 3;
    let frames = Tensor::cat(
        &(0..4)
            .map(|i| chunks.narrow(1, i, count))
            .collect::<candle_core::Result<Vec<_>>>()?,
        2,
    )?;
    let bins = n / 2 + 1;
    let mut basis = vec![0f32; n * 2 * bins];
    for i in 0..n {
        let window = 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos();
        for k in 0..bins {
            let angle = TAU * (i * k) as f64 / n as f64;
            basis[i * 2 * bins + k] = (window * angle.cos()) as f32;
            basis[i * 2 * bins + bins + k] = (window * angle.sin()) as f32;
        }
    }
    let basis = Tensor::from_vec(basis, (n, 2 * bins), xs.device())?;
    let spectrum = frames.reshape((b * count, n))?.matmul(&basis)?;
    let power = (spectrum.narrow(1, 0, bins)?.sqr()? + spectrum.narrow(1, bins, bins)?.sqr()?)?;
    Ok((power + 1e-10)?.sqrt()?.reshape((b, count, bins))?)
}

/// Mixes rendered notes into one stream: each note is added at its onset, and a
/// sample is handed to `sink` (in blocks of `block` samples, the last maybe shorter)
/// once no later note can reach it. Peaks are tamed by a gain and a soft clip
/// (tanh), so that the stream needs no look at its whole length.
pub struct MixSettings {
    /// Total samples of the stream.
    pub samples: usize,
    /// Samples per block handed to the sink.
    pub block: usize,
    /// Gain before the soft clip.
    pub gain: f32,
}

/// Renders `notes` (sorted by onset) with `synth` into a stream of `mix.samples`
/// samples, noise seeded per note from `seed`; notes of equal frame counts that start
/// close together share one network pass. Returns the samples handed to `sink`.
pub fn render_stream(
    synth: &Synth,
    notes: &[SynthNote],
    seed: u64,
    mix: &MixSettings,
    mut sink: impl FnMut(&[f32]) -> Result<()>,
) -> Result<usize> {
    if mix.block == 0 {
        return Err(ModelError::Invalid("block is 0 samples; allowed at least 1".into()));
    }
    if notes.windows(2).any(|w| w[1].onset < w[0].onset) {
        return Err(ModelError::Invalid("notes must be sorted by onset".into()));
    }
    let sr = synth.config.sample_rate as f32;
    // `pending[0]` is sample `done` of the stream.
    let mut pending: std::collections::VecDeque<f32> = std::collections::VecDeque::new();
    let mut done = 0usize;
    let mut ready: Vec<f32> = Vec::with_capacity(mix.block);
    let mut emit = |value: f32, ready: &mut Vec<f32>| -> Result<()> {
        ready.push((mix.gain * value).tanh());
        if ready.len() == mix.block {
            sink(ready)?;
            ready.clear();
        }
        Ok(())
    };
    let mut i = 0;
    // Groups are formed from the score alone (never from the block size): up to 64
    // consecutive notes with the same frame count.
    while i < notes.len() {
        let samples = synth.note_samples(notes[i].duration);
        let mut j = i + 1;
        while j < notes.len() && j - i < 64 && synth.note_samples(notes[j].duration) == samples {
            j += 1;
        }
        let seeds: Vec<u64> = (i..j)
            .map(|k| seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let rendered = synth.render_batch(&notes[i..j], &seeds, samples)?;
        for (note, audio) in notes[i..j].iter().zip(rendered) {
            // A note that starts before the stream is heard from the stream's start.
            let onset = (note.onset * sr).round() as i64;
            let skip = (-onset).max(0) as usize;
            let start = onset.max(0) as usize;
            if start >= mix.samples || skip >= audio.len() {
                continue;
            }
            let end = (start + audio.len() - skip).min(mix.samples);
            if pending.len() < end - done {
                pending.resize(end - done, 0.0);
            }
            for (k, x) in audio[skip..].iter().take(end - start).enumerate() {
                pending[start - done + k] += x;
            }
        }
        // Everything before the next group's first onset is final.
        let next_start = notes
            .get(j)
            .map(|n| ((n.onset.max(0.0) * sr).round() as usize).min(mix.samples))
            .unwrap_or(mix.samples);
        while done < next_start {
            let value = pending.pop_front().unwrap_or(0.0);
            emit(value, &mut ready)?;
            done += 1;
        }
        i = j;
    }
    while done < mix.samples {
        let value = pending.pop_front().unwrap_or(0.0);
        emit(value, &mut ready)?;
        done += 1;
    }
    if !ready.is_empty() {
        sink(&ready)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
