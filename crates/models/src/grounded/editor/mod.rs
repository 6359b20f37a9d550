//! The scene editor: the content studio's multi-turn edits. It reads a scene plan
//! and an instruction ("make the star blue", "把星星移到左边") and says what to change:
//! which kind of edit, which object (a pointer over the plan's objects, as in
//! pointer networks, Vinyals et al. 2015), and the new value. The new plan is the old
//! one with exactly that change, so whatever the instruction does not touch stays put
//! by construction, and the same seed redraws the rest the same way.
//!
//! Why an edit, not a whole new plan: a plan regenerated from scratch must relearn to
//! copy every untouched object, pose and global, and a copy that is 99% right per
//! field still moves something in most multi-object edits. Reading the edit is a
//! classification over a handful of choices, which two CPU cores train in minutes.
//!
//! An editor folder holds `config.json` ([`EditorConfig`]), `tokenizer.json` and
//! `model.safetensors`; the class names it emits come from its config's vocabulary.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, linear, Embedding, Init, Linear, VarBuilder};
use mmgen_nn::LayerNorm;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::grounded::draw::{sample_index, WHOLE};
use crate::grounded::field::fourier;
use crate::grounded::plan::{PlanVocab, ScenePlan, MAX_OBJECTS};
use crate::grounded::planner::SlotLayer;
use crate::text_encoder::{TextEncoder, TextEncoderConfig};
use crate::tokenizer::TextTokenizer;
use crate::weights::{load_folder, FolderFiles};

mod apply;

pub use apply::{apply, EditChoice, EditOp, Edited, PlanEdit};

/// Shape of an editor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EditorConfig {
    /// Class names it reads and emits.
    pub vocab: PlanVocab,
    /// Its text encoder.
    pub text: TextEncoderConfig,
    /// Layers over the edit query, the globals and the objects.
    pub depth: usize,
    /// Centre bins per side of a moved or added object.
    pub bins: usize,
}

impl EditorConfig {
    /// The shipped shape: the planner's text encoder, so a planner's weights can start it.
    pub fn base(vocab: PlanVocab, vocab_size: usize) -> EditorConfig {
        EditorConfig {
            vocab,
            text: TextEncoderConfig::base(vocab_size),
            depth: 2,
            bins: 16,
        }
    }

    /// A tiny editor for tests.
    pub fn tiny(vocab: PlanVocab, vocab_size: usize) -> EditorConfig {
        EditorConfig {
            vocab,
            text: TextEncoderConfig::tiny(vocab_size),
            depth: 1,
            bins: 4,
        }
    }

    /// The centre class of (cx, cy).
    pub fn centre_class(&self, cx: f32, cy: f32) -> usize {
        let bin = |v: f32| ((v * self.bins as f32).max(0.0) as usize).min(self.bins - 1);
        bin(cy) * self.bins + bin(cx)
    }

    /// The centre of class `class`, jittered by (ux, uy) in [0, 1)^2 within its bin.
    pub fn centre_of(&self, class: usize, ux: f32, uy: f32) -> (f32, f32) {
        let (bx, by) = (class % self.bins, class / self.bins);
        ((bx as f32 + ux) / self.bins as f32, (by as f32 + uy) / self.bins as f32)
    }
}

/// Fourier octaves of an object's centre.
const POSE_OCTAVES: usize = 3;

/// Logit given to a pointer at an empty slot.
const NO_OBJECT: f64 = -1e4;

/// A batch of plans as the editor reads them.
pub struct EditorPlans {
    /// (b, 3) u32: background, style, lighting ids.
    pub globals: Tensor,
    /// (b, K, 4) u32: shape, colour, size, motion ids (0 in empty slots).
    pub objects: Tensor,
    /// (b, K, 3): cx, cy, radius (0 in empty slots).
    pub poses: Tensor,
    /// (b, K): 1 where a slot holds an object.
    pub present: Tensor,
    /// (b K, L) token ids and (b K, L) mask: each slot's object said in words
    /// ("small red star"; empty slots say nothing), read by the instruction's encoder.
    pub described: (Tensor, Tensor),
}

impl EditorPlans {
    /// The batch of `plans` under `vocab`, naming the first bad field; `tokenizer`
    /// encodes each object's description.
    pub fn of(
        plans: &[&ScenePlan],
        vocab: &PlanVocab,
        tokenizer: &TextTokenizer,
        device: &Device,
    ) -> Result<EditorPlans> {
        let b = plans.len();
        let (mut globals, mut objects) = (Vec::with_capacity(b * 3), vec![0u32; b * MAX_OBJECTS * 4]);
        let (mut poses, mut present) = (vec![0f32; b * MAX_OBJECTS * 3], vec![0f32; b * MAX_OBJECTS]);
        let mut described = vec![String::new(); b * MAX_OBJECTS];
        for (i, plan) in plans.iter().enumerate() {
            let ids = crate::grounded::PlanIds::of(plan, vocab)?;
            globals.extend([ids.background, ids.style, ids.lighting]);
            for (k, (o, named)) in ids.objects.iter().zip(&plan.objects).enumerate() {
                let s = i * MAX_OBJECTS + k;
                let motion = match &named.motion {
                    Some(m) => PlanVocab::id(&vocab.motions, m, &format!("objects[{k}].motion"))?,
                    None => 0,
                };
                objects[s * 4..s * 4 + 4].copy_from_slice(&[o.shape, o.colour, o.size, motion]);
                poses[s * 3..s * 3 + 3].copy_from_slice(&[o.pose[0], o.pose[1], o.pose[2]]);
                present[s] = 1.0;
                described[s] = format!("{} {} {}", named.size, named.colour, named.shape).replace('_', " ");
            }
        }
        let encoded = described
            .iter()
            .map(|d| tokenizer.encode(d, 16))
            .collect::<Result<Vec<_>>>()?;
        Ok(EditorPlans {
            described: crate::tokenizer::pad_batch(&encoded, device)?,
            globals: Tensor::from_vec(globals, (b, 3), device)?,
            objects: Tensor::from_vec(objects, (b, MAX_OBJECTS, 4), device)?,
            poses: Tensor::from_vec(poses, (b, MAX_OBJECTS, 3), device)?,
            present: Tensor::from_vec(present, (b, MAX_OBJECTS), device)?,
        })
    }
}

/// The editor's raw outputs for a batch (logits, and the radius in canvas units).
pub struct EditorOutput {
    /// (b, edits): which [`EditOp`].
    pub op: Tensor,
    /// (b, K): which object; empty slots at -1e4.
    pub target: Tensor,
    /// (b, shapes): the new shape (reshape, add).
    pub shape: Tensor,
    /// (b, colours): the new colour (recolour, add).
    pub colour: Tensor,
    /// (b, sizes): an added object's size.
    pub size: Tensor,
    /// (b, motions): an added object's motion.
    pub motion: Tensor,
    /// (b, styles): the new style.
    pub style: Tensor,
    /// (b, backgrounds): the new background.
    pub background: Tensor,
    /// (b, bins^2): a moved or added object's centre, row-major (y, then x).
    pub centre: Tensor,
    /// (b): an added object's radius.
    pub radius: Tensor,
}

/// Order of the heads read from the edit query.
const HEADS: [&str; 9] = [
    "op",
    "shape",
    "colour",
    "size",
    "motion",
    "style",
    "background",
    "centre",
    "radius",
];

/// The editor. Parameters `text.*`, `tokens` (edit query, globals, slot k),
/// `global.*` and `object.*` embeddings, `pose`, `layers.{i}`, `norm`, `head.*`.
pub struct Editor {
    tokenizer: TextTokenizer,
    text: TextEncoder,
    tokens: Tensor,
    globals: [Embedding; 3],
    objects: [Embedding; 4],
    pose: Linear,
    described: Linear,
    empty: Tensor,
    layers: Vec<SlotLayer>,
    norm: LayerNorm,
    heads: Vec<Linear>,
    pointer: Linear,
    config: EditorConfig,
    device: Device,
}

impl Editor {
    /// Builds the editor on `vb`.
    pub fn new(config: &EditorConfig, tokenizer: TextTokenizer, vb: VarBuilder, device: &Device) -> Result<Editor> {
        config.text.check_tokenizer(&tokenizer)?;
        if config.bins == 0 || config.depth == 0 {
            return Err(ModelError::Invalid(format!(
                "editor bins {} and depth {} must be at least 1",
                config.bins, config.depth
            )));
        }
        let d = config.text.dim;
        let v = &config.vocab;
        let sizes = [
            EditOp::ALL.len(),
            v.shapes.len(),
            v.colours.len(),
            v.sizes.len(),
            v.motions.len(),
            v.styles.len(),
            v.backgrounds.len(),
            config.bins * config.bins,
            1,
        ];
        let heads = HEADS
            .iter()
            .zip(sizes)
            .map(|(name, n)| linear(d, n, vb.pp(format!("head.{name}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let init = Init::Randn { mean: 0.0, stdev: 0.02 };
        Ok(Editor {
            text: TextEncoder::new(&config.text, vb.pp("text"))?,
            tokenizer,
            tokens: vb.get_with_hints((2 + MAX_OBJECTS, d), "tokens", init)?,
            globals: [
                embedding(v.backgrounds.len(), d, vb.pp("global.background"))?,
                embedding(v.styles.len(), d, vb.pp("global.style"))?,
                embedding(v.lightings.len(), d, vb.pp("global.lighting"))?,
            ],
            objects: [
                embedding(v.shapes.len(), d, vb.pp("object.shape"))?,
                embedding(v.colours.len(), d, vb.pp("object.colour"))?,
                embedding(v.sizes.len(), d, vb.pp("object.size"))?,
                embedding(v.motions.len(), d, vb.pp("object.motion"))?,
            ],
            pose: linear(2 + 4 * POSE_OCTAVES + 1, d, vb.pp("pose"))?,
            // Starts at zero: the descriptions join the slots as training finds them useful.
            described: Linear::new(
                vb.get_with_hints((d, d), "described.weight", Init::Const(0.0))?,
                Some(vb.get_with_hints(d, "described.bias", Init::Const(0.0))?),
            ),
            empty: vb.get_with_hints((1, 1, d), "empty", init)?,
            layers: (0..config.depth)
                .map(|i| SlotLayer::new(d, config.text.heads, "tokens", false, vb.pp(format!("layers.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            norm: LayerNorm::new(d, true, vb.pp("norm"))?,
            heads,
            pointer: linear(d, 1, vb.pp("head.target"))?,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Reads an editor folder.
    pub fn load(dir: &Path, device: &Device) -> Result<Editor> {
        Editor::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<Editor> {
        load_folder(files, device, "editor", |c: &EditorConfig, tok, vb| {
            Editor::new(c, tok, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EditorConfig {
        &self.config
    }

    /// Its tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The outputs for instructions `ids`/`mask` (b, L) on `plans`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, plans: &EditorPlans) -> Result<EditorOutput> {
        let text = self.text.forward(ids, mask)?.0;
        let b = ids.dim(0)?;
        let global_ids = |i: usize| -> Result<Tensor> { Ok(plans.globals.narrow(1, i, 1)?.squeeze(1)?) };
        let mut global = self.globals[0].forward(&global_ids(0)?)?;
        for i in 1..3 {
            global = (global + self.globals[i].forward(&global_ids(i)?)?)?;
        }
        let centre = plans.poses.narrow(2, 0, 2)?;
        let radius = plans.poses.narrow(2, 2, 1)?;
        let pose = Tensor::cat(&[fourier(&centre, POSE_OCTAVES)?, radius.affine(10.0, 0.0)?], 2)?;
        let mut objects = self.pose.forward(&pose)?;
        for (i, table) in self.objects.iter().enumerate() {
            objects = (objects + table.forward(&plans.objects.narrow(2, i, 1)?.squeeze(2)?)?)?;
        }
        // Each object also carries its description read by the instruction's encoder,
        // so that "the red star" finds the slot that says "small red star".
        let (described, described_mask) = &plans.described;
        let said = self.text.forward(described, described_mask)?.0;
        let weights = described_mask.unsqueeze(2)?;
        let said = said
            .broadcast_mul(&weights)?
            .sum(1)?
            .broadcast_div(&(weights.sum(1)? + 1e-6)?)?
            .reshape((b, MAX_OBJECTS, self.config.text.dim))?;
        objects = (objects + self.described.forward(&said)?)?;
        let present = plans.present.unsqueeze(2)?;
        let absent = present.affine(-1.0, 1.0)?;
        let objects = (objects.broadcast_mul(&present)? + self.empty.broadcast_mul(&absent)?)?;
        let d = self.config.text.dim;
        let query = Tensor::zeros((b, 1, d), DType::F32, &self.device)?;
        let xs = Tensor::cat(&[query, global.unsqueeze(1)?, objects], 1)?;
        let mut xs = xs.broadcast_add(&self.tokens.unsqueeze(0)?)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &text, mask)?;
        }
        let xs = self.norm.forward(&xs)?;
        let edit = xs.narrow(1, 0, 1)?.squeeze(1)?;
        let slots = xs.narrow(1, 2, MAX_OBJECTS)?;
        let head = |i: usize| -> Result<Tensor> { Ok(self.heads[i].forward(&edit)?) };
        let unreachable = plans.present.affine(-NO_OBJECT, NO_OBJECT)?;
        Ok(EditorOutput {
            op: head(0)?,
            target: (self.pointer.forward(&slots)?.squeeze(2)? + unreachable)?,
            shape: head(1)?,
            colour: head(2)?,
            size: head(3)?,
            motion: head(4)?,
            style: head(5)?,
            background: head(6)?,
            centre: head(7)?,
            radius: head(8)?.squeeze(1)?.affine(0.1, 0.0)?,
        })
    }

    /// Edits each `(plan, instruction, seed)`: the most likely edit, object and value;
    /// a moved or added object's centre sampled from the seed within its bin.
    pub fn edit(&self, requests: &[(&ScenePlan, &str, u64)]) -> Result<Vec<Edited>> {
        crate::sampling::check_prompts(requests.iter().map(|r| r.1), "to edit")?;
        let plans: Vec<&ScenePlan> = requests.iter().map(|r| r.0).collect();
        let batch = EditorPlans::of(&plans, &self.config.vocab, &self.tokenizer, &self.device)?;
        let texts: Vec<&str> = requests.iter().map(|r| r.1).collect();
        let (ids, mask) = self
            .tokenizer
            .encode_batch(&texts, self.config.text.max_len, &self.device)?;
        let out = self.forward(&ids, &mask, &batch)?;
        let argmax = |t: &Tensor| -> Result<Vec<u32>> { Ok(t.argmax(D::Minus1)?.flatten_all()?.to_vec1()?) };
        let (op, target) = (argmax(&out.op)?, argmax(&out.target)?);
        let (shape, colour, size, motion) = (
            argmax(&out.shape)?,
            argmax(&out.colour)?,
            argmax(&out.size)?,
            argmax(&out.motion)?,
        );
        let (style, background) = (argmax(&out.style)?, argmax(&out.background)?);
        let centre: Vec<Vec<f32>> = candle_nn::ops::softmax_last_dim(&out.centre)?.to_vec2()?;
        let radius: Vec<f32> = out.radius.to_vec1()?;
        let v = &self.config.vocab;
        let name = |names: &[String], i: &[u32]| names.get(i[0] as usize).cloned().unwrap_or_default();
        requests
            .iter()
            .enumerate()
            .map(|(i, &(plan, instruction, seed))| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x4544_4954);
                let class = sample_index(&centre[i], rng.random::<f32>(), WHOLE);
                let (cx, cy) = self.config.centre_of(class, rng.random::<f32>(), rng.random::<f32>());
                let choice = EditChoice {
                    op: EditOp::ALL[(op[i] as usize).min(EditOp::ALL.len() - 1)],
                    target: target[i] as usize,
                    shape: name(&v.shapes, &shape[i..]),
                    colour: name(&v.colours, &colour[i..]),
                    size: name(&v.sizes, &size[i..]),
                    motion: name(&v.motions, &motion[i..]),
                    style: name(&v.styles, &style[i..]),
                    background: name(&v.backgrounds, &background[i..]),
                    centre: (cx, cy),
                    radius: radius[i].clamp(0.02, 0.5),
                };
                apply(plan, &choice, instruction)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_editor_reads_a_batch_and_points_only_at_objects() {
        let device = Device::Cpu;
        let texts = ["make the circle blue", "把星星移到左边", "now as pixel art"];
        let tokenizer = TextTokenizer::train(texts.iter().cycle().take(60), 300).unwrap();
        let config = EditorConfig::tiny(PlanVocab::tiny(), tokenizer.vocab_size());
        let varmap = candle_nn::VarMap::new();
        let vb = mmgen_nn::seeded_var_builder(&varmap, 3, DType::F32, &device);
        let editor = Editor::new(&config, tokenizer, vb, &device).unwrap();
        let before = apply::tests::plan();
        let requests: Vec<(&ScenePlan, &str, u64)> = texts.iter().map(|t| (&before, *t, 7)).collect();
        let a = editor.edit(&requests).unwrap();
        assert_eq!(a, editor.edit(&requests).unwrap(), "same seed, same edit");
        for edited in &a {
            if let Some(t) = edited.edit.target {
                assert!(t < 3, "points at an object: {t}");
            }
            edited.plan.check(&config.vocab).unwrap();
        }
        assert!(
            editor.edit(&[(&before, "", 0)]).is_err(),
            "an empty instruction is refused"
        );
    }
}
