//! Training commands of the hybrid family (VAE, text to image, video and audio) and
//! of the tokenizer they share with the grounded models.

use super::*;

#[derive(Args)]
pub struct TextVideoArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    #[command(flatten)]
    denoiser: DenoiserArgs,
    /// The trained text-to-image model folder to inflate (text encoder, VAE, DiT, tokenizer).
    #[arg(long, default_value = "models/hybrid-image")]
    image_model: PathBuf,
    /// Frames per training window (the span of temporal attention; longer clips are generated as overlapping windows).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=64))]
    window: u64,
    /// Frames of the world clips the windows are cut from (the clip length generation defaults to).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(2..=512))]
    clip_frames: u64,
    /// Frame rate recorded in the model.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=120))]
    fps: u32,
}

#[derive(Args)]
pub struct TextAudioArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    #[command(flatten)]
    denoiser: DenoiserArgs,
    /// The trained tokenizer (`mmgen train tokenizer`).
    #[arg(long)]
    tokenizer: PathBuf,
    /// A hybrid model folder with the same tokenizer whose text encoder starts the run.
    #[arg(long)]
    text_from: Option<PathBuf>,
}

#[derive(Args)]
pub struct TokenizerArgs {
    /// Output file (tokenizer.json).
    #[arg(long)]
    out: PathBuf,
    /// Tokens in the vocabulary.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(300..=65_536))]
    vocab: u64,
    /// World scenes whose captions (2 languages x 3 media each) form the corpus.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    scenes: u64,
    /// Seed of the corpus.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct VaeArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    /// Weight of the KL term per pixel.
    #[arg(long, default_value_t = 1e-5)]
    kl_weight: f64,
}

#[derive(Args)]
pub struct TextImageArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    /// The trained VAE folder (`mmgen train vae`).
    #[arg(long)]
    vae: PathBuf,
    /// The trained tokenizer (`mmgen train tokenizer`).
    #[arg(long)]
    tokenizer: PathBuf,
    #[command(flatten)]
    denoiser: DenoiserArgs,
}

pub(super) fn tokenizer(args: TokenizerArgs) -> Result<()> {
    let start = std::time::Instant::now();
    eprintln!(
        "training a {}-token BPE on the captions of {} world scenes ...",
        args.vocab, args.scenes
    );
    let tok = train_tokenizer(args.scenes as usize, args.vocab as usize, args.seed)?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    tok.save(&args.out)?;
    let sample = "生成一段描述海边日落的短视频,配乐为钢琴曲";
    let ids = tok.encode(sample, 1000)?;
    eprintln!(
        "wrote {} ({} tokens, {:.1} s); {sample:?} is {} tokens ({} bytes)",
        args.out.display(),
        tok.vocab_size(),
        start.elapsed().as_secs_f64(),
        ids.len(),
        sample.len()
    );
    Ok(())
}

pub(super) fn vae(args: VaeArgs) -> Result<()> {
    let config = if args.train.tiny {
        VaeConfig::tiny()
    } else {
        VaeConfig::base()
    };
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_vae(
        &config,
        args.kl_weight,
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "psnr_db": metrics["psnr_db"],
            "latent_scale": metrics["latent_scale"],
            "final_loss": metrics["final_loss"],
        }))?
    );
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

pub(super) fn text_image(args: TextImageArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let vae = TrainedVae::load(&args.vae).with_context(|| "--vae: train one with `mmgen train vae --out DIR`")?;
    let mut config = if args.train.tiny {
        HybridImageConfig::tiny(tokenizer.vocab_size())
    } else {
        HybridImageConfig::base(tokenizer.vocab_size())
    };
    config.vae = vae.config.clone();
    let extra = args.denoiser.options();
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_text_image(
        &config,
        &tokenizer,
        &vae,
        &extra,
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    finish_denoiser(bar, &metrics, &args.train.out, "image")
}

pub(super) fn text_video(args: TextVideoArgs) -> Result<()> {
    if args.train.tiny {
        anyhow::bail!("--tiny: a video model takes its shape from --image-model (inflate a tiny image model instead)");
    }
    let extra = TextVideoOptions {
        denoiser: args.denoiser.options(),
        window: args.window as usize,
        clip_frames: args.clip_frames as usize,
        fps: args.fps,
    };
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_text_video(
        &args.image_model,
        &extra,
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )
    .with_context(|| format!("--image-model {}", args.image_model.display()))?;
    finish_denoiser(bar, &metrics, &args.train.out, "video")
}

pub(super) fn text_audio(args: TextAudioArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let config = if args.train.tiny {
        HybridAudioConfig::tiny(tokenizer.vocab_size())
    } else {
        HybridAudioConfig::base(tokenizer.vocab_size())
    };
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_text_audio(
        &config,
        &tokenizer,
        args.text_from.as_deref(),
        &args.denoiser.options(),
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    finish_denoiser(bar, &metrics, &args.train.out, "audio")
}

/// Prints a diffusion run's summary and how to evaluate what it wrote.
pub(super) fn finish_denoiser(
    bar: ProgressBar,
    metrics: &serde_json::Value,
    out: &std::path::Path,
    task: &str,
) -> Result<()> {
    bar.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "first_loss": metrics["first_loss"],
            "final_loss": metrics["final_loss"],
            "validation_loss": metrics["validation_loss"],
            "samples_per_s": metrics["samples_per_s"],
            "steps_done": metrics["steps_done"],
        }))?
    );
    eprintln!(
        "wrote {}; evaluate with `mmgen eval --task {task} --source hybrid --model {}`",
        out.display(),
        out.display()
    );
    Ok(())
}
