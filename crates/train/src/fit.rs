//! The training loop of every model, its options and checkpoints, and the model
//! folders it writes.
//!
//! A trained model is stored as a folder: `config.json` (its shape),
//! `model.safetensors` (weights in f16, loaded back as f32) and `metrics.json` (how it
//! was trained and how well it does on held-out data).

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use serde::Serialize;

use crate::error::{Result, TrainError};
pub use mmgen_models::weights::write_json;
use mmgen_models::weights::{load_f32, save_f16, set_inflated};

/// How long and how hard to train.
#[derive(Clone, Debug, Serialize)]
pub struct FitOptions {
    /// Optimiser steps (at most; see `max_seconds`).
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate (AdamW), after a linear warm-up, cosine-decayed to 10%.
    pub lr: f64,
    /// Seed of the training data and of the initial weights.
    pub seed: u64,
    /// Data worker threads.
    pub workers: usize,
    /// Wall-time budget of the loop: the schedule runs on whichever of steps and time
    /// ends first, and the loop stops when either is spent. Runs cut by time are not
    /// reproducible step for step (how many steps fit depends on the machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<f64>,
    /// Read the loss back from the device every this many steps (and at step 1 and the
    /// last). Between reads the loop never waits for the device.
    pub log_every: usize,
}

impl FitOptions {
    /// `steps` x `batch` at `lr`, one worker, logged every 10 steps, no time limit.
    pub fn new(steps: usize, batch: usize, lr: f64, seed: u64) -> FitOptions {
        FitOptions {
            steps,
            batch,
            lr,
            seed,
            workers: 1,
            max_seconds: None,
            log_every: 10,
        }
    }
}

/// Where a training run writes and what it records.
pub struct RunInfo<'a> {
    /// Output folder.
    pub out: &'a Path,
    /// The command line that started the run (recorded in metrics.json).
    pub command: String,
    /// Fresh samples per split for the final measurement.
    pub eval_samples: usize,
    /// Save a checkpoint every this many steps (0: only every two minutes and at the end).
    pub checkpoint_every: usize,
    /// Start from the weights of this model folder instead of a fresh initialisation
    /// (the learning-rate schedule starts again).
    pub resume: Option<&'a Path>,
}

/// What the loop reports after each step.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// Steps done.
    pub step: usize,
    /// On logged steps: the mean loss of the steps since the previous log.
    pub loss: Option<f32>,
    /// On logged steps: the named loss parts of this step.
    pub parts: Vec<(&'static str, f32)>,
    /// Training samples per second so far.
    pub samples_per_s: f32,
    /// Seconds since the loop started.
    pub elapsed_s: f64,
    /// Learning rate of this step.
    pub lr: f64,
}

/// What a finished loop did.
#[derive(Clone, Debug, Serialize)]
pub struct FitOutcome {
    /// Steps done (fewer than asked when the time budget ran out).
    pub steps_done: usize,
    /// True when `max_seconds` ended the run.
    pub stopped_by_time: bool,
    /// (step, mean loss since the previous point), one point per log.
    pub loss_curve: Vec<(usize, f32)>,
    /// Seconds in the loop.
    pub seconds: f64,
}

impl FitOutcome {
    /// Loss of the first step.
    pub fn first_loss(&self) -> Option<f32> {
        self.loss_curve.first().map(|p| p.1)
    }

    /// Mean of the last five logged points.
    pub fn final_loss(&self) -> Option<f32> {
        let tail = &self.loss_curve[self.loss_curve.len().saturating_sub(5)..];
        (!tail.is_empty()).then(|| tail.iter().map(|p| p.1).sum::<f32>() / tail.len() as f32)
    }

    /// Adds what every trainer's `metrics.json` records of the loop to the object
    /// `metrics`: steps done, whether time ended the run, seconds, samples/s, first and
    /// final loss, the loss curve.
    pub fn record_into(&self, metrics: &mut serde_json::Value, batch: usize) {
        let Some(map) = metrics.as_object_mut() else { return };
        let entries = [
            ("steps_done", serde_json::json!(self.steps_done)),
            ("stopped_by_time", serde_json::json!(self.stopped_by_time)),
            ("train_seconds", serde_json::json!(self.seconds)),
            (
                "samples_per_s",
                serde_json::json!((self.steps_done * batch) as f64 / self.seconds.max(1e-9)),
            ),
            ("first_loss", serde_json::json!(self.first_loss())),
            ("final_loss", serde_json::json!(self.final_loss())),
            ("loss_curve", serde_json::json!(self.loss_curve)),
        ];
        for (key, value) in entries {
            map.insert(key.to_string(), value);
        }
    }
}

/// When a run saves a checkpoint: every `every_steps` steps (0: not by steps) and
/// whenever two minutes passed since the last one, so that a run cut off by a time
/// limit (a lent GPU) keeps its progress; never at the last step, whose save follows.
pub struct CheckpointClock {
    every_steps: usize,
    total_steps: usize,
    last: Instant,
}

impl CheckpointClock {
    /// Seconds between checkpoints at most.
    pub const SECONDS: f64 = 120.0;

    /// A clock for a run of `total_steps`, starting now.
    pub fn new(every_steps: usize, total_steps: usize) -> CheckpointClock {
        CheckpointClock {
            every_steps,
            total_steps,
            last: Instant::now(),
        }
    }

    /// Whether to save after `step`; a `true` restarts the two-minute count.
    pub fn due(&mut self, step: usize) -> bool {
        let due = (self.every_steps > 0 && step.is_multiple_of(self.every_steps))
            || self.last.elapsed().as_secs_f64() >= Self::SECONDS;
        if due && step < self.total_steps {
            self.last = Instant::now();
            return true;
        }
        false
    }
}

/// Warm-up share of a run.
const WARMUP: f64 = 0.05;

/// Learning rate once `progress` (0 to 1) of the run is done: linear warm-up over the
/// first 5%, then cosine to 10% of `peak`.
pub fn learning_rate(peak: f64, progress: f64) -> f64 {
    let progress = progress.clamp(0.0, 1.0);
    if progress < WARMUP {
        return peak * progress / WARMUP;
    }
    let p = (progress - WARMUP) / (1.0 - WARMUP);
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
}

/// Trains the variables of `varmap` on `batches` with `loss`, calling `progress` after
/// every step (with the loss on logged steps only).
pub fn fit<B>(
    varmap: &VarMap,
    options: &FitOptions,
    batches: impl Iterator<Item = Result<B>>,
    loss: impl Fn(&B) -> Result<(Tensor, Vec<(&'static str, Tensor)>)>,
    progress: impl FnMut(&StepReport),
) -> Result<FitOutcome> {
    fit_vars(varmap.all_vars(), options, batches, loss, progress)
}

/// [`fit`] on a chosen set of variables (the rest stay frozen).
pub fn fit_vars<B>(
    vars: Vec<Var>,
    options: &FitOptions,
    mut batches: impl Iterator<Item = Result<B>>,
    loss: impl Fn(&B) -> Result<(Tensor, Vec<(&'static str, Tensor)>)>,
    mut progress: impl FnMut(&StepReport),
) -> Result<FitOutcome> {
    if options.steps == 0 || options.batch == 0 || options.log_every == 0 {
        return Err(TrainError::Invalid(format!(
            "steps ({}), batch ({}) and log_every ({}) must be at least 1",
            options.steps, options.batch, options.log_every
        )));
    }
    if let Some(limit) = options.max_seconds.filter(|s| s.is_nan() || *s <= 0.0) {
        return Err(TrainError::Invalid(format!("max_seconds {limit} must be positive")));
    }
    let params = ParamsAdamW {
        lr: options.lr,
        weight_decay: 1e-4,
        ..Default::default()
    };
    let mut optimiser = AdamW::new(vars, params)?;
    let start = Instant::now();
    let mut outcome = FitOutcome {
        steps_done: 0,
        stopped_by_time: false,
        loss_curve: Vec::new(),
        seconds: 0.0,
    };
    // Losses stay on the device until the next log: reading one back waits for the
    // device to finish, which would stall a GPU every step.
    let mut pending: Vec<Tensor> = Vec::with_capacity(options.log_every);
    for step in 0..options.steps {
        let elapsed = start.elapsed().as_secs_f64();
        let by_time = options.max_seconds.map_or(0.0, |limit| elapsed / limit);
        if by_time >= 1.0 {
            outcome.stopped_by_time = true;
            break;
        }
        let batch = batches
            .next()
            .ok_or_else(|| TrainError::Invalid("the data stream ended".into()))??;
        let lr = learning_rate(options.lr, ((step + 1) as f64 / options.steps as f64).max(by_time));
        optimiser.set_learning_rate(lr);
        let (total, parts) = loss(&batch)?;
        optimiser.backward_step(&total)?;
        pending.push(total.detach());
        let last = step + 1 == options.steps
            || options
                .max_seconds
                .is_some_and(|limit| start.elapsed().as_secs_f64() >= limit);
        let logged = step == 0 || (step + 1) % options.log_every == 0 || last;
        let (mean, parts) = if logged {
            let values: Vec<f32> = Tensor::stack(&pending, 0)?.to_dtype(DType::F32)?.to_vec1()?;
            pending.clear();
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(TrainError::Invalid(format!(
                    "loss became {bad} by step {}; lower the learning rate",
                    step + 1
                )));
            }
            let mean = values.iter().sum::<f32>() / values.len() as f32;
            outcome.loss_curve.push((step + 1, mean));
            let parts = parts
                .iter()
                .map(|(name, t)| Ok((*name, t.to_dtype(DType::F32)?.to_scalar::<f32>()?)))
                .collect::<Result<Vec<_>>>()?;
            (Some(mean), parts)
        } else {
            (None, Vec::new())
        };
        outcome.steps_done = step + 1;
        let elapsed = start.elapsed().as_secs_f64();
        progress(&StepReport {
            step: step + 1,
            loss: mean,
            parts,
            samples_per_s: ((step + 1) * options.batch) as f32 / elapsed.max(1e-6) as f32,
            elapsed_s: elapsed,
            lr,
        });
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Writes a model folder whose `metrics.json` holds `model`'s runs, `history` (the
/// runs of the folder it resumed) then this run's `record`, and their hours in all.
pub fn save_model_runs(
    dir: &Path,
    config: &impl Serialize,
    varmap: &VarMap,
    model: &str,
    mut history: Vec<serde_json::Value>,
    record: &serde_json::Value,
) -> Result<()> {
    history.push(record.clone());
    let hours: f64 = history.iter().filter_map(|r| r["train_seconds"].as_f64()).sum::<f64>() / 3600.0;
    let metrics = serde_json::json!({"model": model, "train_hours_total": hours, "runs": history});
    save_model_folder(dir, config, varmap, &metrics)
}

/// Writes `config.json`, `model.safetensors` (f16) and `metrics.json` into `dir`.
pub fn save_model_folder(
    dir: &Path,
    config: &impl Serialize,
    varmap: &VarMap,
    metrics: &serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
    let config = serde_json::to_value(config).map_err(|e| TrainError::Invalid(e.to_string()))?;
    write_json(&dir.join("config.json"), &config)?;
    write_json(&dir.join("metrics.json"), metrics)?;
    Ok(save_f16(varmap, None, &dir.join("model.safetensors"))?)
}

/// Sets every variable of `varmap` (already created by building the model) from the
/// f16 `model.safetensors` of a model folder, to continue training it. Variables for
/// which `is_new` holds may be missing from the folder (layers this run adds); they
/// keep their initialisation. Every other variable must be there, and every weight in
/// the folder must find its variable.
pub fn resume(varmap: &mut VarMap, dir: &Path, device: &Device, is_new: impl Fn(&str) -> bool) -> Result<()> {
    let path = dir.join("model.safetensors");
    let tensors = load_f32(&path, device).map_err(|e| TrainError::file(&path, format!("cannot resume: {e}")))?;
    set_inflated(varmap, &tensors, is_new).map_err(|e| TrainError::file(&path, format!("cannot resume: {e}")))?;
    Ok(())
}

/// Starts the text encoder of a new `model` from the trained one of the model folder
/// `dir` (same tokenizer): every `text.*` tensor.
pub fn start_text_encoder(varmap: &VarMap, dir: &Path, device: &Device, model: &str) -> Result<()> {
    let path = dir.join("model.safetensors");
    let text: std::collections::HashMap<String, Tensor> = load_f32(&path, device)?
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("text.").map(|k| (k.to_string(), v)))
        .collect();
    if text.is_empty() {
        return Err(TrainError::file(&path, "holds no text encoder (text.*)"));
    }
    mmgen_models::weights::set_prefixed(varmap, "text.", &text)
        .map_err(|e| TrainError::file(&path, format!("its text encoder does not fit the {model}'s: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_by_steps_never_at_the_last_step() {
        let mut clock = CheckpointClock::new(500, 1000);
        let due: Vec<usize> = (1..=1000).filter(|&s| clock.due(s)).collect();
        assert_eq!(due, vec![500]);
        let mut by_time_only = CheckpointClock::new(0, 10);
        assert!(!(1..=10).any(|s| by_time_only.due(s)));
    }

    #[test]
    fn schedule_warms_up_and_decays() {
        assert!(learning_rate(1.0, 0.01) < 0.5);
        assert!((learning_rate(1.0, 0.05) - 1.0).abs() < 1e-9);
        assert!(learning_rate(1.0, 0.5) < learning_rate(1.0, 0.3));
        assert!((learning_rate(1.0, 1.0) - 0.1).abs() < 1e-9);
        assert!((learning_rate(1.0, 7.0) - 0.1).abs() < 1e-9);
    }
}
