//! The package on a tiny seeded model folder: the files it writes, the cache (same
//! bytes for the same request, a miss when anything changes), and clear errors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarMap;
use mmgen_media::read_mp4_tracks;
use mmgen_models::hybrid_audio::{HybridAudio, HybridAudioConfig};
use mmgen_models::hybrid_image::{HybridImage, HybridImageConfig, ImageSettings};
use mmgen_models::hybrid_video::{HybridVideo, HybridVideoConfig};
use mmgen_models::sampling::SamplingSettings;
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::weights::save_f16;
use mmgen_pipeline::{Cache, CacheOutcome, Modality, Pipeline, Request};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mmgen-pipeline-{}-{name}", std::process::id()))
}

/// A tiny model folder with seeded weights.
fn model_folder(name: &str) -> PathBuf {
    let dir = temp(name);
    let texts = ["a red circle", "a blue star on the snow", "海边的红色圆形", "钢琴曲"];
    let tok = TextTokenizer::train(texts.iter().cycle().take(40), 320).unwrap();
    let cfg = HybridImageConfig::tiny(tok.vocab_size());
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, 7, DType::F32, &Device::Cpu);
    HybridImage::new(&cfg, tok.clone(), vb, &Device::Cpu).unwrap();
    save_folder(&dir, &cfg, &tok, &varmap);
    dir
}

fn request(prompt: &str) -> Request {
    Request {
        image: ImageSettings {
            sampling: SamplingSettings {
                steps: 3,
                ..SamplingSettings::default()
            },
            ..ImageSettings::default()
        },
        ..Request::new(prompt, 1)
    }
}

/// Writes a model folder: config, tokenizer, seeded weights.
fn save_folder(dir: &Path, config: &impl serde::Serialize, tok: &TextTokenizer, varmap: &VarMap) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(config).unwrap()).unwrap();
    tok.save(&dir.join("tokenizer.json")).unwrap();
    save_f16(varmap, None, &dir.join("model.safetensors")).unwrap();
}

/// Tiny seeded video and audio folders beside the image folder, with its tokenizer.
fn video_and_audio_folders(image: &Path) -> (PathBuf, PathBuf) {
    let tok = TextTokenizer::load(&image.join("tokenizer.json")).unwrap();
    let image_config: HybridImageConfig =
        serde_json::from_str(&std::fs::read_to_string(image.join("config.json")).unwrap()).unwrap();
    let video = temp("video-model");
    let config = HybridVideoConfig::from_image(&image_config, 4, 8);
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, 8, DType::F32, &Device::Cpu);
    HybridVideo::new(&config, tok.clone(), vb, &Device::Cpu).unwrap();
    save_folder(&video, &config, &tok, &varmap);
    let audio = temp("audio-model");
    let config = HybridAudioConfig::tiny(tok.vocab_size());
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, 9, DType::F32, &Device::Cpu);
    HybridAudio::new(&config, tok.clone(), vb, &Device::Cpu).unwrap();
    save_folder(&audio, &config, &tok, &varmap);
    (video, audio)
}

fn run(pipeline: &Pipeline, request: &Request, out: &Path) -> (CacheOutcome, Vec<u8>) {
    let package = pipeline.generate(request, out, &mut |_, _, _| {}).unwrap();
    (package.cache, std::fs::read(out.join("image.png")).unwrap())
}

#[test]
fn package_files_cache_and_errors() {
    let cache_dir = temp("cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    let model = model_folder("model");
    let pipeline = Pipeline::load(&model, &Device::Cpu)
        .unwrap()
        .with_cache(Some(Cache::new(&cache_dir)));
    let base = request("a red circle on the snow");

    // The package: media, caption in the prompt's language, meta.
    let out = temp("out");
    let mut steps_seen = 0;
    let package = pipeline
        .generate(&base, &out, &mut |stage, done, total| {
            assert_eq!((stage, total), ("image", 3));
            steps_seen = done;
        })
        .unwrap();
    assert_eq!(steps_seen, 3, "progress reaches the last step");
    assert_eq!(package.files, ["image.png", "caption.txt", "meta.json"]);
    assert_eq!(package.cache, CacheOutcome::Miss);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["prompt"], "a red circle on the snow");
    assert_eq!(meta["modalities"], serde_json::json!(["image"]));
    assert_eq!(meta["settings"]["image"]["steps"], 3);
    assert_eq!(meta["models"]["image"]["weights_sha256"].as_str().unwrap().len(), 64);
    assert!(meta["timings"]["image_seconds"].as_f64().unwrap() > 0.0);
    let caption = std::fs::read_to_string(out.join("caption.txt")).unwrap();
    assert!(
        caption.contains("16x16 image") && caption.contains("a red circle on the snow"),
        "{caption}"
    );
    let first = std::fs::read(out.join("image.png")).unwrap();

    // The same request: a hit with identical bytes; the same words with other
    // spacing are the same request.
    assert_eq!(
        run(&pipeline, &base, &temp("again")),
        (CacheOutcome::Hit, first.clone())
    );
    let spaced = request("  a red circle on the snow ");
    assert_eq!(run(&pipeline, &spaced, &temp("spaced")).0, CacheOutcome::Hit);

    // Any change of what decides the image is a miss.
    let changes: Vec<(&str, Request)> = vec![
        (
            "seed",
            Request {
                seed: 2,
                ..base.clone()
            },
        ),
        ("prompt", request("a blue star")),
        (
            "steps",
            Request {
                image: ImageSettings {
                    sampling: SamplingSettings {
                        steps: 4,
                        ..(base.image.clone()).sampling
                    },
                    ..base.image.clone()
                },
                ..base.clone()
            },
        ),
        (
            "guidance",
            Request {
                image: ImageSettings {
                    sampling: SamplingSettings {
                        guidance: 2.0,
                        ..(base.image.clone()).sampling
                    },
                    ..base.image.clone()
                },
                ..base.clone()
            },
        ),
        (
            "negative",
            Request {
                image: ImageSettings {
                    sampling: SamplingSettings {
                        negative: "snow".into(),
                        ..(base.image.clone()).sampling
                    },
                    ..base.image.clone()
                },
                ..base.clone()
            },
        ),
        (
            "sampler",
            Request {
                image: ImageSettings {
                    sampling: SamplingSettings {
                        sampler: "euler".into(),
                        ..(base.image.clone()).sampling
                    },
                    ..base.image.clone()
                },
                ..base.clone()
            },
        ),
    ];
    for (what, changed) in &changes {
        let (outcome, bytes) = run(&pipeline, changed, &temp(what));
        assert_eq!(outcome, CacheOutcome::Miss, "changing the {what} must miss");
        assert_ne!(bytes, first, "changing the {what} must change the image");
    }

    // Without a cache the bytes are the same: the cache stores, it does not alter.
    let uncached = Pipeline::load(&model, &Device::Cpu).unwrap();
    assert_eq!(run(&uncached, &base, &temp("uncached")), (CacheOutcome::Off, first));

    // Bad requests fail with a sentence, and write nothing.
    let fails = |request: Request| {
        pipeline
            .generate(&request, &temp("bad"), &mut |_, _, _| {})
            .unwrap_err()
            .to_string()
    };
    assert!(fails(request("  ")).contains("the prompt is empty"));
    assert!(fails(request("a red\u{7} star")).contains("control character (U+0007) at character 6"));
    assert!(fails(request(&"a".repeat(2001))).contains("2001 characters long; at most 2000"));
    // The end-to-end pipeline has no request reader: a still unless asked for more.
    let err = fails(Request {
        modalities: Some(vec![Modality::Image, Modality::Video]),
        ..request("生成一段描述海边日落的短视频,配乐为钢琴曲")
    });
    assert!(
        err.contains("needs video") && err.contains("--modalities image"),
        "{err}"
    );
    let err = fails(Request {
        modalities: Some(vec![Modality::Audio]),
        ..base.clone()
    });
    assert!(
        err.contains("needs audio") && err.contains("mmgen train text-audio"),
        "{err}"
    );
    let err = fails(Request {
        image: ImageSettings {
            sampling: SamplingSettings {
                steps: 0,
                ..(base.image.clone()).sampling
            },
            ..base.image.clone()
        },
        ..base.clone()
    });
    assert!(err.contains("steps is 0"), "{err}");
    assert!(!temp("bad").exists(), "a refused request writes nothing");

    // The Chinese headline request, limited to its key image, works, captioned in Chinese.
    let zh = Request {
        modalities: Some(vec![Modality::Image]),
        ..request("生成一段描述海边日落的短视频,配乐为钢琴曲")
    };
    pipeline.generate(&zh, &temp("zh"), &mut |_, _, _| {}).unwrap();
    let caption = std::fs::read_to_string(temp("zh").join("caption.txt")).unwrap();
    assert!(caption.starts_with("根据请求"), "{caption}");

    for name in ["model", "cache", "out", "again", "spaced", "uncached", "zh"] {
        let _ = std::fs::remove_dir_all(temp(name));
    }
    for (what, _) in &changes {
        let _ = std::fs::remove_dir_all(temp(what));
    }
}

/// The headline request on tiny video and audio models: an MP4 with H.264 and Opus
/// of the clip's length, the GIF, the WAV, the key frame; bad lengths fail clearly.
#[test]
fn video_and_audio_package() {
    let image = model_folder("av-image");
    let (video, audio) = video_and_audio_folders(&image);
    let pipeline = Pipeline::load(&image, &Device::Cpu)
        .unwrap()
        .with_video(&video, &Device::Cpu)
        .unwrap()
        .with_audio(&audio, &Device::Cpu)
        .unwrap();
    let request = Request {
        frames: 6,
        image: ImageSettings {
            sampling: SamplingSettings {
                steps: 2,
                ..SamplingSettings::default()
            },
            ..ImageSettings::default()
        },
        modalities: Some(vec![Modality::Image, Modality::Video, Modality::Audio]),
        ..Request::new("生成一段描述海边日落的短视频,配乐为钢琴曲", 3)
    };
    let out = temp("av-out");
    let mut stages = Vec::new();
    let package = pipeline
        .generate(&request, &out, &mut |stage, _, _| {
            if stages.last() != Some(&stage.to_string()) {
                stages.push(stage.to_string());
            }
        })
        .unwrap();
    assert_eq!(stages, ["audio", "video"]);
    assert_eq!(
        package.files,
        [
            "image.png",
            "video.mp4",
            "video.gif",
            "audio.wav",
            "caption.txt",
            "meta.json"
        ]
    );
    // 6 frames at 8 fps: 0.75 s of video, and as much audio.
    let tracks = read_mp4_tracks(&out.join("video.mp4")).unwrap();
    let codecs: Vec<&str> = tracks.iter().map(|t| t.codec.as_str()).collect();
    assert_eq!(codecs, ["avc1", "Opus"], "{tracks:?}");
    for track in &tracks {
        assert!((track.seconds - 0.75).abs() < 0.03, "{track:?}");
    }
    let (samples, rate) = mmgen_media::read_wav(&out.join("audio.wav")).unwrap();
    assert_eq!((samples.len(), rate), (12_000, 16_000));
    let gif = image::open(out.join("video.gif")).unwrap();
    assert_eq!((gif.width(), gif.height()), (16, 16));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["settings"]["video"]["frames"], 6);
    assert_eq!(meta["settings"]["audio"]["seconds"], 0.75);
    assert!(meta["models"]["video"]["weights_sha256"].is_string());
    assert!(meta["models"]["audio"]["weights_sha256"].is_string());

    // Bad lengths fail with a sentence.
    let fails = |request: Request| {
        pipeline
            .generate(&request, &temp("av-bad"), &mut |_, _, _| {})
            .unwrap_err()
            .to_string()
    };
    let err = fails(Request {
        frames: 0,
        ..request.clone()
    });
    assert!(err.contains("frames is 0"), "{err}");
    let err = fails(Request {
        seconds: 1e9,
        modalities: Some(vec![Modality::Audio]),
        ..request.clone()
    });
    assert!(err.contains("seconds is 1000000000"), "{err}");
    assert!(!temp("av-bad").exists());
    for name in ["av-out", "av-image", "video-model", "audio-model"] {
        let _ = std::fs::remove_dir_all(temp(name));
    }
}

/// The cache key covers every file of the model folder and the prompt's text; a
/// broken entry is made again; a cache that cannot be written only warns; an --out
/// holding other files is refused before any work and left as it was.
#[test]
fn the_cache_is_honest_and_the_output_whole() {
    let cache_dir = temp("honest-cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    let model = model_folder("honest-model");
    let load = || {
        Pipeline::load(&model, &Device::Cpu)
            .unwrap()
            .with_cache(Some(Cache::new(&cache_dir)))
    };
    let base = request("a red circle on the snow");
    let (outcome, first) = run(&load(), &base, &temp("honest-1"));
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(run(&load(), &base, &temp("honest-2")).0, CacheOutcome::Hit);

    // A truncated image in the entry: dropped with a warning, made again, same bytes.
    let entry = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    std::fs::write(entry.join("image.png"), &first[..first.len() / 2]).unwrap();
    let package = load().generate(&base, &temp("honest-3"), &mut |_, _, _| {}).unwrap();
    assert_eq!(package.cache, CacheOutcome::Miss);
    assert!(
        package.warnings.iter().any(|w| w.contains("image.png does not match")),
        "{:?}",
        package.warnings
    );
    assert_eq!(std::fs::read(temp("honest-3").join("image.png")).unwrap(), first);

    // The same weights under another config.json (or tokenizer.json) are another model.
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    std::fs::write(
        model.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    assert_eq!(run(&load(), &base, &temp("honest-4")).0, CacheOutcome::Miss);

    // Prompts that differ only past the encoder's 16 tokens share no entry.
    let long = "a red circle on the snow and a blue star on the snow and a red circle on the snow";
    let (a, b) = (request(&format!("{long} a")), request(&format!("{long} b")));
    assert_eq!(run(&load(), &a, &temp("honest-5")).0, CacheOutcome::Miss);
    assert_eq!(run(&load(), &b, &temp("honest-6")).0, CacheOutcome::Miss);

    // A cache that cannot be written: the package is made, with a warning.
    let unwritable = Pipeline::load(&model, &Device::Cpu)
        .unwrap()
        .with_cache(Some(Cache::new("/proc/mmgen-no-cache")));
    let package = unwritable
        .generate(&base, &temp("honest-7"), &mut |_, _, _| {})
        .unwrap();
    assert!(package.warnings.iter().any(|w| w.contains("cannot be written")));
    assert!(temp("honest-7").join("meta.json").exists());

    // An --out holding the user's files: refused before any work, untouched.
    let out = temp("honest-foreign");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let err = load()
        .generate(&request("a green heart"), &out, &mut |_, _, _| panic!("no work"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.txt"), "{err}");
    let listing: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(listing.len(), 1);
    for name in ["honest-cache", "honest-model", "honest-foreign"] {
        let _ = std::fs::remove_dir_all(temp(name));
    }
    for i in 1..=7 {
        let _ = std::fs::remove_dir_all(temp(&format!("honest-{i}")));
    }
}
