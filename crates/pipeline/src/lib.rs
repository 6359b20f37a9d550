//! # mmgen-pipeline
//!
//! One request in, a package of files out (the design's `generate_multimodal`):
//!
//! 1. **plan**: which modalities the prompt asks for and its language ([`plan`]);
//! 2. **cache**: a request seen before returns its files at once ([`cache`]);
//! 3. **generate** each modality with its shipped model;
//! 4. **compose**: write the media files, `caption.txt` (what was made, in the
//!    prompt's language) and `meta.json` (prompt, seed, models, settings, timings).
//!
//! Each modality has its model: the grounded model (a planner's scene plan drawn by
//! the layout-grounded renderer, `meta.json` keeps the plan) or the end-to-end hybrid
//! text-to-image model for a still image; for a clip (whose middle frame is then the
//! key image) the grounded model posed over time by its trajectory model, or the
//! end-to-end text-to-video model; for sound (as long as the clip when there is
//! one, and muxed into the MP4) the grounded music planner, note model and
//! synthesiser (`meta.json` keeps the plan and the score, `score.mid` the MIDI), or
//! the end-to-end text-to-audio model. A plan that needs a model that is not loaded fails with a sentence
//! naming what is missing and how to ask for less.

#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod output;
pub mod plan;
mod sound;
mod video;

use sound::AudioModel;
use video::Drawn;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use image::RgbImage;
use mmgen_models::grounded::planner::Planner;
use mmgen_models::grounded::{ClipPlan, ClipSettings, GroundedRenderer, PlanVocab, ScenePlan, TrajectoryNet};
use mmgen_models::hybrid_audio::AudioSettings;
use mmgen_models::hybrid_image::{HybridImage, ImageRequest, ImageSettings};
use mmgen_models::hybrid_video::{HybridVideo, VideoRequest, VideoSettings};
use mmgen_models::sampling::SamplingSettings;
use serde_json::json;

pub use cache::Cache;
pub use error::{PipelineError, Result};
pub use output::OutputPolicy;
pub use plan::{Lang, Modality, Plan, MODALITY_NAMES};

/// Version of the package format and of what generation makes; part of every cache
/// key, so bump it when the same request would now make other bytes.
const PACKAGE_FORMAT: &str = "mmgen-package-6";

/// The cache entry that holds the grounded sound's plan and score: it goes into
/// `meta.json`, not onto disk.
const SOUND_META: &str = ".sound.json";

/// One request.
#[derive(Clone, Debug)]
pub struct Request {
    /// What to make, in English or Chinese.
    pub prompt: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// The modalities to make; None reads them from the prompt ([`Plan::from_prompt`]).
    pub modalities: Option<Vec<Modality>>,
    /// How to make the image; its steps, guidance, sampler and negative prompt also
    /// drive the video and audio models.
    pub image: ImageSettings,
    /// Frames of the video.
    pub frames: usize,
    /// Seconds of audio when there is no video (with a video, the audio lasts as long
    /// as the clip).
    pub seconds: f64,
    /// Text + image -> video: the clip's first frame.
    pub first_frame: Option<RgbImage>,
    /// How the grounded renderer draws a still (when the pipeline has it).
    pub grounded: ImageSettings,
    /// A scene plan to draw instead of the planner's (layout control; grounded only).
    pub scene_plan: Option<ScenePlan>,
}

impl Request {
    /// A request with the default settings (50 steps, 24 frames, 4 s of audio).
    pub fn new(prompt: &str, seed: u64) -> Request {
        Request {
            prompt: prompt.into(),
            seed,
            modalities: None,
            image: ImageSettings::default(),
            frames: VideoSettings::default().frames,
            seconds: AudioSettings::default().seconds,
            first_frame: None,
            grounded: mmgen_models::grounded::image::default_settings(),
            scene_plan: None,
        }
    }

    /// This request with sampler options over each model's defaults (None keeps the
    /// model's own: 50 steps and guidance 4 for the end-to-end models, the grounded
    /// renderer's for it).
    pub fn with_sampling(self, steps: Option<usize>, guidance: Option<f64>, sampler: &str, negative: &str) -> Request {
        let over = |defaults: ImageSettings| ImageSettings {
            sampling: SamplingSettings {
                steps: steps.unwrap_or(defaults.sampling.steps),
                guidance: guidance.unwrap_or(defaults.sampling.guidance),
                sampler: sampler.to_string(),
                negative: negative.to_string(),
            },
            ..defaults
        };
        Request {
            image: over(ImageSettings::default()),
            grounded: over(mmgen_models::grounded::image::default_settings()),
            ..self
        }
    }

    fn video_settings(&self) -> VideoSettings {
        VideoSettings {
            sampling: self.image.sampling.clone(),
            frames: self.frames,
            first_frame: self.first_frame.clone(),
        }
    }

    /// How the grounded model draws the clip: the still's sampling, the clip's frames
    /// and first frame.
    fn clip_settings(&self) -> ClipSettings {
        ClipSettings {
            image: ImageSettings {
                init: None,
                mask: None,
                ..self.grounded.clone()
            },
            first_frame: self.first_frame.clone(),
            ..ClipSettings::new(self.frames)
        }
    }

    fn audio_settings(&self, seconds: f64) -> AudioSettings {
        AudioSettings {
            sampling: self.image.sampling.clone(),
            seconds,
            ..AudioSettings::default()
        }
    }
}

/// Whether a package came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    /// Found: no model ran.
    Hit,
    /// Made, then stored.
    Miss,
    /// No cache in use.
    Off,
}

/// What [`Pipeline::generate`] wrote.
#[derive(Clone, Debug)]
pub struct Package {
    /// What was planned.
    pub plan: Plan,
    /// File names written in the output folder.
    pub files: Vec<String>,
    /// Whether the media came from the cache.
    pub cache: CacheOutcome,
    /// Seconds from request to written package.
    pub seconds: f64,
    /// The contents of `meta.json`.
    pub meta: serde_json::Value,
    /// What went wrong without failing the request (a cache that could not be
    /// written, a broken cache entry made again); also in meta.json.
    pub warnings: Vec<String>,
}

/// Progress of a request, for a bar: `(stage, done, total)`.
pub type Progress<'a> = dyn FnMut(&str, usize, usize) + 'a;

/// A loaded model, its folder and the SHA-256 of its weights (in meta.json) and of
/// every file of the folder that loading reads (in cache keys).
struct Loaded<M> {
    model: M,
    dir: PathBuf,
    weights_sha256: String,
    folder_sha256: String,
}

/// The files of a model folder that loading reads.
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

impl<M> Loaded<M> {
    fn load(dir: &Path, load: impl FnOnce(&Path) -> mmgen_models::Result<M>) -> Result<Loaded<M>> {
        let model = load(dir)?;
        let mut folder = cache::KeyBuilder::new("model-folder");
        let mut weights_sha256 = String::new();
        for name in MODEL_FILES {
            let path = dir.join(name);
            // A renderer has no tokenizer: an absent file is a part of its own.
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == "tokenizer.json" => None,
                Err(e) => return Err(PipelineError::file(&path, e)),
            };
            let digest = bytes.as_deref().map(cache::sha256_hex).unwrap_or_default();
            if name == "model.safetensors" {
                weights_sha256 = digest.clone();
            }
            folder = folder.part(name, digest.as_bytes());
        }
        Ok(Loaded {
            model,
            dir: dir.to_path_buf(),
            weights_sha256,
            folder_sha256: folder.finish(),
        })
    }

    fn json(&self) -> serde_json::Value {
        json!({"folder": self.dir.display().to_string(), "weights_sha256": self.weights_sha256})
    }
}

/// The grounded text-to-image model: planner and renderer.
struct Grounded {
    planner: Loaded<Planner>,
    renderer: Loaded<GroundedRenderer>,
}

/// The model that draws stills.
enum ImageModel {
    /// The end-to-end model (text encoder, DiT, VAE).
    Hybrid(Box<Loaded<HybridImage>>),
    /// The grounded model (planner, renderer).
    Grounded(Box<Grounded>),
}

/// The model that makes clips.
enum VideoModel {
    /// The end-to-end text-to-video model.
    Hybrid(Box<Loaded<HybridVideo>>),
    /// The grounded model's planner and renderer, its plan posed over time by this
    /// trajectory model.
    Grounded(Box<Loaded<TrajectoryNet>>),
}

/// The loaded models and the cache.
pub struct Pipeline {
    image: ImageModel,
    video: Option<VideoModel>,
    audio: Option<AudioModel>,
    cache: Option<Cache>,
}

impl Pipeline {
    /// Loads the text-to-image model folder `image_dir` onto `device` (the only model
    /// every package may need; add the others with [`Self::with_video`] and
    /// [`Self::with_audio`]).
    pub fn load(image_dir: &Path, device: &Device) -> Result<Pipeline> {
        Ok(Pipeline {
            image: ImageModel::Hybrid(Box::new(Loaded::load(image_dir, |d| HybridImage::load(d, device))?)),
            video: None,
            audio: None,
            cache: None,
        })
    }

    /// A pipeline whose stills are drawn by the grounded model: the planner and
    /// renderer folders (add video and audio as with [`Self::load`]).
    pub fn grounded(planner: &Path, renderer: &Path, device: &Device) -> Result<Pipeline> {
        Ok(Pipeline {
            image: ImageModel::Grounded(Box::new(Grounded {
                planner: Loaded::load(planner, |d| Planner::load(d, device))?,
                renderer: Loaded::load(renderer, |d| GroundedRenderer::load(d, device))?,
            })),
            video: None,
            audio: None,
            cache: None,
        })
    }

    /// Adds the end-to-end text-to-video model folder `dir`.
    pub fn with_video(mut self, dir: &Path, device: &Device) -> Result<Pipeline> {
        self.video = Some(VideoModel::Hybrid(Box::new(Loaded::load(dir, |d| {
            HybridVideo::load(d, device)
        })?)));
        Ok(self)
    }

    /// Makes clips with the grounded model, posed over time by the trajectory model
    /// folder `dir`; the stills must be the grounded model's.
    pub fn with_grounded_video(mut self, dir: &Path, device: &Device) -> Result<Pipeline> {
        if self.grounded_model().is_none() {
            return Err(PipelineError::Invalid(
                "grounded clips are drawn by the grounded renderer; this pipeline draws stills with the end-to-end model"
                    .into(),
            ));
        }
        self.video = Some(VideoModel::Grounded(Box::new(Loaded::load(dir, |d| {
            TrajectoryNet::load(d, device)
        })?)));
        Ok(self)
    }

    /// Adds the end-to-end text-to-audio model folder `dir`.
    pub fn with_audio(mut self, dir: &Path, device: &Device) -> Result<Pipeline> {
        self.audio = Some(AudioModel::hybrid(dir, device)?);
        Ok(self)
    }

    /// Makes the sound with the grounded models: the music planner, note model and
    /// synthesiser folders.
    pub fn with_grounded_audio(
        mut self,
        planner: &Path,
        notes: &Path,
        synth: &Path,
        device: &Device,
    ) -> Result<Pipeline> {
        self.audio = Some(AudioModel::grounded(planner, notes, synth, device)?);
        Ok(self)
    }

    /// Uses `cache` (None: no cache).
    pub fn with_cache(mut self, cache: Option<Cache>) -> Pipeline {
        self.cache = cache;
        self
    }

    /// The end-to-end text-to-image model, when it draws the stills.
    pub fn image_model(&self) -> Option<&HybridImage> {
        match &self.image {
            ImageModel::Hybrid(m) => Some(&m.model),
            ImageModel::Grounded(_) => None,
        }
    }

    /// The grounded planner's scene plan of `prompt` at `seed`, as [`Self::generate`]
    /// would draw it (None when the stills are the end-to-end model's). Edit it and pass
    /// it back as [`Request::scene_plan`] to change what is drawn and keep the rest.
    pub fn plan_scene(&self, prompt: &str, seed: u64) -> Result<Option<ScenePlan>> {
        check_prompt(prompt)?;
        let prompt = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
        match self.grounded_model() {
            Some(g) => Ok(g.planner.model.plan(&[(prompt.as_str(), seed)])?.pop()),
            None => Ok(None),
        }
    }

    /// The names a scene plan may use (backgrounds, styles, ...), from the grounded
    /// renderer's config (None without the grounded model).
    pub fn plan_vocab(&self) -> Option<&PlanVocab> {
        self.grounded_model().map(|g| &g.renderer.model.config().vocab)
    }

    /// The grounded model, when it draws the stills.
    fn grounded_model(&self) -> Option<&Grounded> {
        match &self.image {
            ImageModel::Grounded(g) => Some(g),
            ImageModel::Hybrid(_) => None,
        }
    }

    /// Makes the package of `request` in `out`: a new folder, an empty one, or one
    /// holding an earlier package, which it replaces whole (see [`output`]).
    pub fn generate(&self, request: &Request, out: &Path, progress: &mut Progress) -> Result<Package> {
        self.generate_into(request, out, OutputPolicy::Refuse, progress)
    }

    /// [`Self::generate`], with what to do when `out` holds files of its own.
    pub fn generate_into(
        &self,
        request: &Request,
        out: &Path,
        policy: OutputPolicy,
        progress: &mut Progress,
    ) -> Result<Package> {
        let start = Instant::now();
        // 1. Validate and plan.
        check_prompt(&request.prompt)?;
        request.image.check()?;
        let plan = match &request.modalities {
            Some(m) => Plan::given(&request.prompt, Modality::parse_list(&names(m))?),
            None => Plan::from_prompt(&request.prompt),
        };
        missing_models(&plan, self.video.is_some(), self.audio.is_some())?;
        match (&self.video, plan.modalities.contains(&Modality::Video)) {
            (Some(VideoModel::Grounded(_)), true) => request.clip_settings().check()?,
            (_, true) => request.video_settings().check()?,
            _ => {}
        }
        if let (Some(audio), true) = (&self.audio, plan.modalities.contains(&Modality::Audio)) {
            audio.check(request, self.audio_seconds(request, &plan))?;
        }
        // Whitespace is not content: "a red star" and " a  red star " are one request
        // (the tokenizer keeps spaces, so they would otherwise encode differently).
        let request = &Request {
            prompt: request.prompt.split_whitespace().collect::<Vec<_>>().join(" "),
            ..request.clone()
        };
        // Where the package is made until it is complete; `out` is checked here,
        // before any work.
        let staging = output::Staging::begin(out, policy)?;
        let dir = staging.dir();
        let scene = self.scene_plan(request, &plan)?;
        let clip = self.clip_plan(request, &plan, scene.as_ref())?;
        let mut warnings = Vec::new();
        let writable_cache = self.cache.as_ref().filter(|cache| match cache.check_writable() {
            Ok(()) => true,
            Err(e) => {
                warnings.push(format!("{e}; this package is not stored"));
                false
            }
        });

        // 2. The cache.
        let key = self.cache_key(request, &plan, scene.as_ref())?;
        let mut media = match self.cache.as_ref().map(|cache| cache.get(&key)) {
            Some(cache::Lookup::Hit(files)) => Some(files),
            Some(cache::Lookup::Broken(why)) => {
                warnings.push(why);
                None
            }
            Some(cache::Lookup::Miss) | None => None,
        };
        let outcome = match (&self.cache, &media) {
            (None, _) => CacheOutcome::Off,
            (Some(_), Some(_)) => CacheOutcome::Hit,
            (Some(_), None) => CacheOutcome::Miss,
        };

        // 3. Generate what the cache did not have.
        let mut timings = serde_json::Map::new();
        if media.is_none() {
            let drawn = Drawn {
                scene: scene.as_ref(),
                clip: clip.as_ref(),
            };
            let files = self.make_media(request, &plan, drawn, progress, &mut timings)?;
            if let Some(cache) = writable_cache {
                // The package is made: a cache that fails now costs only the entry.
                if let Err(e) = cache.put(&key, &files) {
                    warnings.push(format!("the cache could not store this package: {e}"));
                }
            }
            media = Some(files);
        }
        let media = media.unwrap_or_default();

        // 4. Compose: media files, caption, meta (last), then the package into place.
        let mut files = Vec::new();
        let mut sound_meta = None;
        for (name, bytes) in &media {
            if name == SOUND_META {
                sound_meta = serde_json::from_slice::<serde_json::Value>(bytes).ok();
                continue;
            }
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| PipelineError::file(&path, e))?;
            files.push(name.clone());
        }
        let caption = caption(&plan, &self.made(request, &plan), &request.prompt, request.seed);
        let caption_path = dir.join("caption.txt");
        std::fs::write(&caption_path, format!("{caption}\n")).map_err(|e| PipelineError::file(&caption_path, e))?;
        files.push("caption.txt".into());
        files.push("meta.json".into());
        let seconds = start.elapsed().as_secs_f64();
        timings.insert("total_seconds".into(), json!(seconds));
        let mut meta = json!({
            "prompt": request.prompt,
            "lang": plan.lang,
            "seed": request.seed,
            "modalities": plan.modalities,
            "planned_because": plan.because.iter().map(|(m, w)| json!({"modality": m, "word": w})).collect::<Vec<_>>(),
            "models": self.models_json(&plan),
            "settings": self.settings_json(request, &plan),
            "files": files,
            "cache": {"outcome": outcome, "key": key},
            "timings": timings,
            "mmgen_version": env!("CARGO_PKG_VERSION"),
        });
        if let (Some(scene), Some(map)) = (&scene, meta.as_object_mut()) {
            map.insert("scene_plan".into(), json!(scene));
        }
        if let (Some(clip), Some(map)) = (&clip, meta.as_object_mut()) {
            map.insert("trajectories".into(), video::trajectories_json(clip));
        }
        if let (Some(serde_json::Value::Object(parts)), Some(map)) = (sound_meta, meta.as_object_mut()) {
            map.extend(parts);
        }
        if let (false, Some(map)) = (warnings.is_empty(), meta.as_object_mut()) {
            map.insert("warnings".into(), json!(warnings));
        }
        let meta_path = dir.join("meta.json");
        let text = serde_json::to_string_pretty(&meta).map_err(|e| PipelineError::Invalid(e.to_string()))?;
        std::fs::write(&meta_path, text + "\n").map_err(|e| PipelineError::file(&meta_path, e))?;
        staging.commit(&files)?;
        Ok(Package {
            plan,
            files,
            cache: outcome,
            seconds,
            meta,
            warnings,
        })
    }

    /// The scene plan the grounded model draws (a still, or a clip with the grounded
    /// video model): the request's own (checked against the renderer's vocabulary) or
    /// the planner's. None when an end-to-end model draws the image.
    fn scene_plan(&self, request: &Request, plan: &Plan) -> Result<Option<ScenePlan>> {
        let wants_video = plan.modalities.contains(&Modality::Video);
        let grounded_video = matches!(self.video, Some(VideoModel::Grounded(_)));
        let drawn = if wants_video {
            grounded_video
        } else {
            plan.modalities.contains(&Modality::Image)
        };
        match (self.grounded_model(), &request.scene_plan) {
            (None, Some(_)) => Err(PipelineError::Invalid(
                "a scene plan is drawn by the grounded model, which is not loaded".into(),
            )),
            (Some(_), Some(_)) if wants_video && !grounded_video => Err(PipelineError::Invalid(
                "a scene plan is drawn by the grounded model; this request's video is the end-to-end model's".into(),
            )),
            (Some(g), Some(given)) => {
                given.check(&g.renderer.model.config().vocab)?;
                Ok(Some(given.clone()))
            }
            (Some(g), None) if drawn => Ok(g.planner.model.plan(&[(request.prompt.as_str(), request.seed)])?.pop()),
            _ => Ok(None),
        }
    }

    /// The scene plan posed at every frame, when the grounded model draws the clip.
    fn clip_plan(&self, request: &Request, plan: &Plan, scene: Option<&ScenePlan>) -> Result<Option<ClipPlan>> {
        match (&self.video, self.grounded_model(), scene) {
            (Some(VideoModel::Grounded(trajectory)), Some(g), Some(scene))
                if plan.modalities.contains(&Modality::Video) =>
            {
                Ok(Some(ClipPlan::new(
                    scene,
                    &g.renderer.model,
                    &trajectory.model,
                    request.frames,
                )?))
            }
            _ => Ok(None),
        }
    }

    /// How long the audio is: the clip's length when there is a video, else the
    /// request's seconds.
    fn audio_seconds(&self, request: &Request, plan: &Plan) -> f64 {
        match (&self.video, plan.modalities.contains(&Modality::Video)) {
            (Some(video), true) => request.frames as f64 / video.fps() as f64,
            _ => request.seconds,
        }
    }

    /// What the package holds, for its caption.
    fn made(&self, request: &Request, plan: &Plan) -> Made {
        let size = match &self.image {
            ImageModel::Hybrid(m) => m.model.config().vae.image_size,
            ImageModel::Grounded(g) => g.renderer.model.config().image_size,
        };
        Made {
            size,
            video: plan
                .modalities
                .contains(&Modality::Video)
                .then(|| (request.frames, self.video.as_ref().map_or(1, VideoModel::fps))),
            audio_seconds: plan
                .modalities
                .contains(&Modality::Audio)
                .then(|| self.audio_seconds(request, plan)),
        }
    }

    /// Runs the models of the plan and returns the media files (name, bytes): with a
    /// video, `video.mp4` (H.264, and the audio as Opus when planned), `video.gif` and
    /// its middle frame as `image.png`; else `image.png` from the image model when
    /// planned; `audio.wav` when planned.
    fn make_media(
        &self,
        request: &Request,
        plan: &Plan,
        drawn: Drawn,
        progress: &mut Progress,
        timings: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let scene = drawn.scene;
        let wants = |m: Modality| plan.modalities.contains(&m);
        let mut files = Vec::new();
        let audio = match (&self.audio, wants(Modality::Audio)) {
            (Some(audio), true) => {
                let t = Instant::now();
                let heard = audio.make(request, self.audio_seconds(request, plan), progress)?;
                timings.insert("audio_seconds".into(), json!(t.elapsed().as_secs_f64()));
                files.push((
                    "audio.wav".to_string(),
                    mmgen_media::encode_wav(&heard.samples, heard.rate)?,
                ));
                if let Some((sound_plan, score, midi)) = &heard.plan {
                    files.push(("score.mid".to_string(), midi.clone()));
                    let part = json!({"sound_plan": sound_plan, "score": score});
                    files.push((SOUND_META.to_string(), part.to_string().into_bytes()));
                }
                Some((heard.samples, heard.rate))
            }
            _ => None,
        };
        let key_frame = match (&self.video, wants(Modality::Video)) {
            (Some(video), true) => {
                let t = Instant::now();
                let fps = video.fps();
                let clip = match (video, self.grounded_model(), drawn.clip) {
                    (VideoModel::Grounded(_), Some(g), Some(clip)) => {
                        g.renderer
                            .model
                            .render_clip(clip, request.seed, &request.clip_settings(), |done, total| {
                                progress("video", done, total)
                            })?
                    }
                    (VideoModel::Grounded(_), _, _) => {
                        return Err(PipelineError::Invalid("the grounded model drew no clip plan".into()))
                    }
                    (VideoModel::Hybrid(video), _, _) => video
                        .model
                        .generate(
                            &[VideoRequest {
                                prompt: request.prompt.clone(),
                                seed: request.seed,
                            }],
                            &request.video_settings(),
                            |done, total| progress("video", done, total),
                        )?
                        .into_iter()
                        .next()
                        .unwrap_or_default(),
                };
                timings.insert("video_seconds".into(), json!(t.elapsed().as_secs_f64()));
                let track = audio.as_ref().map(|(samples, rate)| mmgen_media::Mp4Audio {
                    samples,
                    sample_rate: *rate,
                });
                let (mp4, _) = mmgen_media::encode_mp4(&clip, fps, track)?;
                files.insert(0, ("video.gif".to_string(), mmgen_media::encode_gif(&clip, fps)?));
                files.insert(0, ("video.mp4".to_string(), mp4));
                clip.get(clip.len() / 2).cloned()
            }
            _ => None,
        };
        let image = match key_frame {
            Some(frame) => Some(frame),
            None if wants(Modality::Image) => {
                let t = Instant::now();
                let images = match (&self.image, scene) {
                    (ImageModel::Grounded(g), Some(scene)) => g.renderer.model.render(
                        &[(g.renderer.model.plan_ids(scene)?, request.seed)],
                        &request.grounded,
                        |done, total| progress("image", done, total),
                    )?,
                    (ImageModel::Grounded(_), None) => {
                        return Err(PipelineError::Invalid("the grounded model drew no plan".into()))
                    }
                    (ImageModel::Hybrid(m), _) => m.model.generate(
                        &[ImageRequest {
                            prompt: request.prompt.clone(),
                            seed: request.seed,
                        }],
                        &request.image,
                        |done, total| progress("image", done, total),
                    )?,
                };
                timings.insert("image_seconds".into(), json!(t.elapsed().as_secs_f64()));
                images.into_iter().next()
            }
            None => None,
        };
        if let Some(image) = image {
            files.insert(0, ("image.png".to_string(), self.png(request, plan, &image)?));
        }
        Ok(files)
    }

    /// `image.png`'s bytes, with prompt, seed and settings in its text chunks.
    fn png(&self, request: &Request, plan: &Plan, image: &RgbImage) -> Result<Vec<u8>> {
        let settings = self.settings_json(request, plan).to_string();
        Ok(mmgen_media::encode_png(
            image,
            &[
                ("prompt", &request.prompt),
                ("seed", &request.seed.to_string()),
                ("settings", &settings),
            ],
        )?)
    }

    fn models_json(&self, plan: &Plan) -> serde_json::Value {
        let mut models = serde_json::Map::new();
        let wants = |m: Modality| plan.modalities.contains(&m);
        let grounded_video = matches!(self.video, Some(VideoModel::Grounded(_))) && wants(Modality::Video);
        if (wants(Modality::Image) && !wants(Modality::Video)) || grounded_video {
            match &self.image {
                ImageModel::Hybrid(m) => {
                    models.insert("image".into(), m.json());
                }
                ImageModel::Grounded(g) => {
                    models.insert("planner".into(), g.planner.json());
                    models.insert("renderer".into(), g.renderer.json());
                }
            }
        }
        if let (Some(video), true) = (&self.video, wants(Modality::Video)) {
            let name = match video {
                VideoModel::Hybrid(_) => "video",
                VideoModel::Grounded(_) => "trajectory",
            };
            models.insert(name.into(), video.json());
        }
        if let (Some(audio), true) = (&self.audio, wants(Modality::Audio)) {
            if let serde_json::Value::Object(parts) = audio.json() {
                models.extend(parts);
            }
        }
        serde_json::Value::Object(models)
    }

    fn settings_json(&self, request: &Request, plan: &Plan) -> serde_json::Value {
        let mut settings = serde_json::Map::new();
        let wants = |m: Modality| plan.modalities.contains(&m);
        if wants(Modality::Image) && !wants(Modality::Video) {
            let (image, dir) = match &self.image {
                ImageModel::Hybrid(m) => (&request.image, &m.dir),
                ImageModel::Grounded(g) => (&request.grounded, &g.renderer.dir),
            };
            settings.insert("image".into(), image_settings_json(image, dir));
        }
        if let (Some(video), true) = (&self.video, wants(Modality::Video)) {
            settings.insert("video".into(), video.settings_json(request));
        }
        if let (Some(audio), true) = (&self.audio, wants(Modality::Audio)) {
            settings.insert(
                "audio".into(),
                audio.settings_json(request, self.audio_seconds(request, plan)),
            );
        }
        serde_json::Value::Object(settings)
    }

    /// SHA-256 over what decides the media (see [`cache`]).
    fn cache_key(&self, request: &Request, plan: &Plan, scene: Option<&ScenePlan>) -> Result<String> {
        // What the prompt becomes inside the model: the end-to-end model's text states;
        // for the grounded model, the prompt itself (its plan is a part of its own).
        let embedding = |text: &str| -> Result<Vec<u8>> {
            let ImageModel::Hybrid(m) = &self.image else {
                return Ok(text.as_bytes().to_vec());
            };
            let states = m.model.encode_text(&[text])?;
            let values: Vec<f32> = states.states.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let mask: Vec<f32> = states.mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            Ok(values.iter().chain(&mask).flat_map(|v| v.to_le_bytes()).collect())
        };
        let settings = if scene.is_some() {
            &request.grounded
        } else {
            &request.image
        };
        let pixels = |image: Option<&[u8]>| image.map(<[u8]>::to_vec).unwrap_or_default();
        let folder = |m: Option<&String>| m.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
        let mut key = cache::KeyBuilder::new(PACKAGE_FORMAT);
        // A still drawn by the grounded model adds its plan.
        let image_models = match &self.image {
            ImageModel::Hybrid(m) => m.folder_sha256.clone(),
            ImageModel::Grounded(g) => {
                if let Some(scene) = scene {
                    let scene = serde_json::to_string(scene).map_err(|e| PipelineError::Invalid(e.to_string()))?;
                    key = key.part("scene_plan", scene.as_bytes());
                }
                format!("{}+{}", g.planner.folder_sha256, g.renderer.folder_sha256)
            }
        };
        Ok(key
            .part("image_models", image_models.as_bytes())
            .part(
                "video_model",
                &folder(self.video.as_ref().map(VideoModel::folder_sha256)),
            )
            .part(
                "audio_model",
                &folder(self.audio.as_ref().map(AudioModel::folder_sha256).as_ref()),
            )
            // The text as well as what the encoder makes of it: prompts that differ
            // only past the encoder's length share no entry (image.png holds the prompt).
            .part("prompt", request.prompt.as_bytes())
            .part("prompt_embedding", &embedding(&request.prompt)?)
            .part("negative_embedding", &embedding(&settings.sampling.negative)?)
            .part(
                "settings",
                settings_without_folders(self.settings_json(request, plan)).as_bytes(),
            )
            .part(
                "init",
                &pixels(settings.init.as_ref().map(|(i, _)| i.as_raw().as_slice())),
            )
            .part("mask", &pixels(settings.mask.as_ref().map(|m| m.as_raw().as_slice())))
            .part(
                "first_frame",
                &pixels(request.first_frame.as_ref().map(|i| i.as_raw().as_slice())),
            )
            .part("seed", &request.seed.to_le_bytes())
            .part("modalities", names(&plan.modalities).as_bytes())
            .finish())
    }
}

/// The longest prompt, in characters: far beyond what a text encoder reads (64
/// tokens), short enough that meta.json, caption.txt and image.png stay small.
pub const MAX_PROMPT_CHARS: usize = 2000;

/// Refuses prompts that are empty, too long or hold control characters (they would go
/// raw into caption.txt and meta.json); tabs and newlines are spaces.
fn check_prompt(prompt: &str) -> Result<()> {
    if prompt.trim().is_empty() {
        return Err(PipelineError::Invalid(
            "the prompt is empty; say what to make, e.g. \"a red star over the sea at sunset\"".into(),
        ));
    }
    let chars = prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(PipelineError::Invalid(format!(
            "the prompt is {chars} characters long; at most {MAX_PROMPT_CHARS} are allowed"
        )));
    }
    if let Some((i, c)) = prompt
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !c.is_whitespace())
    {
        return Err(PipelineError::Invalid(format!(
            "the prompt holds a control character (U+{:04X}) at character {}; remove it",
            c as u32,
            i + 1
        )));
    }
    Ok(())
}

/// The settings JSON without the model folders: the weights' digests identify the
/// models, so the same request through another path to the same weights is a hit.
fn settings_without_folders(mut settings: serde_json::Value) -> String {
    if let Some(map) = settings.as_object_mut() {
        for stage in map.values_mut() {
            if let Some(stage) = stage.as_object_mut() {
                stage.remove("model");
            }
        }
    }
    settings.to_string()
}

fn names(modalities: &[Modality]) -> String {
    modalities.iter().map(|m| m.name()).collect::<Vec<_>>().join(",")
}

/// Fails when the plan needs a model that is not loaded.
fn missing_models(plan: &Plan, has_video: bool, has_audio: bool) -> Result<()> {
    let missing: Vec<String> = plan
        .because
        .iter()
        .filter(|(m, _)| match m {
            Modality::Image => false,
            Modality::Video => !has_video,
            Modality::Audio => !has_audio,
        })
        .map(|(m, word)| match word {
            Some(word) => format!("{} (the prompt says '{word}')", m.name()),
            None => m.name().to_string(),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let how: Vec<&str> = plan
        .because
        .iter()
        .filter_map(|(m, _)| match m {
            Modality::Video if !has_video => Some(
                "models/grounded-trajectory (`mmgen train trajectory`) or models/hybrid-video (`mmgen train text-video`)",
            ),
            Modality::Audio if !has_audio => Some(
                "models/grounded-music-planner, grounded-notes and grounded-synth (`mmgen train music-planner`, `notes`, `synth`) or models/hybrid-audio (`mmgen train text-audio`)",
            ),
            _ => None,
        })
        .collect();
    Err(PipelineError::NotShipped(format!(
        "this request needs {}, and that model is not loaded: {}; `--modalities image` makes the key image alone",
        missing.join(" and "),
        how.join(", "),
    )))
}

fn image_settings_json(settings: &ImageSettings, model: &Path) -> serde_json::Value {
    json!({
        "model": model.display().to_string(),
        "steps": settings.sampling.steps,
        "guidance": settings.sampling.guidance,
        "sampler": settings.sampling.sampler,
        "negative": settings.sampling.negative,
        "init": settings.init.is_some(),
        "strength": settings.init.as_ref().map(|(_, s)| *s),
        "mask": settings.mask.is_some(),
    })
}

/// What a package holds: image side, (frames, fps) of a video, seconds of audio.
struct Made {
    size: usize,
    video: Option<(usize, u32)>,
    audio_seconds: Option<f64>,
}

/// What was made, in the prompt's language.
fn caption(plan: &Plan, made: &Made, prompt: &str, seed: u64) -> String {
    let prompt = prompt.trim();
    let size = made.size;
    match plan.lang {
        Lang::En => {
            let mut parts = Vec::new();
            if let Some((frames, fps)) = made.video {
                parts.push(format!(
                    "a {size}x{size} video of {frames} frames ({:.1} s at {fps} fps) with its key frame",
                    frames as f64 / fps as f64
                ));
            } else if plan.modalities.contains(&Modality::Image) {
                parts.push(format!("a {size}x{size} image"));
            }
            if let Some(seconds) = made.audio_seconds {
                parts.push(format!("{seconds:.1} s of music"));
            }
            let what = parts.join(" and ");
            let mut chars = what.chars();
            let what = chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default();
            format!("{what} made for the request \"{prompt}\" (seed {seed}).")
        }
        Lang::Zh => {
            let mut parts = Vec::new();
            if let Some((frames, fps)) = made.video {
                parts.push(format!(
                    "{size}x{size} 的 {frames} 帧视频({:.1} 秒,每秒 {fps} 帧)及其关键帧",
                    frames as f64 / fps as f64
                ));
            } else if plan.modalities.contains(&Modality::Image) {
                parts.push(format!("{size}x{size} 图像"));
            }
            if let Some(seconds) = made.audio_seconds {
                parts.push(format!("{seconds:.1} 秒音乐"));
            }
            format!("根据请求“{prompt}”生成的{}(种子 {seed})。", parts.join("和"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_follow_the_prompt_language() {
        let image = Made {
            size: 64,
            video: None,
            audio_seconds: None,
        };
        let en = caption(&Plan::from_prompt("a red star"), &image, "a red star", 3);
        assert_eq!(en, "A 64x64 image made for the request \"a red star\" (seed 3).");
        let zh = caption(&Plan::from_prompt("一颗红色的星星"), &image, "一颗红色的星星", 3);
        assert_eq!(zh, "根据请求“一颗红色的星星”生成的64x64 图像(种子 3)。");
        let all = Made {
            size: 64,
            video: Some((24, 8)),
            audio_seconds: Some(3.0),
        };
        let prompt = "生成一段描述海边日落的短视频,配乐为钢琴曲";
        let zh = caption(&Plan::from_prompt(prompt), &all, prompt, 0);
        assert!(zh.contains("24 帧视频(3.0 秒") && zh.contains("3.0 秒音乐"), "{zh}");
        let prompt = "a short video of the sea with piano music";
        let en = caption(&Plan::from_prompt(prompt), &all, prompt, 0);
        assert!(
            en.starts_with("A 64x64 video of 24 frames (3.0 s at 8 fps) with its key frame and 3.0 s of music"),
            "{en}"
        );
    }

    #[test]
    fn requests_say_which_model_is_missing() {
        let plan = Plan::from_prompt("生成一段描述海边日落的短视频,配乐为钢琴曲");
        let err = missing_models(&plan, false, false).unwrap_err().to_string();
        assert!(err.contains("video (the prompt says '视频')"), "{err}");
        assert!(err.contains("audio (the prompt says '配乐')"), "{err}");
        assert!(err.contains("--modalities image"), "{err}");
        let err = missing_models(&plan, true, false).unwrap_err().to_string();
        assert!(!err.contains("video (") && err.contains("audio ("), "{err}");
        assert!(missing_models(&plan, true, true).is_ok());
        assert!(missing_models(&Plan::from_prompt("a red star"), false, false).is_ok());
    }
}
