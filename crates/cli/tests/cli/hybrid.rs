//! The hybrid family: train, generate, and clear failures.

use super::*;

/// The hybrid family end to end on tiny models: tokenizer, VAE, text-to-image
/// training, generation with metadata, the bench reference dump, and clear errors.
#[test]
fn hybrid_train_generate_and_fail_clearly() {
    let dir = temp_dir("hybrid");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let out = mmgen(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    ok(&[
        "train",
        "tokenizer",
        "--out",
        &path("tokenizer.json"),
        "--vocab",
        "400",
        "--scenes",
        "100",
    ]);
    ok(&[
        "train",
        "vae",
        "--tiny",
        "--steps",
        "3",
        "--batch",
        "4",
        "--eval-samples",
        "4",
        "--out",
        &path("vae"),
    ]);
    ok(&[
        "train",
        "text-image",
        "--tiny",
        "--steps",
        "3",
        "--batch",
        "4",
        "--vae",
        &path("vae"),
        "--tokenizer",
        &path("tokenizer.json"),
        "--out",
        &path("model"),
    ]);
    ok(&["eval-vae", "--vae", &path("vae"), "--n", "2", "--out", &path("vae.png")]);
    let sheet = image::open(dir.join("vae.png")).unwrap();
    assert_eq!((sheet.width(), sheet.height()), (2 * 16, 2 * 16));
    let prompt = "一颗红色的星星在海面上";
    ok(&[
        "generate",
        prompt,
        "--model",
        &path("model"),
        "--steps",
        "3",
        "--seed",
        "9",
        "--out",
        &path("gen"),
        "--cache",
        &path("cache"),
    ]);
    for file in ["caption.txt", "meta.json"] {
        assert!(dir.join("gen").join(file).exists(), "{file}");
    }
    let text = mmgen_media::read_png_text(&dir.join("gen/image.png")).unwrap();
    let get = |k: &str| text.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("prompt"), prompt);
    assert_eq!(get("seed"), "9");
    assert!(get("settings").contains("\"steps\":3"), "{}", get("settings"));
    ok(&[
        "bench",
        "generate",
        "--model",
        &path("model"),
        "--steps",
        "2",
        "--iters",
        "1",
        "--dump",
        &path("ref.st"),
    ]);
    assert!(dir.join("ref.st").exists());

    let model = path("model");
    let cases: &[(&[&str], &str)] = &[
        (
            &["generate", "x", "--model", &model, "--guidance", "nan"],
            "for '--guidance <GUIDANCE>'",
        ),
        (
            &["generate", "x", "--model", &model, "--sampler", "heun"],
            "invalid value 'heun' for '--sampler",
        ),
        (&["generate", "x", "--model", &model, "--steps", "0"], "--steps"),
        (&["generate", " ", "--model", &model], "the prompt is empty"),
        (&["generate", "x", "--model", &path("nothing")], "--model"),
        (
            &["generate", "x", "--model", &model, "--strength", "0.3"],
            "--strength needs --init",
        ),
        (
            &[
                "train",
                "text-image",
                "--tiny",
                "--vae",
                &path("nothing"),
                "--tokenizer",
                &path("tokenizer.json"),
                "--out",
                &model,
            ],
            "--vae",
        ),
    ];
    for (args, expected) in cases {
        let out = mmgen(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    std::fs::write(dir.join("model/model.safetensors"), b"garbage").unwrap();
    let corrupt = mmgen(&["generate", "x", "--model", &model]);
    assert!(stderr(&corrupt).contains("unreadable weights"), "{}", stderr(&corrupt));
}
