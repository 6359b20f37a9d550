//! The hybrid text-to-audio model: the Transformer text encoder conditions a
//! diffusion transformer over log-mel spectrograms (in the manner of Make-An-Audio /
//! AudioLDM, with the spectrogram itself as the latent: the world's music at 16 kHz
//! is small enough), and the mel is turned back into sound by Griffin-Lim.
//!
//! The DiT reads a clip as a sequence of tokens, each `frames_per_token` mel frames
//! of all bands (full-band patches keep a note's harmonics in one token). It is
//! trained on windows of `window_tokens` tokens (4 s); longer audio is denoised as
//! overlapping windows averaged at every step ([`crate::windows`]), so there is no
//! length cap.
//!
//! A model folder holds `config.json` ([`HybridAudioConfig`]), `tokenizer.json` and
//! `model.safetensors` (parameters under `text.` and `dit.`, f16).

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use candle_nn::{linear, Init, Linear, VarBuilder};
use mmgen_diffusion::{denoise, sampler_by_name, BetaSchedule, DenoiseRequest, NoiseSchedule, Prediction};
use serde::{Deserialize, Serialize};

use crate::dit::{zero_linear, DitText, DitTrunk};
use crate::error::{ModelError, Result};
use crate::mel::{LogMel, MelConfig, MelSpectrogram};
use crate::sampling::{check_prompts, encode_guided, guided_model, SamplingSettings};
use crate::text_encoder::{TextEncoder, TextEncoderConfig, TextStates};
use crate::tokenizer::TextTokenizer;
use crate::weights::{load_folder, FolderFiles};
use crate::windows::windowed_dit;

/// Shape of the mel diffusion transformer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AudioDitConfig {
    /// Mel frames per token.
    pub frames_per_token: usize,
    /// Tokens per training window.
    pub window_tokens: usize,
    /// Token width.
    pub dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of the text encoder's states.
    pub text_dim: usize,
}

/// Everything that shapes a hybrid text-to-audio model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HybridAudioConfig {
    /// The text encoder.
    pub text: TextEncoderConfig,
    /// The spectrogram.
    pub mel: MelConfig,
    /// The diffusion transformer.
    pub dit: AudioDitConfig,
    /// The training noise schedule.
    pub schedule: BetaSchedule,
    /// Training timesteps.
    pub train_steps: usize,
    /// What the DiT predicts.
    pub prediction: Prediction,
    /// Log-mel values are standardised as (v - mel_mean) / mel_std before diffusion
    /// (measured on training clips).
    pub mel_mean: f64,
    /// See `mel_mean`.
    pub mel_std: f64,
}

impl HybridAudioConfig {
    /// The shipped shape: 4 s windows of 128-band mel at 8 ms hops, 4 frames a token
    /// (125 tokens).
    pub fn base(vocab_size: usize) -> HybridAudioConfig {
        let text = TextEncoderConfig::base(vocab_size);
        HybridAudioConfig {
            dit: AudioDitConfig {
                frames_per_token: 4,
                window_tokens: 125,
                dim: 192,
                depth: 6,
                heads: 6,
                text_dim: text.dim,
            },
            text,
            mel: MelConfig::default(),
            schedule: BetaSchedule::stable_diffusion(),
            train_steps: 1000,
            prediction: Prediction::V,
            mel_mean: 0.0,
            mel_std: 1.0,
        }
    }

    /// A tiny model for tests (0.25 s windows of 16 bands).
    pub fn tiny(vocab_size: usize) -> HybridAudioConfig {
        let text = TextEncoderConfig::tiny(vocab_size);
        HybridAudioConfig {
            dit: AudioDitConfig {
                frames_per_token: 4,
                window_tokens: 8,
                dim: 16,
                depth: 1,
                heads: 2,
                text_dim: text.dim,
            },
            text,
            mel: MelConfig {
                n_mels: 16,
                ..MelConfig::default()
            },
            schedule: BetaSchedule::stable_diffusion(),
            train_steps: 1000,
            prediction: Prediction::V,
            mel_mean: 0.0,
            mel_std: 1.0,
        }
    }

    /// Mel frames per training window.
    pub fn window_frames(&self) -> usize {
        self.dit.frames_per_token * self.dit.window_tokens
    }

    /// Seconds of audio per training window.
    pub fn window_seconds(&self) -> f64 {
        (self.window_frames() * self.mel.hop) as f64 / self.mel.sample_rate as f64
    }

    /// Checks that the parts fit together.
    pub fn check(&self) -> Result<()> {
        let d = &self.dit;
        if d.frames_per_token == 0 || d.window_tokens < 2 || d.text_dim != self.text.dim {
            return Err(ModelError::Invalid(format!(
                "the parts do not fit: {d:?} with a text encoder of width {} (need frames_per_token >= 1, window_tokens >= 2)",
                self.text.dim
            )));
        }
        if !(self.mel_std.is_finite() && self.mel_std > 0.0 && self.mel_mean.is_finite()) {
            return Err(ModelError::Invalid(format!(
                "mel_mean {} and mel_std {} must be finite, mel_std positive",
                self.mel_mean, self.mel_std
            )));
        }
        Ok(())
    }
}

/// Standardised mel frames (window_frames, n_mels) of a training clip, flattened: its
/// first window (the clip must be at least that long).
pub fn window_frames_of(mel: &MelSpectrogram, config: &HybridAudioConfig, clip: &[f32]) -> Result<Vec<f32>> {
    let log_mel = mel.log_mel(clip);
    let need = config.window_frames();
    if log_mel.frames < need {
        return Err(ModelError::Invalid(format!(
            "a clip of {} samples gives {} mel frames; a training window needs {need} ({:.2} s)",
            clip.len(),
            log_mel.frames,
            config.window_seconds()
        )));
    }
    let (mean, std) = (config.mel_mean as f32, config.mel_std as f32);
    Ok(log_mel.values[..need * log_mel.n_mels]
        .iter()
        .map(|v| (v - mean) / std)
        .collect())
}

/// The diffusion transformer over mel frames. Parameters `patch_in`, `positions`,
/// `patch_out` and the [`DitTrunk`]'s.
pub struct AudioDit {
    patch_in: Linear,
    positions: Tensor,
    trunk: DitTrunk,
    patch_out: Linear,
    config: AudioDitConfig,
    n_mels: usize,
}

impl AudioDit {
    /// Builds the network for `n_mels`-band spectrograms.
    pub fn new(config: &AudioDitConfig, n_mels: usize, vb: VarBuilder) -> Result<AudioDit> {
        let patch_dim = config.frames_per_token * n_mels;
        Ok(AudioDit {
            patch_in: linear(patch_dim, config.dim, vb.pp("patch_in"))?,
            positions: vb.get_with_hints(
                (config.window_tokens, config.dim),
                "positions",
                Init::Randn { mean: 0.0, stdev: 0.02 },
            )?,
            trunk: DitTrunk::new(config.dim, config.depth, config.heads, config.text_dim, 0, vb.clone())?,
            patch_out: zero_linear(config.dim, patch_dim, vb.pp("patch_out"))?,
            config: config.clone(),
            n_mels,
        })
    }

    /// See [`DitTrunk::prepare_text`].
    pub fn prepare_text(&self, text: &TextStates) -> Result<DitText> {
        self.trunk.prepare_text(&text.states, &text.mask, &text.pooled)
    }

    /// The prediction for one window of noisy standardised mel frames `xs`
    /// (b, window_tokens * frames_per_token, n_mels) at `timesteps` (b,).
    pub fn forward_prepared(&self, xs: &Tensor, timesteps: &Tensor, text: &DitText) -> Result<Tensor> {
        let c = &self.config;
        let (b, frames, mels) = xs.dims3()?;
        if frames != c.window_tokens * c.frames_per_token || mels != self.n_mels {
            return Err(ModelError::Invalid(format!(
                "the audio DiT takes windows of ({}, {}) mel frames; got {:?}",
                c.window_tokens * c.frames_per_token,
                self.n_mels,
                xs.dims()
            )));
        }
        let tokens = self
            .patch_in
            .forward(&xs.reshape((b, c.window_tokens, c.frames_per_token * mels))?)?
            .broadcast_add(&self.positions.unsqueeze(0)?)?;
        let tokens = self.trunk.forward(&tokens, 1, timesteps, text)?;
        Ok(self.patch_out.forward(&tokens)?.reshape(xs.shape())?)
    }

    /// [`Self::forward_prepared`] with unprepared text, for training.
    pub fn forward(&self, xs: &Tensor, timesteps: &Tensor, text: &TextStates) -> Result<Tensor> {
        self.forward_prepared(xs, timesteps, &self.prepare_text(text)?)
    }
}

/// One clip of audio to make.
pub type AudioRequest = crate::sampling::SeededPrompt;

/// How to make them (shared by a batch).
#[derive(Clone, Debug)]
pub struct AudioSettings {
    /// Steps, guidance, negative prompt, sampler.
    pub sampling: SamplingSettings,
    /// Length of the clip, seconds (no upper bound beyond [`MAX_AUDIO_SECONDS`]).
    pub seconds: f64,
    /// Griffin-Lim iterations of the vocoder.
    pub vocoder_iters: usize,
}

/// The longest clip one request may ask for (an hour): beyond it a typo, not a wish.
pub const MAX_AUDIO_SECONDS: f64 = 3600.0;

impl Default for AudioSettings {
    fn default() -> AudioSettings {
        AudioSettings {
            sampling: SamplingSettings::default(),
            seconds: 4.0,
            vocoder_iters: 32,
        }
    }
}

impl AudioSettings {
    /// Rejects settings that cannot run, saying which and what is allowed.
    pub fn check(&self) -> Result<()> {
        self.sampling.check()?;
        if !(self.seconds.is_finite() && self.seconds >= 0.1 && self.seconds <= MAX_AUDIO_SECONDS) {
            return Err(ModelError::Invalid(format!(
                "seconds is {}; allowed 0.1 to {MAX_AUDIO_SECONDS}",
                self.seconds
            )));
        }
        if self.vocoder_iters == 0 || self.vocoder_iters > 1000 {
            return Err(ModelError::Invalid(format!(
                "vocoder_iters is {}; allowed 1 to 1000",
                self.vocoder_iters
            )));
        }
        Ok(())
    }
}

/// A loaded hybrid text-to-audio model.
pub struct HybridAudio {
    tokenizer: TextTokenizer,
    text: TextEncoder,
    dit: AudioDit,
    mel: MelSpectrogram,
    schedule: NoiseSchedule,
    config: HybridAudioConfig,
    device: Device,
}

impl HybridAudio {
    /// Builds the model on `vb` (parameters under `text.` and `dit.`).
    pub fn new(
        config: &HybridAudioConfig,
        tokenizer: TextTokenizer,
        vb: VarBuilder,
        device: &Device,
    ) -> Result<HybridAudio> {
        config.check()?;
        config.text.check_tokenizer(&tokenizer)?;
        Ok(HybridAudio {
            tokenizer,
            text: TextEncoder::new(&config.text, vb.pp("text"))?,
            dit: AudioDit::new(&config.dit, config.mel.n_mels, vb.pp("dit"))?,
            mel: MelSpectrogram::new(&config.mel)?,
            schedule: NoiseSchedule::new(config.schedule, config.train_steps)?,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Loads a model folder (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn load(dir: &Path, device: &Device) -> Result<HybridAudio> {
        HybridAudio::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<HybridAudio> {
        load_folder(files, device, "hybrid audio", |config, tokenizer, vb| {
            HybridAudio::new(config, tokenizer, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HybridAudioConfig {
        &self.config
    }

    /// The spectrogram.
    pub fn mel(&self) -> &MelSpectrogram {
        &self.mel
    }

    /// Encodes token ids (b, L) with their mask (b, L).
    pub fn encode_ids(&self, ids: &Tensor, mask: &Tensor) -> Result<TextStates> {
        self.text.encode_ids(ids, mask)
    }

    /// The DiT's prediction for a batch of noisy standardised windows.
    pub fn predict(&self, xs: &Tensor, timesteps: &Tensor, text: &TextStates) -> Result<Tensor> {
        self.dit.forward(xs, timesteps, text)
    }

    /// Makes one clip per request, `settings.seconds` long. `progress(done, total)` is
    /// called after every sampler step.
    pub fn generate(
        &self,
        requests: &[AudioRequest],
        settings: &AudioSettings,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Vec<f32>>> {
        // 1. Validate.
        settings.check()?;
        check_prompts(requests.iter().map(|r| r.prompt.as_str()), "to play")?;
        let b = requests.len();
        let samples = (settings.seconds * self.config.mel.sample_rate as f64).round() as usize;
        // The centred STFT has one frame per hop plus one; the DiT makes the first
        // `samples / hop` (as it was trained: a 4 s window is 500 of 4 s's 501 frames,
        // so 4 s is one window, not two offset by a frame) and the last is repeated.
        let frames = self.mel.frames_for(samples);
        let generated = (frames - 1).max(1);
        // 2. Text, once for all steps.
        let guide = settings.sampling.guidance != 1.0;
        let prompts: Vec<&str> = requests.iter().map(|r| r.prompt.as_str()).collect();
        let text = encode_guided(
            &self.text,
            &self.tokenizer,
            &prompts,
            &settings.sampling.negative,
            guide,
            &self.device,
        )?;
        let text = self.dit.prepare_text(&text)?;
        // 3. Denoise the whole clip as overlapping windows (a quarter overlap).
        let window = self.config.window_frames();
        let overlap = (self.config.dit.window_tokens / 4).max(1) * self.config.dit.frames_per_token;
        let mut sampler = sampler_by_name(&settings.sampling.sampler, &self.schedule)?;
        let seeds: Vec<u64> = requests.iter().map(|r| r.seed).collect();
        let request = DenoiseRequest {
            steps: settings.sampling.steps,
            seeds: &seeds,
            prediction: self.config.prediction,
            init: None,
            inpaint: None,
        };
        let network = windowed_dit(
            |xs, t, text| self.dit.forward_prepared(xs, t, text),
            &text,
            window,
            overlap,
        );
        let model = guided_model(b, settings.sampling.guidance, &self.device, network);
        let shape = [b, generated, self.config.mel.n_mels];
        let mels = denoise(sampler.as_mut(), &shape, &self.device, &request, model, progress)?;
        let mels = if generated < frames {
            Tensor::cat(&[&mels, &mels.narrow(1, generated - 1, frames - generated)?], 1)?
        } else {
            mels
        };
        // 4. Undo the standardisation and vocode.
        let mels = mels.affine(self.config.mel_std, self.config.mel_mean)?;
        (0..b)
            .map(|i| {
                let values: Vec<f32> = mels.get(i)?.flatten_all()?.to_vec1()?;
                let mel = LogMel {
                    values,
                    frames,
                    n_mels: self.config.mel.n_mels,
                };
                self.mel.vocode(&mel, samples, settings.vocoder_iters, requests[i].seed)
            })
            .collect()
    }
}
