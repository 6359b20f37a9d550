//! The training loop every diffusion model of mmgen shares (image, video, audio):
//! workers prepare clean batches (rendered, encoded, tokenized) and draw the noise,
//! timesteps and dropped captions ahead of the loop; the loop moves tensors to the
//! device and steps, keeps EMA weights, checkpoints, and measures a validation loss
//! on a fixed batch at the start and the end.
//!
//! A tenth of the captions (by default) are replaced by the empty prompt, so that the
//! model also learns the unconditional prediction of classifier-free guidance (Ho &
//! Salimans 2022).

use std::collections::HashMap;
use std::path::Path;

use crate::fit::RunInfo;
use crate::fit::{fit_vars, CheckpointClock, FitOptions, StepReport};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use mmgen_diffusion::{gaussian, NoiseSchedule, Prediction};
use mmgen_models::weights::{load_f32, set_prefixed};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::OrderedWorkers;
use rand::Rng;
use serde_json::json;

use crate::ema::Ema;
use crate::error::{Result, TrainError};

/// A network trained by denoising: its prediction for noised data given token ids.
pub trait Denoiser {
    /// The prediction (epsilon, v or x0, as configured) for noised `xs` at
    /// `timesteps` (b,) under tokens `ids` (b, L) with `mask` (b, L).
    fn predict_ids(&self, xs: &Tensor, timesteps: &Tensor, ids: &Tensor, mask: &Tensor)
        -> mmgen_models::Result<Tensor>;
}

/// Clean training data of one batch, on the CPU.
pub struct CleanBatch {
    /// What the model learns to generate: (b, ...) latents, clips or spectrograms.
    pub data: Tensor,
    /// Token ids (b, L) u32.
    pub tokens: Tensor,
    /// Token mask (b, L), 1 for real tokens.
    pub token_mask: Tensor,
}

/// Choices of a diffusion run beyond the loop's.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DenoiserOptions {
    /// Share of captions replaced by the empty prompt.
    pub p_uncond: f64,
    /// EMA decay of the shipped weights.
    pub ema_decay: f64,
}

impl Default for DenoiserOptions {
    fn default() -> DenoiserOptions {
        DenoiserOptions {
            p_uncond: 0.1,
            ema_decay: 0.999,
        }
    }
}

impl DenoiserOptions {
    /// Rejects values outside [0, 1).
    pub fn check(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.p_uncond) || !(0.0..1.0).contains(&self.ema_decay) {
            return Err(TrainError::Invalid(format!(
                "p_uncond {} and ema_decay {} must be in [0, 1)",
                self.p_uncond, self.ema_decay
            )));
        }
        Ok(())
    }
}

/// Where a run writes its model folder (checkpoints, then the final weights).
pub struct ModelFolder<'a, C> {
    /// The folder.
    pub dir: &'a Path,
    /// Its config.json.
    pub config: &'a C,
    /// Its tokenizer.json.
    pub tokenizer: &'a mmgen_models::tokenizer::TextTokenizer,
}

impl<C: serde::Serialize> ModelFolder<'_, C> {
    /// Writes config, tokenizer, EMA weights (f16; variables outside `ema`, such as a
    /// frozen VAE, from `varmap`) and metrics.
    fn save(&self, varmap: &VarMap, ema: &HashMap<String, Tensor>, metrics: &serde_json::Value) -> Result<()> {
        let dir = self.dir;
        std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
        let value = serde_json::to_value(self.config).map_err(|e| TrainError::Invalid(e.to_string()))?;
        crate::fit::write_json(&dir.join("config.json"), &value)?;
        self.tokenizer.save(&dir.join("tokenizer.json"))?;
        mmgen_models::weights::save_f16(varmap, Some(ema), &dir.join("model.safetensors"))?;
        crate::fit::write_json(&dir.join("metrics.json"), metrics)?;
        Ok(())
    }
}

/// The model being trained and how its objective is set.
pub struct DenoiserRun<'a, M> {
    /// The model, built on `varmap`.
    pub model: &'a M,
    /// Its variables.
    pub varmap: &'a VarMap,
    /// Weights that stay frozen (a VAE trained before), by variable name: set in
    /// `varmap` by the caller, saved from it, put back beside the EMA averages.
    pub frozen: &'a HashMap<String, Tensor>,
    /// Builds the model on other weights (the EMA averages and `frozen`).
    pub build: &'a dyn Fn(VarBuilder<'static>) -> mmgen_models::Result<M>,
    /// The training noise schedule.
    pub schedule: NoiseSchedule,
    /// What the model predicts.
    pub prediction: Prediction,
    /// Caption dropout and EMA.
    pub options: DenoiserOptions,
}

/// One noised training batch, on the device.
struct NoisedBatch {
    data: Tensor,
    ids: Tensor,
    mask: Tensor,
    timesteps: Tensor,
    abar: Tensor,
    noise: Tensor,
}

/// Trains `run.model` on batches `clean(i)` (computed ahead by `fit.workers` threads)
/// and writes `folder`: a checkpoint when one is due, and at the end the EMA weights
/// with metrics.json (validation loss, timing, options, and `extra_metrics`'
/// fields). Returns the metrics.
#[allow(clippy::too_many_arguments)]
pub fn fit_denoiser<M: Denoiser, C: serde::Serialize>(
    run: DenoiserRun<'_, M>,
    clean: impl Fn(u64) -> Result<CleanBatch> + Send + Sync + 'static,
    folder: ModelFolder<'_, C>,
    extra_metrics: serde_json::Value,
    fit: &FitOptions,
    info: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    run.options.check()?;
    if let Some(dir) = info.resume {
        set_prefixed(run.varmap, "", &load_f32(&dir.join("model.safetensors"), device)?)?;
    }
    let trainable = trainable_vars(run.varmap, run.frozen)?;
    let parameters: usize = trainable.iter().map(|(_, v)| v.elem_count()).sum();
    let (schedule, prediction) = (run.schedule, run.prediction);
    let (p_uncond, seed, dev) = (run.options.p_uncond, fit.seed, device.clone());
    let validation = validation_batch(&clean, &schedule, seed, device)?;
    let validation_initial = scalar(&denoising_loss(run.model, prediction, &validation)?)?;
    let schedule_w = schedule.clone();
    let batches = OrderedWorkers::new(fit.workers, 2, move |i| {
        clean(i).and_then(|batch| noised_batch(batch, &schedule_w, p_uncond, seed, i, &dev))
    });
    let mut ema = Ema::new(trainable.clone(), run.options.ema_decay)?;
    let mut clock = CheckpointClock::new(info.checkpoint_every, fit.steps);
    let vars = trainable.iter().map(|(_, v)| v.clone()).collect();
    let mut ema_error = None;
    let outcome = fit_vars(
        vars,
        fit,
        batches,
        |b: &NoisedBatch| {
            let loss = denoising_loss(run.model, prediction, b)?;
            Ok((loss.clone(), vec![("mse", loss)]))
        },
        |report| {
            if let Err(e) = ema.update(report.step) {
                ema_error.get_or_insert(e);
            }
            progress(report);
            if clock.due(report.step) {
                let partial = json!({"command": info.command, "partial": true, "step": report.step});
                // A failed checkpoint costs only progress; the final save reports.
                let _ = folder.save(run.varmap, ema.averages(), &partial);
            }
        },
    )?;
    if let Some(e) = ema_error {
        return Err(e);
    }
    let averaged = {
        let mut weights = ema.averages().clone();
        weights.extend(run.frozen.iter().map(|(k, v)| (k.clone(), v.clone())));
        (run.build)(VarBuilder::from_tensors(weights, DType::F32, device))?
    };
    let mut metrics = json!({
        "command": info.command,
        "device": format!("{device:?}"),
        "options": fit,
        "denoiser_options": run.options,
        "parameters_trained": parameters,
        "resumed_from": info.resume.map(|p| p.display().to_string()),
        "validation_loss": {
            "about": "mse on one fixed training-split batch beyond the stream's reach, timesteps evenly spread",
            "initial": validation_initial,
            "final": scalar(&denoising_loss(run.model, prediction, &validation)?)?,
            "final_ema": scalar(&denoising_loss(&averaged, prediction, &validation)?)?,
        },
    });
    outcome.record_into(&mut metrics, fit.batch);
    if let (Some(all), Some(extra)) = (metrics.as_object_mut(), extra_metrics.as_object()) {
        all.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    folder.save(run.varmap, ema.averages(), &metrics)?;
    Ok(metrics)
}

/// The variables of `varmap` not in `frozen`, sorted by name.
fn trainable_vars(varmap: &VarMap, frozen: &HashMap<String, Tensor>) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Invalid("variable map poisoned".into()))?;
    let mut named: Vec<_> = data
        .iter()
        .filter(|(name, _)| !frozen.contains_key(*name))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

/// The training objective: mean squared error of the model's prediction of the
/// configured target (epsilon, v or x0) on a noised batch.
fn denoising_loss<M: Denoiser>(model: &M, prediction: Prediction, b: &NoisedBatch) -> Result<Tensor> {
    let xs = Prediction::noised(&b.data, &b.noise, &b.abar)?;
    let target = prediction.target(&b.data, &b.noise, &b.abar)?;
    let out = model.predict_ids(&xs, &b.timesteps, &b.ids, &b.mask)?;
    Ok((out - target)?.sqr()?.mean_all()?)
}

fn scalar(loss: &Tensor) -> Result<f64> {
    Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// A fixed batch for the validation loss: a stream index the loop never reaches, no
/// caption dropped, and timesteps spread evenly over the schedule (t_i = (i + 1/2)
/// T / B) so that the loss compares the start and the end of a run with far less
/// noise than the random-timestep curve.
fn validation_batch(
    clean: &impl Fn(u64) -> Result<CleanBatch>,
    schedule: &NoiseSchedule,
    seed: u64,
    device: &Device,
) -> Result<NoisedBatch> {
    // 2^40 batches: no run gets near it.
    const BEYOND_TRAINING: u64 = 1 << 40;
    let batch = noised_batch(clean(BEYOND_TRAINING)?, schedule, 0.0, seed, BEYOND_TRAINING, device)?;
    let b = batch.timesteps.dim(0)?;
    let steps = schedule.train_steps();
    let timesteps: Vec<usize> = (0..b).map(|i| ((2 * i + 1) * steps) / (2 * b)).collect();
    let abar: Vec<f32> = timesteps.iter().map(|&t| schedule.alpha_bar(t) as f32).collect();
    let timesteps: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
    Ok(NoisedBatch {
        timesteps: Tensor::from_vec(timesteps, b, device)?,
        abar: Tensor::from_vec(abar, broadcast_shape(&batch.data)?, device)?,
        ..batch
    })
}

/// (b, 1, 1, ...) for per-sample scalars against `data`.
fn broadcast_shape(data: &Tensor) -> Result<Vec<usize>> {
    let mut shape = vec![1usize; data.rank()];
    shape[0] = data.dim(0)?;
    Ok(shape)
}

/// Draws what the loop needs besides the clean batch: dropped captions, timesteps
/// and noise, from a generator seeded by (run seed, batch index).
fn noised_batch(
    batch: CleanBatch,
    schedule: &NoiseSchedule,
    p_uncond: f64,
    seed: u64,
    index: u64,
    device: &Device,
) -> Result<NoisedBatch> {
    let (b, len) = batch.tokens.dims2()?;
    let mut ids: Vec<u32> = batch.tokens.flatten_all()?.to_vec1()?;
    let mut mask: Vec<f32> = batch.token_mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut rng = rng_for(mix64(seed ^ mix64(index)), Purpose::Augment);
    let mut timesteps = Vec::with_capacity(b);
    let mut abar = Vec::with_capacity(b);
    for row in 0..b {
        // The empty prompt, exactly as `encode_batch("")` gives it: one unmasked pad.
        if rng.random_bool(p_uncond) || mask[row * len] == 0.0 {
            ids[row * len..(row + 1) * len].iter_mut().for_each(|v| *v = 0);
            mask[row * len..(row + 1) * len].iter_mut().for_each(|v| *v = 0.0);
            mask[row * len] = 1.0;
        }
        let t = rng.random_range(0..schedule.train_steps());
        timesteps.push(t as f32);
        abar.push(schedule.alpha_bar(t) as f32);
    }
    let noise = gaussian(batch.data.shape(), rng.random(), &Device::Cpu)?;
    let shape = batch.data.dims().to_vec();
    Ok(NoisedBatch {
        ids: Tensor::from_vec(ids, (b, len), device)?,
        mask: Tensor::from_vec(mask, (b, len), device)?,
        timesteps: Tensor::from_vec(timesteps, b, device)?,
        abar: Tensor::from_vec(abar, broadcast_shape(&batch.data)?, device)?,
        noise: noise.reshape(shape)?.to_device(device)?,
        data: batch.data.to_device(device)?,
    })
}
