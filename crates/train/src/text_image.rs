//! Training the hybrid text-to-image model: the text encoder and the DiT learn
//! jointly from world captions and images (training split only: held-out
//! compositions are never seen), on latents of a frozen, separately trained VAE.
//!
//! Workers render, encode with the VAE on the CPU, tokenize and draw noise and
//! timesteps ahead of the loop; the loop only moves tensors to the device and steps.
//! A tenth of the captions are replaced by the empty prompt, so that the model also
//! learns the unconditional prediction of classifier-free guidance (Ho & Salimans 2022).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mmgen_diffusion::{gaussian, NoiseSchedule, Prediction};
use mmgen_eval::fit::{fit_vars, write_json, CheckpointClock, FitOptions, StepReport};
use mmgen_eval::probe::train::RunInfo;
use mmgen_eval::EvalError;
use mmgen_models::hybrid_image::{HybridImage, HybridImageConfig};
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::vae::{Vae, VaeConfig};
use mmgen_models::weights::{load_f32, save_f16, set_prefixed};
use mmgen_nn::seeded_var_builder;
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::stream::render_batch;
use mmgen_world::{OrderedWorkers, Split, StreamConfig};
use rand::Rng;
use serde_json::json;

use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::vae::image_stream;

/// Choices of a text-to-image run beyond the loop's.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TextImageOptions {
    /// Share of captions replaced by the empty prompt.
    pub p_uncond: f64,
    /// EMA decay of the shipped weights.
    pub ema_decay: f64,
}

impl Default for TextImageOptions {
    fn default() -> TextImageOptions {
        TextImageOptions {
            p_uncond: 0.1,
            ema_decay: 0.999,
        }
    }
}

/// One training batch, on the device.
struct LatentBatch {
    latents: Tensor,
    ids: Tensor,
    mask: Tensor,
    timesteps: Tensor,
    abar: Tensor,
    noise: Tensor,
}

/// The VAE of a trained folder: config, weights and latent scale.
pub struct TrainedVae {
    /// Its shape.
    pub config: VaeConfig,
    /// Weights by name (f32, CPU).
    pub tensors: std::collections::HashMap<String, Tensor>,
    /// 1 / std of its latent means.
    pub latent_scale: f64,
}

impl TrainedVae {
    /// Reads a folder written by [`crate::vae::train_vae`].
    pub fn load(dir: &Path) -> Result<TrainedVae> {
        let read = |name: &str| -> Result<serde_json::Value> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
            serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))
        };
        let config: VaeConfig = serde_json::from_value(read("config.json")?)
            .map_err(|e| TrainError::file(&dir.join("config.json"), format!("not a VAE config: {e}")))?;
        let latent_scale = read("metrics.json")?["latent_scale"].as_f64().ok_or_else(|| {
            TrainError::file(
                &dir.join("metrics.json"),
                "has no latent_scale (a finished `mmgen train vae` run writes it)",
            )
        })?;
        Ok(TrainedVae {
            config,
            tensors: load_f32(&dir.join("model.safetensors"), &Device::Cpu)?,
            latent_scale,
        })
    }
}

/// Trains the text encoder and DiT of `config` (its VAE part must match `vae`) and
/// writes the model folder to `run.out`. Returns the metrics.
#[allow(clippy::too_many_arguments)]
pub fn train_text_image(
    config: &HybridImageConfig,
    tokenizer: &TextTokenizer,
    vae: &TrainedVae,
    extra: &TextImageOptions,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    if config.vae != vae.config {
        return Err(TrainError::Invalid(format!(
            "the VAE folder holds {:?}; the model expects {:?}",
            vae.config, config.vae
        )));
    }
    if !(0.0..1.0).contains(&extra.p_uncond) || !(0.0..1.0).contains(&extra.ema_decay) {
        return Err(TrainError::Invalid(format!(
            "p_uncond {} and ema_decay {} must be in [0, 1)",
            extra.p_uncond, extra.ema_decay
        )));
    }
    let config = HybridImageConfig {
        latent_scale: vae.latent_scale,
        ..config.clone()
    };
    // 1. The model on a VarMap; the VAE part set from its folder and kept frozen.
    let varmap = VarMap::new();
    let model = HybridImage::new(
        &config,
        tokenizer.clone(),
        seeded_var_builder(&varmap, options.seed, DType::F32, device),
        device,
    )?;
    let vae_on_device: std::collections::HashMap<String, Tensor> = vae
        .tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(device)?)))
        .collect::<Result<_>>()?;
    set_prefixed(&varmap, "vae.", &vae_on_device)?;
    if let Some(dir) = run.resume {
        set_prefixed(&varmap, "", &load_f32(&dir.join("model.safetensors"), device)?)?;
    }
    let trainable: Vec<(String, candle_core::Var)> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| TrainError::Invalid("variable map poisoned".into()))?;
        let mut named: Vec<_> = data
            .iter()
            .filter(|(name, _)| !name.starts_with("vae."))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    let parameters: usize = trainable.iter().map(|(_, v)| v.elem_count()).sum();
    // 2. Data: workers render, encode and draw noise ahead of the loop.
    let cpu_vae = Arc::new(Vae::new(
        &vae.config,
        VarBuilder::from_tensors(vae.tensors.clone(), DType::F32, &Device::Cpu),
    )?);
    let schedule = NoiseSchedule::new(config.schedule, config.train_steps)?;
    let max_len = config.text.max_len;
    let tok = tokenizer.clone();
    let stream = StreamConfig {
        max_tokens: max_len,
        tokenize: Arc::new(move |text: &str| tok.encode(text, max_len).unwrap_or_default()),
        ..image_stream(config.vae.image_size, options.batch, options.seed, Split::Train)
    };
    let (scale, p_uncond, seed, dev) = (config.latent_scale, extra.p_uncond, options.seed, device.clone());
    let validation = validation_batch(&stream, &cpu_vae, scale, &schedule, seed, device)?;
    let prediction = config.prediction;
    let loss_of = |model: &HybridImage, b: &LatentBatch| diffusion_loss(model, prediction, b);
    let validation_initial = scalar(&loss_of(&model, &validation)?)?;
    let batches = OrderedWorkers::new(options.workers, 2, move |i| {
        latent_batch(&stream, &cpu_vae, scale, &schedule, p_uncond, seed, i, &dev).map_err(|e| match e {
            TrainError::Eval(e) => e,
            other => EvalError::Invalid(other.to_string()),
        })
    });
    // 3. The loop, with EMA and checkpoints.
    let mut ema = Ema::new(trainable.clone(), extra.ema_decay)?;
    let mut clock = CheckpointClock::new(run.checkpoint_every, options.steps);
    let vars = trainable.iter().map(|(_, v)| v.clone()).collect();
    let mut ema_error = None;
    let outcome = fit_vars(
        vars,
        options,
        batches,
        |b: &LatentBatch| {
            let loss = loss_of(&model, b)?;
            Ok((loss.clone(), vec![("mse", loss)]))
        },
        |report| {
            if let Err(e) = ema.update(report.step) {
                ema_error.get_or_insert(e);
            }
            progress(report);
            if clock.due(report.step) {
                let partial = json!({"command": run.command, "partial": true, "step": report.step});
                let _ = save_model(run.out, &config, tokenizer, &varmap, &ema, &partial);
            }
        },
    )?;
    if let Some(e) = ema_error {
        return Err(e);
    }
    let ema_model = {
        let mut tensors = ema.averages().clone();
        tensors.extend(vae_on_device.iter().map(|(k, v)| (format!("vae.{k}"), v.clone())));
        HybridImage::new(
            &config,
            tokenizer.clone(),
            VarBuilder::from_tensors(tensors, DType::F32, device),
            device,
        )?
    };
    let mut metrics = json!({
        "model": "hybrid-image",
        "command": run.command,
        "device": format!("{device:?}"),
        "options": options,
        "text_image_options": extra,
        "parameters_trained": parameters,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "validation_loss": {
            "about": "mse on one fixed training-split batch beyond the stream's reach, timesteps evenly spread",
            "initial": validation_initial,
            "final": scalar(&loss_of(&model, &validation)?)?,
            "final_ema": scalar(&loss_of(&ema_model, &validation)?)?,
        },
    });
    outcome.record_into(&mut metrics, options.batch);
    save_model(run.out, &config, tokenizer, &varmap, &ema, &metrics)?;
    Ok(metrics)
}

fn diffusion_err(e: mmgen_diffusion::DiffusionError) -> EvalError {
    EvalError::Invalid(e.to_string())
}

/// The training objective: mean squared error of the model's prediction of the
/// configured target (epsilon, v or x0) on a noised batch.
fn diffusion_loss(model: &HybridImage, prediction: Prediction, b: &LatentBatch) -> mmgen_eval::Result<Tensor> {
    let text = model.encode_ids(&b.ids, &b.mask)?;
    let xs = Prediction::noised(&b.latents, &b.noise, &b.abar).map_err(diffusion_err)?;
    let target = prediction
        .target(&b.latents, &b.noise, &b.abar)
        .map_err(diffusion_err)?;
    let out = model.predict(&xs, &b.timesteps, &text)?;
    Ok((out - target)?.sqr()?.mean_all()?)
}

fn scalar(loss: &Tensor) -> Result<f64> {
    Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// A fixed batch for the validation loss: training-split captions and images from a
/// stream index the loop never reaches, no caption dropped, and timesteps spread
/// evenly over the schedule (t_i = (i + 1/2) T / B) so that the loss compares the
/// start and the end of a run with far less noise than the random-timestep curve.
fn validation_batch(
    stream: &StreamConfig,
    vae: &Vae,
    scale: f64,
    schedule: &NoiseSchedule,
    seed: u64,
    device: &Device,
) -> Result<LatentBatch> {
    // 2^40 batches: no run gets near it.
    const BEYOND_TRAINING: u64 = 1 << 40;
    let batch = latent_batch(stream, vae, scale, schedule, 0.0, seed, BEYOND_TRAINING, device)?;
    let b = batch.timesteps.dim(0)?;
    let steps = schedule.train_steps();
    let timesteps: Vec<usize> = (0..b).map(|i| ((2 * i + 1) * steps) / (2 * b)).collect();
    let abar: Vec<f32> = timesteps.iter().map(|&t| schedule.alpha_bar(t) as f32).collect();
    let timesteps: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
    Ok(LatentBatch {
        timesteps: Tensor::from_vec(timesteps, b, device)?,
        abar: Tensor::from_vec(abar, (b, 1, 1, 1), device)?,
        ..batch
    })
}

#[allow(clippy::too_many_arguments)]
fn latent_batch(
    stream: &StreamConfig,
    vae: &Vae,
    scale: f64,
    schedule: &NoiseSchedule,
    p_uncond: f64,
    seed: u64,
    index: u64,
    device: &Device,
) -> Result<LatentBatch> {
    let batch = render_batch(stream, index)?;
    let images = batch
        .images
        .ok_or_else(|| TrainError::Invalid("image stream without images".into()))?;
    let latents = vae.encode(&images)?.mean.affine(scale, 0.0)?;
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
    let noise = gaussian(latents.shape(), rng.random(), &Device::Cpu)?;
    let s = latents.dims().to_vec();
    Ok(LatentBatch {
        latents: latents.to_device(device)?,
        ids: Tensor::from_vec(ids, (b, len), device)?,
        mask: Tensor::from_vec(mask, (b, len), device)?,
        timesteps: Tensor::from_vec(timesteps, b, device)?,
        abar: Tensor::from_vec(abar, (b, 1, 1, 1), device)?,
        noise: noise.reshape(s)?.to_device(device)?,
    })
}

/// Writes the model folder: config, tokenizer, EMA weights (f16) and metrics.
fn save_model(
    dir: &Path,
    config: &HybridImageConfig,
    tokenizer: &TextTokenizer,
    varmap: &VarMap,
    ema: &Ema,
    metrics: &serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
    let value = serde_json::to_value(config).map_err(|e| TrainError::Invalid(e.to_string()))?;
    write_json(&dir.join("config.json"), &value)?;
    tokenizer.save(&dir.join("tokenizer.json"))?;
    save_f16(varmap, Some(ema.averages()), &dir.join("model.safetensors"))?;
    write_json(&dir.join("metrics.json"), metrics)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::train_tokenizer;
    use crate::vae::train_vae;
    use mmgen_models::hybrid_image::{ImageRequest, ImageSettings};

    /// The tiny configuration trains in seconds, measurably lowers the loss, and the
    /// folder it writes loads and generates.
    #[test]
    fn tiny_text_image_training_lowers_the_loss() {
        let root = std::env::temp_dir().join(format!("mmgen-t2i-{}", std::process::id()));
        let quick = |steps| FitOptions {
            log_every: 1,
            ..FitOptions::new(steps, 8, 3e-3, 1)
        };
        let run = |out: &'static str| RunInfo {
            out: Box::leak(root.join(out).into_boxed_path()),
            command: "test".into(),
            eval_samples: 8,
            checkpoint_every: 0,
            resume: None,
        };
        train_vae(&VaeConfig::tiny(), 1e-5, &quick(10), &run("vae"), &Device::Cpu, |_| {}).unwrap();
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        let vae = TrainedVae::load(&root.join("vae")).unwrap();
        assert!(vae.latent_scale > 0.0);
        let config = HybridImageConfig::tiny(tokenizer.vocab_size());
        let metrics = train_text_image(
            &config,
            &tokenizer,
            &vae,
            &TextImageOptions::default(),
            &quick(150),
            &run("model"),
            &Device::Cpu,
            |_| {},
        )
        .unwrap();
        let validation = &metrics["validation_loss"];
        let (first, last) = (
            validation["initial"].as_f64().unwrap(),
            validation["final"].as_f64().unwrap(),
        );
        assert!(last < 0.85 * first, "validation loss {first} -> {last}");
        let model = HybridImage::load(&root.join("model"), &Device::Cpu).unwrap();
        let settings = ImageSettings {
            steps: 3,
            ..ImageSettings::default()
        };
        let images = model
            .generate(
                &[ImageRequest {
                    prompt: "a red circle".into(),
                    seed: 1,
                }],
                &settings,
                |_, _| {},
            )
            .unwrap();
        assert_eq!(images[0].dimensions(), (16, 16));
        // A VAE of another shape is refused.
        let other = HybridImageConfig {
            vae: VaeConfig::base(),
            ..config
        };
        let err = train_text_image(
            &other,
            &tokenizer,
            &vae,
            &TextImageOptions::default(),
            &quick(1),
            &run("other"),
            &Device::Cpu,
            |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("the VAE folder holds"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
