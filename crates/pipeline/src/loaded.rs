//! The loaded model folders: each model with its folder and the digests of the files
//! loading read (for meta.json and the cache key), which model draws what, and the
//! pipeline's constructors that load them.

use std::path::{Path, PathBuf};

use candle_core::Device;
use mmgen_models::grounded::planner::Planner;
use mmgen_models::grounded::{GroundedRenderer, TrajectoryNet};
use mmgen_models::hybrid_image::HybridImage;
use mmgen_models::hybrid_video::HybridVideo;
use mmgen_models::weights::FolderFiles;
use serde_json::json;

use crate::cache::{self, Cache};
use crate::error::{PipelineError, Result};
use crate::sound::AudioModel;
use crate::Pipeline;

/// A loaded model, its folder and the SHA-256 of its weights (in meta.json) and of
/// every file of the folder that loading reads (in cache keys).
pub(crate) struct Loaded<M> {
    pub(crate) model: M,
    pub(crate) dir: PathBuf,
    pub(crate) weights_sha256: String,
    pub(crate) folder_sha256: String,
}

impl<M> Loaded<M> {
    /// Reads the folder's files once, builds the model from them with `build` and
    /// hashes the same bytes.
    pub(crate) fn load(dir: &Path, build: impl FnOnce(&FolderFiles) -> mmgen_models::Result<M>) -> Result<Loaded<M>> {
        let files = FolderFiles::read(dir)?;
        let model = build(&files)?;
        let mut folder = cache::KeyBuilder::new("model-folder");
        // A renderer has no tokenizer: an absent file is a part of its own (an empty digest).
        for (name, bytes) in files.parts() {
            folder = folder.part(name, bytes.map(cache::sha256_hex).unwrap_or_default().as_bytes());
        }
        Ok(Loaded {
            model,
            dir: dir.to_path_buf(),
            weights_sha256: cache::sha256_hex(&files.weights),
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

/// Building a pipeline: the image model, then the video, sound and cache it may add.
impl Pipeline {
    /// Loads the text-to-image model folder `image_dir` onto `device` (the only model
    /// every package may need; add the others with [`Self::with_video`] and
    /// [`Self::with_audio`]).
    pub fn load(image_dir: &Path, device: &Device) -> Result<Pipeline> {
        Ok(Pipeline {
            image: ImageModel::Hybrid(Box::new(Loaded::load(image_dir, |files| {
                HybridImage::from_files(files, device)
            })?)),
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
                planner: Loaded::load(planner, |files| Planner::from_files(files, device))?,
                renderer: Loaded::load(renderer, |files| GroundedRenderer::from_files(files, device))?,
            })),
            video: None,
            audio: None,
            cache: None,
        })
    }

    /// Adds the end-to-end text-to-video model folder `dir`.
    pub fn with_video(mut self, dir: &Path, device: &Device) -> Result<Pipeline> {
        self.video = Some(VideoModel::Hybrid(Box::new(Loaded::load(dir, |files| {
            HybridVideo::from_files(files, device)
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
        self.video = Some(VideoModel::Grounded(Box::new(Loaded::load(dir, |files| {
            TrajectoryNet::from_files(files, device)
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
}
