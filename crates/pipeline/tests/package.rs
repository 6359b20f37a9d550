//! The package on a tiny seeded model folder: the files it writes, the cache (same
//! bytes for the same request, a miss when anything changes), and clear errors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarMap;
use mmgen_models::hybrid_image::{HybridImage, HybridImageConfig, ImageSettings};
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::weights::save_f16;
use mmgen_pipeline::{Cache, CacheOutcome, Modality, Pipeline, Request};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mmgen-pipeline-{}-{name}", std::process::id()))
}

/// A tiny model folder with seeded weights.
fn model_folder() -> PathBuf {
    let dir = temp("model");
    let texts = ["a red circle", "a blue star on the snow", "海边的红色圆形", "钢琴曲"];
    let tok = TextTokenizer::train(texts.iter().cycle().take(40), 320).unwrap();
    let cfg = HybridImageConfig::tiny(tok.vocab_size());
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, 7, DType::F32, &Device::Cpu);
    HybridImage::new(&cfg, tok.clone(), vb, &Device::Cpu).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    tok.save(&dir.join("tokenizer.json")).unwrap();
    save_f16(&varmap, None, &dir.join("model.safetensors")).unwrap();
    dir
}

fn request(prompt: &str) -> Request {
    Request {
        prompt: prompt.into(),
        seed: 1,
        modalities: None,
        image: ImageSettings {
            steps: 3,
            ..ImageSettings::default()
        },
    }
}

fn run(pipeline: &Pipeline, request: &Request, out: &Path) -> (CacheOutcome, Vec<u8>) {
    let package = pipeline.generate(request, out, &mut |_, _, _| {}).unwrap();
    (package.cache, std::fs::read(out.join("image.png")).unwrap())
}

#[test]
fn package_files_cache_and_errors() {
    let cache_dir = temp("cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    let pipeline = Pipeline::load(&model_folder(), &Device::Cpu)
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
                    steps: 4,
                    ..base.image.clone()
                },
                ..base.clone()
            },
        ),
        (
            "guidance",
            Request {
                image: ImageSettings {
                    guidance: 2.0,
                    ..base.image.clone()
                },
                ..base.clone()
            },
        ),
        (
            "negative",
            Request {
                image: ImageSettings {
                    negative: "snow".into(),
                    ..base.image.clone()
                },
                ..base.clone()
            },
        ),
        (
            "sampler",
            Request {
                image: ImageSettings {
                    sampler: "euler".into(),
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
    let uncached = Pipeline::load(&temp("model"), &Device::Cpu).unwrap();
    assert_eq!(run(&uncached, &base, &temp("uncached")), (CacheOutcome::Off, first));

    // Bad requests fail with a sentence, and write nothing.
    let fails = |request: Request| {
        pipeline
            .generate(&request, &temp("bad"), &mut |_, _, _| {})
            .unwrap_err()
            .to_string()
    };
    assert!(fails(request("  ")).contains("the prompt is empty"));
    let err = fails(request("生成一段描述海边日落的短视频,配乐为钢琴曲"));
    assert!(
        err.contains("video (the prompt says '视频')") && err.contains("--modalities image"),
        "{err}"
    );
    let err = fails(Request {
        modalities: Some(vec![Modality::Audio]),
        ..base.clone()
    });
    assert!(err.contains("needs audio"), "{err}");
    let err = fails(Request {
        image: ImageSettings {
            steps: 0,
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
