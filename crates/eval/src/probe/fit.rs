//! The probes' training loop and their files on disk.
//!
//! A probe is stored as a folder: `config.json` (its shape), `model.safetensors`
//! (weights in f16, loaded back as f32) and `metrics.json` (how it was trained and how
//! well it reads held-out renders).

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{EvalError, Result};

/// How long and how hard to train.
#[derive(Clone, Debug, Serialize)]
pub struct FitOptions {
    /// Optimiser steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate (AdamW), after a linear warm-up, cosine-decayed to 10%.
    pub lr: f64,
    /// Seed of the training data.
    pub seed: u64,
    /// Data worker threads.
    pub workers: usize,
}

/// What the loop reports after each step.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// Steps done.
    pub step: usize,
    /// Total loss of this step.
    pub loss: f32,
    /// Named loss parts of this step.
    pub parts: Vec<(&'static str, f32)>,
    /// Training samples per second so far.
    pub samples_per_s: f32,
}

/// Learning rate at `step`: linear warm-up over 5% of the run, then cosine to 10%.
pub fn learning_rate(peak: f64, step: usize, steps: usize) -> f64 {
    let warmup = (steps / 20).max(1);
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (steps - warmup).max(1) as f64;
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
}

/// Trains the variables of `varmap` on `batches` with `loss`, calling `progress` after
/// every step. Returns the loss of each step.
pub fn fit<B>(
    varmap: &VarMap,
    options: &FitOptions,
    mut batches: impl Iterator<Item = Result<B>>,
    loss: impl Fn(&B) -> Result<(Tensor, Vec<(&'static str, Tensor)>)>,
    mut progress: impl FnMut(&StepReport),
) -> Result<Vec<f32>> {
    if options.steps == 0 || options.batch == 0 {
        return Err(EvalError::Invalid(format!(
            "steps ({}) and batch ({}) must be at least 1",
            options.steps, options.batch
        )));
    }
    let params = ParamsAdamW {
        lr: options.lr,
        weight_decay: 1e-4,
        ..Default::default()
    };
    let mut optimiser = AdamW::new(varmap.all_vars(), params)?;
    let start = Instant::now();
    let mut losses = Vec::with_capacity(options.steps);
    for step in 0..options.steps {
        let batch = batches
            .next()
            .ok_or_else(|| EvalError::Invalid("the data stream ended".into()))??;
        optimiser.set_learning_rate(learning_rate(options.lr, step, options.steps));
        let (total, parts) = loss(&batch)?;
        optimiser.backward_step(&total)?;
        let value = total.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(EvalError::Invalid(format!(
                "loss became {value} at step {step}; lower the learning rate"
            )));
        }
        losses.push(value);
        let parts = parts
            .iter()
            .map(|(name, t)| Ok((*name, t.to_scalar::<f32>()?)))
            .collect::<Result<Vec<_>>>()?;
        let elapsed = start.elapsed().as_secs_f32().max(1e-6);
        progress(&StepReport {
            step: step + 1,
            loss: value,
            parts,
            samples_per_s: ((step + 1) * options.batch) as f32 / elapsed,
        });
    }
    Ok(losses)
}

/// Writes pretty JSON to `path`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| EvalError::Invalid(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| EvalError::file(path, e))
}

/// Writes `config.json`, `model.safetensors` (f16) and `metrics.json` into `dir`.
pub fn save_probe(dir: &Path, config: &impl Serialize, varmap: &VarMap, metrics: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::file(dir, e))?;
    let config = serde_json::to_value(config).map_err(|e| EvalError::Invalid(e.to_string()))?;
    write_json(&dir.join("config.json"), &config)?;
    write_json(&dir.join("metrics.json"), metrics)?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| EvalError::Invalid("variable map poisoned".into()))?;
    let mut tensors = std::collections::HashMap::new();
    for (name, var) in data.iter() {
        tensors.insert(name.clone(), var.as_tensor().to_dtype(DType::F16)?);
    }
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path).map_err(|e| EvalError::file(&path, e))
}

/// Sets every variable of `varmap` (already created by building the model) from the
/// f16 `model.safetensors` of a probe folder, to continue training it.
pub fn resume(varmap: &mut VarMap, dir: &Path, device: &Device) -> Result<()> {
    let path = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, device)
        .map_err(|e| EvalError::file(&path, format!("cannot resume: {e}")))?;
    for (name, tensor) in tensors {
        varmap
            .set_one(&name, tensor.to_dtype(DType::F32)?)
            .map_err(|e| EvalError::file(&path, format!("cannot resume: {e}")))?;
    }
    Ok(())
}

/// Reads `config.json` of a probe folder.
pub fn load_config<C: DeserializeOwned>(dir: &Path) -> Result<C> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| EvalError::file(&path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::file(&path, format!("not a probe config: {e}")))
}

/// A VarBuilder over `model.safetensors` of a probe folder, as f32 on `device`.
pub fn load_weights(dir: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let path = dir.join("model.safetensors");
    if !path.exists() {
        return Err(EvalError::file(
            &path,
            "missing; train the probe first (see models/README.md)",
        ));
    }
    let tensors = candle_core::safetensors::load(&path, device)
        .map_err(|e| EvalError::file(&path, format!("unreadable weights: {e}")))?;
    let tensors = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_and_decays() {
        assert!(learning_rate(1.0, 0, 100) < 0.5);
        assert!((learning_rate(1.0, 4, 100) - 1.0).abs() < 1e-9);
        assert!((learning_rate(1.0, 99, 100) - 0.1).abs() < 0.01);
    }
}
