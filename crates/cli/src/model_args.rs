//! The model folders of a pipeline, as flags shared by `mmgen generate` and `mmgen
//! serve`, and the pipeline they load.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use mmgen_pipeline::{Cache, Pipeline};

use crate::device::DeviceArg;

/// Which models make each modality, where they run, and the cache of finished
/// requests.
#[derive(Args)]
pub struct ModelArgs {
    /// Cache folder of finished requests [default: $MMGEN_CACHE, $XDG_CACHE_HOME/mmgen
    /// or ~/.cache/mmgen].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Run the models even for a request made before, and store nothing.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// The end-to-end text-to-image model folder. Stills are drawn by the grounded
    /// model (--planner, --renderer) unless this is given.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The grounded model's planner folder (prompt -> scene plan).
    #[arg(long, default_value = "models/grounded-planner")]
    planner: PathBuf,
    /// The grounded model's renderer folder (scene plan -> image).
    #[arg(long, default_value = "models/grounded-renderer")]
    renderer: PathBuf,
    /// The grounded model's trajectory folder (plan -> poses over a clip): clips are
    /// drawn by the grounded model when it exists and no --video-model is given
    /// [default: models/grounded-trajectory].
    #[arg(long, conflicts_with_all = ["model", "video_model"])]
    trajectory: Option<PathBuf>,
    /// The end-to-end text-to-video model folder, the baseline [default:
    /// models/hybrid-video, when it exists and the grounded model makes no clips].
    #[arg(long)]
    video_model: Option<PathBuf>,
    /// The grounded sound's music planner folder (prompt -> instrument, mood, tempo): the
    /// sound is the grounded model's when its three folders exist and no --audio-model
    /// is given [default: models/grounded-music-planner].
    #[arg(long, conflicts_with = "audio_model")]
    music_planner: Option<PathBuf>,
    /// The grounded sound's note model folder (attributes -> score) [default:
    /// models/grounded-notes].
    #[arg(long, conflicts_with = "audio_model")]
    notes: Option<PathBuf>,
    /// The grounded sound's synthesiser folder (score -> audio) [default:
    /// models/grounded-synth].
    #[arg(long, conflicts_with = "audio_model")]
    synth: Option<PathBuf>,
    /// The end-to-end text-to-audio model folder, the baseline [default:
    /// models/hybrid-audio, when it exists and the grounded sound models do not].
    #[arg(long)]
    audio_model: Option<PathBuf>,
}

impl ModelArgs {
    /// The device the models run on.
    pub fn device(&self) -> Result<Device> {
        self.device.open()
    }

    /// The pipeline over these folders, on this device, with this cache.
    pub fn pipeline(&self) -> Result<Pipeline> {
        let cache = open_cache(self.no_cache, self.cache.as_ref());
        Ok(self.load(&self.device.open()?)?.with_cache(cache))
    }

    /// The pipeline over these folders: the image model, and the video and sound
    /// models whose folders exist. A default video or audio folder that is absent is
    /// no error (a request that needs it says so); a folder given by name must load.
    fn load(&self, device: &Device) -> Result<Pipeline> {
        let mut pipeline = match &self.model {
            Some(model) => Pipeline::load(model, device).with_context(|| {
                format!(
                    "--model {}: cannot load the text-to-image model (models/README.md says how it is trained)",
                    model.display()
                )
            })?,
            None => Pipeline::grounded(&self.planner, &self.renderer, device).with_context(|| {
                format!(
                    "--planner {} --renderer {}: cannot load the grounded text-to-image model (models/README.md says how it is trained)",
                    self.planner.display(),
                    self.renderer.display()
                )
            })?,
        };
        let trajectory = match (&self.model, &self.video_model) {
            (None, None) => optional_folder(&self.trajectory, "models/grounded-trajectory"),
            _ => None,
        };
        let sound = self.sound_folders()?;
        let (video, audio) = (
            optional_folder(&self.video_model, "models/hybrid-video").filter(|_| trajectory.is_none()),
            optional_folder(&self.audio_model, "models/hybrid-audio").filter(|_| sound.is_none()),
        );
        if let Some(dir) = trajectory {
            pipeline = pipeline
                .with_grounded_video(&dir, device)
                .with_context(|| format!("--trajectory {}: cannot load the trajectory model", dir.display()))?;
        } else if let Some(dir) = video {
            pipeline = pipeline
                .with_video(&dir, device)
                .with_context(|| format!("--video-model {}: cannot load the text-to-video model", dir.display()))?;
        }
        if let Some([planner, notes, synth]) = sound {
            pipeline = pipeline
                .with_grounded_audio(&planner, &notes, &synth, device)
                .with_context(|| {
                    format!(
                        "--music-planner {} --notes {} --synth {}: cannot load the grounded sound models",
                        planner.display(),
                        notes.display(),
                        synth.display()
                    )
                })?;
        } else if let Some(dir) = audio {
            pipeline = pipeline
                .with_audio(&dir, device)
                .with_context(|| format!("--audio-model {}: cannot load the text-to-audio model", dir.display()))?;
        }
        Ok(pipeline)
    }

    /// The grounded sound's three folders (music planner, notes, synthesiser), when
    /// no --audio-model is given and all three exist or are named.
    fn sound_folders(&self) -> Result<Option<[PathBuf; 3]>> {
        if self.audio_model.is_some() {
            return Ok(None);
        }
        let folders = [
            optional_folder(&self.music_planner, "models/grounded-music-planner"),
            optional_folder(&self.notes, "models/grounded-notes"),
            optional_folder(&self.synth, "models/grounded-synth"),
        ];
        match folders {
            [Some(planner), Some(notes), Some(synth)] => Ok(Some([planner, notes, synth])),
            // One named while another default is absent: say which.
            _ if self.music_planner.is_some() || self.notes.is_some() || self.synth.is_some() => {
                let flags = ["--music-planner", "--notes", "--synth"];
                let missing: Vec<&str> = flags
                    .iter()
                    .zip(&folders)
                    .filter(|(_, f)| f.is_none())
                    .map(|(flag, _)| *flag)
                    .collect();
                anyhow::bail!(
                    "--music-planner, --notes and --synth make the sound together; give {} as well (its default folder is absent)",
                    missing.join(" and ")
                )
            }
            _ => Ok(None),
        }
    }
}

/// The exact-request cache: none with `--no-cache`, the folder `--cache` names, or
/// the default one. A cache the user named that cannot be written is said now, under
/// its flag; requests still run, unstored.
fn open_cache(no_cache: bool, dir: Option<&PathBuf>) -> Option<Cache> {
    match (no_cache, dir) {
        (true, _) => None,
        (false, Some(dir)) => {
            let cache = Cache::new(dir);
            match cache.check_writable() {
                Ok(()) => Some(cache),
                Err(e) => {
                    eprintln!("warning: --cache {e}; requests will not be stored");
                    None
                }
            }
        }
        (false, None) => Cache::default_dir().map(Cache::new),
    }
}

/// The folder given, or the default one when it exists.
fn optional_folder(given: &Option<PathBuf>, default: &str) -> Option<PathBuf> {
    match given {
        Some(dir) => Some(dir.clone()),
        None => Some(PathBuf::from(default)).filter(|d| d.exists()),
    }
}
