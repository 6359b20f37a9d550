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
//! Today the image modality has a model (the hybrid text-to-image model); a plan that
//! needs video or audio fails with a sentence naming what is missing and how to ask
//! for the image alone, until their decoders are trained.

#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod plan;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use mmgen_models::hybrid_image::{HybridImage, ImageRequest, ImageSettings};
use serde_json::json;

pub use cache::Cache;
pub use error::{PipelineError, Result};
pub use plan::{Lang, Modality, Plan, MODALITY_NAMES};

/// Version of the package format; part of every cache key.
const PACKAGE_FORMAT: &str = "mmgen-package-1";

/// One request.
#[derive(Clone, Debug)]
pub struct Request {
    /// What to make, in English or Chinese.
    pub prompt: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// The modalities to make; None reads them from the prompt ([`Plan::from_prompt`]).
    pub modalities: Option<Vec<Modality>>,
    /// How to make the image.
    pub image: ImageSettings,
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
}

/// Progress of a request, for a bar: `(stage, done, total)`.
pub type Progress<'a> = dyn FnMut(&str, usize, usize) + 'a;

/// The loaded models and the cache.
pub struct Pipeline {
    image: HybridImage,
    image_dir: PathBuf,
    image_weights: String,
    cache: Option<Cache>,
}

impl Pipeline {
    /// Loads the text-to-image model folder `image_dir` onto `device`.
    pub fn load(image_dir: &Path, device: &Device) -> Result<Pipeline> {
        let weights_path = image_dir.join("model.safetensors");
        let image = HybridImage::load(image_dir, device)?;
        let weights = std::fs::read(&weights_path).map_err(|e| PipelineError::file(&weights_path, e))?;
        Ok(Pipeline {
            image,
            image_dir: image_dir.to_path_buf(),
            image_weights: cache::sha256_hex(&weights),
            cache: None,
        })
    }

    /// Uses `cache` (None: no cache).
    pub fn with_cache(mut self, cache: Option<Cache>) -> Pipeline {
        self.cache = cache;
        self
    }

    /// The text-to-image model.
    pub fn image_model(&self) -> &HybridImage {
        &self.image
    }

    /// Makes the package of `request` in `out` (created if needed).
    pub fn generate(&self, request: &Request, out: &Path, progress: &mut Progress) -> Result<Package> {
        let start = Instant::now();
        // 1. Validate and plan.
        if request.prompt.trim().is_empty() {
            return Err(PipelineError::Invalid(
                "the prompt is empty; say what to make, e.g. \"a red star over the sea at sunset\"".into(),
            ));
        }
        request.image.check()?;
        let plan = match &request.modalities {
            Some(m) => Plan::given(&request.prompt, Modality::parse_list(&names(m))?),
            None => Plan::from_prompt(&request.prompt),
        };
        missing_models(&plan)?;
        std::fs::create_dir_all(out).map_err(|e| PipelineError::file(out, e))?;
        // Whitespace is not content: "a red star" and " a  red star " are one request
        // (the tokenizer keeps spaces, so they would otherwise encode differently).
        let request = &Request {
            prompt: request.prompt.split_whitespace().collect::<Vec<_>>().join(" "),
            ..request.clone()
        };

        // 2. The cache.
        let key = self.cache_key(request, &plan)?;
        let mut media = match &self.cache {
            Some(cache) => cache.get(&key)?,
            None => None,
        };
        let outcome = match (&self.cache, &media) {
            (None, _) => CacheOutcome::Off,
            (Some(_), Some(_)) => CacheOutcome::Hit,
            (Some(_), None) => CacheOutcome::Miss,
        };

        // 3. Generate what the cache did not have.
        let mut timings = serde_json::Map::new();
        if media.is_none() {
            let t = Instant::now();
            let png = self.image_png(request, out, progress)?;
            timings.insert("image_seconds".into(), json!(t.elapsed().as_secs_f64()));
            let files = vec![("image.png".to_string(), png)];
            if let Some(cache) = &self.cache {
                cache.put(&key, &files)?;
            }
            media = Some(files);
        }
        let media = media.unwrap_or_default();

        // 4. Compose: media files, caption, meta.
        let mut files = Vec::new();
        for (name, bytes) in &media {
            let path = out.join(name);
            std::fs::write(&path, bytes).map_err(|e| PipelineError::file(&path, e))?;
            files.push(name.clone());
        }
        let size = self.image.config().vae.image_size;
        let caption = caption(&plan, &request.prompt, size, request.seed);
        let caption_path = out.join("caption.txt");
        std::fs::write(&caption_path, format!("{caption}\n")).map_err(|e| PipelineError::file(&caption_path, e))?;
        files.push("caption.txt".into());
        files.push("meta.json".into());
        let seconds = start.elapsed().as_secs_f64();
        timings.insert("total_seconds".into(), json!(seconds));
        let meta = json!({
            "prompt": request.prompt,
            "lang": plan.lang,
            "seed": request.seed,
            "modalities": plan.modalities,
            "planned_because": plan.because.iter().map(|(m, w)| json!({"modality": m, "word": w})).collect::<Vec<_>>(),
            "models": {"image": {"folder": self.image_dir.display().to_string(), "weights_sha256": self.image_weights}},
            "settings": {"image": image_settings_json(&request.image, &self.image_dir)},
            "files": files,
            "cache": {"outcome": outcome, "key": key},
            "timings": timings,
            "mmgen_version": env!("CARGO_PKG_VERSION"),
        });
        let meta_path = out.join("meta.json");
        let text = serde_json::to_string_pretty(&meta).map_err(|e| PipelineError::Invalid(e.to_string()))?;
        std::fs::write(&meta_path, text + "\n").map_err(|e| PipelineError::file(&meta_path, e))?;
        Ok(Package {
            plan,
            files,
            cache: outcome,
            seconds,
            meta,
        })
    }

    /// Runs the image model; returns the PNG's bytes (with prompt, seed and settings
    /// in its text chunks).
    fn image_png(&self, request: &Request, out: &Path, progress: &mut Progress) -> Result<Vec<u8>> {
        let images = self.image.generate(
            &[ImageRequest {
                prompt: request.prompt.clone(),
                seed: request.seed,
            }],
            &request.image,
            |done, total| progress("image", done, total),
        )?;
        let path = out.join("image.png");
        let settings = image_settings_json(&request.image, &self.image_dir).to_string();
        mmgen_media::write_png(
            &path,
            &images[0],
            &[
                ("prompt", &request.prompt),
                ("seed", &request.seed.to_string()),
                ("settings", &settings),
            ],
        )?;
        std::fs::read(&path).map_err(|e| PipelineError::file(&path, e))
    }

    /// SHA-256 over what decides the media (see [`cache`]).
    fn cache_key(&self, request: &Request, plan: &Plan) -> Result<String> {
        let embedding = |text: &str| -> Result<Vec<u8>> {
            let states = self.image.encode_text(&[text])?;
            let values: Vec<f32> = states.states.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let mask: Vec<f32> = states.mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            Ok(values.iter().chain(&mask).flat_map(|v| v.to_le_bytes()).collect())
        };
        let settings = &request.image;
        let pixels = |image: Option<&[u8]>| image.map(<[u8]>::to_vec).unwrap_or_default();
        Ok(cache::KeyBuilder::new(PACKAGE_FORMAT)
            .part("image_weights", self.image_weights.as_bytes())
            .part("prompt_embedding", &embedding(&request.prompt)?)
            .part("negative_embedding", &embedding(&settings.negative)?)
            .part(
                "settings",
                image_settings_json(settings, Path::new("")).to_string().as_bytes(),
            )
            .part(
                "init",
                &pixels(settings.init.as_ref().map(|(i, _)| i.as_raw().as_slice())),
            )
            .part("mask", &pixels(settings.mask.as_ref().map(|m| m.as_raw().as_slice())))
            .part("seed", &request.seed.to_le_bytes())
            .part("modalities", names(&plan.modalities).as_bytes())
            .finish())
    }
}

fn names(modalities: &[Modality]) -> String {
    modalities.iter().map(|m| m.name()).collect::<Vec<_>>().join(",")
}

/// Fails when the plan needs a model that is not shipped yet.
fn missing_models(plan: &Plan) -> Result<()> {
    let missing: Vec<String> = plan
        .because
        .iter()
        .filter(|(m, _)| *m != Modality::Image)
        .map(|(m, word)| match word {
            Some(word) => format!("{} (the prompt says '{word}')", m.name()),
            None => m.name().to_string(),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(PipelineError::NotShipped(format!(
        "this request needs {}, and no text-to-video or text-to-audio model is shipped yet \
         (only the text-to-image model is); `--modalities image` makes the key image alone",
        missing.join(" and ")
    )))
}

fn image_settings_json(settings: &ImageSettings, model: &Path) -> serde_json::Value {
    json!({
        "model": model.display().to_string(),
        "steps": settings.steps,
        "guidance": settings.guidance,
        "sampler": settings.sampler,
        "negative": settings.negative,
        "init": settings.init.is_some(),
        "strength": settings.init.as_ref().map(|(_, s)| *s),
        "mask": settings.mask.is_some(),
    })
}

/// What was made, in the prompt's language.
fn caption(plan: &Plan, prompt: &str, size: usize, seed: u64) -> String {
    let prompt = prompt.trim();
    match plan.lang {
        Lang::En => format!("A {size}x{size} image made for the request \"{prompt}\" (seed {seed})."),
        Lang::Zh => format!("根据请求“{prompt}”生成的 {size}x{size} 图像(种子 {seed})。"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_follow_the_prompt_language() {
        let en = caption(&Plan::from_prompt("a red star"), "a red star", 64, 3);
        assert_eq!(en, "A 64x64 image made for the request \"a red star\" (seed 3).");
        let zh = caption(&Plan::from_prompt("一颗红色的星星"), "一颗红色的星星", 64, 3);
        assert!(zh.starts_with("根据请求“一颗红色的星星”"), "{zh}");
    }

    #[test]
    fn video_and_audio_requests_say_what_is_missing() {
        let err = missing_models(&Plan::from_prompt("生成一段描述海边日落的短视频,配乐为钢琴曲"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("video (the prompt says '视频')"), "{err}");
        assert!(err.contains("audio (the prompt says '配乐')"), "{err}");
        assert!(err.contains("--modalities image"), "{err}");
        assert!(missing_models(&Plan::from_prompt("a red star")).is_ok());
    }
}
