//! The denoising loop every pipeline shares (image, video and audio latents):
//! initial noise or a noised init (img2img), one network call and one sampler step
//! per level, inpainting by re-imposing the known region, progress by callback, a
//! cancellation check before every step.

use candle_core::{Device, Tensor};

use crate::error::{DiffusionError, Result};
use crate::noise::gaussian;
use crate::prediction::Prediction;
use crate::sampler::Sampler;

/// Inpainting: generate where `mask` is 1, keep `known` where it is 0.
pub struct Inpaint<'a> {
    /// The clean latent whose unmasked part is kept, shaped as the output.
    pub known: &'a Tensor,
    /// 1 where to generate, 0 where to keep; broadcastable to the output.
    pub mask: &'a Tensor,
}

/// What one denoising run is asked to do.
pub struct DenoiseRequest<'a> {
    /// Network evaluations (sampler steps) of a full run from pure noise.
    pub steps: usize,
    /// One seed per batch element: element b's noise depends on `seeds[b]` only, so a
    /// batch gives what its elements give one by one.
    pub seeds: &'a [u64],
    /// What the network predicts.
    pub prediction: Prediction,
    /// img2img: a clean latent (batch first, like the output) and the strength in
    /// (0, 1]: the share of the run that is redone (1 = from pure noise).
    pub init: Option<(&'a Tensor, f64)>,
    /// Inpainting (with or without `init`).
    pub inpaint: Option<Inpaint<'a>>,
}

/// splitmix64: independent streams from (seed, purpose, step).
fn stream(seed: u64, step: u64) -> u64 {
    let mut z = seed
        ^ step
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The standard normal noise a run draws at `step` for a batch with `seeds` (step 0:
/// the initial noise; step 1 + i: a stochastic sampler's noise at step i).
pub fn batch_noise(seeds: &[u64], sample_shape: &[usize], step: u64, device: &Device) -> Result<Tensor> {
    let parts = seeds
        .iter()
        .map(|&seed| gaussian(sample_shape, stream(seed, step), device))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&parts, 0)?)
}

/// Runs `sampler` from noise (or `request.init`) to a clean sample of `shape` (batch
/// first, `shape[0] == seeds.len()`). `model(x_t, timestep)` returns the network's
/// prediction (guidance already applied); `progress(done, total)` is called after
/// every step.
pub fn denoise(
    sampler: &mut dyn Sampler,
    shape: &[usize],
    device: &Device,
    request: &DenoiseRequest,
    mut model: impl FnMut(&Tensor, f64) -> Result<Tensor>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Tensor> {
    if shape.first() != Some(&request.seeds.len()) || request.seeds.is_empty() {
        return Err(DiffusionError::Invalid(format!(
            "shape {shape:?} must start with the batch size, one seed each ({} seeds)",
            request.seeds.len()
        )));
    }
    sampler.set_timesteps(request.steps)?;
    let steps = request.steps;
    let sample_shape = &shape[1..];
    // img2img starts part-way: strength s redoes the last round(s * steps) steps.
    let start = match request.init {
        Some((_, strength)) if !(strength > 0.0 && strength <= 1.0) => {
            return Err(DiffusionError::Invalid(format!(
                "strength is {strength}; allowed more than 0, at most 1"
            )))
        }
        Some((_, strength)) => steps - ((strength * steps as f64).round() as usize).clamp(1, steps),
        None => 0,
    };
    let noise = batch_noise(request.seeds, sample_shape, 0, device)?;
    let sigma0 = sampler.levels()[start].sigma;
    let mut ys = match request.init {
        Some((x0, _)) => {
            if x0.dims() != shape {
                return Err(DiffusionError::Invalid(format!(
                    "init latent is {:?}; the output is {shape:?}",
                    x0.dims()
                )));
            }
            sampler.add_noise(x0, &noise, start)?
        }
        // Pure noise with the variance of noised data, so that x_t = y / sqrt(1 + sigma^2)
        // is exactly standard normal.
        None => noise.affine((1.0 + sigma0 * sigma0).sqrt(), 0.0)?,
    };
    if let Some(inpaint) = &request.inpaint {
        ys = impose_known(ys, inpaint, &noise, sampler.levels()[start].sigma)?;
    }
    let total = steps - start;
    for i in start..steps {
        crate::cancel::check()?;
        let level = sampler.levels()[i];
        let xs = ys.affine(1.0 / (1.0 + level.sigma * level.sigma).sqrt(), 0.0)?;
        let output = model(&xs, level.timestep)?;
        let denoised = request.prediction.denoised(&output, &ys, level.sigma)?;
        let step_noise = if sampler.is_stochastic() {
            Some(batch_noise(request.seeds, sample_shape, 1 + i as u64, device)?)
        } else {
            None
        };
        ys = sampler.step(i, &ys, &denoised, step_noise.as_ref())?;
        if let Some(inpaint) = &request.inpaint {
            let fresh = batch_noise(request.seeds, sample_shape, INPAINT_STREAM + i as u64, device)?;
            ys = impose_known(ys, inpaint, &fresh, sampler.levels()[i + 1].sigma)?;
        }
        progress(i + 1 - start, total);
    }
    Ok(ys)
}

/// Noise streams of the inpainting re-noise, apart from the sampler's.
const INPAINT_STREAM: u64 = 1 << 32;

/// The known region noised to `sigma` where the mask is 0, `ys` where it is 1
/// (the "replacement" method of inpainting, as in SDEdit / RePaint without resampling).
fn impose_known(ys: Tensor, inpaint: &Inpaint, noise: &Tensor, sigma: f64) -> Result<Tensor> {
    if inpaint.known.dims() != ys.dims() {
        return Err(DiffusionError::Invalid(format!(
            "inpainting latent is {:?}; the output is {:?}",
            inpaint.known.dims(),
            ys.dims()
        )));
    }
    let known = (inpaint.known + noise.affine(sigma, 0.0)?)?;
    let keep = inpaint.mask.affine(-1.0, 1.0)?;
    Ok((ys.broadcast_mul(inpaint.mask)? + known.broadcast_mul(&keep)?)?)
}

/// Classifier-free guidance (Ho & Salimans 2022): `uncond + scale (cond - uncond)`;
/// `uncond` is the prediction for the negative prompt (or the empty one).
pub fn guided(cond: &Tensor, uncond: &Tensor, scale: f64) -> Result<Tensor> {
    Ok((uncond + (cond - uncond)?.affine(scale, 0.0)?)?)
}
