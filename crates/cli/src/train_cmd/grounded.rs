//! Training commands of the grounded family: planner, renderer, trajectory model,
//! music planner, note model, synthesiser and scene editor.

use super::*;

#[derive(Args)]
pub struct EditorArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    /// The trained tokenizer, copied into the editor folder (the planner's, so that its
    /// text encoder can start the editor's).
    #[arg(long, default_value = "models/grounded-planner/tokenizer.json")]
    tokenizer: PathBuf,
    /// A planner folder with the same tokenizer whose trained text encoder starts a new editor.
    #[arg(long)]
    text_from: Option<PathBuf>,
}

#[derive(Args)]
pub struct MusicPlannerArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    /// The trained tokenizer (`mmgen train tokenizer`), copied into the planner folder.
    #[arg(long, default_value = "models/grounded-planner/tokenizer.json")]
    tokenizer: PathBuf,
    /// Adds what new planners have to a resumed planner that lacks it: attention
    /// pooling (a learned query per attribute over the tokens), lexical heads (the
    /// instrument, mood and ambience read the words' own embeddings), the medium
    /// head (a still, a clip or sound alone) and the digit reader (a stated tempo read
    /// digit by digit).
    #[arg(long)]
    upgrade: bool,
}

#[derive(Args)]
pub struct PlannerArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    /// The trained tokenizer (`mmgen train tokenizer`), copied into the planner folder.
    #[arg(long, default_value = "models/hybrid-image/tokenizer.json")]
    tokenizer: PathBuf,
    /// A hybrid model folder with the same tokenizer whose trained text encoder starts the run.
    #[arg(long)]
    text_from: Option<PathBuf>,
    /// Offset bins per side of the relative centre grid (places an object beside the
    /// previous one); resuming a planner without one adds it [default: 24 for a new planner]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    relative_bins: Option<u32>,
    /// Share of training captions that describe a pair placed by a relation ("a star
    /// below the circle"); 0 keeps the world's own mix (about a tenth).
    #[arg(long, default_value_t = 0.0, value_parser = share_value)]
    relation_share: f64,
}

fn share_value(text: &str) -> std::result::Result<f64, String> {
    crate::sampling::number_in(text, 0.0, 1.0)
}

#[derive(Args)]
pub struct RendererArgs {
    #[command(flatten)]
    pub(super) train: TrainArgs,
    #[command(flatten)]
    denoiser: DenoiserArgs,
    /// Extra loss weight of the pixels near objects (they cover a tenth of the canvas).
    #[arg(long, default_value_t = 3.0)]
    object_weight: f64,
    /// Weight of the object fields' occupancy cross-entropy.
    #[arg(long, default_value_t = 0.1)]
    occupancy_weight: f64,
    /// What the network predicts [default: the config's, or the resumed folder's].
    /// Resuming with another target restarts the output layers at zero.
    #[arg(long, value_enum)]
    prediction: Option<PredictionArg>,
    /// How the network's output becomes the prediction (edm: Karras et al.'s skip and
    /// scalings, for --prediction sample) [default: the config's, or the resumed
    /// folder's]. Changing it on resume also restarts the output layers.
    #[arg(long, value_enum)]
    preconditioning: Option<PreconditioningArg>,
    /// Share of samples that are frames at random clip times (moving poses, the light
    /// of that moment) instead of stills, 0 to 1; above 0 the renderer learns to draw
    /// clips (it then reads each frame's clip time).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    clip_share: f64,
    /// Adds the pixel head (every trunk cell's map from the grounding channels to its
    /// pixels' colour, starting at zero) to a resumed renderer that lacks it; new
    /// renderers have it.
    #[arg(long)]
    pixel_head: bool,
}

/// `--preconditioning`'s values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PreconditioningArg {
    /// The output is the prediction.
    Plain,
    /// EDM's skip and scalings.
    Edm,
}

pub(super) fn planner(args: PlannerArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let config = if args.train.tiny {
        PlannerConfig::tiny(world_vocab(), tokenizer.vocab_size())
    } else {
        PlannerConfig::base(world_vocab(), tokenizer.vocab_size())
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_planner(
        &config,
        &tokenizer,
        &PlannerOptions {
            text_from: args.text_from.as_deref(),
            relative_bins: args.relative_bins.map(|n| n as usize),
            relation_share: args.relation_share,
        },
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&record["accuracy"]["by_split"])?);
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

pub(super) fn music_planner(args: MusicPlannerArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let (vocab, range) = (world_music_vocab(), world_tempo_range());
    let config = if args.train.tiny {
        MusicPlannerConfig::tiny(vocab, tokenizer.vocab_size(), range)
    } else {
        MusicPlannerConfig::base(vocab, tokenizer.vocab_size(), range)
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_music_planner(
        &config,
        &args.tokenizer,
        args.upgrade,
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&record["accuracy"]["final"])?);
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

pub(super) fn editor(args: EditorArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let config = if args.train.tiny {
        EditorConfig::tiny(world_vocab(), tokenizer.vocab_size())
    } else {
        EditorConfig::base(world_vocab(), tokenizer.vocab_size())
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_editor(
        &config,
        &tokenizer,
        args.text_from.as_deref(),
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&record["accuracy"]["final"])?);
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

/// A model trained by `train(config, fit, run, device, progress)` on TrainArgs alone:
/// the run's `shown` record is printed when it ends.
type Trainer<C> = fn(
    &C,
    &FitOptions,
    &RunInfo,
    &candle_core::Device,
    &mut dyn FnMut(&StepReport),
) -> mmgen_train::Result<serde_json::Value>;

pub(super) fn train_simple<C>(args: TrainArgs, config: C, train: Trainer<C>, shown: &[&str]) -> Result<()> {
    let fit = fit_options(&args)?;
    let bar = bar(&args);
    let mut progress = |r: &StepReport| report(&bar, r, args.max_minutes.is_some());
    let record = train(&config, &fit, &run_info(&args), &args.device.open()?, &mut progress)?;
    bar.finish();
    let shown = shown.iter().fold(&record, |value, key| &value[key]);
    println!("{}", serde_json::to_string_pretty(shown)?);
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

pub(super) fn trajectory(args: TrainArgs) -> Result<()> {
    let motions = world_motions();
    let config = match args.tiny {
        true => TrajectoryConfig::tiny(motions),
        false => TrajectoryConfig::base(motions),
    };
    train_simple(
        args,
        config,
        |c, f, r, d, p| train_trajectory(c, f, r, d, p),
        &["error", "final"],
    )
}

pub(super) fn notes(args: TrainArgs) -> Result<()> {
    let vocab = world_score_vocab();
    let config = match args.tiny {
        true => NoteModelConfig::tiny(vocab),
        false => NoteModelConfig::base(vocab),
    };
    train_simple(args, config, |c, f, r, d, p| train_notes(c, f, r, d, p), &["scores"])
}

pub(super) fn synth(args: TrainArgs) -> Result<()> {
    let timbres = world_timbres();
    let config = match args.tiny {
        true => SynthConfig::tiny(timbres),
        false => SynthConfig::base(timbres),
    };
    train_simple(
        args,
        config,
        |c, f, r, d, p| train_synth(c, f, r, d, p),
        &["stft_loss", "final"],
    )
}

pub(super) fn renderer(args: RendererArgs) -> Result<()> {
    let vocab = world_vocab();
    let config = if args.train.tiny {
        GroundedRendererConfig::tiny(vocab)
    } else {
        GroundedRendererConfig::base(vocab)
    };
    for (flag, value) in [
        ("--object-weight", args.object_weight),
        ("--occupancy-weight", args.occupancy_weight),
    ] {
        if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
            anyhow::bail!("{flag} {value} is out of range; allowed 0 to 100");
        }
    }
    let options = RendererOptions {
        p_uncond: args.denoiser.p_uncond,
        ema_decay: args.denoiser.ema_decay,
        object_weight: args.object_weight,
        occupancy_weight: args.occupancy_weight,
        prediction: args.prediction.map(Into::into),
        preconditioning: args.preconditioning.map(|p| match p {
            PreconditioningArg::Plain => Preconditioning::Plain,
            PreconditioningArg::Edm => Preconditioning::Edm,
        }),
        clip_share: args.clip_share,
        pixel_head: args.pixel_head,
        ..RendererOptions::default()
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_renderer(
        &config,
        &options,
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "validation": record["validation"],
            "samples_per_s": record["samples_per_s"],
            "steps_done": record["steps_done"],
        }))?
    );
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}
