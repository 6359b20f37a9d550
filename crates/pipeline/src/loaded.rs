//! The loaded model folders: each model with its folder and the digests of the files
//! loading read (for meta.json and the cache key), and which model draws what.

use std::path::{Path, PathBuf};

use mmgen_models::grounded::planner::Planner;
use mmgen_models::grounded::{GroundedRenderer, TrajectoryNet};
use mmgen_models::hybrid_image::HybridImage;
use mmgen_models::hybrid_video::HybridVideo;
use serde_json::json;

use crate::cache;
use crate::error::{PipelineError, Result};

/// A loaded model, its folder and the SHA-256 of its weights (in meta.json) and of
/// every file of the folder that loading reads (in cache keys).
pub(crate) struct Loaded<M> {
    pub(crate) model: M,
    pub(crate) dir: PathBuf,
    pub(crate) weights_sha256: String,
    pub(crate) folder_sha256: String,
}

/// The files of a model folder that loading reads.
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

impl<M> Loaded<M> {
    pub(crate) fn load(dir: &Path, load: impl FnOnce(&Path) -> mmgen_models::Result<M>) -> Result<Loaded<M>> {
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

    pub(crate) fn json(&self) -> serde_json::Value {
        json!({"folder": self.dir.display().to_string(), "weights_sha256": self.weights_sha256})
    }
}

/// The grounded text-to-image model: planner and renderer.
pub(crate) struct Grounded {
    pub(crate) planner: Loaded<Planner>,
    pub(crate) renderer: Loaded<GroundedRenderer>,
}

/// The model that draws stills.
pub(crate) enum ImageModel {
    /// The end-to-end model (text encoder, DiT, VAE).
    Hybrid(Box<Loaded<HybridImage>>),
    /// The grounded model (planner, renderer).
    Grounded(Box<Grounded>),
}

/// The model that makes clips.
pub(crate) enum VideoModel {
    /// The end-to-end text-to-video model.
    Hybrid(Box<Loaded<HybridVideo>>),
    /// The grounded model's planner and renderer, its plan posed over time by this
    /// trajectory model.
    Grounded(Box<Loaded<TrajectoryNet>>),
}
