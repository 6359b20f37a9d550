//! `mmgen eval-probe`, `calibrate-probe`, `eval-vae` and `eval-vocoder`: the probes'
//! own accuracy, their calibration, and the hybrid family's VAE and vocoder measured
//! alone.

use super::*;

#[derive(Args)]
pub struct EvalProbeArgs {
    /// Which probe: `image` (the whole image reading: detector and shape probe), `video`
    /// (per-object motion, from true tracks) or `audio` (instrument, mood, tempo).
    #[arg(long, value_enum, default_value_t = MediumArg::Image)]
    task: MediumArg,
    /// The probe folder [default: models/probe-image, -video or -audio by --task].
    #[arg(long)]
    probe: Option<PathBuf>,
    #[command(flatten)]
    shapes: ShapeProbeArgs,
    /// Fresh renders (clips for --task video and audio) per split.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    n: u64,
    /// Seed of the renders.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// --task image: also read every frame of this many fresh clips per split (what the
    /// video task reads: moving, spinning, growing objects, changing light); 0: still
    /// renders only [default: 200].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    clips: Option<u64>,
    /// --task image: frames per clip of --clips [default: 24].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    frames: Option<u32>,
    /// Where the probes (and generators) run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

impl EvalProbeArgs {
    /// The probe folder: --probe, or the shipped one of --task.
    fn probe_dir(&self) -> PathBuf {
        self.probe
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("models/probe-{}", self.task)))
    }

    /// Refuses the flags that only the image reading has, naming the first one given.
    fn refuse_image_flags(&self) -> Result<()> {
        let given = [
            ("--shape-probe", self.shapes.shape_probe.is_some()),
            ("--no-shape-probe", self.shapes.no_shape_probe),
            ("--clips", self.clips.is_some()),
            ("--frames", self.frames.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} is a setting of --task image (the image reading); --task is {}",
                self.task
            );
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct CalibrateProbeArgs {
    /// The image probe folder (its config.json and metrics.json are rewritten).
    #[arg(long, default_value = "models/probe-image")]
    probe: PathBuf,
    #[command(flatten)]
    shapes: ShapeProbeArgs,
    /// Fresh renders for the calibration (training split) and for each split's accuracy.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    n: u64,
    /// Fresh 24-frame clips per split whose every frame is read too (recorded as
    /// `clip_frames`, reported by `mmgen eval --task video`); 0: none.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    clips: u64,
    /// Seed of the renders.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where the probe runs: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run_probe(args: EvalProbeArgs) -> Result<()> {
    let device = args.device.open()?;
    let dir = args.probe_dir();
    let (n, seed) = (args.n as usize, args.seed);
    let mut out = serde_json::Map::new();
    out.insert("task".into(), args.task.name().into());
    out.insert("probe".into(), dir.display().to_string().into());
    if args.task != MediumArg::Image {
        args.refuse_image_flags()?;
    }
    let flag = || format!("--probe {}", dir.display());
    let accuracy = match args.task {
        MediumArg::Image => image_reading_accuracy(&args, &dir, &device)?,
        MediumArg::Video => {
            let probe = load_video_probe(&dir, &device).with_context(flag)?;
            eprintln!("reading the motion of every object of {n} fresh clips per split, from true tracks ...");
            accuracy_by_split(|split| video_probe_accuracy(&probe, n, seed, split, &device))?
        }
        MediumArg::Audio => {
            let probe = load_audio_probe(&dir, &device).with_context(flag)?;
            eprintln!("hearing {n} fresh clips per split ...");
            accuracy_by_split(|split| audio_probe_accuracy(&probe, n, seed, split, &device))?
        }
    };
    out.extend(accuracy);
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The whole image reading (detector and shape probe) on still renders, and on every
/// frame of `--clips` clips per split (`clip_frames`).
fn image_reading_accuracy(
    args: &EvalProbeArgs,
    dir: &std::path::Path,
    device: &Device,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let shape_probe = args.shapes.resolve(dir);
    let probe = load_image_probe(dir, shape_probe.as_deref(), device)
        .with_context(|| probe_flags(dir, shape_probe.as_deref()))?;
    let mut out = serde_json::Map::new();
    out.insert(
        "shape_probe".into(),
        shape_probe.as_ref().map(|d| d.display().to_string()).into(),
    );
    out.insert("detection_threshold".into(), probe.config().detection_threshold.into());
    out.extend(accuracy_by_split(|split| {
        image_probe_accuracy(&probe, args.n as usize, args.seed, split, device)
    })?);
    let (clips, frames) = (args.clips.unwrap_or(DEFAULT_CLIPS), args.frames.unwrap_or(CLIP_FRAMES));
    if clips > 0 {
        let clip_frames = accuracy_by_split(|split| {
            eprintln!(
                "reading {frames} frames of each of {clips} {} clips ...",
                format!("{split:?}").to_lowercase()
            );
            clip_frame_accuracy(&probe, clips as usize, frames, args.seed, split, device)
        })?;
        out.insert("clip_frames".into(), clip_frames.into());
    }
    Ok(out)
}

pub fn run_calibrate_probe(args: CalibrateProbeArgs) -> Result<()> {
    let device = args.device.open()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let shape_probe = args.shapes.resolve(&args.probe);
    eprintln!(
        "calibrating on {} train-split renders, then reading {} renders and every frame of {} clips per split ...",
        args.n, args.n, args.clips
    );
    let record = recalibrate_image_probe(
        &args.probe,
        shape_probe.as_deref(),
        args.n as usize,
        args.clips as usize,
        args.seed,
        command,
        &device,
    )
    .with_context(|| probe_flags(&args.probe, shape_probe.as_deref()))?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    println!(
        "wrote {} (detection_threshold) and the accuracy at it to {}",
        args.probe.join("config.json").display(),
        args.probe.join("metrics.json").display()
    );
    Ok(())
}

#[derive(Args)]
pub struct EvalVaeArgs {
    /// The VAE folder (`mmgen train vae`).
    #[arg(long, default_value = "models/vae")]
    vae: PathBuf,
    /// Fresh held-out renders to reconstruct.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    n: u64,
    /// Seed of the renders.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where to write the contact sheet (originals above, reconstructions below).
    #[arg(long, default_value = "out/vae.png")]
    out: PathBuf,
    /// Where the VAE runs: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

/// Reconstructs fresh world renders through a VAE: PSNR and a contact sheet to look at.
pub fn run_vae(args: EvalVaeArgs) -> Result<()> {
    let device = args.device.open()?;
    let trained = TrainedVae::load(&args.vae).with_context(|| format!("--vae {}", args.vae.display()))?;
    let vae = Vae::new(
        &trained.config,
        candle_nn::VarBuilder::from_tensors(trained.tensors, candle_core::DType::F32, &device),
    )?;
    let size = trained.config.image_size as u32;
    let sampler = mmgen_world::SpecSampler::default();
    let originals: Vec<image::RgbImage> = (0..args.n)
        .map(|i| {
            let seed = mmgen_world::rng::mix64(args.seed ^ i);
            mmgen_world::render_image(&sampler.sample(Split::Heldout, seed), seed, size, size)
        })
        .collect::<mmgen_world::Result<_>>()?;
    let xs = images_to_tensor(&originals, &device)?;
    let out = vae.decode(&vae.encode(&xs)?.mean)?;
    let psnr = psnr(&out, &xs)?;
    let recon = tensor_to_images(&out)?;
    let mut sheet = image::RgbImage::new(size * args.n as u32, 2 * size);
    for (i, (a, b)) in originals.iter().zip(&recon).enumerate() {
        image::imageops::replace(&mut sheet, a, (i as u32 * size) as i64, 0);
        image::imageops::replace(&mut sheet, b, (i as u32 * size) as i64, size as i64);
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    mmgen_media::write_png(&args.out, &sheet, &[("psnr_db", &format!("{psnr:.2}"))])?;
    println!(
        "PSNR {psnr:.2} dB over {} held-out renders; contact sheet {}",
        args.n,
        args.out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct EvalVocoderArgs {
    /// The audio probe folder (`mmgen train probe-audio`).
    #[arg(long, default_value = "models/probe-audio")]
    probe: PathBuf,
    /// Fresh world clips (their length is the probe's).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    n: u64,
    /// Griffin-Lim iterations.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1000))]
    iters: u64,
    /// Mel bands.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(8..=256))]
    mels: u64,
    /// FFT size (window length); the hop is a quarter of it.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(16..=8192))]
    n_fft: u64,
    /// Which side of the compositional split the clips come from.
    #[arg(long, value_enum, default_value_t = SplitArg::Heldout)]
    split: SplitArg,
    /// Seed of the clips and phases.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the first 3 clips and their vocoded versions here (WAV) to listen to.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the probe runs: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What the audio probe still hears after log-mel -> Griffin-Lim.
pub fn run_vocoder(args: EvalVocoderArgs) -> Result<()> {
    let device = args.device.open()?;
    let probe = load_audio_probe(&args.probe, &device).with_context(|| format!("--probe {}", args.probe.display()))?;
    let config = probe.config();
    let mel = mmgen_models::mel::MelConfig {
        sample_rate: config.sample_rate,
        n_mels: args.mels as usize,
        n_fft: args.n_fft as usize,
        hop: args.n_fft as usize / 4,
        f_max: config.sample_rate as f32 / 2.0,
        ..Default::default()
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let split: Split = args.split.into();
    let bar = ProgressBar::new(args.n).with_style(
        ProgressStyle::with_template("{spinner} vocoding [{bar:30}] {pos}/{len} clips ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut write_error = None;
    let report = mmgen_eval::vocoder::vocoder_report(
        &probe,
        &mel,
        mmgen_eval::vocoder::VocoderRun {
            clips: args.n as usize,
            iters: args.iters as usize,
            seed: args.seed,
            split,
        },
        &device,
        |i, original, vocoded| {
            bar.set_position(i as u64 + 1);
            if let (Some(dir), true) = (&args.out, i < 3) {
                for (name, samples) in [("original", original), ("vocoded", vocoded)] {
                    let path = dir.join(format!("{i}-{name}.wav"));
                    if let Err(e) = mmgen_media::write_wav(&path, samples, config.sample_rate) {
                        write_error.get_or_insert(e);
                    }
                }
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} {} clips of {} s, {}",
        report["clips"],
        format!("{:?}", split).to_lowercase(),
        report["seconds_of_audio_per_clip"],
        report["vocoder"].as_str().unwrap_or("")
    );
    println!("{:<22} {:>9} {:>9}", "probe reads", "original", "vocoded");
    if let Some(original) = report["accuracy_original"].as_object() {
        for (k, v) in original {
            let vocoded = report["accuracy_vocoded"][k]["accuracy"].as_f64().unwrap_or(f64::NAN);
            println!(
                "{k:<22} {:>9.3} {vocoded:>9.3}",
                v["accuracy"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    println!(
        "spectral convergence {:.3}; vocoder {:.3} s per clip",
        report["spectral_convergence"].as_f64().unwrap_or(f64::NAN),
        report["vocoder_seconds_per_clip"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}
