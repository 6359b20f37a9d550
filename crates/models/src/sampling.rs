//! What the image, video and audio pipelines share around the sampler: checking the
//! sampling settings and prompts, encoding prompt and negative prompt in one batch,
//! and classifier-free guidance (Ho & Salimans 2022) around a network.

use candle_core::{Device, Tensor};
use mmgen_diffusion::guided;

use crate::error::{ModelError, Result};
use crate::text_encoder::{TextEncoder, TextStates};
use crate::tokenizer::TextTokenizer;

/// How a diffusion model samples, shared by the settings of every model that runs
/// one (still, clip, audio): steps, guidance, negative prompt and sampler.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingSettings {
    /// Sampler steps (network evaluations per sample, x2 with guidance).
    pub steps: usize,
    /// Classifier-free guidance scale (1: no guidance).
    pub guidance: f64,
    /// What to steer away from (the unconditional prompt of guidance; empty = none).
    pub negative: String,
    /// Sampler name (see [`mmgen_diffusion::SAMPLER_NAMES`]).
    pub sampler: String,
}

impl Default for SamplingSettings {
    /// The end-to-end models' defaults: 50 DDIM steps, guidance 4.
    fn default() -> SamplingSettings {
        SamplingSettings {
            steps: 50,
            guidance: 4.0,
            negative: String::new(),
            sampler: "ddim".into(),
        }
    }
}

impl SamplingSettings {
    /// Rejects settings that cannot run, saying which and what is allowed.
    pub fn check(&self) -> Result<()> {
        check_sampling(self.steps, self.guidance, &self.sampler)
    }
}

/// A prompt and the seed of every random draw made for it: one sample to make.
#[derive(Clone, Debug, PartialEq)]
pub struct SeededPrompt {
    /// What to make, in English or Chinese.
    pub prompt: String,
    /// Seed of the noise (and of the vocoder's phases, for audio).
    pub seed: u64,
}

/// Rejects sampler settings that cannot run, saying which and what is allowed.
fn check_sampling(steps: usize, guidance: f64, sampler: &str) -> Result<()> {
    let bad = |m: String| Err(ModelError::Invalid(m));
    if steps == 0 || steps > 1000 {
        return bad(format!("steps is {steps}; allowed 1 to 1000"));
    }
    if !(guidance.is_finite() && (0.0..=50.0).contains(&guidance)) {
        return bad(format!("guidance is {guidance}; allowed 0 to 50"));
    }
    if !mmgen_diffusion::SAMPLER_NAMES.contains(&sampler) {
        return bad(format!(
            "unknown sampler '{sampler}'; allowed: {}",
            mmgen_diffusion::SAMPLER_NAMES.join(", ")
        ));
    }
    Ok(())
}

/// Rejects an empty batch or an empty prompt; `what` says what the prompt asks for.
pub fn check_prompts<'a>(prompts: impl IntoIterator<Item = &'a str>, what: &str) -> Result<()> {
    let mut any = false;
    for prompt in prompts {
        any = true;
        if prompt.trim().is_empty() {
            return Err(ModelError::Invalid(format!(
                "prompt {prompt:?} is empty; say what {what} (English or Chinese)"
            )));
        }
    }
    if !any {
        return Err(ModelError::Invalid("no prompts given".into()));
    }
    Ok(())
}

/// The text of a guided batch: the prompts, then (with guidance) as many copies of
/// the negative prompt, encoded together so that both halves share a length.
pub fn encode_guided(
    encoder: &TextEncoder,
    tokenizer: &TextTokenizer,
    prompts: &[&str],
    negative: &str,
    guide: bool,
    device: &Device,
) -> Result<TextStates> {
    let mut texts = prompts.to_vec();
    if guide {
        texts.extend(std::iter::repeat_n(negative, prompts.len()));
    }
    encoder.encode_prompts(tokenizer, &texts, device)
}

/// A sampler's model function: runs `network(xs, timesteps)` on the batch of `b`
/// (twice over, conditional then negative, with guidance != 1) and combines the two
/// halves with classifier-free guidance.
pub fn guided_model<'a>(
    b: usize,
    guidance: f64,
    device: &'a Device,
    network: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + 'a,
) -> impl FnMut(&Tensor, f64) -> mmgen_diffusion::Result<Tensor> + 'a {
    let guide = guidance != 1.0;
    move |xs: &Tensor, timestep: f64| {
        let run = || -> Result<Tensor> {
            let n = if guide { 2 * b } else { b };
            let input = if guide { Tensor::cat(&[xs, xs], 0)? } else { xs.clone() };
            let t = Tensor::full(timestep as f32, n, device)?;
            let out = network(&input, &t)?;
            if guide {
                Ok(guided(&out.narrow(0, 0, b)?, &out.narrow(0, b, b)?, guidance)?)
            } else {
                Ok(out)
            }
        };
        run().map_err(|e| mmgen_diffusion::DiffusionError::Invalid(e.to_string()))
    }
}
