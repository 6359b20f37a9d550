//! Measuring trained probes: accuracy tallies per split as JSON, and the image
//! probe's detection threshold, calibrated on fresh renders.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use mmgen_world::Split;
use serde_json::json;

use super::image::ImageProbe;
use super::image_data::{calibrate_detection_threshold, clip_frame_accuracy, image_probe_accuracy, Tally, CLIP_FRAMES};
use crate::error::{EvalError, Result};
use mmgen_models::weights::write_json;

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

/// Chooses `probe`'s detection threshold on `n` fresh train-split renders and sets it;
/// returns the new config and the calibration record (both as JSON).
pub fn calibrate_image_probe(
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
    let mut probe = crate::probes::load_image_probe(dir, shape_dir, device)?;
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
