//! `mmgen eval`: a prompt set, a generator, the probes, and a per-category report.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use image::RgbImage;
use mmgen_world::caption::parse::{parse_prompt, AskedObject, Request};
use mmgen_world::rng::mix64;
use mmgen_world::{caption_for_seed, CaptionOptions, Lang, Medium, SpecSampler, Split};
use serde::Serialize;

use crate::align::{audio_checks, find_copies, image_checks, Category, Track, TRACK_THRESHOLD};
use crate::error::{EvalError, Result};
use crate::fd::frechet_distance;
use crate::fit::{load_config, load_weights};
use crate::generator::{Generated, GenerationSettings, Generator, Oracle};
use crate::probe::audio::{AudioProbe, AudioProbeConfig};
use crate::probe::image::{images_to_tensor, Detection, ImageProbe, ImageProbeConfig, ImageReading};
use crate::probe::shape::{ShapeProbe, ShapeProbeConfig};
use crate::probe::video::{
    middle_frame, motion_features, track_frame_indices, TrackPoint, VideoProbe, VideoProbeConfig,
};

/// Which modality is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Still images: the six GenEval categories.
    Image,
    /// Clips: motion and temporal consistency.
    Video,
    /// Sound: instrument, mood, tempo.
    Audio,
}

impl Task {
    fn medium(self) -> Medium {
        match self {
            Task::Image => Medium::Image,
            Task::Video => Medium::Video,
            Task::Audio => Medium::Audio,
        }
    }

    fn categories(self) -> &'static [Category] {
        match self {
            Task::Image => Category::IMAGE,
            Task::Video => Category::VIDEO,
            Task::Audio => Category::AUDIO,
        }
    }
}

/// Where the prompts come from.
#[derive(Clone, Debug)]
pub enum Prompts {
    /// Full captions of `n` specs of a split, in one language.
    World {
        /// How many.
        n: usize,
        /// Which side of the split.
        split: Split,
        /// Caption language.
        lang: Lang,
    },
    /// Free prompts, one per entry.
    Given(Vec<String>),
}

impl Prompts {
    /// The prompt texts for `medium`, deterministic from `seed`. Audio prompts come
    /// from scenes with music.
    pub fn texts(&self, medium: Medium, seed: u64) -> Vec<String> {
        match self {
            Prompts::World { n, split, lang } => {
                let sampler = SpecSampler {
                    p_music: if medium == Medium::Audio { 1.0 } else { 0.7 },
                    ..Default::default()
                };
                (0..*n as u64)
                    .map(|i| {
                        let s = mix64(seed ^ mix64(i));
                        caption_for_seed(&sampler.sample(*split, s), *lang, CaptionOptions::full(medium), s)
                    })
                    .collect()
            }
            Prompts::Given(list) => list.clone(),
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CategoryScore {
    /// Prompts that passed.
    pub passed: usize,
    /// Prompts that asked for this category.
    pub total: usize,
    /// passed / total.
    pub score: f64,
    /// Whether it counts towards the overall score.
    pub in_overall: bool,
}

/// The result of one evaluation; its JSON form is documented in the README.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Task evaluated.
    pub task: Task,
    /// Generator name.
    pub source: String,
    /// Prompts evaluated.
    pub prompts: usize,
    /// Seed of prompts and generation.
    pub seed: u64,
    /// Per-category scores, by category name.
    pub categories: BTreeMap<&'static str, CategoryScore>,
    /// Mean score of the overall categories that had prompts.
    pub overall: f64,
    /// Frechet distance between probe features of the outputs and of fresh renders of
    /// the same prompts (world-FD); lower is closer.
    pub world_fd: f64,
    /// The probes' own per-attribute accuracy on held-out renders (their metrics.json).
    pub probe_accuracy: serde_json::Value,
}

/// One prompt's result: which categories it passed, and what the probes read, so that
/// a failure can be looked into (which object, which frames). [`evaluate`] hands each
/// to its progress callback as it is scored (`mmgen eval --per-prompt FILE` writes
/// them); its JSON form is documented in the README.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PromptResult {
    /// The prompt.
    pub prompt: String,
    /// The seed it was generated with.
    pub seed: u64,
    /// Pass or fail per category it asks for.
    pub checks: BTreeMap<&'static str, bool>,
    /// What was read. Image: `objects` (shape, colour, size, centre), `background`,
    /// `style`. Video: per asked object, `frames` (one character per frame: `#` seen
    /// with its shape and colour, `.` not seen so, `-` not judged: too small or
    /// covered; null if it was never found) and its `motion` as read (null if not
    /// asked, or if an asked object was never found: motions are read together), and
    /// the middle frame's `style`. Audio: `instrument`, `mood`,
    /// `tempo_bpm`.
    pub reading: serde_json::Value,
}

/// The probes an evaluation reads with.
pub struct Probes {
    image: ImageProbe,
    video: Option<VideoProbe>,
    audio: Option<AudioProbe>,
    accuracy: serde_json::Map<String, serde_json::Value>,
    device: Device,
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

fn heldout_accuracy(dir: &Path) -> serde_json::Value {
    heldout_record(dir, "accuracy")
}

/// The held-out side of the record `key` in the metrics.json of the probe in `dir`
/// (null if there is none).
fn heldout_record(dir: &Path, key: &str) -> serde_json::Value {
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
fn add_frame_reading(accuracy: &mut serde_json::Map<String, serde_json::Value>, image_dir: &Path) {
    if let (Some(serde_json::Value::Object(video)), frames @ serde_json::Value::Object(_)) =
        (accuracy.get_mut("video"), heldout_record(image_dir, "clip_frames"))
    {
        video.insert("frames".into(), frames);
    }
}

/// The probe in `dir/name` if its weights are there (recording its held-out accuracy
/// under the name without its `probe-` prefix), else `None`.
fn load_optional<M>(
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
fn load_probe<C: serde::de::DeserializeOwned, M>(
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
fn recorded_kind(dir: &Path) -> Option<String> {
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

    fn read_images(&self, images: &[RgbImage]) -> Result<Vec<ImageReading>> {
        self.read_images_above(images, self.image.config().detection_threshold)
    }

    /// Reads `images`, keeping detections with a score of at least `threshold`.
    fn read_images_above(&self, images: &[RgbImage], threshold: f64) -> Result<Vec<ImageReading>> {
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

/// Frames and seconds of the generated media.
#[derive(Clone, Copy, Debug)]
pub struct MediaOptions {
    /// Frames per clip (video task).
    pub frames: u32,
    /// Seconds per clip (audio task).
    pub seconds: f32,
}

impl Default for MediaOptions {
    fn default() -> Self {
        MediaOptions {
            frames: 24,
            seconds: 4.0,
        }
    }
}

fn mean_features(readings: &[ImageReading]) -> Vec<f32> {
    let n = readings.len().max(1) as f32;
    let width = readings.first().map(|r| r.features.len()).unwrap_or(0);
    (0..width)
        .map(|k| readings.iter().map(|r| r.features[k]).sum::<f32>() / n)
        .collect()
}

/// Scores of one prompt, what was read (see [`PromptResult::reading`]), and the
/// features of its output and of a fresh render.
struct Scored {
    checks: Vec<(Category, bool)>,
    reading: serde_json::Value,
    generated: Vec<f32>,
    real: Vec<f32>,
}

/// An image reading as [`PromptResult::reading`] shows it.
fn image_reading_json(reading: &ImageReading) -> serde_json::Value {
    let objects: Vec<serde_json::Value> = reading
        .objects
        .iter()
        .map(|d| {
            serde_json::json!({
                "shape": d.shape,
                "colour": d.colour,
                "size": d.size,
                "cx": (d.cx * 1000.0).round() / 1000.0,
                "cy": (d.cy * 1000.0).round() / 1000.0,
            })
        })
        .collect();
    serde_json::json!({
        "objects": objects,
        "background": reading.background,
        "style": reading.style,
    })
}

/// A track's frames as [`PromptResult::reading`] shows them.
fn track_pattern(track: &Track) -> String {
    track
        .seen
        .iter()
        .zip(&track.judged)
        .map(|(&seen, &judged)| match (judged, seen) {
            (false, _) => '-',
            (true, true) => '#',
            (true, false) => '.',
        })
        .collect()
}

/// What was read where a followed object was judged but not seen (the `.` frames of
/// its [`track_pattern`]): per such frame, the detection nearest its estimated centre
/// within its estimated radius, with its reading and the probabilities it gave the
/// asked shape and colour, or only the frame where nothing was detected there.
/// `copy` is the copy's index for a counted object.
fn misreads(
    track: &Track,
    readings: &[ImageReading],
    asked: &AskedObject,
    copy: Option<usize>,
) -> Vec<serde_json::Value> {
    let round = |p: f32| (f64::from(p) * 100.0).round() / 100.0;
    let estimated = track.estimated();
    (0..track.seen.len())
        .filter(|&f| track.judged[f] && !track.seen[f])
        .map(|f| {
            let at = estimated[f];
            let mut entry = serde_json::json!({ "frame": f });
            if let Some(k) = copy {
                entry["copy"] = k.into();
            }
            let nearest = readings[f]
                .objects
                .iter()
                .map(|d| (d, (d.cx - at.cx).hypot(d.cy - at.cy)))
                .filter(|&(_, distance)| distance <= at.radius)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((d, _)) = nearest {
                entry["shape"] = serde_json::json!(d.shape);
                entry["colour"] = serde_json::json!(d.colour);
                entry["p_shape"] = round(d.shape_probabilities[asked.shape.index()]).into();
                if let Some(colour) = asked.colour {
                    entry["p_colour"] = round(d.colour_probabilities[colour.index()]).into();
                }
            }
            entry
        })
        .collect()
}

fn score_prompt(
    probes: &Probes,
    task: Task,
    request: &Request,
    out: &Generated,
    real: &Generated,
    name: &str,
    text: &str,
) -> Result<Scored> {
    let missing = |what: &str| EvalError::Invalid(format!("{name} returned no {what} for {text:?}"));
    match task {
        Task::Image => {
            let image = out.image.as_ref().ok_or_else(|| missing("image"))?;
            let real_image = real.image.as_ref().ok_or_else(|| missing("image"))?;
            let readings = probes.read_images(&[image.clone(), real_image.clone()])?;
            Ok(Scored {
                checks: image_checks(request, &readings[0]),
                reading: image_reading_json(&readings[0]),
                generated: readings[0].features.clone(),
                real: readings[1].features.clone(),
            })
        }
        Task::Video => {
            let video_probe = probes.video.as_ref().ok_or_else(|| EvalError::Invalid("the video task needs the video probe (models/probe-video); train it with `mmgen train probe-video`".into()))?;
            let frames = out
                .video
                .as_ref()
                .filter(|f| !f.is_empty())
                .ok_or_else(|| missing("video"))?;
            // Weak detections are read too, to continue tracks; objects are found only
            // among those at the calibrated threshold.
            let threshold = probes.image.config().detection_threshold;
            let readings = probes.read_images_above(frames, TRACK_THRESHOLD.min(threshold))?;
            let mid = middle_frame(frames.len());
            let found: Vec<Vec<Detection>> = readings
                .iter()
                .map(|r| {
                    r.objects
                        .iter()
                        .filter(|d| d.score as f64 >= threshold)
                        .cloned()
                        .collect()
                })
                .collect();
            // Each copy of each asked object is followed (once, for both categories)
            // from the frame where its copies are found most surely; a copy found in
            // no frame has no track.
            let mut copies: Vec<Vec<Option<Track>>> = request
                .objects
                .iter()
                .map(|o| {
                    let mut tracks: Vec<Option<Track>> = find_copies(o, &found)
                        .map(|(i, starts)| Track::follow_all(&starts, &readings, i).into_iter().map(Some).collect())
                        .unwrap_or_default();
                    tracks.resize(o.count.max(1), None);
                    tracks
                })
                .collect();
            // Frames where a copy is hidden behind another asked object (or another copy
            // of its own), or too small to read, are not counted for its temporal
            // consistency.
            let followed: Vec<Track> = copies.iter().flatten().flatten().cloned().collect();
            for (k, track) in copies.iter_mut().flatten().flatten().enumerate() {
                let others: Vec<&Track> = followed
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, t)| t)
                    .collect();
                track.judge_visibility(&others);
            }
            // Motion is read from the track of each object's surest copy.
            let tracks: Vec<Option<&Track>> = copies.iter().map(|c| c[0].as_ref()).collect();
            let mut checks = Vec::new();
            let mut motions_read = vec![None; request.objects.len()];
            let asked_motion: Vec<(usize, &AskedObject, Option<&Track>)> = request
                .objects
                .iter()
                .zip(&tracks)
                .enumerate()
                .filter(|(_, (o, _))| o.motion.is_some())
                .map(|(i, (o, &t))| (i, o, t))
                .collect();
            if !asked_motion.is_empty() {
                let motion_tracks: Option<Vec<&Track>> = asked_motion.iter().map(|&(_, _, t)| t).collect();
                let ok = match motion_tracks {
                    Some(motion_tracks) => {
                        let features = motion_tracks
                            .iter()
                            .map(|track| {
                                let places = track.sighted_or_estimated();
                                let points: Vec<TrackPoint> =
                                    track_frame_indices(frames.len()).iter().map(|&i| places[i]).collect();
                                motion_features(frames, &points, places[mid])
                            })
                            .collect::<Result<Vec<_>>>()?;
                        let motions = video_probe.read(&features, &probes.device)?;
                        for ((i, _, _), &m) in asked_motion.iter().zip(&motions) {
                            motions_read[*i] = Some(m);
                        }
                        asked_motion
                            .iter()
                            .zip(motions)
                            .all(|((_, o, _), m)| o.motion == Some(m))
                    }
                    None => false,
                };
                checks.push((Category::Motion, ok));
            }
            if !request.objects.is_empty() {
                let ok = copies
                    .iter()
                    .flatten()
                    .all(|t| t.as_ref().is_some_and(Track::consistent));
                checks.push((Category::TemporalConsistency, ok));
            }
            let objects: Vec<serde_json::Value> = request
                .objects
                .iter()
                .zip(&copies)
                .zip(&motions_read)
                .map(|((o, c), m)| {
                    let mut object = serde_json::json!({
                        "asked": o,
                        "frames": c[0].as_ref().map(track_pattern),
                        "motion": m,
                    });
                    if c.len() > 1 {
                        object["copies"] = c.iter().map(|t| t.as_ref().map(track_pattern)).collect();
                    }
                    let misread: Vec<serde_json::Value> = c
                        .iter()
                        .enumerate()
                        .filter_map(|(k, t)| t.as_ref().map(|t| (k, t)))
                        .flat_map(|(k, t)| misreads(t, &readings, o, (c.len() > 1).then_some(k)))
                        .collect();
                    if !misread.is_empty() {
                        object["misread"] = misread.into();
                    }
                    object
                })
                .collect();
            let reading = serde_json::json!({ "objects": objects, "style": readings[mid].style });
            let real_frames = real.video.as_ref().ok_or_else(|| missing("video"))?;
            let real_readings = probes.read_images(real_frames)?;
            Ok(Scored {
                checks,
                reading,
                generated: mean_features(&readings),
                real: mean_features(&real_readings),
            })
        }
        Task::Audio => {
            let audio_probe = probes.audio.as_ref().ok_or_else(|| EvalError::Invalid("the audio task needs the audio probe (models/probe-audio); train it with `mmgen train probe-audio`".into()))?;
            let clip = out.audio.as_ref().ok_or_else(|| missing("audio"))?;
            let real_clip = real.audio.as_ref().ok_or_else(|| missing("audio"))?;
            let readings = audio_probe.read(&[clip.clone(), real_clip.clone()], &probes.device)?;
            let heard = &readings[0];
            Ok(Scored {
                checks: audio_checks(request, heard),
                reading: serde_json::json!({
                    "instrument": heard.instrument,
                    "mood": heard.mood,
                    "tempo_bpm": heard.tempo_bpm.map(|t| (t * 10.0).round() / 10.0),
                }),
                generated: readings[0].features.clone(),
                real: readings[1].features.clone(),
            })
        }
    }
}

/// Evaluates `generator` on `prompts`, calling `progress(done, total, result)` with each
/// prompt's result as it goes.
pub fn evaluate(
    generator: &mut dyn Generator,
    probes: &Probes,
    task: Task,
    prompts: &Prompts,
    seed: u64,
    media: MediaOptions,
    mut progress: impl FnMut(usize, usize, &PromptResult),
) -> Result<EvalReport> {
    let texts = prompts.texts(task.medium(), seed);
    if texts.is_empty() {
        return Err(EvalError::Invalid("no prompts to evaluate".into()));
    }
    let settings = GenerationSettings {
        size: probes.image.config().image_size as u32,
        frames: if task == Task::Video { media.frames } else { 0 },
        seconds: if task == Task::Audio { media.seconds } else { 0.0 },
        ..GenerationSettings::image()
    };
    let mut rows: BTreeMap<Category, (usize, usize)> = BTreeMap::new();
    let (mut generated_features, mut real_features) = (Vec::new(), Vec::new());
    for (i, text) in texts.iter().enumerate() {
        let request = parse_prompt(text).map_err(|e| EvalError::Prompt {
            prompt: text.clone(),
            reason: e.to_string(),
        })?;
        let s = mix64(seed ^ 0x6E4E ^ i as u64);
        let out = generator.generate(text, s, &settings)?;
        // A fresh render of the same request: the real side of the world-FD.
        let real = Oracle.generate(text, mix64(s), &settings)?;
        let scored = score_prompt(probes, task, &request, &out, &real, &generator.name(), text)?;
        for &(category, ok) in &scored.checks {
            let row = rows.entry(category).or_default();
            row.0 += ok as usize;
            row.1 += 1;
        }
        let result = PromptResult {
            prompt: text.clone(),
            seed: s,
            checks: scored.checks.iter().map(|&(c, ok)| (c.name(), ok)).collect(),
            reading: scored.reading,
        };
        generated_features.push(scored.generated);
        real_features.push(scored.real);
        progress(i + 1, texts.len(), &result);
    }
    let categories: BTreeMap<&'static str, CategoryScore> = task
        .categories()
        .iter()
        .filter_map(|c| {
            rows.get(c).map(|&(passed, total)| {
                (
                    c.name(),
                    CategoryScore {
                        passed,
                        total,
                        score: passed as f64 / total as f64,
                        in_overall: c.in_overall(),
                    },
                )
            })
        })
        .collect();
    let overall_rows: Vec<f64> = categories.values().filter(|r| r.in_overall).map(|r| r.score).collect();
    // No prompt asked for a category of this task (e.g. a video prompt without
    // objects): there is no score, rather than a score of 0 (JSON null).
    let overall = if overall_rows.is_empty() {
        f64::NAN
    } else {
        overall_rows.iter().sum::<f64>() / overall_rows.len() as f64
    };
    let world_fd = if texts.len() >= 2 {
        frechet_distance(&generated_features, &real_features)?
    } else {
        f64::NAN
    };
    let probe_accuracy = match task {
        Task::Image => probes.accuracy.get("image"),
        Task::Video => probes.accuracy.get("video"),
        Task::Audio => probes.accuracy.get("audio"),
    };
    Ok(EvalReport {
        task,
        source: generator.name(),
        prompts: texts.len(),
        seed,
        categories,
        overall,
        world_fd,
        probe_accuracy: probe_accuracy.cloned().unwrap_or(serde_json::Value::Null),
    })
}

impl EvalReport {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:?} alignment of `{}` on {} prompts (seed {})\n",
            self.task, self.source, self.prompts, self.seed
        )
        .to_lowercase();
        out.push_str(&format!(
            "{:<22} {:>8} {:>7} {:>7}\n",
            "category", "score", "passed", "total"
        ));
        for (name, row) in &self.categories {
            let mark = if row.in_overall { "" } else { "  (not in overall)" };
            out.push_str(&format!(
                "{name:<22} {:>8.3} {:>7} {:>7}{mark}\n",
                row.score, row.passed, row.total
            ));
        }
        if self.overall.is_nan() {
            out.push_str(&format!(
                "{:<22} {:>8}  (no prompt asks for a category of this task)\n",
                "overall", "n/a"
            ));
        } else {
            out.push_str(&format!("{:<22} {:>8.3}\n", "overall", self.overall));
        }
        out.push_str(&format!("{:<22} {:>8.3}\n", "world-FD", self.world_fd));
        let readings = probe_attributes(&self.probe_accuracy);
        if !readings.is_empty() {
            out.push_str("probe accuracy on held-out renders (metrics.json):\n");
            for (name, accuracy) in readings {
                out.push_str(&format!("  {name:<20} {accuracy:>8.3}\n"));
            }
        }
        out
    }
}

/// The attributes of a `probe_accuracy` record with their accuracy, one nested record
/// deep (`frames.shape`), without the diagnostic breakdowns (`shape | pixel_art`).
fn probe_attributes(record: &serde_json::Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (name, value) in attribute_entries(record) {
        match value["accuracy"].as_f64() {
            Some(accuracy) => out.push((name.clone(), accuracy)),
            None => out.extend(
                attribute_entries(value)
                    .filter_map(|(inner, v)| Some((format!("{name}.{inner}"), v["accuracy"].as_f64()?))),
            ),
        }
    }
    out
}

/// The entries of a JSON object (none for anything else), without the diagnostic
/// breakdowns.
fn attribute_entries(value: &serde_json::Value) -> impl Iterator<Item = (&String, &serde_json::Value)> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !name.contains(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::fixtures::{det, reading, unsure};
    use crate::generator::RandomScene;
    use crate::probe::audio::{AudioProbe, AudioProbeConfig};
    use crate::probe::video::{VideoProbe, VideoProbeConfig};
    use candle_core::DType;
    use candle_nn::VarBuilder;
    use mmgen_world::{Colour, Shape};

    fn tiny_probes() -> Probes {
        let dev = Device::Cpu;
        let vb = || VarBuilder::zeros(DType::F32, &dev);
        let image = ImageProbe::new(
            &ImageProbeConfig {
                stem: vec![],
                ..ImageProbeConfig::tiny()
            },
            vb(),
        )
        .unwrap();
        let video = VideoProbe::new(&VideoProbeConfig::tiny(), vb()).unwrap();
        let audio = AudioProbe::new(&AudioProbeConfig::tiny(), vb()).unwrap();
        Probes::new(image, Some(video), Some(audio), &dev)
    }

    #[test]
    fn the_table_lists_the_probes_accuracy_without_the_breakdowns() {
        let tally = |a: f64| serde_json::json!({"accuracy": a, "correct": 1, "total": 1});
        let record = serde_json::json!({
            "motion": tally(0.997),
            "frames": {"shape": tally(0.994), "shape | pixel_art": tally(0.944), "deeper": {"x": tally(0.5)}},
        });
        assert_eq!(
            probe_attributes(&record),
            vec![("frames.shape".to_string(), 0.994), ("motion".to_string(), 0.997)]
        );
        assert!(probe_attributes(&serde_json::Value::Null).is_empty());
    }

    #[test]
    fn the_video_accuracy_carries_the_image_readings_on_clip_frames() {
        let dir = std::env::temp_dir().join(format!("mmgen-frame-reading-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let motion = serde_json::json!({"motion": {"accuracy": 0.99, "correct": 99, "total": 100}});
        let with_video = || {
            let mut accuracy = serde_json::Map::new();
            accuracy.insert("video".into(), motion.clone());
            accuracy
        };
        // No clip-frame record (a folder calibrated with --clips 0, or before it existed).
        std::fs::write(dir.join("metrics.json"), r#"{"accuracy": {"heldout": {}}}"#).unwrap();
        let mut accuracy = with_video();
        add_frame_reading(&mut accuracy, &dir);
        assert_eq!(accuracy["video"], motion);
        // With one: next to the motion probe's own.
        let shape = serde_json::json!({"accuracy": 0.98, "correct": 98, "total": 100});
        let record = serde_json::json!({"clip_frames": {"train": {}, "heldout": {"shape": shape}}});
        std::fs::write(dir.join("metrics.json"), record.to_string()).unwrap();
        let mut accuracy = with_video();
        add_frame_reading(&mut accuracy, &dir);
        assert_eq!(accuracy["video"]["motion"], motion["motion"]);
        assert_eq!(accuracy["video"]["frames"]["shape"], shape);
        // Without a video probe there is nothing to put it next to.
        let mut accuracy = serde_json::Map::new();
        add_frame_reading(&mut accuracy, &dir);
        assert!(accuracy.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_task_runs_and_reports_its_categories() {
        let probes = tiny_probes();
        let prompts = Prompts::World {
            n: 6,
            split: Split::Heldout,
            lang: Lang::Zh,
        };
        let media = MediaOptions {
            frames: 8,
            seconds: 1.0,
        };
        let mut counted_objects = 0;
        for task in [Task::Image, Task::Video, Task::Audio] {
            let mut per_prompt = Vec::new();
            let report = evaluate(&mut Oracle, &probes, task, &prompts, 1, media, |done, _, result| {
                per_prompt.push(result.clone());
                assert_eq!(done, per_prompt.len());
            })
            .unwrap();
            assert_eq!((report.prompts, per_prompt.len()), (6, 6));
            assert!(!report.categories.is_empty(), "{task:?}");
            for name in report.categories.keys() {
                assert!(task.categories().iter().any(|c| c.name() == *name));
            }
            assert!((0.0..=1.0).contains(&report.overall));
            let json = serde_json::to_value(&report).unwrap();
            for key in [
                "task",
                "source",
                "prompts",
                "seed",
                "categories",
                "overall",
                "world_fd",
                "probe_accuracy",
            ] {
                assert!(json.get(key).is_some(), "{key}");
            }
            // Each prompt's result adds up to the report.
            for (name, row) in &report.categories {
                let results: Vec<bool> = per_prompt.iter().filter_map(|r| r.checks.get(name).copied()).collect();
                assert_eq!(
                    (results.iter().filter(|&&ok| ok).count(), results.len()),
                    (row.passed, row.total),
                    "{name}"
                );
            }
            for result in &per_prompt {
                let keys: &[&str] = match task {
                    Task::Image => &["objects", "background", "style"],
                    Task::Video => &["objects", "style"],
                    Task::Audio => &["instrument", "mood", "tempo_bpm"],
                };
                for key in keys {
                    assert!(result.reading.get(key).is_some(), "{task:?} reading lacks {key}");
                }
                if task == Task::Video {
                    // One entry per asked object; a found one has a character per frame,
                    // and a counted one lists every copy.
                    let objects = result.reading["objects"].as_array().unwrap();
                    let asked = parse_prompt(&result.prompt).unwrap().objects;
                    assert_eq!(objects.len(), asked.len());
                    for (o, a) in objects.iter().zip(&asked) {
                        let copies = o.get("copies").map(|c| c.as_array().unwrap().clone());
                        assert_eq!(copies.as_ref().map(Vec::len), (a.count > 1).then_some(a.count));
                        counted_objects += (a.count > 1) as usize;
                        for frames in std::iter::once(&o["frames"]).chain(copies.iter().flatten()) {
                            if let Some(frames) = frames.as_str() {
                                assert!(
                                    frames.len() == 8 && frames.chars().all(|c| "#.-".contains(c)),
                                    "{frames}"
                                );
                            }
                        }
                        // `misread` lists exactly the `.` frames of every copy.
                        let patterns: Vec<&serde_json::Value> = match &copies {
                            Some(c) => c.iter().collect(),
                            None => vec![&o["frames"]],
                        };
                        let mut dots: Vec<(u64, u64)> = Vec::new();
                        for (k, pattern) in patterns.iter().enumerate() {
                            for (f, c) in pattern.as_str().unwrap_or("").chars().enumerate() {
                                if c == '.' {
                                    dots.push((k as u64, f as u64));
                                }
                            }
                        }
                        let listed: Vec<(u64, u64)> = o
                            .get("misread")
                            .map(|m| m.as_array().unwrap().clone())
                            .unwrap_or_default()
                            .iter()
                            .map(|m| (m["copy"].as_u64().unwrap_or(0), m["frame"].as_u64().unwrap()))
                            .collect();
                        assert_eq!(listed, dots, "{o}");
                    }
                }
            }
        }
        assert!(counted_objects > 0, "the prompts ask for a counted object in a clip");
        // The same run twice gives the same report.
        let a = evaluate(&mut RandomScene, &probes, Task::Image, &prompts, 3, media, |_, _, _| ()).unwrap();
        let b = evaluate(&mut RandomScene, &probes, Task::Image, &prompts, 3, media, |_, _, _| ()).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }

    #[test]
    fn a_track_shows_its_frames_seen_missed_and_not_judged() {
        let point = TrackPoint {
            cx: 0.5,
            cy: 0.5,
            radius: 0.1,
        };
        let track = Track {
            points: vec![point; 4],
            seen: vec![true, false, true, false],
            judged: vec![true, true, false, false],
        };
        assert_eq!(track_pattern(&track), "#.--");
    }

    #[test]
    fn misread_frames_say_what_was_read_at_the_object() {
        // Seen in frame 0; read as a hexagon at its place in frame 1; nothing within its
        // radius in frame 2 (a star further off); frame 3 not judged.
        let readings = vec![
            reading(vec![det(Shape::Star, Colour::Red, 0.5, 0.5)]),
            reading(vec![
                det(Shape::Star, Colour::Red, 0.9, 0.5),
                unsure(Shape::Hexagon, Shape::Star, 0.1, 0.53, 0.5, Colour::Red),
            ]),
            reading(vec![det(Shape::Star, Colour::Red, 0.8, 0.5)]),
            reading(vec![]),
        ];
        let track = Track {
            points: vec![
                TrackPoint {
                    cx: 0.5,
                    cy: 0.5,
                    radius: 0.1,
                };
                4
            ],
            seen: vec![true, false, false, false],
            judged: vec![true, true, true, false],
        };
        let asked = parse_prompt("a red star").unwrap().objects.remove(0);
        assert_eq!(
            misreads(&track, &readings, &asked, None),
            vec![
                serde_json::json!({"frame": 1, "shape": "hexagon", "colour": "red", "p_shape": 0.1, "p_colour": 1.0}),
                serde_json::json!({"frame": 2}),
            ]
        );
        let of_copy = misreads(&track, &readings, &asked, Some(2));
        assert!(of_copy.iter().all(|m| m["copy"] == 2), "{of_copy:?}");
        // Without an asked colour there is no colour probability to give.
        let any_colour = parse_prompt("a star").unwrap().objects.remove(0);
        assert!(misreads(&track, &readings, &any_colour, None)[0]
            .get("p_colour")
            .is_none());
    }

    #[test]
    fn unreadable_prompts_fail_clearly() {
        let probes = tiny_probes();
        let prompts = Prompts::Given(vec!["a red star".into(), "lorem ipsum".into()]);
        let err = evaluate(
            &mut Oracle,
            &probes,
            Task::Image,
            &prompts,
            1,
            MediaOptions::default(),
            |_, _, _| (),
        )
        .unwrap_err();
        assert!(err.to_string().contains("lorem ipsum"), "{err}");
    }
}
