//! The hybrid pipeline on a tiny seeded random model: determinism, batch equals
//! single, save/load round trip, samplers, img2img/inpainting and clear errors.

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use image::{GrayImage, RgbImage};
use mmgen_diffusion::{gaussian, SAMPLER_NAMES};
use mmgen_models::hybrid_image::{HybridImage, HybridImageConfig, ImageRequest, ImageSettings};
use mmgen_models::sampling::SamplingSettings;
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::weights::save_f16;

fn tokenizer() -> TextTokenizer {
    let texts = ["a red circle", "a blue star on the snow", "海边的红色圆形", "钢琴曲"];
    TextTokenizer::train(texts.iter().cycle().take(40), 320).unwrap()
}

/// A tiny model whose every weight is seeded noise (an untrained DiT outputs zeros).
fn model() -> (HybridImage, VarMap, HybridImageConfig, TextTokenizer) {
    let dev = Device::Cpu;
    let tok = tokenizer();
    let cfg = HybridImageConfig::tiny(tok.vocab_size());
    let varmap = VarMap::new();
    let model = HybridImage::new(
        &cfg,
        tok.clone(),
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        &dev,
    )
    .unwrap();
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        var.set(&gaussian(var.shape(), i as u64, &dev).unwrap().affine(0.2, 0.0).unwrap())
            .unwrap();
    }
    drop(data);
    (model, varmap, cfg, tok)
}

fn request(prompt: &str, seed: u64) -> ImageRequest {
    ImageRequest {
        prompt: prompt.into(),
        seed,
    }
}

fn settings(sampler: &str) -> ImageSettings {
    ImageSettings {
        sampling: SamplingSettings {
            steps: 4,
            sampler: sampler.into(),
            ..SamplingSettings::default()
        },
        ..ImageSettings::default()
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmgen-hybrid-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn seeded_batch_equals_single_for_every_sampler() {
    let (model, ..) = model();
    for sampler in SAMPLER_NAMES {
        let s = settings(sampler);
        let pair = model
            .generate(
                &[request("a red circle", 1), request("海边的红色圆形", 2)],
                &s,
                |_, _| {},
            )
            .unwrap();
        let alone = model.generate(&[request("海边的红色圆形", 2)], &s, |_, _| {}).unwrap();
        let again = model.generate(&[request("海边的红色圆形", 2)], &s, |_, _| {}).unwrap();
        assert_eq!(pair[0].dimensions(), (16, 16));
        // Equal up to float reassociation in batched matmuls: within one grey level.
        let max_diff = pair[1]
            .as_raw()
            .iter()
            .zip(alone[0].as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(max_diff <= 1, "{sampler}: batch differs from single by {max_diff}");
        assert_eq!(alone[0], again[0], "{sampler}: not reproducible");
        let other = model.generate(&[request("海边的红色圆形", 3)], &s, |_, _| {}).unwrap();
        assert_ne!(alone[0], other[0], "{sampler}: the seed changes nothing");
    }
}

#[test]
fn saved_model_loads_and_generates_the_same() {
    let (model, varmap, cfg, tok) = model();
    let dir = temp("roundtrip");
    std::fs::write(dir.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    tok.save(&dir.join("tokenizer.json")).unwrap();
    save_f16(&varmap, None, &dir.join("model.safetensors")).unwrap();
    let loaded = HybridImage::load(&dir, &Device::Cpu).unwrap();
    let s = settings("dpmpp-2m");
    let a = model
        .generate(&[request("a blue star on the snow", 5)], &s, |_, _| {})
        .unwrap();
    let b = loaded
        .generate(&[request("a blue star on the snow", 5)], &s, |_, _| {})
        .unwrap();
    // f16 storage: within a few grey levels.
    let max_diff = a[0]
        .as_raw()
        .iter()
        .zip(b[0].as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap();
    assert!(max_diff <= 8, "{max_diff}");

    // Missing and corrupt weight files say which file and what is wrong.
    std::fs::write(dir.join("model.safetensors"), b"not safetensors").unwrap();
    let err = HybridImage::load(&dir, &Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("unreadable weights"),
        "{err}"
    );
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let err = HybridImage::load(&dir, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("model.safetensors: missing"), "{err}");
}

#[test]
fn img2img_inpainting_and_progress() {
    let (model, ..) = model();
    let init = RgbImage::from_pixel(40, 40, image::Rgb([200, 30, 30]));
    let mut mask = GrayImage::new(40, 40);
    for (x, _, p) in mask.enumerate_pixels_mut() {
        p.0[0] = if x >= 20 { 255 } else { 0 };
    }
    let mut calls = Vec::new();
    let s = ImageSettings {
        sampling: SamplingSettings {
            steps: 10,
            ..SamplingSettings::default()
        },
        init: Some((init, 0.5)),
        mask: Some(mask),
    };
    let out = model
        .generate(&[request("a red circle", 1)], &s, |done, total| {
            calls.push((done, total))
        })
        .unwrap();
    assert_eq!(out[0].dimensions(), (16, 16));
    assert_eq!(calls, (1..=5).map(|d| (d, 5)).collect::<Vec<_>>());
}

#[test]
fn bad_settings_fail_clearly() {
    let (model, ..) = model();
    let cases: Vec<(ImageSettings, &str)> = vec![
        (
            ImageSettings {
                sampling: SamplingSettings {
                    steps: 0,
                    ..(settings("ddim")).sampling
                },
                ..settings("ddim")
            },
            "steps is 0; allowed 1 to 1000",
        ),
        (
            ImageSettings {
                sampling: SamplingSettings {
                    guidance: f64::NAN,
                    ..(settings("ddim")).sampling
                },
                ..settings("ddim")
            },
            "guidance is NaN",
        ),
        (settings("heun"), "unknown sampler 'heun'; allowed: ddim"),
        (
            ImageSettings {
                init: Some((RgbImage::new(16, 16), 0.0)),
                ..settings("ddim")
            },
            "strength is 0",
        ),
        (
            ImageSettings {
                mask: Some(GrayImage::new(16, 16)),
                ..settings("ddim")
            },
            "a mask needs an init image",
        ),
    ];
    for (s, expected) in cases {
        let err = model
            .generate(&[request("a red circle", 1)], &s, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
    let err = model
        .generate(&[request("  ", 1)], &settings("ddim"), |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("is empty"), "{err}");
}
