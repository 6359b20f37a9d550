//! The probes an evaluation reads with, loaded from their folders with their recorded
//! accuracy.

use std::path::Path;

use candle_core::Device;
use image::RgbImage;

use crate::error::{EvalError, Result};
use crate::probe::audio::{AudioProbe, AudioProbeConfig};
use crate::probe::folder::{load_config, load_weights};
use crate::probe::image::{images_to_tensor, ImageProbe, ImageProbeConfig, ImageReading};
use crate::probe::shape::{ShapeProbe, ShapeProbeConfig};
use crate::probe::video::{VideoProbe, VideoProbeConfig};

/// The probes an evaluation reads with.
pub struct Probes {
    pub(crate) image: ImageProbe,
    pub(crate) video: Option<VideoProbe>,
    pub(crate) audio: Option<AudioProbe>,
    pub(crate) accuracy: serde_json::Map<String, serde_json::Value>,
    pub(crate) device: Device,
}

/// The image probe in `image_dir`, reading shapes with the shape probe in `shape_dir`
/// when one is given.
pub fn load_image_probe(image_dir: &Path, shape_dir: Option<&Path>, device: &Device) -> Result<ImageProbe> {
    let config: ImageProbeConfig = load_config(image_dir)?;
    let probe = ImageProbe::new(&config, load_weights(image_dir, device)?)?;
    match shape_dir {
        None => Ok(probe),
        Some(dir) => {
            let config: ShapeProbeConfig = load_config(dir)?;
            probe.with_shape_probe(ShapeProbe::new(&config, load_weights(dir, device)?)?)
        }
    }
}

pub(crate) fn heldout_accuracy(dir: &Path) -> serde_json::Value {
    heldout_record(dir, "accuracy")
}

/// The held-out side of the record `key` in the metrics.json of the probe in `dir`
/// (null if there is none).
pub(crate) fn heldout_record(dir: &Path, key: &str) -> serde_json::Value {
    std::fs::read_to_string(dir.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|m| m[key]["heldout"].clone())
        .unwrap_or(serde_json::Value::Null)
}

/// Puts the held-out accuracy of the image reading on clip frames (`clip_frames` in
/// the metrics.json of the image probe in `image_dir`, recorded by `mmgen
/// calibrate-probe`) under `frames` of the video probe's entry of `accuracy`: the
/// video task reads every frame with it. Nothing changes without both.
pub(crate) fn add_frame_reading(accuracy: &mut serde_json::Map<String, serde_json::Value>, image_dir: &Path) {
    if let (Some(serde_json::Value::Object(video)), frames @ serde_json::Value::Object(_)) =
        (accuracy.get_mut("video"), heldout_record(image_dir, "clip_frames"))
    {
        video.insert("frames".into(), frames);
    }
}

/// The probe in `dir/name` if its weights are there (recording its held-out accuracy
/// under the name without its `probe-` prefix), else `None`.
pub(crate) fn load_optional<M>(
    dir: &Path,
    name: &str,
    device: &Device,
    accuracy: &mut serde_json::Map<String, serde_json::Value>,
    load: impl FnOnce(&Path, &Device) -> Result<M>,
) -> Result<Option<M>> {
    let probe_dir = dir.join(name);
    if !probe_dir.join("model.safetensors").exists() {
        return Ok(None);
    }
    accuracy.insert(name.trim_start_matches("probe-").into(), heldout_accuracy(&probe_dir));
    load(&probe_dir, device).map(Some)
}

/// The probe in `probe_dir`, trained by `mmgen train {job}`: its config, then its
/// weights, built by `build` (an error names the job to retrain when they do not fit).
pub(crate) fn load_probe<C: serde::de::DeserializeOwned, M>(
    probe_dir: &Path,
    job: &str,
    device: &Device,
    build: impl FnOnce(&C, candle_nn::VarBuilder<'static>) -> Result<M>,
) -> Result<M> {
    // A folder of another probe (its metrics.json says which) is named as such rather
    // than failing on its config or weights.
    let kind = job.trim_start_matches("probe-");
    if let Some(other) = recorded_kind(probe_dir).filter(|other| other != kind) {
        return Err(EvalError::file(
            probe_dir,
            format!("holds the {other} probe (its metrics.json), not the {kind} probe"),
        ));
    }
    let config: C = load_config(probe_dir)?;
    build(&config, load_weights(probe_dir, device)?).map_err(|e| {
        EvalError::file(
            probe_dir,
            format!("its weights do not fit this version's {job} ({e}); retrain it with `mmgen train {job}`"),
        )
    })
}

/// Which probe the training run that wrote `dir` trained (`probe` in its metrics.json),
/// if it says.
pub(crate) fn recorded_kind(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("metrics.json")).ok()?;
    let metrics: serde_json::Value = serde_json::from_str(&text).ok()?;
    metrics["probe"].as_str().map(str::to_owned)
}

/// The video probe (per-object motion) in `dir`.
pub fn load_video_probe(dir: &Path, device: &Device) -> Result<VideoProbe> {
    load_probe(dir, "probe-video", device, |c: &VideoProbeConfig, vb| {
        VideoProbe::new(c, vb)
    })
}

/// The audio probe (instrument, mood, tempo) in `dir`.
pub fn load_audio_probe(dir: &Path, device: &Device) -> Result<AudioProbe> {
    load_probe(dir, "probe-audio", device, |c: &AudioProbeConfig, vb| {
        AudioProbe::new(c, vb)
    })
}

impl Probes {
    /// Loads the probes from `dir`: `probe-image/` is required; `probe-shape/` (the image
    /// reading's second stage), `probe-video/` and `probe-audio/` are loaded when present.
    pub fn load(dir: &Path, device: &Device) -> Result<Probes> {
        let mut accuracy = serde_json::Map::new();
        let image_dir = dir.join("probe-image");
        let shape_dir = dir.join("probe-shape");
        let with_shapes = shape_dir.join("model.safetensors").exists();
        let image = load_image_probe(&image_dir, with_shapes.then_some(shape_dir.as_path()), device)?;
        accuracy.insert("image".into(), heldout_accuracy(&image_dir));
        if with_shapes {
            accuracy.insert("shape".into(), heldout_accuracy(&shape_dir));
        }
        let video = load_optional(dir, "probe-video", device, &mut accuracy, load_video_probe)?;
        add_frame_reading(&mut accuracy, &image_dir);
        let audio = load_optional(dir, "probe-audio", device, &mut accuracy, load_audio_probe)?;
        Ok(Probes {
            image,
            video,
            audio,
            accuracy,
            device: device.clone(),
        })
    }

    /// From already built probes (tests).
    pub fn new(image: ImageProbe, video: Option<VideoProbe>, audio: Option<AudioProbe>, device: &Device) -> Probes {
        Probes {
            image,
            video,
            audio,
            accuracy: serde_json::Map::new(),
            device: device.clone(),
        }
    }

    pub(crate) fn read_images(&self, images: &[RgbImage]) -> Result<Vec<ImageReading>> {
        self.read_images_above(images, self.image.config().detection_threshold)
    }

    /// Reads `images`, keeping detections with a score of at least `threshold`.
    pub(crate) fn read_images_above(&self, images: &[RgbImage], threshold: f64) -> Result<Vec<ImageReading>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(64) {
            out.extend(
                self.image
                    .read_above(&images_to_tensor(chunk, &self.device)?, threshold)?,
            );
        }
        Ok(out)
    }
}
