//! The scene planner: the Transformer stage of the grounded family. A text encoder
//! reads the prompt; a small decoder of slot queries (DETR, Carion et al. 2020)
//! cross-attends to it and reads out the globals and up to [`MAX_OBJECTS`] objects.
//!
//! Why slots decoded in order, not all at once: placements are sampled, and a
//! relation ("below the star") must hold between *sampled* poses. Slot `k`'s query
//! carries the pose and the classes decoded for slot `k - 1`, and causal
//! self-attention lets it see every earlier slot's (the autoregressive layouts of
//! LayoutGPT, Feng et al. 2023, over a handful of slot tokens instead of coordinate
//! text). Knowing what came before is also what makes it learn fast: slot `k` looks
//! for the object named after "a red star", where plain DETR queries must each find
//! their object unaided (DETR's slow convergence, Carion et al. 2020). A centre is a
//! categorical over a grid of bins (sampled with the seed, then jittered within its
//! bin), so a free placement spreads over the canvas and a named one stays put.
//! The same categorical also holds a grid of *offsets from the previous slot's
//! centre* (the relative bins): "above the circle" is then one offset class, whatever
//! the sampled anchor, where an absolute grid must learn a translation of the anchor's
//! pose for every place it can stand. The planner chooses between the two grids the
//! way it chooses a bin, from what the prompt says.
//!
//! A planner folder holds `config.json` ([`PlannerConfig`]), `tokenizer.json` and
//! `model.safetensors`; the class names it emits come from its config's vocabulary.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, Init, Linear, VarBuilder};
use mmgen_nn::{Attention, FeedForward, LayerNorm};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::draw::{sample_index, WHOLE};

use crate::error::{ModelError, Result};
use crate::grounded::field::fourier;
use crate::grounded::plan::{PlanPose, PlanVocab, PlannedObject, ScenePlan, MAX_OBJECTS};
use crate::text_encoder::{TextEncoder, TextEncoderConfig};
use crate::tokenizer::TextTokenizer;
use crate::weights::{load_folder, FolderFiles};

/// Shape of a planner.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    /// Class names it emits.
    pub vocab: PlanVocab,
    /// Its text encoder.
    pub text: TextEncoderConfig,
    /// Decoder layers.
    pub depth: usize,
    /// Centre bins per side (a centre is one of `bins x bins`).
    pub bins: usize,
    /// Offset bins per side of the relative grid (offsets of up to
    /// [`RELATIVE_SPAN`] from the previous slot's centre); 0 for planners without it.
    #[serde(default)]
    pub relative_bins: usize,
}

impl PlannerConfig {
    /// The shipped shape for a `vocab_size` tokenizer.
    pub fn base(vocab: PlanVocab, vocab_size: usize) -> PlannerConfig {
        PlannerConfig {
            vocab,
            // The end-to-end model's encoder shape, so that its trained weights can start
            // a planner (`mmgen train planner --text-from`).
            text: TextEncoderConfig::base(vocab_size),
            depth: 2,
            bins: 16,
            relative_bins: 24,
        }
    }

    /// A tiny planner for tests.
    pub fn tiny(vocab: PlanVocab, vocab_size: usize) -> PlannerConfig {
        PlannerConfig {
            vocab,
            text: TextEncoderConfig::tiny(vocab_size),
            depth: 1,
            bins: 4,
            relative_bins: 4,
        }
    }
}

/// Fourier octaves of the previous slot's pose.
const POSE_OCTAVES: usize = 3;

/// Reach of the relative grid: offsets in `[-RELATIVE_SPAN, RELATIVE_SPAN]` on each
/// axis (an object beside a large anchor stands up to about 0.55 from its centre).
pub const RELATIVE_SPAN: f32 = 0.6;

/// Logit given to the relative bins of slot 0, which has no previous slot.
const NO_RELATIVE: f64 = -1e4;

impl PlannerConfig {
    /// Classes of the centre categorical: the absolute bins, then the relative ones.
    pub fn centre_classes(&self) -> usize {
        self.bins * self.bins + self.relative_bins * self.relative_bins
    }

    /// The centre class of a pose at (cx, cy) placed absolutely.
    pub fn absolute_class(&self, cx: f32, cy: f32) -> usize {
        let bin = |v: f32| ((v * self.bins as f32).max(0.0) as usize).min(self.bins - 1);
        bin(cy) * self.bins + bin(cx)
    }

    /// The centre class of an offset (dx, dy) from the previous slot's centre, if the
    /// planner has a relative grid and the offset is within its reach.
    pub fn relative_class(&self, dx: f32, dy: f32) -> Option<usize> {
        let n = self.relative_bins;
        let bin = |v: f32| {
            let at = (v + RELATIVE_SPAN) / (2.0 * RELATIVE_SPAN) * n as f32;
            (at >= 0.0 && at < n as f32).then_some(at as usize)
        };
        Some(self.bins * self.bins + bin(dy)? * n + bin(dx)?)
    }

    /// The centre of class `class` jittered by `(ux, uy)` in [0, 1)^2 within its bin;
    /// `previous` is the previous slot's centre, for relative classes. Clamped to the
    /// canvas.
    pub fn centre_of(&self, class: usize, ux: f32, uy: f32, previous: (f32, f32)) -> (f32, f32) {
        let absolute = self.bins * self.bins;
        let (cx, cy) = if class < absolute {
            let (bx, by) = (class % self.bins, class / self.bins);
            ((bx as f32 + ux) / self.bins as f32, (by as f32 + uy) / self.bins as f32)
        } else {
            let n = self.relative_bins.max(1);
            let r = class - absolute;
            let width = 2.0 * RELATIVE_SPAN / n as f32;
            let offset = |b: usize, u: f32| -RELATIVE_SPAN + (b as f32 + u) * width;
            (previous.0 + offset(r % n, ux), previous.1 + offset(r / n, uy))
        };
        (cx.clamp(0.0, 1.0), cy.clamp(0.0, 1.0))
    }
}

/// A layer over slot tokens: self-attention among them (causal in the planner, whose
/// slots are decoded in order; full in the editor), cross-attention to the text, MLP.
pub(crate) struct SlotLayer {
    norm1: LayerNorm,
    slots: Attention,
    causal: bool,
    norm2: LayerNorm,
    text: Attention,
    norm3: LayerNorm,
    mlp: FeedForward,
}

impl SlotLayer {
    /// `self_attention` names its self-attention's parameters.
    pub(crate) fn new(
        dim: usize,
        heads: usize,
        self_attention: &str,
        causal: bool,
        vb: VarBuilder,
    ) -> Result<SlotLayer> {
        Ok(SlotLayer {
            norm1: LayerNorm::new(dim, true, vb.pp("norm1"))?,
            slots: Attention::new(dim, dim, heads, vb.pp(self_attention))?,
            causal,
            norm2: LayerNorm::new(dim, true, vb.pp("norm2"))?,
            text: Attention::new(dim, dim, heads, vb.pp("text"))?,
            norm3: LayerNorm::new(dim, true, vb.pp("norm3"))?,
            mlp: FeedForward::new(dim, 4 * dim, vb.pp("mlp"))?,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor, text: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = self.norm1.forward(xs)?;
        let attended = if self.causal {
            let ctx = self.slots.context(&h, None)?.causal(xs.dim(1)?)?;
            self.slots.forward_context(&h, &ctx)?
        } else {
            self.slots.forward(&h, None, None)?
        };
        let xs = (xs + attended)?;
        let xs = (&xs + self.text.forward(&self.norm2.forward(&xs)?, Some(text), Some(mask))?)?;
        Ok((&xs + self.mlp.forward(&self.norm3.forward(&xs)?)?)?)
    }
}

/// The planner's raw outputs for a batch (logits, and the radius in canvas units).
pub struct PlannerOutput {
    /// (b, backgrounds).
    pub background: Tensor,
    /// (b, styles).
    pub style: Tensor,
    /// (b, lightings).
    pub lighting: Tensor,
    /// (b, K, 2): empty / present.
    pub present: Tensor,
    /// (b, K, shapes).
    pub shape: Tensor,
    /// (b, K, colours).
    pub colour: Tensor,
    /// (b, K, sizes).
    pub size: Tensor,
    /// (b, K, motions).
    pub motion: Tensor,
    /// (b, K, bins^2 + relative_bins^2): the centre's class: an absolute bin,
    /// row-major (y, then x), or an offset bin from the previous slot's centre
    /// ([`PlannerConfig::centre_of`]).
    pub centre: Tensor,
    /// (b, K): the radius.
    pub radius: Tensor,
}

/// The planner. Parameters `text.*`, `queries`, `pose`, `layers.{i}`, `norm`, and one
/// linear head per output (`head.relative` for the relative grid).
pub struct Planner {
    tokenizer: TextTokenizer,
    text: TextEncoder,
    queries: Tensor,
    pose: Linear,
    previous_classes: [candle_nn::Embedding; 3],
    layers: Vec<SlotLayer>,
    norm: LayerNorm,
    heads: Vec<Linear>,
    relative: Option<Linear>,
    config: PlannerConfig,
    device: Device,
}

/// Order of the heads in [`Planner::heads`].
const HEADS: [&str; 10] = [
    "background",
    "style",
    "lighting",
    "present",
    "shape",
    "colour",
    "size",
    "motion",
    "centre",
    "radius",
];

impl Planner {
    /// Builds the planner on `vb`.
    pub fn new(config: &PlannerConfig, tokenizer: TextTokenizer, vb: VarBuilder, device: &Device) -> Result<Planner> {
        config.text.check_tokenizer(&tokenizer)?;
        if config.bins == 0 || config.depth == 0 {
            return Err(ModelError::Invalid(format!(
                "planner bins {} and depth {} must be at least 1",
                config.bins, config.depth
            )));
        }
        let d = config.text.dim;
        let v = &config.vocab;
        let sizes = [
            v.backgrounds.len(),
            v.styles.len(),
            v.lightings.len(),
            2,
            v.shapes.len(),
            v.colours.len(),
            v.sizes.len(),
            v.motions.len(),
            config.bins * config.bins,
            1,
        ];
        let heads = HEADS
            .iter()
            .zip(sizes)
            .map(|(name, n)| linear(d, n, vb.pp(format!("head.{name}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Planner {
            text: TextEncoder::new(&config.text, vb.pp("text"))?,
            tokenizer,
            queries: vb.get_with_hints((1 + MAX_OBJECTS, d), "queries", Init::Randn { mean: 0.0, stdev: 0.02 })?,
            pose: linear(2 + 4 * POSE_OCTAVES + 1, d, vb.pp("pose"))?,
            // One extra id each: no previous object (slot 0).
            previous_classes: [
                candle_nn::embedding(v.shapes.len() + 1, d, vb.pp("previous.shape"))?,
                candle_nn::embedding(v.colours.len() + 1, d, vb.pp("previous.colour"))?,
                candle_nn::embedding(v.sizes.len() + 1, d, vb.pp("previous.size"))?,
            ],
            layers: (0..config.depth)
                .map(|i| SlotLayer::new(d, config.text.heads, "slots", true, vb.pp(format!("layers.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            norm: LayerNorm::new(d, true, vb.pp("norm"))?,
            heads,
            relative: (config.relative_bins > 0)
                .then(|| linear(d, config.relative_bins * config.relative_bins, vb.pp("head.relative")))
                .transpose()?,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Reads a planner folder.
    pub fn load(dir: &Path, device: &Device) -> Result<Planner> {
        Planner::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<Planner> {
        load_folder(files, device, "planner", |c: &PlannerConfig, tok, vb| {
            Planner::new(c, tok, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    /// Its tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Encoded prompts: token states (b, L, d) and mask (b, L).
    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.text.forward(ids, mask)?.0, mask.clone()))
    }

    /// The "no previous object" ids of [`Self::forward`]'s `previous_ids`.
    pub fn no_previous(&self) -> [u32; 3] {
        let v = &self.config.vocab;
        [v.shapes.len() as u32, v.colours.len() as u32, v.sizes.len() as u32]
    }

    /// The outputs for text states under `previous` (b, K, 3) and `previous_ids`
    /// (b, K, 3) u32: slot k's input is the (cx, cy, radius) and the (shape, colour,
    /// size) of slot k - 1; for slot 0, zeros and [`Self::no_previous`].
    pub fn forward(
        &self,
        text: &Tensor,
        mask: &Tensor,
        previous: &Tensor,
        previous_ids: &Tensor,
    ) -> Result<PlannerOutput> {
        let b = text.dim(0)?;
        let d = self.config.text.dim;
        let centre = previous.narrow(2, 0, 2)?;
        let radius = previous.narrow(2, 2, 1)?;
        let given = previous.abs()?.sum_keepdim(2)?.gt(0.0)?.to_dtype(DType::F32)?;
        let pose = Tensor::cat(&[fourier(&centre, POSE_OCTAVES)?, radius.affine(10.0, 0.0)?], 2)?;
        let mut slot_inputs = self.pose.forward(&pose)?.broadcast_mul(&given)?;
        for (i, table) in self.previous_classes.iter().enumerate() {
            let ids = previous_ids.narrow(2, i, 1)?.squeeze(2)?;
            slot_inputs = (slot_inputs + table.forward(&ids)?)?;
        }
        let zero = Tensor::zeros((b, 1, d), DType::F32, text.device())?;
        let inputs = Tensor::cat(&[zero, slot_inputs], 1)?;
        let mut xs = inputs.broadcast_add(&self.queries.unsqueeze(0)?)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, text, mask)?;
        }
        let xs = self.norm.forward(&xs)?;
        let global = xs.narrow(1, 0, 1)?.squeeze(1)?;
        let slots = xs.narrow(1, 1, MAX_OBJECTS)?;
        let head = |i: usize, on: &Tensor| -> Result<Tensor> { Ok(self.heads[i].forward(on)?) };
        Ok(PlannerOutput {
            background: head(0, &global)?,
            style: head(1, &global)?,
            lighting: head(2, &global)?,
            present: head(3, &slots)?,
            shape: head(4, &slots)?,
            colour: head(5, &slots)?,
            size: head(6, &slots)?,
            motion: head(7, &slots)?,
            centre: self.centre_logits(&slots, &given)?,
            radius: head(9, &slots)?.squeeze(2)?.affine(0.1, 0.0)?,
        })
    }

    /// The centre logits of `slots` (b, K, d): absolute bins, then relative bins, which
    /// a slot without a previous one (`given` (b, K, 1) is 0) cannot choose.
    fn centre_logits(&self, slots: &Tensor, given: &Tensor) -> Result<Tensor> {
        let absolute = self.heads[8].forward(slots)?;
        let Some(relative) = &self.relative else {
            return Ok(absolute);
        };
        let unreachable = given.affine(-NO_RELATIVE, NO_RELATIVE)?;
        let relative = relative.forward(slots)?.broadcast_add(&unreachable)?;
        Ok(Tensor::cat(&[absolute, relative], 2)?)
    }

    /// Plans for `(prompt, seed)` requests: globals and objects by their most likely
    /// class, centres sampled from the seed, slot after slot.
    pub fn plan(&self, requests: &[(&str, u64)]) -> Result<Vec<ScenePlan>> {
        crate::sampling::check_prompts(requests.iter().map(|r| r.0), "to plan")?;
        let prompts: Vec<&str> = requests.iter().map(|r| r.0).collect();
        let (ids, mask) = self
            .tokenizer
            .encode_batch(&prompts, self.config.text.max_len, &self.device)?;
        let (text, mask) = self.encode(&ids, &mask)?;
        let b = requests.len();
        let mut rngs: Vec<_> = requests
            .iter()
            .map(|r| rand_chacha::ChaCha8Rng::seed_from_u64(r.1 ^ 0x504C_414E))
            .collect();
        let mut previous = vec![0f32; b * MAX_OBJECTS * 3];
        let mut previous_ids: Vec<u32> = self.no_previous().repeat(b * MAX_OBJECTS);
        let mut poses = vec![[0f32; 3]; b * MAX_OBJECTS];
        let mut out = None;
        for k in 0..MAX_OBJECTS {
            let prev = Tensor::from_vec(previous.clone(), (b, MAX_OBJECTS, 3), &self.device)?;
            let prev_ids = Tensor::from_vec(previous_ids.clone(), (b, MAX_OBJECTS, 3), &self.device)?;
            let o = self.forward(&text, &mask, &prev, &prev_ids)?;
            let classes = |t: &Tensor| -> Result<Vec<u32>> {
                Ok(t.narrow(1, k, 1)?.argmax(D::Minus1)?.flatten_all()?.to_vec1()?)
            };
            let (shape, colour, size) = (classes(&o.shape)?, classes(&o.colour)?, classes(&o.size)?);
            let probs: Vec<Vec<f32>> =
                candle_nn::ops::softmax_last_dim(&o.centre.narrow(1, k, 1)?.squeeze(1)?.contiguous()?)?.to_vec2()?;
            let radius: Vec<f32> = o.radius.narrow(1, k, 1)?.squeeze(1)?.to_vec1()?;
            for (i, rng) in rngs.iter_mut().enumerate() {
                let class = sample_index(&probs[i], rng.random::<f32>(), WHOLE);
                let (ux, uy) = (rng.random::<f32>(), rng.random::<f32>());
                let before = if k > 0 {
                    poses[i * MAX_OBJECTS + k - 1]
                } else {
                    [0.5; 3]
                };
                let (cx, cy) = self.config.centre_of(class, ux, uy, (before[0], before[1]));
                let r = radius[i].clamp(0.02, 0.5);
                poses[i * MAX_OBJECTS + k] = [cx, cy, r];
                if k + 1 < MAX_OBJECTS {
                    let next = (i * MAX_OBJECTS + k + 1) * 3;
                    previous[next..next + 3].copy_from_slice(&[cx, cy, r]);
                    previous_ids[next..next + 3].copy_from_slice(&[shape[i], colour[i], size[i]]);
                }
            }
            out = Some(o);
        }
        let o = out.ok_or_else(|| ModelError::Invalid("no slots".into()))?;
        let argmax = |t: &Tensor| -> Result<Vec<u32>> { Ok(t.argmax(D::Minus1)?.flatten_all()?.to_vec1()?) };
        let (bg, style, light) = (argmax(&o.background)?, argmax(&o.style)?, argmax(&o.lighting)?);
        let (present, shape, colour, size, motion) = (
            argmax(&o.present)?,
            argmax(&o.shape)?,
            argmax(&o.colour)?,
            argmax(&o.size)?,
            argmax(&o.motion)?,
        );
        let v = &self.config.vocab;
        let name = |names: &[String], i: u32| names.get(i as usize).cloned().unwrap_or_default();
        Ok((0..b)
            .map(|i| {
                let objects = (0..MAX_OBJECTS)
                    .map(|k| i * MAX_OBJECTS + k)
                    .take_while(|&s| present[s] == 1)
                    .map(|s| PlannedObject {
                        shape: name(&v.shapes, shape[s]),
                        colour: name(&v.colours, colour[s]),
                        size: name(&v.sizes, size[s]),
                        motion: Some(name(&v.motions, motion[s])),
                        pose: PlanPose {
                            cx: poses[s][0],
                            cy: poses[s][1],
                            radius: poses[s][2],
                            angle: 0.0,
                        },
                    })
                    .collect();
                ScenePlan {
                    background: name(&v.backgrounds, bg[i]),
                    style: name(&v.styles, style[i]),
                    lighting: name(&v.lightings, light[i]),
                    objects,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PlannerConfig {
        PlannerConfig::base(PlanVocab::tiny(), 64)
    }

    #[test]
    fn a_relative_class_places_its_object_at_the_offset_from_the_previous_one() {
        let c = config();
        let previous = (0.4, 0.7);
        for (dx, dy) in [(0.0, -0.3), (0.25, 0.01), (-0.55, 0.02), (0.1, 0.5)] {
            let class = c.relative_class(dx, dy).unwrap();
            assert!(class >= c.bins * c.bins && class < c.centre_classes());
            let (cx, cy) = c.centre_of(class, 0.5, 0.5, previous);
            let width = 2.0 * RELATIVE_SPAN / c.relative_bins as f32;
            let (want_x, want_y) = ((previous.0 + dx).clamp(0.0, 1.0), (previous.1 + dy).clamp(0.0, 1.0));
            assert!((cx - want_x).abs() <= width / 2.0 + 1e-6, "dx {dx}: {cx} vs {want_x}");
            assert!((cy - want_y).abs() <= width / 2.0 + 1e-6, "dy {dy}: {cy} vs {want_y}");
        }
        assert_eq!(
            c.relative_class(RELATIVE_SPAN + 0.01, 0.0),
            None,
            "beyond the grid's reach"
        );
        let off = PlannerConfig {
            relative_bins: 0,
            ..config()
        };
        assert_eq!(off.relative_class(0.1, 0.1), None, "no grid, no relative class");
    }

    #[test]
    fn an_absolute_class_holds_its_centre() {
        let c = config();
        for (x, y) in [(0.0, 0.0), (0.31, 0.77), (0.999, 0.5)] {
            let class = c.absolute_class(x, y);
            assert!(class < c.bins * c.bins);
            let (cx, cy) = c.centre_of(class, 0.5, 0.5, (0.9, 0.9));
            assert!((cx - x).abs() <= 0.5 / c.bins as f32 + 1e-6 && (cy - y).abs() <= 0.5 / c.bins as f32 + 1e-6);
        }
    }
}
