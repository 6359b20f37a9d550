//! `mmgen bench ...`: throughput measurements, written down in docs/speed.md.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::device::DeviceArg;
use crate::sampling::SamplingArgs;
use anyhow::Context;
use mmgen_models::grounded::planner::Planner;
use mmgen_models::grounded::{GroundedRenderer, PlanBatch};
use mmgen_models::hybrid_image::{HybridImage, ImageRequest};
use mmgen_pipeline::{Modality, Pipeline, Request};
use mmgen_train::bench::{bench_training, BENCH_MODELS};
use mmgen_world::rng::mix64;
use mmgen_world::{render_audio, render_image, render_video, SpecSampler, Split, StreamConfig, WorldStream};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Rendering throughput of the world: images, videos, audio, training streams.
    World(WorldBenchArgs),
    /// Training-step time, samples/s and inference latency of each model on a device.
    Train(TrainBenchArgs),
    /// Seconds per generated image (text encoding, all sampler steps with guidance,
    /// VAE decode) of a text-to-image model folder.
    Generate(GenerateBenchArgs),
    /// Seconds per image of the grounded model (plan, then every renderer step), and
    /// of one renderer step.
    Grounded(GroundedBenchArgs),
    /// Seconds per package (`mmgen generate` without the cache): each stage (video,
    /// audio, image) and the whole, on the shipped models.
    Package(PackageBenchArgs),
    /// Peak resident memory of `mmgen generate` (one child process per request) at
    /// several video and audio lengths: flat in the length beyond the result itself.
    Memory(crate::bench_memory::MemoryBenchArgs),
    /// Real-time factor of the grounded sound (music planner, note model,
    /// synthesiser), stage by stage; under `taskset -c 0` for one core.
    Sound(crate::bench_sound::SoundBenchArgs),
}

#[derive(Args)]
pub struct PackageBenchArgs {
    /// The request.
    #[arg(long, default_value = "生成一段描述海边日落的短视频,配乐为钢琴曲")]
    prompt: String,
    /// What to make, comma-separated (image, video, audio); by default read from the prompt.
    #[arg(long)]
    modalities: Option<String>,
    /// Video frames.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=14_400))]
    frames: u64,
    /// Seconds of audio without a video.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The folder holding the models (grounded-planner/, grounded-renderer/,
    /// grounded-trajectory/, grounded-music-planner/, grounded-notes/, grounded-synth/,
    /// hybrid-image/, hybrid-video/, hybrid-audio/).
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Which image and video models: the grounded ones (what `mmgen generate` uses by
    /// default) or the end-to-end baselines.
    #[arg(long, value_enum, default_value_t = PackageModels::Grounded)]
    source: PackageModels,
    /// Timed packages (medians are reported) after one warm-up.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    iters: u32,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct GenerateBenchArgs {
    /// The model folder.
    #[arg(long, default_value = "models/hybrid-image")]
    model: PathBuf,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Timed images (the median is reported) after one warm-up.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    iters: u32,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// Print JSON instead of a line.
    #[arg(long)]
    json: bool,
    /// Also write a reference case (token ids, a noisy latent, the text encoder's and
    /// DiT's outputs, the decoded image) to this safetensors file, so that a peer
    /// implementation (bench/hybrid_image_torch.py) can check it runs the same model.
    #[arg(long)]
    dump: Option<PathBuf>,
}

#[derive(Args)]
pub struct GroundedBenchArgs {
    /// The planner folder.
    #[arg(long, default_value = "models/grounded-planner")]
    planner: PathBuf,
    /// The renderer folder.
    #[arg(long, default_value = "models/grounded-renderer")]
    renderer: PathBuf,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Timed images (the median is reported) after one warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    iters: u32,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
    /// Also write a reference case (two plans, their grounding, noisy images and the
    /// renderer's prediction) to this safetensors file, so that the PyTorch peer
    /// (bench/grounded_renderer_torch.py --check) can show it runs the same network.
    #[arg(long)]
    dump: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainBenchArgs {
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// Models to time, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', default_values_t = BENCH_MODELS.iter().map(|s| s.to_string()))]
    models: Vec<String>,
    /// Samples per training step.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: u64,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    iters: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct WorldBenchArgs {
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    iters: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::World(args) => world(args),
        BenchCommand::Train(args) => train(args),
        BenchCommand::Generate(args) => generate(args),
        BenchCommand::Grounded(args) => grounded(args),
        BenchCommand::Package(args) => package(args),
        BenchCommand::Memory(args) => crate::bench_memory::run(args),
        BenchCommand::Sound(args) => crate::bench_sound::run(args),
    }
}

/// Median seconds of `iters` runs of `f`, after one warm-up run.
fn median_seconds(iters: u32, mut f: impl FnMut(u64) -> Result<()>) -> Result<f64> {
    f(u64::MAX)?;
    let mut times = Vec::with_capacity(iters as usize);
    for i in 0..iters {
        let start = Instant::now();
        f(i as u64)?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

fn world(args: WorldBenchArgs) -> Result<()> {
    let sampler = SpecSampler::default();
    let spec = |i: u64| sampler.sample(Split::Train, mix64(i));
    let per_iter_images = 100u64;
    let images = median_seconds(args.iters, |i| {
        for j in 0..per_iter_images {
            let s = spec(i.wrapping_mul(1000) + j);
            render_image(&s, j, 64, 64)?;
        }
        Ok(())
    })?;
    let image_rate = per_iter_images as f64 / images;
    let video = median_seconds(args.iters, |i| {
        render_video(&spec(i), i, 64, 64, 24)?;
        Ok(())
    })?;
    let music_sampler = SpecSampler {
        p_music: 1.0,
        ..Default::default()
    };
    let audio_seconds = 4.0;
    let audio = median_seconds(args.iters, |i| {
        render_audio(&music_sampler.sample(Split::Train, mix64(i)), i, audio_seconds, 16_000)?;
        Ok(())
    })?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let batch = 32usize;
    let batches = 8usize;
    let stream = median_seconds(args.iters.min(3), |i| {
        let config = StreamConfig {
            workers,
            ..StreamConfig::images(batch, i)
        };
        for b in WorldStream::new(config)?.take(batches) {
            b?;
        }
        Ok(())
    })?;
    let stream_rate = (batch * batches) as f64 / stream;
    let report = serde_json::json!({
        "threads": workers,
        "image_64_per_s_1thread": image_rate,
        "video_24x64_s_1thread": video,
        "audio_4s_realtime_factor_1thread": audio / audio_seconds as f64,
        "stream_images_64_per_s": stream_rate,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "world rendering, median of {} runs ({} threads available)",
            args.iters, workers
        );
        println!("  64x64 images, 1 thread          {:>10.0} images/s", image_rate);
        println!("  24-frame 64x64 video, 1 thread  {:>10.4} s/video", video);
        println!(
            "  4 s audio at 16 kHz, 1 thread   {:>10.4} s ({:.4}x real time)",
            audio,
            audio / audio_seconds as f64
        );
        println!(
            "  image stream, batch {batch}, {workers} workers {:>6.0} samples/s (captions, augmentation, tensors)",
            stream_rate
        );
    }
    Ok(())
}

fn train(args: TrainBenchArgs) -> Result<()> {
    // Unknown names fail before any device work starts.
    if let Some(bad) = args.models.iter().find(|m| !BENCH_MODELS.contains(&m.as_str())) {
        anyhow::bail!("--models: unknown model '{bad}'; allowed: {}", BENCH_MODELS.join(", "));
    }
    let device = args.device.open()?;
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    let mut rows = Vec::new();
    for model in &args.models {
        eprintln!("timing {model} on {} ...", args.device);
        rows.push(bench_training(
            model,
            args.batch as usize,
            args.iters as usize,
            &device,
        )?);
    }
    if args.json {
        let report = serde_json::json!({"device": args.device.to_string(), "threads": threads, "models": rows});
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "training step and inference on {}, batch {}, median of {} runs ({threads} CPU threads)",
        args.device, args.batch, args.iters
    );
    println!(
        "  {:<17} {:>10} {:>10} {:>12} {:>16} {:>12} {:>12}",
        "model", "params", "step ms", "samples/s", "data/s/worker", "infer-1 ms", "infer-B ms"
    );
    for r in &rows {
        println!(
            "  {:<17} {:>10} {:>10.2} {:>12.0} {:>16.0} {:>12.3} {:>12.3}",
            r.model,
            r.parameters,
            r.step_seconds * 1e3,
            r.samples_per_s,
            r.data_samples_per_s_per_worker,
            r.infer_1_seconds * 1e3,
            r.infer_batch_seconds * 1e3
        );
    }
    Ok(())
}

fn grounded(args: GroundedBenchArgs) -> Result<()> {
    let settings = args.sampling.grounded_settings();
    settings.check()?;
    let device = args.device.open()?;
    let planner = Planner::load(&args.planner, &device)
        .with_context(|| format!("--planner {}: cannot load", args.planner.display()))?;
    let renderer = GroundedRenderer::load(&args.renderer, &device)
        .with_context(|| format!("--renderer {}: cannot load", args.renderer.display()))?;
    // Written before the timing, as `bench generate` does: a bad --dump path fails at once.
    if let Some(path) = &args.dump {
        dump_grounded_reference(&planner, &renderer, path, &device)?;
    }
    let prompt = "a red star above a blue circle, sunset over the sea";
    let plan_seconds = median_seconds(args.iters, |i| {
        planner.plan(&[(prompt, i)])?;
        Ok(())
    })?;
    let plan = planner.plan(&[(prompt, 0)])?.remove(0);
    let ids = renderer.plan_ids(&plan)?;
    let image_seconds = median_seconds(args.iters, |i| {
        let plan = planner.plan(&[(prompt, i)])?.remove(0);
        renderer.render(&[(renderer.plan_ids(&plan)?, i)], &settings, |_, _| {})?;
        device.synchronize()?;
        Ok(())
    })?;
    let size = renderer.config().image_size;
    let grounding = renderer.ground(&PlanBatch::new(
        &[Some(&ids)],
        renderer.config().null_globals(),
        &device,
    )?)?;
    let noise = candle_core::Tensor::randn(0f32, 1.0, (1, 3, size, size), &device)?;
    let t = candle_core::Tensor::new(&[500f32], &device)?;
    let step_seconds = median_seconds(args.iters.max(5), |_| {
        renderer.predict(&noise, &t, &grounding)?;
        device.synchronize()?;
        Ok(())
    })?;
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    if args.json {
        let report = serde_json::json!({
            "planner": args.planner.display().to_string(),
            "renderer": args.renderer.display().to_string(),
            "device": args.device.to_string(),
            "threads": threads,
            "image_size": size,
            "steps": settings.sampling.steps,
            "guidance": settings.sampling.guidance,
            "sampler": settings.sampling.sampler,
            "seconds_per_image": image_seconds,
            "seconds_per_plan": plan_seconds,
            "seconds_per_renderer_step": step_seconds,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{size}x{size} image, plan + {} {} steps, guidance {}: {image_seconds:.3} s per image (plan {:.1} ms, renderer step {:.1} ms; median of {} on {}, {threads} threads)",
            settings.sampling.steps,
            settings.sampling.sampler,
            settings.sampling.guidance,
            plan_seconds * 1e3,
            step_seconds * 1e3,
            args.iters,
            args.device
        );
    }
    Ok(())
}

fn generate(args: GenerateBenchArgs) -> Result<()> {
    let settings = args.sampling.image_settings();
    settings.check()?;
    let device = args.device.open()?;
    let model = HybridImage::load(&args.model, &device)
        .with_context(|| format!("--model {}: cannot load", args.model.display()))?;
    let prompt = "a red star above a blue circle, sunset over the sea";
    if let Some(path) = &args.dump {
        dump_reference(&model, prompt, path, &device)?;
    }
    let seconds = median_seconds(args.iters, |i| {
        let request = ImageRequest {
            prompt: prompt.into(),
            seed: i,
        };
        model.generate(&[request], &settings, |_, _| {})?;
        device.synchronize()?;
        Ok(())
    })?;
    let size = model.config().vae.image_size;
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    if args.json {
        let report = serde_json::json!({
            "model": args.model.display().to_string(),
            "device": args.device.to_string(),
            "threads": threads,
            "image_size": size,
            "steps": settings.sampling.steps,
            "guidance": settings.sampling.guidance,
            "sampler": settings.sampling.sampler,
            "seconds_per_image": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{size}x{size} image, {} {} steps, guidance {} ({}): {seconds:.3} s per image (median of {} on {}, {threads} threads)",
            settings.sampling.steps,
            settings.sampling.sampler,
            settings.sampling.guidance,
            if settings.sampling.guidance != 1.0 { "2 network passes per step" } else { "1 pass per step" },
            args.iters,
            args.device
        );
    }
    Ok(())
}

/// `bench package --source`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PackageModels {
    /// Planner, renderer and trajectory model.
    Grounded,
    /// The end-to-end text-to-image and text-to-video models.
    Hybrid,
}

fn package(args: PackageBenchArgs) -> Result<()> {
    let device = args.device.open()?;
    let dir = |name: &str| args.models.join(name);
    let cannot = |what: &str| format!("--models {}: cannot load {what}", args.models.display());
    let mut pipeline = match args.source {
        PackageModels::Grounded => {
            let pipeline = Pipeline::grounded(&dir("grounded-planner"), &dir("grounded-renderer"), &device)
                .with_context(|| cannot("grounded-planner and grounded-renderer"))?;
            pipeline
                .with_grounded_video(&dir("grounded-trajectory"), &device)
                .with_context(|| cannot("grounded-trajectory"))?
        }
        PackageModels::Hybrid => {
            let pipeline = Pipeline::load(&dir("hybrid-image"), &device).with_context(|| cannot("hybrid-image"))?;
            match dir("hybrid-video").exists() {
                true => pipeline.with_video(&dir("hybrid-video"), &device)?,
                false => pipeline,
            }
        }
    };
    let sound = ["grounded-music-planner", "grounded-notes", "grounded-synth"].map(dir);
    if args.source == PackageModels::Grounded && sound.iter().all(|d| d.exists()) {
        pipeline = pipeline
            .with_grounded_audio(&sound[0], &sound[1], &sound[2], &device)
            .with_context(|| cannot("grounded-music-planner, grounded-notes and grounded-synth"))?;
    } else if dir("hybrid-audio").exists() {
        pipeline = pipeline.with_audio(&dir("hybrid-audio"), &device)?;
    }
    let request = Request {
        modalities: args.modalities.as_deref().map(Modality::parse_list).transpose()?,
        image: args.sampling.image_settings(),
        grounded: args.sampling.grounded_settings(),
        frames: args.frames as usize,
        seconds: args.seconds,
        ..Request::new(&args.prompt, 0)
    };
    let out = std::env::temp_dir().join(format!("mmgen-bench-package-{}", std::process::id()));
    let mut stages: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut files = Vec::new();
    median_seconds(args.iters, |i| {
        let package = pipeline.generate(
            &Request {
                seed: i,
                ..request.clone()
            },
            &out,
            &mut |_, _, _| {},
        )?;
        device.synchronize()?;
        if i != u64::MAX {
            for (stage, value) in package.meta["timings"].as_object().into_iter().flatten() {
                stages
                    .entry(stage.clone())
                    .or_default()
                    .push(value.as_f64().unwrap_or(f64::NAN));
            }
        }
        files = package.files;
        Ok(())
    })?;
    let _ = std::fs::remove_dir_all(&out);
    let medians: std::collections::BTreeMap<String, f64> = stages
        .into_iter()
        .map(|(stage, mut times)| {
            times.sort_by(|a, b| a.total_cmp(b));
            (stage, times[times.len() / 2])
        })
        .collect();
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    let used = match args.source {
        PackageModels::Grounded => request.grounded.clone(),
        PackageModels::Hybrid => request.image.clone(),
    };
    if args.json {
        let report = serde_json::json!({
            "prompt": args.prompt,
            "source": match args.source { PackageModels::Grounded => "grounded", PackageModels::Hybrid => "hybrid" },
            "files": files,
            "frames": args.frames,
            "seconds": args.seconds,
            "steps": used.sampling.steps,
            "guidance": used.sampling.guidance,
            "sampler": args.sampling.sampler,
            "device": args.device.to_string(),
            "threads": threads,
            "median_seconds": medians,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "package of {} ({} {} steps, guidance {}; median of {} on {}, {threads} threads):",
            files.join(", "),
            used.sampling.steps,
            args.sampling.sampler,
            used.sampling.guidance,
            args.iters,
            args.device
        );
        for (stage, seconds) in &medians {
            println!("  {stage:<16} {seconds:>8.2} s");
        }
    }
    Ok(())
}

/// Writes the grounded renderer's reference case (see `bench grounded --dump`).
fn dump_grounded_reference(
    planner: &Planner,
    renderer: &GroundedRenderer,
    path: &std::path::Path,
    device: &candle_core::Device,
) -> Result<()> {
    use candle_core::{DType, Tensor};
    let prompts = [
        ("a red star above a blue circle, sunset over the sea", 0),
        ("three small green hearts in the snow, pixel art", 1),
    ];
    let plans = planner.plan(&prompts)?;
    let ids = plans
        .iter()
        .map(|p| renderer.plan_ids(p))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = PlanBatch::new(
        &[Some(&ids[0]), Some(&ids[1])],
        renderer.config().null_globals(),
        device,
    )?;
    let size = renderer.config().image_size;
    let xs = mmgen_diffusion::gaussian((2, 3, size, size), 7, device)?;
    let timesteps = Tensor::new(&[500f32, 120.0], device)?;
    let grounding = renderer.ground(&batch)?;
    let output = renderer.predict(&xs, &timesteps, &grounding)?;
    let tensors = [
        ("globals", batch.globals.to_dtype(DType::I64)?),
        ("object_ids", batch.object_ids.to_dtype(DType::I64)?),
        ("present", batch.present.clone()),
        ("poses", batch.poses.clone()),
        ("times", batch.times.clone()),
        ("xs", xs),
        ("timesteps", timesteps),
        ("grounding_pixels", grounding.pixels.clone()),
        ("grounding_globals", grounding.globals.clone()),
        ("output", output),
    ];
    write_reference_case(tensors, path)
}

/// Saves a `--dump` reference case (named tensors) for a peer implementation's check.
fn write_reference_case<const N: usize>(
    tensors: [(&str, candle_core::Tensor); N],
    path: &std::path::Path,
) -> Result<()> {
    let tensors: std::collections::HashMap<String, candle_core::Tensor> =
        tensors.into_iter().map(|(name, t)| (name.to_string(), t)).collect();
    candle_core::safetensors::save(&tensors, path).with_context(|| format!("--dump {}", path.display()))?;
    eprintln!("wrote the reference case to {}", path.display());
    Ok(())
}

/// Writes one forward pass of every part on fixed inputs (see `--dump`).
fn dump_reference(
    model: &HybridImage,
    prompt: &str,
    path: &std::path::Path,
    device: &candle_core::Device,
) -> Result<()> {
    use candle_core::Tensor;
    let cfg = model.config();
    let (ids, mask) = model
        .tokenizer()
        .encode_batch(&[prompt, ""], cfg.text.max_len, device)?;
    let text = model.encode_ids(&ids, &mask)?;
    let ls = cfg.dit.latent_size;
    let xs = mmgen_diffusion::gaussian((2, ls, ls, cfg.dit.latent_channels), 7, device)?;
    let t = Tensor::new(&[999f32, 321.5], device)?;
    let out = model.predict(&xs, &t, &text)?;
    let image = model.decode_latents(&xs)?;
    let tensors = [
        ("ids", ids),
        ("mask", mask),
        ("text_states", text.states),
        ("text_pooled", text.pooled),
        ("xs", xs),
        ("timesteps", t),
        ("dit_out", out),
        ("decoded", image),
    ];
    write_reference_case(tensors, path)
}
