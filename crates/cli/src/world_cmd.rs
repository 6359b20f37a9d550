//! `mmgen world ...`: sample, render and caption the procedural world.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::choices::{LangArg, MediumArg, SplitArg};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_media::{write_gif, write_mp4, write_png, write_wav, Mp4Audio};
use mmgen_world::audio::SAMPLE_RATE;
use mmgen_world::caption::distinct_captions;
use mmgen_world::render::Scene;
use mmgen_world::rng::mix64;
use mmgen_world::{caption_for_seed, render_audio, CaptionOptions, Lang, Medium, SceneSpec, SpecSampler, Split};

#[derive(Subcommand)]
pub enum WorldCommand {
    /// Render N random samples: PNG (+ GIF and MP4 with --frames, + WAV with --audio) and
    /// a JSON with each sample's caption, seed and spec.
    Sample(SampleArgs),
    /// Render one spec file.
    Render(RenderArgs),
    /// Print distinct captions of one spec file.
    Captions(CaptionsArgs),
    /// Estimate the tempo of WAV files (onset autocorrelation, as evaluation does).
    Tempo(TempoArgs),
    /// Play a score with the world's instruments: the `meta.json` of a grounded sound
    /// package (its score and tempo) to a WAV, to hear the synthesiser beside the world.
    PlayScore(PlayScoreArgs),
}

#[derive(Args)]
pub struct PlayScoreArgs {
    /// A package's meta.json (with `score` and `sound_plan`).
    meta: PathBuf,
    /// Output WAV file.
    #[arg(long)]
    out: PathBuf,
    /// Seconds to render [default: the package's audio length].
    #[arg(long, value_parser = crate::sampling::seconds_value)]
    seconds: Option<f64>,
    /// Seed of the instruments' noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct TempoArgs {
    /// WAV files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Slowest tempo considered.
    #[arg(long, default_value_t = 60.0)]
    min_bpm: f32,
    /// Fastest tempo considered.
    #[arg(long, default_value_t = 160.0)]
    max_bpm: f32,
}

/// Options shared by everything that renders.
#[derive(Args, Clone)]
pub struct MediaArgs {
    /// Image side in pixels.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=2048))]
    size: u32,
    /// Video frames; more than 1 also writes an animated GIF and an MP4 (H.264, with
    /// the audio as Opus when there is audio; even sizes of 16 pixels or more).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    frames: u32,
    /// Video frame rate.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=60))]
    fps: u32,
    /// Audio length in seconds.
    #[arg(long, default_value_t = 4.0, value_parser = parse_seconds)]
    seconds: f32,
}

fn parse_seconds(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v > 0.0 && v <= 600.0) {
        return Err(format!("{v} is out of range; allowed more than 0, up to 600 seconds"));
    }
    Ok(v)
}

#[derive(Args)]
pub struct SampleArgs {
    /// How many samples.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    n: u64,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the whole set; sample i gets its own seed derived from it.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Caption language.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    lang: LangArg,
    /// Which side of the compositional split.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    split: SplitArg,
    /// Also render audio (every sample then has music).
    #[arg(long)]
    audio: bool,
    #[command(flatten)]
    media: MediaArgs,
}

#[derive(Args)]
pub struct RenderArgs {
    /// Scene spec JSON file.
    spec: PathBuf,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Render seed (layout, shades, texture, melody).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    media: MediaArgs,
}

#[derive(Args)]
pub struct CaptionsArgs {
    /// Scene spec JSON file.
    spec: PathBuf,
    /// How many captions to draw (distinct ones are printed).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    n: u64,
    /// Caption language.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    lang: LangArg,
    /// What the caption asks for.
    #[arg(long, value_enum, default_value_t = MediumArg::Video)]
    medium: MediumArg,
}

pub fn run(cmd: WorldCommand) -> Result<()> {
    match cmd {
        WorldCommand::Sample(args) => sample(args),
        WorldCommand::Render(args) => render(args),
        WorldCommand::Captions(args) => captions(args),
        WorldCommand::Tempo(args) => tempo(args),
        WorldCommand::PlayScore(args) => play_score(args),
    }
}

fn read_spec(path: &Path) -> Result<SceneSpec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read spec file {}", path.display()))?;
    SceneSpec::from_json(&text).with_context(|| format!("{}", path.display()))
}

fn medium_of(media: &MediaArgs) -> Medium {
    if media.frames > 1 {
        Medium::Video
    } else {
        Medium::Image
    }
}

/// Writes the image (and GIF, WAV) of one scene under `stem`; returns the file names.
fn write_scene(
    spec: &SceneSpec,
    seed: u64,
    media: &MediaArgs,
    with_audio: bool,
    dir: &Path,
    stem: &str,
    caption: &str,
) -> Result<Vec<String>> {
    let scene = Scene::new(spec, seed);
    let mut files = Vec::new();
    let still = scene.frame(media.size, media.size, 0.5)?;
    let png = format!("{stem}.png");
    write_png(
        &dir.join(&png),
        &still,
        &[
            ("caption", caption),
            ("seed", &seed.to_string()),
            ("spec", &spec.to_json()),
        ],
    )?;
    files.push(png);
    let samples = match with_audio {
        true => Some(render_audio(spec, seed, media.seconds, SAMPLE_RATE)?),
        false => None,
    };
    if media.frames > 1 {
        let frames = scene.clip(media.size, media.size, media.frames)?;
        let gif = format!("{stem}.gif");
        write_gif(&dir.join(&gif), &frames, media.fps)?;
        files.push(gif);
        if media.size.is_multiple_of(2) && media.size >= 16 {
            let mp4 = format!("{stem}.mp4");
            let audio = samples.as_deref().map(|samples| Mp4Audio {
                samples,
                sample_rate: SAMPLE_RATE,
            });
            write_mp4(&dir.join(&mp4), &frames, media.fps, audio)?;
            files.push(mp4);
        }
    }
    if let Some(samples) = &samples {
        let wav = format!("{stem}.wav");
        write_wav(&dir.join(&wav), samples, SAMPLE_RATE)?;
        files.push(wav);
    }
    Ok(files)
}

fn create_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output folder {}", out.display()))
}

fn sample(args: SampleArgs) -> Result<()> {
    let lang: Lang = args.lang.into();
    let split: Split = args.split.into();
    create_dir(&args.out)?;
    let sampler = SpecSampler {
        p_music: if args.audio {
            1.0
        } else {
            SpecSampler::default().p_music
        },
        ..Default::default()
    };
    let medium = medium_of(&args.media);
    let bar = ProgressBar::new(args.n).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("rendering");
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                if i >= args.n || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    break;
                }
                let result = (|| -> Result<()> {
                    let seed = mix64(args.seed ^ mix64(i));
                    let spec = sampler.sample(split, seed);
                    let caption = caption_for_seed(&spec, lang, CaptionOptions::full(medium), seed);
                    let stem = format!("{i:06}");
                    let files = write_scene(&spec, seed, &args.media, args.audio, &args.out, &stem, &caption)?;
                    let mut record = serde_json::json!({
                        "index": i,
                        "seed": seed,
                        "split": split,
                        "lang": lang,
                        "caption": caption,
                        "captions": {
                            "en": caption_for_seed(&spec, Lang::En, CaptionOptions::full(medium), seed),
                            "zh": caption_for_seed(&spec, Lang::Zh, CaptionOptions::full(medium), seed),
                        },
                        "files": files,
                        "spec": spec,
                    });
                    if args.audio {
                        record["audio_caption"] =
                            caption_for_seed(&spec, lang, CaptionOptions::full(Medium::Audio), seed).into();
                    }
                    let path = args.out.join(format!("{stem}.json"));
                    std::fs::write(&path, serde_json::to_string_pretty(&record)?)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    Ok(())
                })();
                match result {
                    Ok(()) => bar.inc(1),
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = failure.into_inner().ok().flatten() {
        bar.abandon();
        return Err(err);
    }
    bar.finish_with_message("done");
    eprintln!("wrote {} samples to {}", args.n, args.out.display());
    Ok(())
}

fn render(args: RenderArgs) -> Result<()> {
    let spec = read_spec(&args.spec)?;
    create_dir(&args.out)?;
    let medium = medium_of(&args.media);
    let en = caption_for_seed(&spec, Lang::En, CaptionOptions::full(medium), args.seed);
    let zh = caption_for_seed(&spec, Lang::Zh, CaptionOptions::full(medium), args.seed);
    let mut files = write_scene(&spec, args.seed, &args.media, spec.has_audio(), &args.out, "scene", &en)?;
    std::fs::write(args.out.join("caption.txt"), format!("{en}\n{zh}\n")).context("cannot write caption.txt")?;
    files.push("caption.txt".into());
    for f in files {
        println!("{}", args.out.join(f).display());
    }
    Ok(())
}

fn captions(args: CaptionsArgs) -> Result<()> {
    let spec = read_spec(&args.spec)?;
    let lang: Lang = args.lang.into();
    let medium = args.medium.medium();
    let set = distinct_captions(&spec, lang, CaptionOptions::full(medium), args.n as usize);
    for text in &set {
        println!("{text}");
    }
    eprintln!("{} distinct captions in {} draws", set.len(), args.n);
    Ok(())
}

fn tempo(args: TempoArgs) -> Result<()> {
    if !(args.min_bpm > 0.0 && args.min_bpm < args.max_bpm) {
        bail!(
            "--min-bpm {} and --max-bpm {}: need 0 < min < max",
            args.min_bpm,
            args.max_bpm
        );
    }
    for path in &args.files {
        let (samples, rate) = mmgen_media::read_wav(path)?;
        match mmgen_world::analysis::estimate_tempo(&samples, rate, args.min_bpm, args.max_bpm) {
            Some(bpm) => println!("{}\t{bpm:.1}", path.display()),
            None => println!("{}\tnone", path.display()),
        }
    }
    Ok(())
}

fn play_score(args: PlayScoreArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.meta).with_context(|| format!("cannot read {}", args.meta.display()))?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", args.meta.display()))?;
    let score: mmgen_models::grounded::music::Score =
        serde_json::from_value(meta["score"].clone()).with_context(|| {
            format!(
                "{}: no `score` (made by the grounded sound models?)",
                args.meta.display()
            )
        })?;
    let tempo = meta["sound_plan"]["music"]["tempo_bpm"]
        .as_f64()
        .with_context(|| format!("{}: no `sound_plan.music.tempo_bpm`", args.meta.display()))?;
    let seconds = match args.seconds {
        Some(s) => s,
        None => meta["settings"]["audio"]["seconds"]
            .as_f64()
            .with_context(|| format!("{}: no `settings.audio.seconds`; give --seconds", args.meta.display()))?,
    };
    let audio = mmgen_train::music::render_score_with_world(&score, tempo as f32, seconds as f32, args.seed)?;
    mmgen_media::write_wav(&args.out, &audio, mmgen_world::audio::SAMPLE_RATE)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
