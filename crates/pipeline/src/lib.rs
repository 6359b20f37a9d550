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
mod caption;
mod describe;
pub mod error;
mod loaded;
pub mod output;
pub mod plan;
mod request;
mod sound;
mod video;

use caption::{caption, Made};
use loaded::{Grounded, ImageModel, Loaded, VideoModel};
use request::check_prompt;
use sound::AudioModel;
pub use sound::Heard;
use video::Drawn;

use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use mmgen_models::grounded::{ClipPlan, PlanVocab, ScenePlan};
use mmgen_models::hybrid_image::{HybridImage, ImageRequest};
use mmgen_models::hybrid_video::VideoRequest;
use serde_json::json;

pub use cache::Cache;
pub use error::{PipelineError, Result};
pub use output::OutputPolicy;
pub use plan::{Lang, Modality, Plan, MODALITY_NAMES};
pub use request::{Request, MAX_PROMPT_CHARS};

/// Version of the package format and of what generation makes; part of every cache
/// key, so bump it when the same request would now make other bytes.
const PACKAGE_FORMAT: &str = "mmgen-package-6";

/// The cache entry that holds the grounded sound's plan and score: it goes into
/// `meta.json`, not onto disk.
const SOUND_META: &str = ".sound.json";

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

/// What the models made for a request, before any file is encoded.
#[derive(Debug)]
pub struct Media {
    /// The still: the image model's, or the clip's key frame (its middle frame).
    pub image: Option<RgbImage>,
    /// The clip's frames and their rate (frames per second).
    pub clip: Option<(Vec<RgbImage>, u32)>,
    /// The sound.
    pub sound: Option<Heard>,
}

/// What [`Pipeline::render`] made: the plan, the scene plan drawn (grounded model)
/// and the media.
#[derive(Debug)]
pub struct Rendered {
    /// What was planned.
    pub plan: Plan,
    /// The scene plan the grounded model drew, if it drew one.
    pub scene: Option<ScenePlan>,
    /// The media.
    pub media: Media,
}

/// Progress of a request, for a bar: `(stage, done, total)`.
pub type Progress<'a> = dyn FnMut(&str, usize, usize) + 'a;

/// The loaded models and the cache.
pub struct Pipeline {
    image: ImageModel,
    video: Option<VideoModel>,
    audio: Option<AudioModel>,
    cache: Option<Cache>,
}

impl Pipeline {
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

    /// The side of the images and frames it draws, pixels.
    pub fn image_size(&self) -> usize {
        match &self.image {
            ImageModel::Hybrid(m) => m.model.config().vae.image_size,
            ImageModel::Grounded(g) => g.renderer.model.config().image_size,
        }
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
        let (request, plan) = self.checked(request)?;
        let request = &request;
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
            // The sound's samples are kept only for a clip's soundtrack.
            let keep_samples = plan.modalities.contains(&Modality::Video);
            let made = self.render_media(request, &plan, drawn, keep_samples, progress, &mut timings)?;
            let files = self.encode_media(request, &plan, made)?;
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
            "planned_because": plan.because.iter().map(|(m, why)| json!({"modality": m, "read": why})).collect::<Vec<_>>(),
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

    /// The request validated, its prompt's whitespace collapsed, and its plan: what
    /// every model's settings allow is checked here, before any work.
    fn checked(&self, request: &Request) -> Result<(Request, Plan)> {
        check_prompt(&request.prompt)?;
        request.image.check()?;
        // Whitespace is not content: "a red star" and " a  red star " are one request
        // (the tokenizer keeps spaces, so they would otherwise encode differently).
        let request = Request {
            prompt: request.prompt.split_whitespace().collect::<Vec<_>>().join(" "),
            ..request.clone()
        };
        let plan = match &request.modalities {
            Some(m) => Plan::given(&request.prompt, Modality::ordered(m.clone())?),
            None => {
                let reading = match &self.audio {
                    Some(audio) => audio.read(&request.prompt)?,
                    None => None,
                };
                Plan::read(&request.prompt, reading.as_ref())
            }
        };
        missing_models(&plan, self.video.is_some(), self.audio.is_some())?;
        match (&self.video, plan.modalities.contains(&Modality::Video)) {
            (Some(VideoModel::Grounded(_)), true) => request.clip_settings().check()?,
            (_, true) => request.video_settings().check()?,
            _ => {}
        }
        if let (Some(audio), true) = (&self.audio, plan.modalities.contains(&Modality::Audio)) {
            audio.check(&request, self.audio_seconds(&request, &plan))?;
        }
        Ok((request, plan))
    }

    /// What the models make of `request`, before any file is encoded: the plans and
    /// the media exactly as [`Self::generate`] encodes them (no cache, no files). The
    /// evaluation scores this.
    pub fn render(&self, request: &Request, progress: &mut Progress) -> Result<Rendered> {
        let (request, plan) = self.checked(request)?;
        let scene = self.scene_plan(&request, &plan)?;
        let clip = self.clip_plan(&request, &plan, scene.as_ref())?;
        let drawn = Drawn {
            scene: scene.as_ref(),
            clip: clip.as_ref(),
        };
        let media = self.render_media(&request, &plan, drawn, true, progress, &mut serde_json::Map::new())?;
        Ok(Rendered { plan, scene, media })
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
        Made {
            size: self.image_size(),
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

    /// Runs the models of the plan: the sound, the clip (whose middle frame is the
    /// key image) and the still (the image model's, when there is no clip). The
    /// grounded sound's samples are kept when `keep_samples`, else only its WAV.
    fn render_media(
        &self,
        request: &Request,
        plan: &Plan,
        drawn: Drawn,
        keep_samples: bool,
        progress: &mut Progress,
        timings: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<Media> {
        let scene = drawn.scene;
        let wants = |m: Modality| plan.modalities.contains(&m);
        let sound = match (&self.audio, wants(Modality::Audio)) {
            (Some(audio), true) => {
                let t = Instant::now();
                let heard = audio.make(request, self.audio_seconds(request, plan), keep_samples, progress)?;
                timings.insert("audio_seconds".into(), json!(t.elapsed().as_secs_f64()));
                Some(heard)
            }
            _ => None,
        };
        let clip = match (&self.video, wants(Modality::Video)) {
            (Some(video), true) => {
                let t = Instant::now();
                let frames = match (video, self.grounded_model(), drawn.clip) {
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
                Some((frames, video.fps()))
            }
            _ => None,
        };
        let image = match &clip {
            Some((frames, _)) => frames.get(frames.len() / 2).cloned(),
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
        Ok(Media { image, clip, sound })
    }

    /// The media files (name, bytes): `image.png`; with a clip `video.mp4` (H.264, and
    /// the sound as Opus when there is one) and `video.gif`; with sound `audio.wav`,
    /// and the grounded sound's `score.mid` and plan (for meta.json).
    fn encode_media(&self, request: &Request, plan: &Plan, media: Media) -> Result<Vec<(String, Vec<u8>)>> {
        let mut files = Vec::new();
        if let Some(image) = &media.image {
            files.push(("image.png".to_string(), self.png(request, plan, image)?));
        }
        if let Some((frames, fps)) = &media.clip {
            let track = media.sound.as_ref().map(|heard| mmgen_media::Mp4Audio {
                samples: &heard.samples,
                sample_rate: heard.rate,
            });
            let (mp4, _) = mmgen_media::encode_mp4(frames, *fps, track)?;
            files.push(("video.mp4".to_string(), mp4));
            files.push(("video.gif".to_string(), mmgen_media::encode_gif(frames, *fps)?));
        }
        if let Some(heard) = media.sound {
            let wav = match heard.wav {
                Some(bytes) => bytes,
                None => mmgen_media::encode_wav(&heard.samples, heard.rate)?,
            };
            files.push(("audio.wav".to_string(), wav));
            if let Some((sound_plan, score, midi)) = heard.plan {
                files.push(("score.mid".to_string(), midi));
                let part = json!({"sound_plan": sound_plan, "score": score});
                files.push((SOUND_META.to_string(), part.to_string().into_bytes()));
            }
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
        .map(|(m, why)| match why {
            Some(why) => format!("{} ({why})", m.name()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_say_which_model_is_missing() {
        let reading = plan::Reading {
            medium: Some("video".into()),
            music: true,
            ambience: None,
        };
        let plan = Plan::read("生成一段描述海边日落的短视频,配乐为钢琴曲", Some(&reading));
        let err = missing_models(&plan, false, false).unwrap_err().to_string();
        assert!(err.contains("video (the request reads as a clip)"), "{err}");
        assert!(err.contains("audio (the request reads as asking for music)"), "{err}");
        assert!(err.contains("--modalities image"), "{err}");
        let err = missing_models(&plan, true, false).unwrap_err().to_string();
        assert!(!err.contains("video (") && err.contains("audio ("), "{err}");
        assert!(missing_models(&plan, true, true).is_ok());
        assert!(missing_models(&Plan::read("a red star", None), false, false).is_ok());
    }
}
