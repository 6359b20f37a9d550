//! What a package says about itself: the models and settings in `meta.json` (and
//! image.png's text), and the cache key over everything that decides its media.

use std::path::Path;

use candle_core::DType;
use mmgen_models::grounded::ScenePlan;
use mmgen_models::hybrid_image::ImageSettings;
use serde_json::json;

use crate::cache;
use crate::error::{PipelineError, Result};
use crate::loaded::{ImageModel, VideoModel};
use crate::plan::{Modality, Plan};
use crate::request::Request;
use crate::sound::AudioModel;
use crate::{Pipeline, PACKAGE_FORMAT};

impl Pipeline {
    pub(crate) fn models_json(&self, plan: &Plan) -> serde_json::Value {
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

    pub(crate) fn settings_json(&self, request: &Request, plan: &Plan) -> serde_json::Value {
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
    pub(crate) fn cache_key(&self, request: &Request, plan: &Plan, scene: Option<&ScenePlan>) -> Result<String> {
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
