//! Training the scene planner on the world's (caption, spec, layout) triples of the
//! training split: held-out compositions are never seen.
//!
//! Slot `k`'s target is the spec's object `k`: the world's captions name objects in
//! spec order (a group of equal objects, "three blue balls", as consecutive slots),
//! and an anchor always comes before what is placed relative to it. So slot `k` is
//! the `k`-th object named, which attention finds by position. (Objects sorted by
//! their classes instead made every slot solve a sort: after 13 k captions the
//! object heads were still at chance.) Slot `k`'s input is slot `k - 1`'s true pose
//! and classes (teacher forcing).

use std::path::Path;

use crate::fit::RunInfo;
use crate::fit::{fit, start_text_encoder, write_json, CheckpointClock, FitOptions, StepReport};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use mmgen_models::grounded::planner::{Planner, PlannerConfig, PlannerOutput};
use mmgen_models::grounded::MAX_OBJECTS;
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::weights::{load_f32, save_f16, set_inflated};
use mmgen_nn::seeded_var_builder;
use mmgen_world::caption::parse::parse_prompt;
use mmgen_world::caption::{caption, CaptionOptions, Lang, Medium};
use mmgen_world::layout::layout;
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{OrderedWorkers, Placement, SceneSpec, SpecSampler, Split};
use rand::Rng;
use serde_json::json;

use crate::error::{Result, TrainError};

/// A planner's targets for one batch, with its token ids.
pub struct PlannerBatch {
    ids: Tensor,
    mask: Tensor,
    /// (b, 3): background, style, lighting.
    globals: Tensor,
    /// (b, K, 6): present, shape, colour, size, motion, centre bin.
    slots: Tensor,
    /// (b, K): 1 for present slots.
    present: Tensor,
    /// (b, K): 1 for present slots of captions that ask for motion (video).
    motion_mask: Tensor,
    /// (b, K): target radius.
    radius: Tensor,
    /// (b, K, 3): the previous slot's true (cx, cy, radius).
    previous: Tensor,
    /// (b, K, 3) u32: the previous slot's true (shape, colour, size), or "none".
    previous_ids: Tensor,
    /// The specs, for accuracy.
    specs: Vec<SceneSpec>,
}

/// Which captions a batch holds.
#[derive(Clone, Copy)]
enum Captions {
    /// Training split, image and video captions in both languages, half of them with
    /// every detail stated; `relation_share` of them describe a pair placed by a
    /// relation (about a tenth do in the world's own mix).
    Training { relation_share: f64 },
    /// Full image captions of one split in one language (measurement).
    Full(Split, Lang),
}

/// Batch `index` of `captions` under `seed`.
fn planner_batch(
    tokenizer: &TextTokenizer,
    config: &PlannerConfig,
    captions: Captions,
    batch: usize,
    seed: u64,
    index: u64,
    device: &Device,
) -> Result<PlannerBatch> {
    let sampler = SpecSampler::default();
    let (mut texts, mut specs) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
    let mut globals = Vec::with_capacity(batch * 3);
    let mut slots = vec![0u32; batch * MAX_OBJECTS * 6];
    let mut present = vec![0f32; batch * MAX_OBJECTS];
    let mut motion_mask = vec![0f32; batch * MAX_OBJECTS];
    let mut radius = vec![0f32; batch * MAX_OBJECTS];
    let mut previous = vec![0f32; batch * MAX_OBJECTS * 3];
    let v = &config.vocab;
    let none = [v.shapes.len() as u32, v.colours.len() as u32, v.sizes.len() as u32];
    let mut previous_ids: Vec<u32> = none.repeat(batch * MAX_OBJECTS);
    for j in 0..batch {
        let sample_seed = mix64(seed ^ mix64(index.wrapping_mul(batch as u64).wrapping_add(j as u64)));
        let mut rng = rng_for(sample_seed, Purpose::Caption);
        let (split, full_only) = match captions {
            Captions::Training { .. } => (Split::Train, None),
            Captions::Full(split, lang) => (split, Some(lang)),
        };
        let spec = match captions {
            Captions::Training { relation_share } if relation_share > 0.0 && rng.random_bool(relation_share) => {
                related_spec(&sampler, split, sample_seed)
            }
            _ => sampler.sample(split, sample_seed),
        };
        let poses = layout(&spec, sample_seed);
        let video = full_only.is_none() && rng.random_bool(0.4);
        let medium = if video { Medium::Video } else { Medium::Image };
        let (lang, options) = match full_only {
            Some(lang) => (lang, CaptionOptions::full(medium)),
            None => (
                if rng.random_bool(0.5) { Lang::En } else { Lang::Zh },
                if rng.random_bool(0.5) {
                    CaptionOptions::full(medium)
                } else {
                    CaptionOptions::training(medium)
                },
            ),
        };
        let text = caption(&spec, lang, options, &mut rng);
        // A training caption of a clip with sound may leave the objects unsaid ("a
        // video of the sea at sunset, with piano music"): its plan has none, rather
        // than objects the prompt never asked for.
        let objects_said = full_only.is_some() || !matches!(parse_prompt(&text), Ok(r) if r.objects.is_empty());
        texts.push(text);
        globals.extend([spec.background.index(), spec.style.index(), spec.lighting.index()].map(|v| v as u32));
        let said = if objects_said { spec.objects.len() } else { 0 };
        for (k, (o, p)) in spec.objects.iter().zip(&poses).enumerate().take(said.min(MAX_OBJECTS)) {
            let slot = j * MAX_OBJECTS + k;
            // An object placed beside the previous one is labelled by its offset from it
            // (when the planner has a relative grid), any other by its absolute bin.
            let relative = match o.placement {
                Placement::Relative { of, .. } if k > 0 && of == k - 1 => {
                    config.relative_class(p.cx - poses[of].cx, p.cy - poses[of].cy)
                }
                _ => None,
            };
            let centre = relative.unwrap_or_else(|| config.absolute_class(p.cx, p.cy));
            slots[slot * 6..slot * 6 + 6].copy_from_slice(
                &[
                    1,
                    o.shape.index(),
                    o.colour.index(),
                    o.size.index(),
                    o.motion.index(),
                    centre,
                ]
                .map(|v| v as u32),
            );
            present[slot] = 1.0;
            motion_mask[slot] = video as u8 as f32;
            radius[slot] = p.radius;
            if k + 1 < MAX_OBJECTS {
                previous[(slot + 1) * 3..(slot + 2) * 3].copy_from_slice(&[p.cx, p.cy, p.radius]);
                previous_ids[(slot + 1) * 3..(slot + 2) * 3]
                    .copy_from_slice(&[o.shape.index(), o.colour.index(), o.size.index()].map(|v| v as u32));
            }
        }
        specs.push(spec);
    }
    let refs: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
    let (ids, mask) = tokenizer.encode_batch(&refs, config.text.max_len, device)?;
    let k = MAX_OBJECTS;
    Ok(PlannerBatch {
        ids,
        mask,
        globals: Tensor::from_vec(globals, (batch, 3), device)?,
        slots: Tensor::from_vec(slots, (batch, k, 6), device)?,
        present: Tensor::from_vec(present, (batch, k), device)?,
        motion_mask: Tensor::from_vec(motion_mask, (batch, k), device)?,
        radius: Tensor::from_vec(radius, (batch, k), device)?,
        previous: Tensor::from_vec(previous, (batch, k, 3), device)?,
        previous_ids: Tensor::from_vec(previous_ids, (batch, k, 3), device)?,
        specs,
    })
}

/// A spec of `split` with an object placed by a relation: the first of the specs of
/// seeds derived from `seed` that has one (the world's own specs, only chosen).
fn related_spec(sampler: &SpecSampler, split: Split, seed: u64) -> SceneSpec {
    let related = |spec: &SceneSpec| {
        spec.objects
            .iter()
            .any(|o| matches!(o.placement, Placement::Relative { .. }))
    };
    let mut specs = (0u64..256).map(|k| sampler.sample(split, mix64(seed ^ k.wrapping_mul(0x9E37_79B9))));
    let first = sampler.sample(split, seed);
    specs.find(related).unwrap_or(first)
}

/// What a planner run adds to the fit options.
#[derive(Clone, Debug, Default)]
pub struct PlannerOptions<'a> {
    /// A hybrid model folder whose trained text encoder starts a new planner.
    pub text_from: Option<&'a Path>,
    /// Offset bins per side of the relative grid (a resumed planner without one gets it).
    pub relative_bins: Option<usize>,
    /// Share of training captions that describe a pair placed by a relation.
    pub relation_share: f64,
}

/// Mean cross-entropy of `logits` (..., C) against `targets` (...) u32 where `mask`
/// (...) is 1.
fn masked_ce(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let c = logits.dim(D::Minus1)?;
    let n = targets.elem_count();
    let logp = candle_nn::ops::log_softmax(&logits.reshape((n, c))?, D::Minus1)?;
    let picked = logp.gather(&targets.reshape((n, 1))?, 1)?.reshape(n)?;
    let mask = mask.reshape(n)?;
    (picked * &mask)?.sum_all()?.neg()? / (mask.sum_all()? + 1e-6)?
}

fn planner_loss(model: &Planner, b: &PlannerBatch) -> Result<(Tensor, Vec<(&'static str, Tensor)>)> {
    let (text, mask) = model.encode(&b.ids, &b.mask)?;
    let o: PlannerOutput = model.forward(&text, &mask, &b.previous, &b.previous_ids)?;
    let bsz = b.present.dim(0)?;
    let ones = Tensor::ones(bsz, DType::F32, b.present.device())?;
    let all_slots = Tensor::ones((bsz, MAX_OBJECTS), DType::F32, b.present.device())?;
    let g = |i: usize| b.globals.narrow(1, i, 1).and_then(|t| t.squeeze(1));
    let s = |i: usize| b.slots.narrow(2, i, 1).and_then(|t| t.squeeze(2));
    let globals = ((masked_ce(&o.background, &g(0)?, &ones)? + masked_ce(&o.style, &g(1)?, &ones)?)?
        + masked_ce(&o.lighting, &g(2)?, &ones)?)?;
    let present = masked_ce(&o.present, &s(0)?, &all_slots)?;
    let what = ((masked_ce(&o.shape, &s(1)?, &b.present)? + masked_ce(&o.colour, &s(2)?, &b.present)?)?
        + masked_ce(&o.size, &s(3)?, &b.present)?)?;
    let motion = masked_ce(&o.motion, &s(4)?, &b.motion_mask)?;
    let centre = masked_ce(&o.centre, &s(5)?, &b.present)?;
    let radius = (((&o.radius - &b.radius)?.sqr()? * &b.present)?.sum_all()? / (b.present.sum_all()? + 1e-6)?)?
        .affine(1000.0, 0.0)?;
    let total = (((((&globals + &present)? + &what)? + &motion)? + &centre)? + &radius)?;
    Ok((
        total,
        vec![
            ("globals", globals),
            ("objects", what),
            ("centre", centre),
            ("radius", radius),
        ],
    ))
}

/// Exact match and per-attribute accuracy of the planner's decoded plans (argmax
/// classes, objects in spec order) on a batch of full captions.
pub fn plan_accuracy(model: &Planner, b: &PlannerBatch) -> Result<serde_json::Value> {
    let (text, mask) = model.encode(&b.ids, &b.mask)?;
    let o = model.forward(&text, &mask, &b.previous, &b.previous_ids)?;
    let arg = |t: &Tensor| -> Result<Vec<u32>> { Ok(t.argmax(D::Minus1)?.flatten_all()?.to_vec1()?) };
    let (bg, st, li) = (arg(&o.background)?, arg(&o.style)?, arg(&o.lighting)?);
    let (pr, sh, co, si) = (arg(&o.present)?, arg(&o.shape)?, arg(&o.colour)?, arg(&o.size)?);
    let n = b.specs.len();
    let mut counts = [0usize; 6];
    for (i, spec) in b.specs.iter().enumerate() {
        let count = (0..MAX_OBJECTS).take_while(|&k| pr[i * MAX_OBJECTS + k] == 1).count();
        let objects_right = count == spec.objects.len()
            && spec.objects.iter().enumerate().all(|(k, o)| {
                let s = i * MAX_OBJECTS + k;
                sh[s] as usize == o.shape.index()
                    && co[s] as usize == o.colour.index()
                    && si[s] as usize == o.size.index()
            });
        let checks = [
            bg[i] as usize == spec.background.index(),
            st[i] as usize == spec.style.index(),
            li[i] as usize == spec.lighting.index(),
            count == spec.objects.len(),
            objects_right,
        ];
        for (c, ok) in counts.iter_mut().zip(checks) {
            *c += ok as usize;
        }
        counts[5] += checks.iter().all(|c| *c) as usize;
    }
    let share = |c: usize| c as f64 / n.max(1) as f64;
    Ok(json!({
        "prompts": n,
        "background": share(counts[0]),
        "style": share(counts[1]),
        "lighting": share(counts[2]),
        "count": share(counts[3]),
        "objects": share(counts[4]),
        "exact": share(counts[5]),
    }))
}

/// Trains a planner (or continues `run.resume`) and writes its folder: config.json,
/// tokenizer.json, model.safetensors (f16), metrics.json with every run.
///
/// `relative_bins`, when given, sets the relative grid of a new planner, or adds one
/// to a resumed planner that has none (its head starts from its initialisation).
#[allow(clippy::too_many_arguments)]
pub fn train_planner(
    config: &PlannerConfig,
    tokenizer: &TextTokenizer,
    planner_options: &PlannerOptions,
    fit_options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let mut history = Vec::new();
    let mut config = match run.resume {
        Some(dir) => {
            history = crate::renderer::previous_runs(dir);
            mmgen_models::weights::read_folder_config(dir, "planner")?
        }
        None => config.clone(),
    };
    let mut adds_relative = false;
    let text_from = planner_options.text_from;
    if !(0.0..=1.0).contains(&planner_options.relation_share) {
        return Err(TrainError::Invalid(format!(
            "relation_share {}: allowed 0 to 1",
            planner_options.relation_share
        )));
    }
    if let Some(n) = planner_options.relative_bins.filter(|&n| n != config.relative_bins) {
        if run.resume.is_some() && config.relative_bins > 0 {
            return Err(TrainError::Invalid(format!(
                "relative_bins {n}: the resumed planner has a relative grid of {} bins, which cannot change",
                config.relative_bins
            )));
        }
        adds_relative = run.resume.is_some();
        config.relative_bins = n;
    }
    let varmap = VarMap::new();
    let model = Planner::new(
        &config,
        tokenizer.clone(),
        seeded_var_builder(&varmap, fit_options.seed, DType::F32, device),
        device,
    )?;
    if let Some(dir) = run.resume {
        let added = |name: &str| adds_relative && name.starts_with("head.relative.");
        set_inflated(&varmap, &load_f32(&dir.join("model.safetensors"), device)?, added)?;
    } else if let Some(dir) = text_from {
        // A trained text encoder (the end-to-end model's, same tokenizer) starts the run.
        start_text_encoder(&varmap, dir, device, "planner")?;
    }
    let save = |metrics: &serde_json::Value| -> Result<()> {
        std::fs::create_dir_all(run.out).map_err(|e| TrainError::file(run.out, e))?;
        let value = serde_json::to_value(&config).map_err(|e| TrainError::Invalid(e.to_string()))?;
        write_json(&run.out.join("config.json"), &value)?;
        tokenizer.save(&run.out.join("tokenizer.json"))?;
        save_f16(&varmap, None, &run.out.join("model.safetensors"))?;
        write_json(&run.out.join("metrics.json"), metrics)?;
        Ok(())
    };
    let (tok, cfg, dev) = (tokenizer.clone(), config.clone(), device.clone());
    let (batch, seed) = (fit_options.batch, fit_options.seed);
    let training = Captions::Training {
        relation_share: planner_options.relation_share,
    };
    let batches = OrderedWorkers::new(fit_options.workers, 2, move |i| {
        planner_batch(&tok, &cfg, training, batch, seed, i, &dev)
    });
    let mut clock = CheckpointClock::new(run.checkpoint_every, fit_options.steps);
    let outcome = fit(
        &varmap,
        fit_options,
        batches,
        |b| planner_loss(&model, b),
        |report| {
            progress(report);
            if clock.due(report.step) {
                let mut partial = history.clone();
                partial.push(json!({"command": run.command, "partial": true, "step": report.step,
                "train_seconds": report.elapsed_s, "samples_per_s": report.samples_per_s}));
                let _ = save(&json!({"model": "planner", "runs": partial}));
            }
        },
    )?;
    let mut accuracy = serde_json::Map::new();
    for split in [Split::Train, Split::Heldout] {
        for lang in [Lang::En, Lang::Zh] {
            let n = run.eval_samples.max(1);
            let b = planner_batch(
                tokenizer,
                &config,
                Captions::Full(split, lang),
                n,
                seed ^ 0xE7A1,
                1 << 40,
                device,
            )?;
            accuracy.insert(
                format!("{}_{}", split_name(split), lang_name(lang)),
                plan_accuracy(&model, &b)?,
            );
        }
    }
    let mut record = json!({
        "command": run.command,
        "device": format!("{device:?}"),
        "options": fit_options,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "text_from": text_from.map(|p| p.display().to_string()),
        "relation_share": planner_options.relation_share,
        "accuracy": {
            "about": "argmax plans of full image captions (teacher-forced poses) against the spec: globals, object count, every object's shape, colour and size in spec order; exact = all of them",
            "by_split": accuracy,
        },
    });
    outcome.record_into(&mut record, fit_options.batch);
    history.push(record.clone());
    let hours: f64 = history.iter().filter_map(|r| r["train_seconds"].as_f64()).sum::<f64>() / 3600.0;
    save(&json!({"model": "planner", "train_hours_total": hours, "runs": history}))?;
    Ok(record)
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Heldout => "heldout",
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Zh => "zh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::train_tokenizer;
    use crate::renderer::world_vocab;

    #[test]
    fn related_specs_hold_a_relation_and_keep_their_split() {
        let sampler = SpecSampler::default();
        for seed in 0..20 {
            for split in [Split::Train, Split::Heldout] {
                let spec = related_spec(&sampler, split, seed);
                assert!(spec
                    .objects
                    .iter()
                    .any(|o| matches!(o.placement, Placement::Relative { .. })));
                assert_eq!(mmgen_world::sampler::split_of(&spec), split);
            }
        }
    }

    #[test]
    fn tiny_planner_training_lowers_the_loss_and_plans() {
        let root = std::env::temp_dir().join(format!("mmgen-planner-{}", std::process::id()));
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        let config = PlannerConfig::tiny(world_vocab(), tokenizer.vocab_size());
        let options = FitOptions {
            log_every: 5,
            ..FitOptions::new(80, 16, 3e-3, 1)
        };
        let out = root.join("planner");
        let run = RunInfo {
            out: &out,
            command: "test".into(),
            eval_samples: 8,
            checkpoint_every: 0,
            resume: None,
        };
        let record = train_planner(
            &config,
            &tokenizer,
            &PlannerOptions::default(),
            &options,
            &run,
            &Device::Cpu,
            |_| {},
        )
        .unwrap();
        let (first, last) = (
            record["first_loss"].as_f64().unwrap(),
            record["final_loss"].as_f64().unwrap(),
        );
        assert!(last < 0.8 * first, "loss {first} -> {last}");
        let planner = Planner::load(&out, &Device::Cpu).unwrap();
        let plans = planner
            .plan(&[
                ("a red circle on a snowy field", 1),
                ("a red circle on a snowy field", 1),
            ])
            .unwrap();
        assert_eq!(plans[0], plans[1], "same prompt and seed, same plan");
        assert!(plans[0].check(&config.vocab).is_ok());
        let _ = std::fs::remove_dir_all(&root);
    }
}
