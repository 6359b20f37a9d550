//! Training the scene editor on the world's edit pairs of the training split (a
//! scene, an instruction in English or Chinese, the scene after): the edit's kind,
//! its object, and its new value are the targets; held-out compositions are never
//! made by a training edit.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use mmgen_eval::edit_eval::{edit_truth, evaluate_editor};
use mmgen_models::grounded::editor::{EditOp, Editor, EditorConfig, EditorPlans};
use mmgen_models::grounded::{PlanVocab, ScenePlan, MAX_OBJECTS};
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_nn::seeded_var_builder;
use mmgen_world::caption::Lang;
use mmgen_world::edit::edit_for_seed;
use mmgen_world::rng::mix64;
use mmgen_world::{OrderedWorkers, Split};
use serde_json::json;

use crate::error::Result;
use crate::fit::{fit, resume, save_model_runs, start_text_encoder, FitOptions, RunInfo, StepReport};
use crate::renderer::previous_runs;

/// One batch: instructions, the plans before, and the true edit of each.
pub struct EditorBatch {
    ids: Tensor,
    mask: Tensor,
    plans: EditorPlans,
    /// (b, 10) u32: op, target, shape, colour, size, motion, style, background, centre,
    /// and 0 (unused).
    targets: Tensor,
    /// (b, 9): 1 where the matching head is judged (target .. centre, radius).
    judged: Tensor,
    /// (b): an added object's radius.
    radius: Tensor,
}

/// Which heads an edit judges, in [`EditorBatch::judged`]'s order.
fn judged(op: EditOp) -> [bool; 9] {
    use EditOp::*;
    let add = op == Add;
    [
        op.has_target(),
        op == Reshape || add,
        op == Recolour || add,
        add,
        add,
        op == Restyle,
        op == Background,
        op == Move || add,
        add,
    ]
}

fn class(names: &[String], name: &str) -> u32 {
    names.iter().position(|n| n == name).unwrap_or(0) as u32
}

/// Batch `index` under `seed`: training edits, half in each language.
fn editor_batch(
    tokenizer: &TextTokenizer,
    config: &EditorConfig,
    batch: usize,
    seed: u64,
    index: u64,
    device: &Device,
) -> Result<EditorBatch> {
    let v: &PlanVocab = &config.vocab;
    let mut texts = Vec::with_capacity(batch);
    let mut befores: Vec<ScenePlan> = Vec::with_capacity(batch);
    let (mut targets, mut judged_heads, mut radius) = (Vec::new(), Vec::new(), Vec::new());
    for j in 0..batch {
        let sample_seed = mix64(seed ^ mix64(index.wrapping_mul(batch as u64).wrapping_add(j as u64)));
        let lang = if sample_seed & 1 == 0 { Lang::En } else { Lang::Zh };
        let edit = edit_for_seed(Split::Train, lang, sample_seed);
        let (before, truth) = edit_truth(&edit, sample_seed);
        targets.extend([
            truth.op.index() as u32,
            truth.target.min(MAX_OBJECTS - 1) as u32,
            class(&v.shapes, &truth.shape),
            class(&v.colours, &truth.colour),
            class(&v.sizes, &truth.size),
            class(&v.motions, &truth.motion),
            class(&v.styles, &truth.style),
            class(&v.backgrounds, &truth.background),
            config.centre_class(truth.centre.0, truth.centre.1) as u32,
            0,
        ]);
        judged_heads.extend(judged(truth.op).map(|j| j as u8 as f32));
        radius.push(truth.radius);
        texts.push(edit.instruction);
        befores.push(before);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (ids, mask) = tokenizer.encode_batch(&refs, config.text.max_len, device)?;
    let plan_refs: Vec<&ScenePlan> = befores.iter().collect();
    Ok(EditorBatch {
        ids,
        mask,
        plans: EditorPlans::of(&plan_refs, v, tokenizer, device)?,
        targets: Tensor::from_vec(targets, (batch, 10), device)?,
        judged: Tensor::from_vec(judged_heads, (batch, 9), device)?,
        radius: Tensor::from_vec(radius, batch, device)?,
    })
}

/// Cross-entropy of each head where it is judged, summed over heads; the named parts
/// for the log.
fn editor_loss(editor: &Editor, b: &EditorBatch) -> Result<(Tensor, Vec<(&'static str, Tensor)>)> {
    let o = editor.forward(&b.ids, &b.mask, &b.plans)?;
    let n = b.radius.dim(0)?;
    let ce = |logits: &Tensor, column: usize, weight: &Tensor| -> Result<Tensor> {
        let target = b.targets.narrow(1, column, 1)?.contiguous()?;
        let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        let picked = log_p.gather(&target, 1)?.squeeze(1)?.neg()?;
        Ok(((picked * weight)?.sum_all()? / (weight.sum_all()? + 1e-6)?)?)
    };
    let judged = |i: usize| -> Result<Tensor> { Ok(b.judged.narrow(1, i, 1)?.squeeze(1)?) };
    let all = Tensor::ones(n, DType::F32, b.radius.device())?;
    let op = ce(&o.op, 0, &all)?;
    let target = ce(&o.target, 1, &judged(0)?)?;
    let mut values = ce(&o.shape, 2, &judged(1)?)?;
    for (logits, column) in [
        (&o.colour, 3),
        (&o.size, 4),
        (&o.motion, 5),
        (&o.style, 6),
        (&o.background, 7),
    ] {
        values = (values + ce(logits, column, &judged(column - 1)?)?)?;
    }
    let centre = ce(&o.centre, 8, &judged(7)?)?;
    let add = judged(8)?;
    // Radii are tenths of the canvas: a hundredfold weight puts a miss of 0.02 at 0.04.
    let radius =
        (((&o.radius - &b.radius)?.sqr()? * &add)?.sum_all()? / (add.sum_all()? + 1e-6)?)?.affine(100.0, 0.0)?;
    let total = ((((&op + &target)? + &values)? + &centre)? + &radius)?;
    Ok((
        total,
        vec![
            ("op", op),
            ("target", target),
            ("values", values),
            ("centre", centre),
            ("radius", radius),
        ],
    ))
}

/// Trains an editor (or continues `run.resume`) and writes its folder: config.json,
/// tokenizer.json, model.safetensors (f16), metrics.json with every run. `text_from`,
/// a planner folder with the same tokenizer, starts a new editor's text encoder.
pub fn train_editor(
    config: &EditorConfig,
    tokenizer: &TextTokenizer,
    text_from: Option<&Path>,
    fit_options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (config, history) = match run.resume {
        Some(dir) => (
            mmgen_models::weights::read_folder_config(dir, "editor")?,
            previous_runs(dir),
        ),
        None => (config.clone(), Vec::new()),
    };
    let mut varmap = VarMap::new();
    let editor = Editor::new(
        &config,
        tokenizer.clone(),
        seeded_var_builder(&varmap, fit_options.seed, DType::F32, device),
        device,
    )?;
    if let Some(dir) = run.resume {
        // An editor from before the slots' descriptions gains their (zero) layer.
        resume(&mut varmap, dir, device, |name| name.starts_with("described."))?;
    } else if let Some(dir) = text_from {
        start_text_encoder(&varmap, dir, device, "editor")?;
    }
    let (tok, cfg, dev) = (tokenizer.clone(), config.clone(), device.clone());
    let (batch, seed) = (fit_options.batch, fit_options.seed);
    let batches = OrderedWorkers::new(fit_options.workers, 2, move |i| {
        editor_batch(&tok, &cfg, batch, seed, i, &dev)
    });
    let outcome = fit(&varmap, fit_options, batches, |b| editor_loss(&editor, b), progress)?;
    let n = run.eval_samples.clamp(1, 2000);
    let mut measured = serde_json::Map::new();
    for (name, split, lang) in [
        ("heldout_en", Split::Heldout, Lang::En),
        ("heldout_zh", Split::Heldout, Lang::Zh),
        ("train_en", Split::Train, Lang::En),
    ] {
        let score = evaluate_editor(&editor, split, lang, n, 0)?;
        measured.insert(name.into(), serde_json::to_value(score).unwrap_or_default());
    }
    let mut record = json!({
        "command": run.command,
        "device": format!("{device:?}"),
        "options": fit_options,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "text_from": text_from.map(|p| p.display().to_string()),
        "accuracy": {
            "about": "world edit pairs of the split (seed 0): the edit applied, and everything else in the plan unchanged (mmgen eval-editor)",
            "final": serde_json::Value::Object(measured),
        },
    });
    outcome.record_into(&mut record, fit_options.batch);
    save_model_runs(run.out, &config, &varmap, "grounded-editor", history, &record)?;
    tokenizer.save(&run.out.join("tokenizer.json"))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::train_tokenizer;
    use crate::renderer::world_vocab;

    #[test]
    fn a_tiny_editor_learns_and_round_trips() {
        let root = std::env::temp_dir().join(format!("mmgen-editor-{}", std::process::id()));
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        let config = EditorConfig::tiny(world_vocab(), tokenizer.vocab_size());
        let options = FitOptions {
            log_every: 5,
            ..FitOptions::new(150, 16, 2e-3, 1)
        };
        let out = root.join("editor");
        let run = RunInfo {
            out: &out,
            command: "test".into(),
            eval_samples: 8,
            checkpoint_every: 0,
            resume: None,
        };
        let record = train_editor(&config, &tokenizer, None, &options, &run, &Device::Cpu, |_| {}).unwrap();
        // The first batches differ by which edits they hold (an add's radius weighs in),
        // so the start is the mean of three logged points.
        let curve: Vec<f64> = record["loss_curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .collect();
        let first = curve[..3].iter().sum::<f64>() / 3.0;
        let last = record["final_loss"].as_f64().unwrap();
        assert!(last < 0.8 * first, "loss {first} -> {last}: {curve:?}");
        let editor = Editor::load(&out, &Device::Cpu).unwrap();
        let edit = edit_for_seed(Split::Train, Lang::En, 5);
        let (before, _) = edit_truth(&edit, 5);
        let a = editor.edit(&[(&before, &edit.instruction, 5)]);
        let b = editor.edit(&[(&before, &edit.instruction, 5)]);
        assert_eq!(a.is_ok(), b.is_ok());
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(a, b, "same plan, instruction and seed: same edit");
            a[0].plan.check(&config.vocab).unwrap();
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
