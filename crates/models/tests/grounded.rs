//! The grounded family on tiny seeded random models: shapes, determinism, batch
//! equals single, save/load round trips, guidance and inpainting, and clear errors
//! for bad plans.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::{GrayImage, RgbImage};
use mmgen_diffusion::gaussian;
use mmgen_models::grounded::planner::{Planner, PlannerConfig};
use mmgen_models::grounded::{
    GroundedRenderer, GroundedRendererConfig, PlanBatch, PlanIds, PlanPose, PlanVocab, PlannedObject, ScenePlan,
};
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_models::sampling::SamplingSettings;
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::weights::save_f16;

/// Sets every variable of `varmap` to seeded noise (zero-initialised outputs would
/// make every test pass trivially).
fn randomise(varmap: &VarMap) {
    let dev = Device::Cpu;
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        var.set(&gaussian(var.shape(), i as u64, &dev).unwrap().affine(0.2, 0.0).unwrap())
            .unwrap();
    }
}

fn renderer() -> (GroundedRenderer, VarMap, GroundedRendererConfig) {
    let dev = Device::Cpu;
    let config = GroundedRendererConfig::tiny(PlanVocab::tiny());
    let varmap = VarMap::new();
    let model = GroundedRenderer::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &dev), &dev).unwrap();
    randomise(&varmap);
    (model, varmap, config)
}

fn plan(shape: &str, cx: f32) -> ScenePlan {
    ScenePlan {
        background: "bg1".into(),
        style: "style0".into(),
        lighting: "light0".into(),
        objects: vec![PlannedObject {
            shape: shape.into(),
            colour: "colour2".into(),
            size: "size1".into(),
            motion: None,
            pose: PlanPose {
                cx,
                cy: 0.5,
                radius: 0.25,
                angle: 0.3,
            },
        }],
    }
}

fn settings() -> ImageSettings {
    ImageSettings {
        sampling: SamplingSettings {
            steps: 3,
            ..(mmgen_models::grounded::image::default_settings()).sampling
        },
        ..mmgen_models::grounded::image::default_settings()
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmgen-grounded-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn render(model: &GroundedRenderer, plans: &[(&ScenePlan, u64)], settings: &ImageSettings) -> Vec<RgbImage> {
    let requests: Vec<(PlanIds, u64)> = plans.iter().map(|(p, s)| (model.plan_ids(p).unwrap(), *s)).collect();
    model.render(&requests, settings, |_, _| {}).unwrap()
}

#[test]
fn renderer_is_deterministic_batch_invariant_and_round_trips() {
    let (model, varmap, config) = renderer();
    let (a, b) = (plan("shape0", 0.3), plan("shape2", 0.7));
    let single = render(&model, &[(&a, 5)], &settings());
    assert_eq!(single[0].dimensions(), (16, 16));
    assert_eq!(
        single,
        render(&model, &[(&a, 5)], &settings()),
        "same plan and seed, same image"
    );
    let batch = render(&model, &[(&a, 5), (&b, 6)], &settings());
    let close = |x: &RgbImage, y: &RgbImage| {
        x.pixels()
            .zip(y.pixels())
            .all(|(p, q)| p.0.iter().zip(q.0).all(|(u, v)| u.abs_diff(v) <= 1))
    };
    assert!(
        close(&batch[0], &single[0]),
        "a batch gives what its elements give one by one"
    );
    assert_ne!(batch[0], batch[1], "another plan and seed, another image");
    assert_ne!(
        single,
        render(&model, &[(&b, 5)], &settings()),
        "the plan changes the image"
    );

    let dir = temp("renderer");
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    save_f16(&varmap, None, &dir.join("model.safetensors")).unwrap();
    let loaded = GroundedRenderer::load(&dir, &Device::Cpu).unwrap();
    let again = render(&loaded, &[(&a, 5)], &settings());
    assert!(
        close(&again[0], &single[0]),
        "f16 weights draw what f32 drew, within one level"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn renderer_guides_and_inpaints() {
    let (model, _, _) = renderer();
    let a = plan("shape1", 0.5);
    let guided = ImageSettings {
        sampling: SamplingSettings {
            guidance: 3.0,
            ..(settings()).sampling
        },
        ..settings()
    };
    assert_ne!(
        render(&model, &[(&a, 1)], &guided),
        render(&model, &[(&a, 1)], &settings())
    );
    let init = RgbImage::from_pixel(16, 16, image::Rgb([200, 10, 10]));
    let mut mask = GrayImage::new(16, 16);
    for y in 0..16 {
        for x in 8..16 {
            mask.put_pixel(x, y, image::Luma([255]));
        }
    }
    let inpaint = ImageSettings {
        init: Some((init.clone(), 1.0)),
        mask: Some(mask),
        ..settings()
    };
    let out = render(&model, &[(&a, 2)], &inpaint);
    for y in 0..16 {
        for x in 0..8 {
            let (p, q) = (out[0].get_pixel(x, y).0, init.get_pixel(x, y).0);
            assert!(
                p.iter().zip(q).all(|(u, v)| u.abs_diff(v) <= 2),
                "kept region at ({x}, {y}): {p:?}"
            );
        }
    }
}

#[test]
fn bad_plans_name_their_field() {
    let (model, _, _) = renderer();
    let mut bad = plan("blob", 0.5);
    let err = model.plan_ids(&bad).unwrap_err().to_string();
    assert!(err.starts_with("objects[0].shape: unknown value \"blob\""), "{err}");
    bad = plan("shape0", f32::NAN);
    assert!(model
        .plan_ids(&bad)
        .unwrap_err()
        .to_string()
        .contains("objects[0].pose.cx"));
    bad = plan("shape0", 0.5);
    bad.objects = vec![bad.objects[0].clone(); 9];
    assert!(model.plan_ids(&bad).unwrap_err().to_string().contains("9 objects"));
    assert!(ScenePlan::from_json("{\"background\": 1}").is_err());
}

fn planner() -> (Planner, VarMap, PlannerConfig, TextTokenizer) {
    let texts = [
        "a red circle",
        "a blue star on the snow",
        "海边的红色圆形",
        "两个绿色的心",
    ];
    let tok = TextTokenizer::train(texts.iter().cycle().take(40), 320).unwrap();
    let config = PlannerConfig::tiny(PlanVocab::tiny(), tok.vocab_size());
    let varmap = VarMap::new();
    let dev = Device::Cpu;
    let model = Planner::new(
        &config,
        tok.clone(),
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        &dev,
    )
    .unwrap();
    randomise(&varmap);
    (model, varmap, config, tok)
}

#[test]
fn planner_is_deterministic_batch_invariant_and_round_trips() {
    let (model, varmap, config, tok) = planner();
    let one = model.plan(&[("a red circle", 3)]).unwrap();
    assert_eq!(one, model.plan(&[("a red circle", 3)]).unwrap());
    let both = model.plan(&[("a red circle", 3), ("海边的红色圆形", 4)]).unwrap();
    assert_eq!(both[0], one[0], "a batch plans what its elements plan one by one");
    for p in &both {
        p.check(&config.vocab).unwrap();
        assert!(p.objects.len() <= 4);
    }
    let seeds: Vec<ScenePlan> = (0..6)
        .map(|s| model.plan(&[("a red circle", s)]).unwrap().remove(0))
        .collect();
    let with_objects: Vec<&ScenePlan> = seeds.iter().filter(|p| !p.objects.is_empty()).collect();
    if with_objects.len() > 1 {
        assert!(
            with_objects
                .windows(2)
                .any(|w| w[0].objects[0].pose != w[1].objects[0].pose),
            "placements are sampled from the seed"
        );
    }
    let dir = temp("planner");
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    tok.save(&dir.join("tokenizer.json")).unwrap();
    save_f16(&varmap, None, &dir.join("model.safetensors")).unwrap();
    let loaded = Planner::load(&dir, &Device::Cpu).unwrap();
    let again = loaded.plan(&[("a red circle", 3)]).unwrap();
    assert_eq!(again[0].objects.len(), one[0].objects.len());
    assert_eq!(again[0].background, one[0].background);
    assert!(model.plan(&[("  ", 1)]).is_err(), "an empty prompt is refused");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_pixel_head_starts_silent_and_then_draws_within_a_block() {
    let dev = Device::Cpu;
    let (with_head, varmap, config) = renderer();
    // The same weights without the head: a renderer trained before the head existed.
    let without = GroundedRendererConfig {
        pixel_head: false,
        ..config.clone()
    };
    let old = || {
        let weights: std::collections::HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| !name.starts_with("pixel_head."))
            .map(|(name, var)| (name.clone(), var.as_tensor().copy().unwrap()))
            .collect();
        GroundedRenderer::new(&without, VarBuilder::from_tensors(weights, DType::F32, &dev), &dev).unwrap()
    };
    let plan = plan("shape1", 0.45);
    let ids = with_head.plan_ids(&plan).unwrap();
    let batch = PlanBatch::new(&[Some(&ids)], config.null_globals(), &dev).unwrap();
    let xs = gaussian((1, 3, 16, 16), 3, &dev).unwrap();
    let t = Tensor::new(&[400f32], &dev).unwrap();
    let predict = |m: &GroundedRenderer| m.predict(&xs, &t, &m.ground(&batch).unwrap()).unwrap();
    let zero = |name: &str| {
        let data = varmap.data().lock().unwrap();
        let var = &data[name];
        var.set(&var.zeros_like().unwrap()).unwrap();
    };
    zero("pixel_head.weight");
    zero("pixel_head.bias");
    let difference = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(
        difference(&predict(&with_head), &predict(&old())),
        0.0,
        "a zero head changes nothing"
    );
    randomise(&varmap);
    let head_only = (predict(&with_head) - predict(&old())).unwrap();
    assert!(head_only.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
    // Within one 2x2 block of the trunk the head's term varies from pixel to pixel.
    let block: Vec<f32> = head_only
        .narrow(2, 8, 2)
        .unwrap()
        .narrow(3, 8, 2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let spread = block.iter().cloned().fold(f32::MIN, f32::max) - block.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread > 1e-4, "the head's term is not constant over a block: {block:?}");
}
