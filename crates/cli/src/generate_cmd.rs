//! `mmgen generate`: a prompt in, a package of files out, on the shipped models
//! (through `mmgen-pipeline`: plan, cache, generate, compose).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_pipeline::{Cache, CacheOutcome, Modality, Pipeline, Request};

use crate::device::DeviceArg;
use crate::sampling::SamplingArgs;

#[derive(Args)]
pub struct GenerateArgs {
    /// What to make, in English or Chinese.
    prompt: String,
    /// Output folder (image.png, caption.txt, meta.json).
    #[arg(long, default_value = "out/generate")]
    out: PathBuf,
    /// What to make, comma-separated (image, video, audio); by default read from the
    /// prompt ("video", "视频" add video; "music", "配乐" add audio; else an image).
    #[arg(long)]
    modalities: Option<String>,
    /// The text-to-image model folder.
    #[arg(long, default_value = "models/hybrid-image")]
    model: PathBuf,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// What to steer away from.
    #[arg(long, default_value = "")]
    negative: String,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// img2img: start from this image (PNG/GIF; resized to the model's size).
    #[arg(long)]
    init: Option<PathBuf>,
    /// How much of the init image to redo (0 to 1; with --init).
    #[arg(long, default_value_t = 0.75)]
    strength: f64,
    /// Inpainting: white where to generate, black where to keep --init.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Cache folder of finished requests [default: $MMGEN_CACHE, $XDG_CACHE_HOME/mmgen
    /// or ~/.cache/mmgen].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Run the models even if this request was made before, and store nothing.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty; say what to make, e.g. mmgen generate \"a red star over the sea at sunset\"");
    }
    let modalities = args.modalities.as_deref().map(Modality::parse_list).transpose()?;
    let open = |path: &PathBuf, what: &str| {
        image::open(path).with_context(|| format!("--{what} {}: cannot read the image", path.display()))
    };
    let init = match &args.init {
        Some(path) => Some((open(path, "init")?.to_rgb8(), args.strength)),
        None => None,
    };
    if args.init.is_none() && args.strength != 0.75 {
        bail!("--strength needs --init (the image to start from)");
    }
    let mask = match &args.mask {
        Some(path) => Some(open(path, "mask")?.to_luma8()),
        None => None,
    };
    let request = Request {
        prompt: args.prompt.clone(),
        seed: args.seed,
        modalities,
        image: ImageSettings {
            negative: args.negative.clone(),
            init,
            mask,
            ..args.sampling.image_settings()
        },
    };
    request.image.check()?;
    let cache = match (args.no_cache, &args.cache) {
        (true, _) => None,
        (false, Some(dir)) => Some(Cache::new(dir)),
        (false, None) => Cache::default_dir().map(Cache::new),
    };
    let device = args.device.open()?;
    let pipeline = Pipeline::load(&args.model, &device)
        .with_context(|| {
            format!(
                "cannot load the text-to-image model from {} (models/README.md says how it is trained)",
                args.model.display()
            )
        })?
        .with_cache(cache);
    let bar = ProgressBar::new(args.sampling.steps).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} steps ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let package = pipeline.generate(&request, &args.out, &mut |stage, done, total| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let how = match package.cache {
        CacheOutcome::Hit => "from the cache".to_string(),
        CacheOutcome::Miss | CacheOutcome::Off => format!(
            "{} {} steps, guidance {}",
            args.sampling.steps, args.sampling.sampler, args.sampling.guidance
        ),
    };
    eprintln!(
        "wrote {} in {} ({how}, {:.2} s)",
        package.files.join(", "),
        args.out.display(),
        package.seconds
    );
    Ok(())
}
