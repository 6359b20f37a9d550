//! The clip models of the pipeline: what each says about itself in `meta.json`.

use mmgen_models::grounded::video::CLIP_FPS;
use mmgen_models::grounded::{ClipPlan, ScenePlan};
use serde_json::json;

use crate::{Request, VideoModel};

/// What the grounded model draws in a request: the scene plan, and the plan posed at
/// every frame when it draws the clip.
#[derive(Clone, Copy)]
pub(crate) struct Drawn<'a> {
    pub scene: Option<&'a ScenePlan>,
    pub clip: Option<&'a ClipPlan>,
}

impl VideoModel {
    /// Frames per second of the clips it makes.
    pub(crate) fn fps(&self) -> u32 {
        match self {
            VideoModel::Hybrid(m) => m.model.config().fps,
            VideoModel::Grounded(_) => CLIP_FPS,
        }
    }

    /// Its folder and weights, for `meta.json`.
    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            VideoModel::Hybrid(m) => m.json(),
            VideoModel::Grounded(m) => m.json(),
        }
    }

    /// The digest of its folder, for cache keys.
    pub(crate) fn folder_sha256(&self) -> &String {
        match self {
            VideoModel::Hybrid(m) => &m.folder_sha256,
            VideoModel::Grounded(m) => &m.folder_sha256,
        }
    }

    /// How it made the clip of `request`, for `meta.json` and the cache key.
    pub(crate) fn settings_json(&self, request: &Request) -> serde_json::Value {
        match self {
            VideoModel::Hybrid(m) => {
                let v = request.video_settings();
                json!({"model": m.dir.display().to_string(), "steps": v.sampling.steps, "guidance": v.sampling.guidance,
                       "sampler": v.sampling.sampler, "negative": v.sampling.negative, "frames": v.frames,
                       "fps": m.model.config().fps, "window": m.model.config().model.dit.frames,
                       "first_frame": v.first_frame.is_some()})
            }
            VideoModel::Grounded(m) => {
                let c = request.clip_settings();
                json!({"model": m.dir.display().to_string(), "steps": c.image.sampling.steps, "guidance": c.image.sampling.guidance,
                       "sampler": c.image.sampling.sampler, "negative": c.image.sampling.negative, "frames": c.frames,
                       "fps": CLIP_FPS, "batch": c.batch, "first_frame": c.first_frame.is_some(),
                       "first_frame_strength": c.first_frame_strength, "noise": "shared across frames"})
            }
        }
    }
}

/// Each object's pose at every frame, `[cx, cy, radius, angle]` rounded to 1e-4.
pub(crate) fn trajectories_json(clip: &ClipPlan) -> serde_json::Value {
    let round = |v: f32| (v as f64 * 1e4).round() / 1e4;
    json!(clip
        .trajectories
        .iter()
        .map(|poses| poses.iter().map(|p| p.map(round).to_vec()).collect::<Vec<_>>())
        .collect::<Vec<_>>())
}
