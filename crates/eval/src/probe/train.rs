//! Training drivers of the probes: data workers, the loop, held-out accuracy, files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mmgen_world::{OrderedWorkers, Split};
use serde::Serialize;
use serde_json::json;

use super::audio::{AudioProbe, AudioProbeConfig};
use super::audio_data::{audio_batch, audio_probe_accuracy};
use super::image::{ImageProbe, ImageProbeConfig, CALIBRATED_KEYS};
use super::image_data::{
    calibrate_detection_threshold, clip_frame_accuracy, image_batch, image_probe_accuracy, shape_batch,
    shape_probe_accuracy, ShapeBatch, StreamFocus, Tally, CLIP_FRAMES,
};
use super::shape::{ShapeProbe, ShapeProbeConfig};
use super::video::{VideoProbe, VideoProbeConfig};
use super::video_data::{video_batch, video_probe_accuracy};
use crate::error::{EvalError, Result};
use crate::fit::{fit, load_config, resume, save_probe, write_json, CheckpointClock, FitOptions, StepReport};

/// Accuracy tallies as JSON: {attribute: {accuracy, correct, total}}.
pub fn tallies_json(tallies: &BTreeMap<&'static str, Tally>) -> serde_json::Value {
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

/// `accuracy` on the training and held-out splits, as JSON keyed `train` and
/// `heldout` (see [`tallies_json`]).
pub fn accuracy_by_split(
    accuracy: impl Fn(Split) -> Result<BTreeMap<&'static str, Tally>>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut by_split = serde_json::Map::new();
    for split in [Split::Train, Split::Heldout] {
        by_split.insert(format!("{split:?}").to_lowercase(), tallies_json(&accuracy(split)?));
    }
    Ok(by_split)
}

/// Where a training run writes and what it records.
pub struct RunInfo<'a> {
    /// Output folder.
    pub out: &'a Path,
    /// The command line that started the run (recorded in metrics.json).
    pub command: String,
    /// Fresh renders per split for the final accuracy.
    pub eval_samples: usize,
    /// Save a checkpoint every this many steps (0: only every two minutes and at the end).
    pub checkpoint_every: usize,
    /// Start from the weights of this probe folder instead of a fresh initialisation
    /// (the learning-rate schedule starts again).
    pub resume: Option<&'a Path>,
}

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
    let mut value = serde_json::to_value(config).map_err(|e| EvalError::Invalid(e.to_string()))?;
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
    let ours_raw = serde_json::to_value(config).map_err(|e| EvalError::Invalid(e.to_string()))?;
    let flag = |value: &serde_json::Value, key: &str| value.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    let mut added = Vec::new();
    for &(key, prefix) in grown {
        match (flag(&theirs_raw, key), flag(&ours_raw, key)) {
            (false, true) => added.push(prefix),
            (true, false) => {
                return Err(EvalError::Invalid(format!(
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
        return Err(EvalError::Invalid(format!(
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
    FL: Fn(&M, &B) -> Result<(Tensor, Vec<(&'static str, Tensor)>)>,
    FC: Fn(&mut M) -> Result<Option<(serde_json::Value, serde_json::Value)>>,
    FA: Fn(&M, Split) -> Result<BTreeMap<&'static str, Tally>>,
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
        |b| loss(&probe, b),
        |report| {
            progress(report);
            if clock.due(report.step) {
                let partial = json!({"command": run.command, "partial": true, "step": report.step});
                // A failed checkpoint shows up in the final save.
                let _ = save_probe(run.out, config, &varmap, &partial);
            }
        },
    )?;
    let eval_start = Instant::now();
    let mut config = serde_json::to_value(config).map_err(|e| EvalError::Invalid(e.to_string()))?;
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
    save_probe(run.out, &config, &varmap, &metrics)?;
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
        loss: |p: &ImageProbe, b: &super::image_data::ImageBatch| p.loss(&b.xs, &b.targets),
        calibrate: |p: &mut ImageProbe| calibrate_image_probe(p, n, measured, device).map(Some),
        accuracy: |p: &ImageProbe, split| image_probe_accuracy(p, n, measured, split, device),
        grown: &[],
    };
    train_probe(probe_run, config, options, run, device, progress)
}

/// Chooses `probe`'s detection threshold on `n` fresh train-split renders and sets it;
/// returns the new config and the calibration record (both as JSON).
fn calibrate_image_probe(
    probe: &mut ImageProbe,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let calibration = calibrate_detection_threshold(probe, n, seed, device)?;
    probe.set_detection_threshold(calibration.threshold)?;
    let config = serde_json::to_value(probe.config()).map_err(|e| EvalError::Invalid(e.to_string()))?;
    let record = serde_json::to_value(&calibration).map_err(|e| EvalError::Invalid(e.to_string()))?;
    Ok((config, record))
}

/// Calibrates the detection threshold of the trained image probe in `dir` (as training
/// does at its end, for a folder trained before, or to recalibrate with more renders),
/// re-measures its accuracy on `n` fresh renders per split (with shapes read by the
/// shape probe in `shape_dir`, when given) and on every frame of `clips` fresh clips
/// per split ([`CLIP_FRAMES`] frames each; none when 0), and rewrites `config.json`
/// and the `calibration`, `accuracy`, `clip_frames` and `calibrated_by` entries of
/// `metrics.json`. The weights are left as they are. Returns the calibration record.
pub fn recalibrate_image_probe(
    dir: &Path,
    shape_dir: Option<&Path>,
    n: usize,
    clips: usize,
    seed: u64,
    command: String,
    device: &Device,
) -> Result<serde_json::Value> {
    let mut probe = crate::run::load_image_probe(dir, shape_dir, device)?;
    let metrics_path = dir.join("metrics.json");
    let mut metrics: serde_json::Value = match std::fs::read_to_string(&metrics_path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| EvalError::file(&metrics_path, format!("not JSON: {e}")))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(EvalError::file(&metrics_path, e)),
    };
    let (config, record) = calibrate_image_probe(&mut probe, n, seed, device)?;
    let by_split = accuracy_by_split(|split| image_probe_accuracy(&probe, n, seed, split, device))?;
    let Some(entries) = metrics.as_object_mut() else {
        return Err(EvalError::file(&metrics_path, "not a JSON object"));
    };
    entries.insert("calibration".into(), record.clone());
    entries.insert("accuracy".into(), by_split.into());
    entries.insert("eval_samples_per_split".into(), n.into());
    if clips > 0 {
        let frames = accuracy_by_split(|split| clip_frame_accuracy(&probe, clips, CLIP_FRAMES, seed, split, device))?;
        entries.insert("clip_frames".into(), frames.into());
        entries.insert("clips_per_split".into(), clips.into());
    } else {
        // A record of other weights or another shape probe must not stay behind.
        entries.remove("clip_frames");
        entries.remove("clips_per_split");
    }
    entries.insert("calibrated_by".into(), command.into());
    // The accuracy above is of the image reading with this shape probe (or without one).
    entries.insert("shape_probe".into(), shape_dir.map(|d| d.display().to_string()).into());
    write_json(&dir.join("config.json"), &config)?;
    write_json(&metrics_path, &metrics)?;
    Ok(record)
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
        grown: super::shape::GROWN_LAYERS,
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
        loss: |p: &AudioProbe, b: &super::audio_data::AudioBatch| p.loss(&b.xs, &b.instruments, &b.moods),
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
        loss: |p: &VideoProbe, b: &super::video_data::VideoBatch| p.loss(&b.xs, &b.motions),
        calibrate: |_: &mut VideoProbe| Ok(None),
        accuracy: |p: &VideoProbe, split| video_probe_accuracy(p, n, measured, split, device),
        grown: &[],
    };
    train_probe(probe_run, config, options, run, device, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::probe::shape::GROWN_LAYERS as GROWN;

    fn folder_with(config: &ShapeProbeConfig, name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mmgen-resumable-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let value = serde_json::to_value(config).unwrap();
        write_json(&dir.join("config.json"), &value).unwrap();
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
