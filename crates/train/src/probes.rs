//! Training drivers of the evaluation's probes: data workers, the loop, held-out
//! accuracy (measured by the eval crate), files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mmgen_eval::probe::audio::{AudioProbe, AudioProbeConfig};
use mmgen_eval::probe::audio_data::audio_probe_accuracy;
use mmgen_eval::probe::folder::load_config;
use mmgen_eval::probe::image::{ImageProbe, ImageProbeConfig, CALIBRATED_KEYS};
use mmgen_eval::probe::image_data::{image_probe_accuracy, shape_probe_accuracy, Tally};
use mmgen_eval::probe::measure::{accuracy_by_split, calibrate_image_probe};
use mmgen_eval::probe::shape::{ShapeProbe, ShapeProbeConfig};
use mmgen_eval::probe::video::{VideoProbe, VideoProbeConfig};
use mmgen_eval::probe::video_data::video_probe_accuracy;
use mmgen_world::{OrderedWorkers, Split};
use serde::Serialize;
use serde_json::json;

use crate::error::{Result, TrainError};
use crate::fit::{fit, resume, save_model_folder, CheckpointClock, FitOptions, RunInfo, StepReport};
use crate::probe_data::{
    audio_batch, image_batch, shape_batch, video_batch, AudioBatch, ImageBatch, ShapeBatch, StreamFocus, VideoBatch,
};

/// What differs between the probes' training runs: the model (built on `varmap`),
/// its data, loss, settings chosen after training, and accuracy.
struct ProbeRun<M, FB, FL, FC, FA> {
    name: &'static str,
    varmap: VarMap,
    probe: M,
    batch: FB,
    loss: FL,
    /// Sets what is chosen rather than learnt (the image probe's detection threshold)
    /// before accuracy is measured; returns the probe's new config and a record of the
    /// choice, or None when the probe has nothing to calibrate.
    calibrate: FC,
    accuracy: FA,
    /// Layers a run may add to a probe it resumes: (config flag that adds them,
    /// prefix of their parameters). Resuming from a folder without them starts them
    /// fresh and keeps every other weight.
    grown: &'static [(&'static str, &'static str)],
}

/// A config as JSON without the keys that calibration sets (and without `ignored`),
/// to compare architectures.
fn architecture_json(config: &impl Serialize, ignored: &[&str]) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(config).map_err(|e| TrainError::Invalid(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        for key in CALIBRATED_KEYS.iter().chain(ignored) {
            object.remove(*key);
        }
    }
    Ok(value)
}

/// Checks that the probe in `dir` can be resumed by a run of `config` and returns the
/// parameter prefixes the run adds to it: the architectures must be the same except
/// for calibrated keys and for `grown` layers the folder lacks and the run has.
fn resumable(dir: &Path, config: &impl Serialize, grown: &[(&str, &'static str)]) -> Result<Vec<&'static str>> {
    let theirs_raw = load_config::<serde_json::Value>(dir)?;
    let ours_raw = serde_json::to_value(config).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let flag = |value: &serde_json::Value, key: &str| value.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    let mut added = Vec::new();
    for &(key, prefix) in grown {
        match (flag(&theirs_raw, key), flag(&ours_raw, key)) {
            (false, true) => added.push(prefix),
            (true, false) => {
                return Err(TrainError::Invalid(format!(
                    "cannot resume from {}: it has {key} and this run has not (a resumed run may add layers, not drop them)",
                    dir.display()
                )))
            }
            _ => {}
        }
    }
    let grown_keys: Vec<&str> = grown.iter().map(|g| g.0).collect();
    let theirs = architecture_json(&theirs_raw, &grown_keys)?;
    let ours = architecture_json(&ours_raw, &grown_keys)?;
    if theirs != ours {
        return Err(TrainError::Invalid(format!(
            "cannot resume from {}: its config is {theirs}, this run's is {ours}",
            dir.display()
        )));
    }
    Ok(added)
}

/// Optionally resumes, trains, measures on both splits and saves a probe.
fn train_probe<M, B, FB, FL, FC, FA>(
    probe_run: ProbeRun<M, FB, FL, FC, FA>,
    config: &impl Serialize,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value>
where
    B: Send + 'static,
    FB: Fn(u64) -> Result<B> + Send + Sync + 'static,
    FL: Fn(&M, &B) -> mmgen_eval::Result<(Tensor, Vec<(&'static str, Tensor)>)>,
    FC: Fn(&mut M) -> mmgen_eval::Result<Option<(serde_json::Value, serde_json::Value)>>,
    FA: Fn(&M, Split) -> mmgen_eval::Result<BTreeMap<&'static str, Tally>>,
{
    let ProbeRun {
        name,
        mut varmap,
        mut probe,
        batch,
        loss,
        calibrate,
        accuracy,
        grown,
    } = probe_run;
    if let Some(dir) = run.resume {
        let added = resumable(dir, config, grown)?;
        resume(&mut varmap, dir, device, |name| {
            added.iter().any(|p| name.starts_with(p))
        })?;
    }
    // Workers render ahead of the loop (two batches each), so that a fast device
    // never waits for the CPU once the queue is full.
    let batches = OrderedWorkers::new(options.workers, 2, batch);
    let mut clock = CheckpointClock::new(run.checkpoint_every, options.steps);
    let outcome = fit(
        &varmap,
        options,
        batches,
        |b| Ok(loss(&probe, b)?),
        |report| {
            progress(report);
            if clock.due(report.step) {
                let partial = json!({"command": run.command, "partial": true, "step": report.step});
                // A failed checkpoint shows up in the final save.
                let _ = save_model_folder(run.out, config, &varmap, &partial);
            }
        },
    )?;
    let eval_start = Instant::now();
    let mut config = serde_json::to_value(config).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut calibration = serde_json::Value::Null;
    if let Some((calibrated, record)) = calibrate(&mut probe)? {
        config = calibrated;
        calibration = record;
    }
    let by_split = accuracy_by_split(|split| accuracy(&probe, split))?;
    let mut metrics = json!({
        "probe": name,
        "command": run.command,
        "device": format!("{device:?}"),
        "options": options,
        "eval_seconds": eval_start.elapsed().as_secs_f64(),
        "eval_samples_per_split": run.eval_samples,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "calibration": calibration,
        "accuracy": by_split,
    });
    outcome.record_into(&mut metrics, options.batch);
    save_model_folder(run.out, &config, &varmap, &metrics)?;
    Ok(metrics)
}

/// Mixed into the run's seed for the renders that measure (and calibrate) a trained
/// probe, so that they are not the renders it trained on.
const MEASUREMENT_SEED: u64 = 0x5EED;

/// Fresh variables, initialised from the run's seed.
fn new_varmap(seed: u64, device: &Device) -> (VarMap, VarBuilder<'static>) {
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, seed, DType::F32, device);
    (varmap, vb)
}

/// Trains an image probe (on the world's mix, or dwelling where `focus` says), measures
/// it and writes it to `run.out`; returns metrics.json.
pub fn train_image_probe(
    config: &ImageProbeConfig,
    options: &FitOptions,
    focus: StreamFocus,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (varmap, vb) = new_varmap(options.seed, device);
    // Only the data closure moves to the worker threads; the others borrow.
    let (size, batch, seed, dev) = (config.image_size, options.batch, options.seed, device.clone());
    let (n, measured) = (run.eval_samples, options.seed ^ MEASUREMENT_SEED);
    let probe_run = ProbeRun {
        name: "image",
        probe: ImageProbe::new(config, vb)?,
        varmap,
        batch: move |i| image_batch(size, batch, seed, i, focus, &dev),
        loss: |p: &ImageProbe, b: &ImageBatch| p.loss(&b.xs, &b.targets),
        calibrate: |p: &mut ImageProbe| calibrate_image_probe(p, n, measured, device).map(Some),
        accuracy: |p: &ImageProbe, split| image_probe_accuracy(p, n, measured, split, device),
        grown: &[],
    };
    train_probe(probe_run, config, options, run, device, progress)
}

/// Trains a shape probe (the second stage of image reading) on crops of the objects
/// of world renders, measures it on crops at true poses and writes it to `run.out`;
/// returns metrics.json. `options.batch` counts images (each gives 1-4 crops); the
/// scenes follow `focus` (see [`StreamFocus`]).
pub fn train_shape_probe(
    config: &ShapeProbeConfig,
    options: &FitOptions,
    focus: StreamFocus,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (varmap, vb) = new_varmap(options.seed, device);
    let (batch, seed, dev, data_cfg) = (options.batch, options.seed, device.clone(), config.clone());
    let (n, measured) = (run.eval_samples, options.seed ^ MEASUREMENT_SEED);
    let probe_run = ProbeRun {
        name: "shape",
        probe: ShapeProbe::new(config, vb)?,
        varmap,
        batch: move |i| shape_batch(&data_cfg, batch, seed, i, focus, &dev),
        loss: |p: &ShapeProbe, b: &ShapeBatch| b.loss(p),
        calibrate: |_: &mut ShapeProbe| Ok(None),
        accuracy: |p: &ShapeProbe, split| shape_probe_accuracy(p, n, measured, split, device),
        grown: mmgen_eval::probe::shape::GROWN_LAYERS,
    };
    train_probe(probe_run, config, options, run, device, progress)
}

/// Trains an audio probe, measures it and writes it to `run.out`; returns metrics.json.
pub fn train_audio_probe(
    config: &AudioProbeConfig,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (varmap, vb) = new_varmap(options.seed, device);
    let (batch, seed, dev, data_cfg) = (options.batch, options.seed, device.clone(), config.clone());
    let (n, measured) = (run.eval_samples, options.seed ^ MEASUREMENT_SEED);
    let probe_run = ProbeRun {
        name: "audio",
        probe: AudioProbe::new(config, vb)?,
        varmap,
        batch: move |i| audio_batch(&data_cfg, batch, seed, i, &dev),
        loss: |p: &AudioProbe, b: &AudioBatch| p.loss(&b.xs, &b.instruments, &b.moods),
        calibrate: |_: &mut AudioProbe| Ok(None),
        accuracy: |p: &AudioProbe, split| audio_probe_accuracy(p, n, measured, split, device),
        grown: &[],
    };
    train_probe(probe_run, config, options, run, device, progress)
}

/// Trains a video probe, measures it and writes it to `run.out`; returns metrics.json.
pub fn train_video_probe(
    config: &VideoProbeConfig,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (varmap, vb) = new_varmap(options.seed, device);
    let (batch, seed, dev) = (options.batch, options.seed, device.clone());
    let (n, measured) = (run.eval_samples, options.seed ^ MEASUREMENT_SEED);
    let probe_run = ProbeRun {
        name: "video",
        probe: VideoProbe::new(config, vb)?,
        varmap,
        batch: move |i| video_batch(batch, seed, i, &dev),
        loss: |p: &VideoProbe, b: &VideoBatch| p.loss(&b.xs, &b.motions),
        calibrate: |_: &mut VideoProbe| Ok(None),
        accuracy: |p: &VideoProbe, split| video_probe_accuracy(p, n, measured, split, device),
        grown: &[],
    };
    train_probe(probe_run, config, options, run, device, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    use mmgen_eval::probe::shape::GROWN_LAYERS as GROWN;

    fn folder_with(config: &ShapeProbeConfig, name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mmgen-resumable-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let value = serde_json::to_value(config).unwrap();
        crate::fit::write_json(&dir.join("config.json"), &value).unwrap();
        dir
    }

    #[test]
    fn a_resumed_run_may_add_layers_but_not_drop_or_change_them() {
        let with_box = ShapeProbeConfig::tiny();
        let without_box = ShapeProbeConfig {
            box_head: false,
            ..ShapeProbeConfig::tiny()
        };
        let old = folder_with(&without_box, "old");
        let new = folder_with(&with_box, "new");
        assert_eq!(resumable(&old, &with_box, GROWN).unwrap(), vec!["box."]);
        assert!(resumable(&new, &with_box, GROWN).unwrap().is_empty());
        assert!(resumable(&old, &without_box, GROWN).unwrap().is_empty());
        let err = resumable(&new, &without_box, GROWN).unwrap_err().to_string();
        assert!(err.contains("box_head"), "{err}");
        let wider = ShapeProbeConfig {
            widths: vec![8, 8, 8],
            ..ShapeProbeConfig::tiny()
        };
        let err = resumable(&old, &wider, GROWN).unwrap_err().to_string();
        assert!(err.contains("widths"), "{err}");
        // A probe that grows nothing compares the whole architecture.
        let err = resumable(&old, &with_box, &[]).unwrap_err().to_string();
        assert!(err.contains("box_head"), "{err}");
        for dir in [old, new] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
