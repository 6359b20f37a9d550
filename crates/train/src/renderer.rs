//! Training the grounded renderer on world renders and their true layouts: the
//! scene spec gives the plan's labels, the layout its poses (a still is the middle
//! of its clip), so the renderer learns to draw any plan the planner may give.
//!
//! The loss is the MSE of the configured prediction target with min-SNR-5 weighting
//! (Hang et al. 2023),
//! weighted up on the pixels near objects (a tenth of the canvas), plus a binary
//! cross-entropy that teaches each object field its occupancy from the world's
//! geometry. The geometry is a training signal only: at inference the field draws
//! the silhouette from (shape embedding, coordinates) alone.

use std::collections::HashMap;
use std::path::Path;

use crate::fit::RunInfo;
use crate::fit::{fit_vars, write_json, CheckpointClock, FitOptions, StepReport};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mmgen_diffusion::{gaussian, NoiseSchedule, Prediction};
use mmgen_eval::grounded::spec_plan_at;
use mmgen_models::grounded::field::{canvas_coords, object_coords};
use mmgen_models::grounded::{
    GroundedRenderer, GroundedRendererConfig, PlanBatch, PlanIds, PlanVocab, Preconditioning, STILL_TIME,
};
use mmgen_models::weights::{load_f32, save_f16, set_inflated};
use mmgen_nn::seeded_var_builder;
use mmgen_world::render::shape::signed_distance;
use mmgen_world::render::Scene;
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{Background, Colour, Lighting, Motion, OrderedWorkers, Shape, Size, SpecSampler, Split, Style};
use rand::Rng;
use serde_json::json;

use crate::ema::Ema;
use crate::error::{Result, TrainError};

/// The world's class names, in its class-id order: the vocabulary written into the
/// config of every grounded model.
pub fn world_vocab() -> PlanVocab {
    fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| name(*v).to_string()).collect()
    }
    PlanVocab {
        backgrounds: names(Background::ALL, Background::name),
        styles: names(Style::ALL, Style::name),
        lightings: names(Lighting::ALL, Lighting::name),
        shapes: names(Shape::ALL, Shape::name),
        colours: names(Colour::ALL, Colour::name),
        sizes: names(Size::ALL, Size::name),
        motions: names(Motion::ALL, Motion::name),
    }
}

/// Zero-initialised layers that a folder trained before they existed may lack.
const ADDED_LAYERS: [&str; 4] = ["out_film.", "input_skip.", "clip_light.", "pixel_head."];

/// The layers that map the trunk (and the noisy input) to the prediction.
const OUTPUT_LAYERS: [&str; 4] = ["out.", "out_film.", "input_skip.", "pixel_head."];

/// Choices of a renderer run beyond the loop's.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RendererOptions {
    /// Share of plans dropped (the null plan of classifier-free guidance).
    pub p_uncond: f64,
    /// EMA decay of the saved weights.
    pub ema_decay: f64,
    /// min-SNR weighting's gamma.
    pub min_snr_gamma: f64,
    /// Extra weight of the pixels in an object's support.
    pub object_weight: f64,
    /// Weight of the occupancy cross-entropy.
    pub occupancy_weight: f64,
    /// What the network predicts, when not the config's (or, resuming, the folder's):
    /// a resumed folder then restarts its output layers at zero, as their meaning
    /// changes.
    pub prediction: Option<Prediction>,
    /// How the output becomes the prediction, when not the config's (as `prediction`).
    pub preconditioning: Option<Preconditioning>,
    /// Share of samples that are a frame at a random clip time (poses and light of
    /// that moment) rather than the still; above 0 the renderer reads clip time.
    pub clip_share: f64,
    /// Adds the pixel head to a resumed renderer that lacks it (starting at zero).
    pub pixel_head: bool,
}

impl Default for RendererOptions {
    fn default() -> RendererOptions {
        RendererOptions {
            p_uncond: 0.1,
            ema_decay: 0.999,
            min_snr_gamma: 5.0,
            object_weight: 3.0,
            occupancy_weight: 0.1,
            prediction: None,
            preconditioning: None,
            clip_share: 0.0,
            pixel_head: false,
        }
    }
}

/// One training batch, on the device.
struct RendererBatch {
    plans: PlanBatch,
    images: Tensor,
    occupancy: Tensor,
    noise: Tensor,
    timesteps: Tensor,
    abar: Tensor,
}

/// A batch as rendered on the CPU, before it moves to the device.
struct RenderedBatch {
    plans: PlanBatch,
    pixels: Vec<f32>,
    occupancy: Vec<f32>,
    timesteps: Vec<f32>,
    abar: Vec<f32>,
    noise: Tensor,
}

/// Renders batch `index`: training-split scenes, their stills (or, for `clip_share`
/// of them, frames at random clip times) and plans, occupancy targets, dropped plans,
/// timesteps and noise, all from (seed, index).
#[allow(clippy::too_many_arguments)]
fn renderer_batch(
    config: &GroundedRendererConfig,
    schedule: &NoiseSchedule,
    p_uncond: f64,
    clip_share: f64,
    batch: usize,
    seed: u64,
    index: u64,
    spread_timesteps: bool,
) -> Result<RenderedBatch> {
    let size = config.image_size;
    let sampler = SpecSampler::default();
    let mut rng = rng_for(mix64(seed ^ mix64(index)), Purpose::Augment);
    let mut plans = Vec::with_capacity(batch);
    let mut pixels = Vec::with_capacity(batch * 3 * size * size);
    let mut occupancy = vec![0f32; batch * mmgen_models::grounded::MAX_OBJECTS * size * size];
    let (mut timesteps, mut abar) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
    let uv = canvas_coords(size, size, &Device::Cpu)?;
    for j in 0..batch {
        let sample_seed = mix64(seed ^ mix64(index.wrapping_mul(batch as u64).wrapping_add(j as u64)));
        let spec = sampler.sample(Split::Train, sample_seed);
        // Stills draw no number, so a run without clip frames keeps its stream.
        let time = if clip_share > 0.0 && rng.random_bool(clip_share) {
            rng.random::<f32>()
        } else {
            STILL_TIME
        };
        let image = Scene::new(&spec, sample_seed).frame(size as u32, size as u32, time)?;
        pixels.extend(mmgen_world::stream::pixels(&[image]));
        // The plan the evaluation's renderer-alone row draws, as class ids.
        let mut plan = PlanIds::of(&spec_plan_at(&spec, sample_seed, time), &config.vocab)?;
        plan.clip_time = time;
        // Occupancy from the world's signed distances, in the field's own coordinates.
        let one = PlanBatch::new(&[Some(&plan)], config.null_globals(), &Device::Cpu)?;
        let coords: Vec<f32> = object_coords(&one.poses, &uv)?.flatten_all()?.to_vec1()?;
        let n = size * size;
        for (k, object) in spec.objects.iter().enumerate() {
            let base = (j * mmgen_models::grounded::MAX_OBJECTS + k) * n;
            for p in 0..n {
                let (x, y) = (coords[(k * n + p) * 2], coords[(k * n + p) * 2 + 1]);
                occupancy[base + p] = (signed_distance(object.shape, x, y) < 0.0) as u8 as f32;
            }
        }
        plans.push((!rng.random_bool(p_uncond)).then_some(plan));
        let t = if spread_timesteps {
            ((2 * j + 1) * schedule.train_steps()) / (2 * batch)
        } else {
            rng.random_range(0..schedule.train_steps())
        };
        timesteps.push(t as f32);
        abar.push(schedule.alpha_bar(t) as f32);
    }
    let refs: Vec<Option<&PlanIds>> = plans.iter().map(|p| p.as_ref()).collect();
    let plans = PlanBatch::new(&refs, config.null_globals(), &Device::Cpu)?;
    let noise = gaussian((batch, 3, size, size), rng.random(), &Device::Cpu)?;
    Ok(RenderedBatch {
        plans,
        pixels,
        occupancy,
        timesteps,
        abar,
        noise,
    })
}

fn to_device(parts: RenderedBatch, size: usize, device: &Device) -> Result<RendererBatch> {
    let RenderedBatch {
        plans,
        pixels,
        occupancy,
        timesteps,
        abar,
        noise,
    } = parts;
    let b = timesteps.len();
    let k = mmgen_models::grounded::MAX_OBJECTS;
    Ok(RendererBatch {
        plans: PlanBatch {
            globals: plans.globals.to_device(device)?,
            object_ids: plans.object_ids.to_device(device)?,
            present: plans.present.to_device(device)?,
            poses: plans.poses.to_device(device)?,
            times: plans.times.to_device(device)?,
        },
        images: Tensor::from_vec(pixels, (b, 3, size, size), device)?,
        occupancy: Tensor::from_vec(occupancy, (b, k, size * size), device)?,
        timesteps: Tensor::from_vec(timesteps, b, device)?,
        abar: Tensor::from_vec(abar, (b, 1, 1, 1), device)?,
        noise: noise.to_device(device)?,
    })
}

/// A batch for `mmgen bench train --models grounded-renderer`: training scenes
/// rendered as the trainer renders them, noised at their timesteps.
pub(crate) struct BenchBatch {
    pub plans: PlanBatch,
    pub noisy: Tensor,
    pub images: Tensor,
    pub timesteps: Tensor,
}

/// Batch `index` of [`BenchBatch`]es on `device`.
pub(crate) fn bench_batch(
    config: &GroundedRendererConfig,
    schedule: &NoiseSchedule,
    batch: usize,
    index: u64,
    device: &Device,
) -> Result<BenchBatch> {
    let rendered = renderer_batch(config, schedule, 0.1, 0.0, batch, 0, index, false)?;
    let b = to_device(rendered, config.image_size, device)?;
    Ok(BenchBatch {
        noisy: Prediction::noised(&b.images, &b.noise, &b.abar)?,
        plans: b.plans,
        images: b.images,
        timesteps: b.timesteps,
    })
}

/// The weighted objective and its parts (denoising, occupancy).
fn renderer_loss(
    model: &GroundedRenderer,
    prediction: Prediction,
    options: &RendererOptions,
    b: &RendererBatch,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xs = Prediction::noised(&b.images, &b.noise, &b.abar)?;
    let target = prediction.target(&b.images, &b.noise, &b.abar)?;
    let grounding = model.ground(&b.plans)?;
    let out = model.predict(&xs, &b.timesteps, &grounding)?;
    let (batch, _, h, w) = b.images.dims4()?;
    // Pixels near any object count 1 + object_weight times.
    let near = grounding.objects.weight.max(1)?.reshape((batch, 1, h, w))?;
    let pixel_weight = near.affine(options.object_weight, 1.0)?;
    let per_sample = (out - target)?
        .sqr()?
        .broadcast_mul(&pixel_weight)?
        .mean_keepdim(3)?
        .mean_keepdim(2)?
        .mean_keepdim(1)?;
    // min-SNR-gamma (Hang et al. 2023): min(snr, gamma) on the x0 error, which is the
    // v error over (snr + 1) and the noise error times snr.
    let snr = (&b.abar / b.abar.affine(-1.0, 1.0)?.clamp(1e-6, 1.0)?)?;
    let clipped = snr.clamp(0.0, options.min_snr_gamma)?;
    let snr_weight = match prediction {
        Prediction::V => (clipped / snr.affine(1.0, 1.0)?)?,
        Prediction::Sample => clipped,
        Prediction::Epsilon => (clipped / snr.clamp(1e-6, f64::MAX)?)?,
    };
    let denoising = (per_sample * snr_weight)?.mean_all()?;
    // BCE with logits, on present slots' supports only.
    let logits = &grounding.objects.occupancy;
    let weight = &grounding.objects.weight;
    let bce = (logits.relu()? - (logits * &b.occupancy)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let occupancy = ((bce? * weight)?.sum_all()? / (weight.sum_all()? + 1.0)?)?;
    let total = (&denoising + occupancy.affine(options.occupancy_weight, 0.0)?)?;
    Ok((total, denoising, occupancy))
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Trains a grounded renderer of `config` (or continues `run.resume`) and writes its
/// folder to `run.out`: config.json, model.safetensors (EMA weights, f16) and
/// metrics.json with every run that made it. Returns this run's record.
pub fn train_renderer(
    config: &GroundedRendererConfig,
    options: &RendererOptions,
    fit: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    if !(0.0..1.0).contains(&options.p_uncond) || !(0.0..1.0).contains(&options.ema_decay) {
        return Err(TrainError::Invalid(format!(
            "p_uncond {} and ema_decay {} must be in [0, 1)",
            options.p_uncond, options.ema_decay
        )));
    }
    let mut history = Vec::new();
    let mut config = match run.resume {
        Some(dir) => {
            let resumed: GroundedRendererConfig = mmgen_models::weights::read_folder_config(dir, "grounded renderer")?;
            history = previous_runs(dir);
            resumed
        }
        None => config.clone(),
    };
    let changed = options.prediction.is_some_and(|p| p != config.prediction)
        || options.preconditioning.is_some_and(|p| p != config.preconditioning);
    let restart_output = changed && run.resume.is_some();
    config.prediction = options.prediction.unwrap_or(config.prediction);
    config.preconditioning = options.preconditioning.unwrap_or(config.preconditioning);
    if !(0.0..=1.0).contains(&options.clip_share) {
        return Err(TrainError::Invalid(format!(
            "clip_share {} must be in [0, 1]",
            options.clip_share
        )));
    }
    config.clip_time |= options.clip_share > 0.0;
    config.pixel_head |= options.pixel_head;
    let varmap = VarMap::new();
    let model = GroundedRenderer::new(
        &config,
        seeded_var_builder(&varmap, fit.seed, DType::F32, device),
        device,
    )?;
    if let Some(dir) = run.resume {
        // Layers added since that folder was trained start at zero (see the renderer),
        // and so do the output layers under a new prediction target.
        let output = |name: &str| OUTPUT_LAYERS.iter().any(|layer| name.starts_with(layer));
        let mut weights = load_f32(&dir.join("model.safetensors"), device)?;
        if restart_output {
            weights.retain(|name, _| !output(name));
        }
        let added =
            |name: &str| ADDED_LAYERS.iter().any(|layer| name.starts_with(layer)) || (restart_output && output(name));
        set_inflated(&varmap, &weights, added)?;
    }
    let mut named: Vec<_> = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Invalid("variable map poisoned".into()))?
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let parameters: usize = named.iter().map(|(_, v)| v.elem_count()).sum();
    let schedule = NoiseSchedule::new(config.schedule, config.train_steps)?;
    let prediction = config.prediction;
    // A fixed validation batch beyond the stream's reach, timesteps spread evenly.
    let validation = to_device(
        renderer_batch(
            &config,
            &schedule,
            0.0,
            options.clip_share,
            fit.batch.min(16),
            fit.seed,
            1 << 40,
            true,
        )?,
        config.image_size,
        device,
    )?;
    let validate = |m: &GroundedRenderer| -> Result<(f64, f64)> {
        let (_, d, o) = renderer_loss(m, prediction, options, &validation)?;
        Ok((scalar(&d)?, scalar(&o)?))
    };
    let initial = validate(&model)?;
    let (cfg_w, schedule_w, dev) = (config.clone(), schedule.clone(), device.clone());
    let (p_uncond, clip_share, batch, seed) = (options.p_uncond, options.clip_share, fit.batch, fit.seed);
    let batches = OrderedWorkers::new(fit.workers, 2, move |i| {
        renderer_batch(&cfg_w, &schedule_w, p_uncond, clip_share, batch, seed, i, false)
            .and_then(|parts| to_device(parts, cfg_w.image_size, &dev))
    });
    let mut ema = Ema::new(named.clone(), options.ema_decay)?;
    let mut clock = CheckpointClock::new(run.checkpoint_every, fit.steps);
    let mut ema_error = None;
    let save = |weights: &HashMap<String, Tensor>, metrics: &serde_json::Value| -> Result<()> {
        std::fs::create_dir_all(run.out).map_err(|e| TrainError::file(run.out, e))?;
        let value = serde_json::to_value(&config).map_err(|e| TrainError::Invalid(e.to_string()))?;
        write_json(&run.out.join("config.json"), &value)?;
        save_f16(&varmap, Some(weights), &run.out.join("model.safetensors"))?;
        write_json(&run.out.join("metrics.json"), metrics)?;
        Ok(())
    };
    let outcome = fit_vars(
        named.iter().map(|(_, v)| v.clone()).collect(),
        fit,
        batches,
        |b: &RendererBatch| {
            let (total, denoising, occupancy) = renderer_loss(&model, prediction, options, b)?;
            Ok((total, vec![("denoise", denoising), ("occupancy", occupancy)]))
        },
        |report| {
            if let Err(e) = ema.update(report.step) {
                ema_error.get_or_insert(e);
            }
            progress(report);
            if clock.due(report.step) {
                let mut partial = history.clone();
                partial.push(json!({"command": run.command, "partial": true, "step": report.step,
                    "train_seconds": report.elapsed_s, "samples_per_s": report.samples_per_s}));
                // A failed checkpoint costs only progress; the final save reports.
                let _ = save(ema.averages(), &json!({"model": "grounded-renderer", "runs": partial}));
            }
        },
    )?;
    if let Some(e) = ema_error {
        return Err(e);
    }
    let averaged = GroundedRenderer::new(
        &config,
        VarBuilder::from_tensors(ema.averages().clone(), DType::F32, device),
        device,
    )?;
    let (final_raw, final_ema) = (validate(&model)?, validate(&averaged)?);
    let mut record = json!({
        "command": run.command,
        "device": format!("{device:?}"),
        "options": fit,
        "renderer_options": options,
        "parameters": parameters,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "validation": {
            "about": "denoising loss (weighted as trained) and occupancy BCE on one fixed training-split batch, timesteps evenly spread",
            "initial": {"denoise": initial.0, "occupancy": initial.1},
            "final": {"denoise": final_raw.0, "occupancy": final_raw.1},
            "final_ema": {"denoise": final_ema.0, "occupancy": final_ema.1},
        },
    });
    outcome.record_into(&mut record, fit.batch);
    history.push(record.clone());
    let cpu_hours: f64 = history.iter().filter_map(|r| r["train_seconds"].as_f64()).sum::<f64>() / 3600.0;
    save(
        ema.averages(),
        &json!({"model": "grounded-renderer", "train_hours_total": cpu_hours, "runs": history}),
    )?;
    Ok(record)
}

/// The runs recorded in a model folder's metrics.json (none if unreadable); a run
/// that stopped after a checkpoint is kept, marked as interrupted at its step.
pub(crate) fn previous_runs(dir: &Path) -> Vec<serde_json::Value> {
    let runs = std::fs::read_to_string(dir.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m["runs"].as_array().cloned())
        .unwrap_or_default();
    runs.into_iter()
        .map(|mut r| {
            if let Some(map) = r.as_object_mut().filter(|m| m.contains_key("partial")) {
                map.remove("partial");
                map.insert("interrupted".into(), json!(true));
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_renderer_training_lowers_the_validation_loss_and_resumes() {
        let root = std::env::temp_dir().join(format!("mmgen-renderer-{}", std::process::id()));
        // Trained without the pixel head, which the resumed run adds.
        let config = GroundedRendererConfig {
            pixel_head: false,
            ..GroundedRendererConfig::tiny(world_vocab())
        };
        let fit = FitOptions {
            log_every: 5,
            ..FitOptions::new(60, 8, 3e-3, 1)
        };
        let out = root.join("renderer");
        let run = RunInfo {
            out: &out,
            command: "test".into(),
            eval_samples: 0,
            checkpoint_every: 0,
            resume: None,
        };
        let record = train_renderer(&config, &RendererOptions::default(), &fit, &run, &Device::Cpu, |_| {}).unwrap();
        let v = &record["validation"];
        let (first, last) = (
            v["initial"]["denoise"].as_f64().unwrap(),
            v["final"]["denoise"].as_f64().unwrap(),
        );
        assert!(last < 0.8 * first, "denoising loss {first} -> {last}");
        let (first, last) = (
            v["initial"]["occupancy"].as_f64().unwrap(),
            v["final"]["occupancy"].as_f64().unwrap(),
        );
        assert!(last < first, "occupancy loss {first} -> {last}");
        let resumed = root.join("resumed");
        let again = RunInfo {
            out: &resumed,
            resume: Some(&out),
            ..run
        };
        let short = FitOptions::new(2, 4, 1e-3, 2);
        // Resuming a stills-only folder with clip frames adds the clip-time layers.
        let clips = RendererOptions {
            clip_share: 0.5,
            pixel_head: true,
            ..RendererOptions::default()
        };
        train_renderer(&config, &clips, &short, &again, &Device::Cpu, |_| {}).unwrap();
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(resumed.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(metrics["runs"].as_array().unwrap().len(), 2, "both runs recorded");
        let resumed_config: GroundedRendererConfig =
            mmgen_models::weights::read_folder_config(&resumed, "grounded renderer").unwrap();
        assert!(resumed_config.clip_time && resumed_config.pixel_head);
        GroundedRenderer::load(&resumed, &Device::Cpu).unwrap();
        let _ = std::fs::remove_dir_all(&root);
    }
}
