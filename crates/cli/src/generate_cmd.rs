//! `mmgen generate`: a prompt in, media out, on the shipped models.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_models::hybrid_image::{HybridImage, ImageRequest, ImageSettings};

use crate::device::DeviceArg;
use crate::sampling::SamplingArgs;

#[derive(Args)]
pub struct GenerateArgs {
    /// What to make, in English or Chinese.
    prompt: String,
    /// Output folder (image.png).
    #[arg(long, default_value = "out/generate")]
    out: PathBuf,
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
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty; say what to make, e.g. mmgen generate \"a red star over the sea at sunset\"");
    }
    let device = args.device.open()?;
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
    let settings = ImageSettings {
        negative: args.negative.clone(),
        init,
        mask,
        ..args.sampling.image_settings()
    };
    settings.check()?;
    let start = Instant::now();
    let model = HybridImage::load(&args.model, &device).with_context(|| {
        format!(
            "cannot load the text-to-image model from {} (models/README.md says how it is trained)",
            args.model.display()
        )
    })?;
    let loaded = start.elapsed().as_secs_f64();
    let bar = ProgressBar::new(args.sampling.steps).with_style(
        ProgressStyle::with_template("{spinner} generate [{bar:30}] {pos}/{len} steps ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let request = ImageRequest {
        prompt: args.prompt.clone(),
        seed: args.seed,
    };
    let images = model.generate(&[request], &settings, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64() - loaded;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join("image.png");
    let mut settings_json = serde_json::json!({
        "model": args.model.display().to_string(),
        "negative": args.negative,
        "init": args.init.as_ref().map(|p| p.display().to_string()),
        "strength": args.init.as_ref().map(|_| args.strength),
        "mask": args.mask.as_ref().map(|p| p.display().to_string()),
    });
    if let (Some(all), serde_json::Value::Object(sampling)) = (settings_json.as_object_mut(), args.sampling.to_json()) {
        all.extend(sampling);
    }
    let settings_text = settings_json.to_string();
    let seed = args.seed.to_string();
    mmgen_media::write_png(
        &path,
        &images[0],
        &[("prompt", &args.prompt), ("seed", &seed), ("settings", &settings_text)],
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {} ({}x{}, {} steps in {:.2} s, model loaded in {:.2} s)",
        path.display(),
        images[0].width(),
        images[0].height(),
        args.sampling.steps,
        seconds,
        loaded
    );
    Ok(())
}
