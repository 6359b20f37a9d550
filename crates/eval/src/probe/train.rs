//! Training drivers of the probes: data workers, the loop, held-out accuracy, files.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use mmgen_world::{OrderedWorkers, Split};
use serde_json::json;

use super::audio::{AudioProbe, AudioProbeConfig};
use super::audio_data::{audio_batch, audio_probe_accuracy};
use super::fit::{fit, save_probe, FitOptions, StepReport};
use super::image::{ImageProbe, ImageProbeConfig};
use super::image_data::{image_batch, image_probe_accuracy, Tally};
use super::video::{VideoProbe, VideoProbeConfig};
use super::video_data::{video_batch, video_probe_accuracy};
use crate::error::Result;

/// Accuracy tallies as JSON: {attribute: {accuracy, correct, total}}.
pub fn tallies_json(tallies: &std::collections::BTreeMap<&'static str, Tally>) -> serde_json::Value {
    tallies
        .iter()
        .map(|(k, t)| {
            (
                k.to_string(),
                json!({"accuracy": t.accuracy(), "correct": t.correct, "total": t.total}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Where a training run writes and what it records.
pub struct RunInfo<'a> {
    /// Output folder.
    pub out: &'a Path,
    /// The command line that started the run (recorded in metrics.json).
    pub command: String,
    /// Fresh renders per split for the final accuracy.
    pub eval_samples: usize,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
}

/// Trains an image probe, measures it and writes it to `run.out`; returns metrics.json.
pub fn train_image_probe(
    config: &ImageProbeConfig,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let varmap = VarMap::new();
    let probe = ImageProbe::new(config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let (size, batch, seed) = (config.image_size, options.batch, options.seed);
    let data_device = device.clone();
    let batches = OrderedWorkers::new(options.workers, 2, move |i| {
        image_batch(size, batch, seed, i, &data_device)
    });
    let start = Instant::now();
    let losses = fit(
        &varmap,
        options,
        batches,
        |b| probe.loss(&b.xs, &b.targets),
        |report| {
            progress(report);
            if run.checkpoint_every > 0 && report.step % run.checkpoint_every == 0 && report.step < options.steps {
                let partial = json!({"command": run.command, "partial": true, "step": report.step});
                // A failed checkpoint is reported by the final save.
                let _ = save_probe(run.out, config, &varmap, &partial);
            }
        },
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let mut accuracy = serde_json::Map::new();
    for split in [Split::Train, Split::Heldout] {
        let tallies = image_probe_accuracy(&probe, run.eval_samples, seed ^ 0x5EED, split, device)?;
        accuracy.insert(format!("{split:?}").to_lowercase(), tallies_json(&tallies));
    }
    let tail = &losses[losses.len().saturating_sub(50)..];
    let metrics = json!({
        "probe": "image",
        "command": run.command,
        "options": options,
        "train_seconds": train_seconds,
        "samples_per_s": (options.steps * options.batch) as f64 / train_seconds,
        "final_loss": tail.iter().sum::<f32>() / tail.len().max(1) as f32,
        "first_loss": losses.first(),
        "eval_samples_per_split": run.eval_samples,
        "accuracy": accuracy,
    });
    save_probe(run.out, config, &varmap, &metrics)?;
    Ok(metrics)
}

/// Trains an audio probe, measures it and writes it to `run.out`; returns metrics.json.
pub fn train_audio_probe(
    config: &AudioProbeConfig,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let varmap = VarMap::new();
    let probe = AudioProbe::new(config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let (batch, seed) = (options.batch, options.seed);
    let (data_config, data_device) = (config.clone(), device.clone());
    let batches = OrderedWorkers::new(options.workers, 2, move |i| {
        audio_batch(&data_config, batch, seed, i, &data_device)
    });
    let start = Instant::now();
    let losses = fit(
        &varmap,
        options,
        batches,
        |b| probe.loss(&b.xs, &b.instruments, &b.moods),
        |r| progress(r),
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let mut accuracy = serde_json::Map::new();
    for split in [Split::Train, Split::Heldout] {
        let tallies = audio_probe_accuracy(&probe, run.eval_samples, seed ^ 0x5EED, split, device)?;
        accuracy.insert(format!("{split:?}").to_lowercase(), tallies_json(&tallies));
    }
    let tail = &losses[losses.len().saturating_sub(50)..];
    let metrics = json!({
        "probe": "audio",
        "command": run.command,
        "options": options,
        "train_seconds": train_seconds,
        "samples_per_s": (options.steps * options.batch) as f64 / train_seconds,
        "final_loss": tail.iter().sum::<f32>() / tail.len().max(1) as f32,
        "first_loss": losses.first(),
        "eval_samples_per_split": run.eval_samples,
        "accuracy": accuracy,
    });
    save_probe(run.out, config, &varmap, &metrics)?;
    Ok(metrics)
}

/// Trains a video probe, measures it and writes it to `run.out`; returns metrics.json.
pub fn train_video_probe(
    config: &VideoProbeConfig,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let varmap = VarMap::new();
    let probe = VideoProbe::new(config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let (batch, seed) = (options.batch, options.seed);
    let data_device = device.clone();
    let batches = OrderedWorkers::new(options.workers, 2, move |i| video_batch(batch, seed, i, &data_device));
    let start = Instant::now();
    let losses = fit(
        &varmap,
        options,
        batches,
        |b| probe.loss(&b.xs, &b.motions),
        |r| {
            progress(r);
            if run.checkpoint_every > 0 && r.step % run.checkpoint_every == 0 && r.step < options.steps {
                let _ = save_probe(
                    run.out,
                    config,
                    &varmap,
                    &json!({"command": run.command, "partial": true, "step": r.step}),
                );
            }
        },
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let mut accuracy = serde_json::Map::new();
    for split in [Split::Train, Split::Heldout] {
        let tallies = video_probe_accuracy(&probe, run.eval_samples, seed ^ 0x5EED, split, device)?;
        accuracy.insert(format!("{split:?}").to_lowercase(), tallies_json(&tallies));
    }
    let tail = &losses[losses.len().saturating_sub(50)..];
    let metrics = json!({
        "probe": "video",
        "command": run.command,
        "options": options,
        "train_seconds": train_seconds,
        "samples_per_s": (options.steps * options.batch) as f64 / train_seconds,
        "final_loss": tail.iter().sum::<f32>() / tail.len().max(1) as f32,
        "first_loss": losses.first(),
        "eval_samples_per_split": run.eval_samples,
        "accuracy": accuracy,
    });
    save_probe(run.out, config, &varmap, &metrics)?;
    Ok(metrics)
}
