//! The layout-grounded diffusion renderer: a convolutional U-Net in pixel space that
//! sees, at every pixel it denoises, what the plan puts there.
//!
//! Spatial grounding as in LayoutDiffusion / ControlNet / SPADE: the plan's object
//! and background fields ([`crate::grounded::field`]) are concatenated with the noisy
//! image before the first layer; the globals (background, style, lighting) and the
//! timestep modulate every block by FiLM (Perez et al. 2018; adaGN in Dhariwal &
//! Nichol 2021). The shipped renderer predicts the clean image through EDM's
//! preconditioning (Karras et al. 2022): the noisy input, shrunk by its noise level,
//! reaches the output directly, and the trunk adds a correction scaled by that level,
//! so that no pixel's noise has to pass through the trunk; trained with min-SNR
//! weighting (Hang et al. 2023). The trunk works on pixel blocks (space-to-depth, 4x4 in the shipped shape), so that
//! its first level costs a sixteenth of a full-resolution one; convolutions are the
//! GEMM-based [`mmgen_nn::Conv3x3`].
//!
//! The pixel head gives the blocks back their pixels: each cell of the trunk's last
//! level emits a small linear map from the grounding channels to colour, applied at
//! every pixel of its block (a pixel-adaptive 1x1 layer, as in Su et al. 2019's
//! pixel-adaptive convolutions and SPADE's per-pixel modulation). The object fields'
//! silhouettes then reach the output at full resolution, where the per-cell output
//! layer alone must carry a 4-pixel shape's edge through the trunk's features.

use candle_core::{Device, Module, Tensor};
use candle_nn::{embedding, linear, Embedding, Init, Linear, VarBuilder};
use mmgen_diffusion::{BetaSchedule, NoiseSchedule, Prediction};

use mmgen_nn::{
    depth_to_space, expand_rows, per_cell, space_to_depth, timestep_embedding, CellGrid, Conv3x3, Dense, LayerNorm,
};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::grounded::field::{canvas_coords, fourier, BackgroundField, ObjectField, ObjectFieldOutput};
use crate::grounded::plan::{PlanBatch, PlanVocab};

/// Shape of a grounded renderer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroundedRendererConfig {
    /// Class names of the plans it draws.
    pub vocab: PlanVocab,
    /// Image side, pixels.
    pub image_size: usize,
    /// Side of the pixel blocks the trunk works on.
    pub patch: usize,
    /// Trunk channels per level (each level halves the resolution).
    pub channels: Vec<usize>,
    /// Hidden units of the object and background fields.
    pub field_hidden: usize,
    /// Shape features per pixel from the object field.
    pub field_features: usize,
    /// Colour features per pixel.
    pub colour_features: usize,
    /// Background features per pixel.
    pub background_features: usize,
    /// Fourier octaves of the fields' coordinates.
    pub octaves: usize,
    /// Width of the time and globals embedding.
    pub embed_dim: usize,
    /// Training noise schedule.
    pub schedule: BetaSchedule,
    /// Training timesteps.
    pub train_steps: usize,
    /// What the network predicts.
    pub prediction: Prediction,
    /// How the network's output becomes that prediction.
    #[serde(default)]
    pub preconditioning: Preconditioning,
    /// Whether it reads each frame's clip time (the light over a clip): renderers
    /// trained on stills alone do not.
    #[serde(default)]
    pub clip_time: bool,
    /// Whether it has the pixel head (see the module docs); renderers trained before
    /// it existed do not.
    #[serde(default)]
    pub pixel_head: bool,
}

/// How the trunk's output becomes the renderer's prediction.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Preconditioning {
    /// The output is the prediction (with a learned, time-dependent path from the
    /// noisy pixels).
    #[default]
    Plain,
    /// EDM (Karras et al. 2022): `x0 = c_skip(sigma) y + c_out(sigma) F`, for the
    /// `sample` prediction. The noisy input reaches the output analytically, so the
    /// trunk learns only a unit-scale correction at every noise level.
    Edm,
}

/// EDM's data standard deviation (images in [-1, 1]).
const SIGMA_DATA: f64 = 0.5;

impl GroundedRendererConfig {
    /// The shipped shape (64x64 images).
    pub fn base(vocab: PlanVocab) -> GroundedRendererConfig {
        GroundedRendererConfig {
            vocab,
            image_size: 64,
            patch: 4,
            channels: vec![96, 128, 192],
            field_hidden: 32,
            field_features: 8,
            colour_features: 8,
            background_features: 8,
            octaves: 3,
            embed_dim: 128,
            schedule: BetaSchedule::Cosine,
            train_steps: 1000,
            prediction: Prediction::Sample,
            preconditioning: Preconditioning::Edm,
            clip_time: false,
            pixel_head: true,
        }
    }

    /// A tiny shape for tests (16x16 images).
    pub fn tiny(vocab: PlanVocab) -> GroundedRendererConfig {
        GroundedRendererConfig {
            image_size: 16,
            patch: 2,
            channels: vec![8, 12],
            field_hidden: 8,
            field_features: 4,
            colour_features: 4,
            background_features: 4,
            octaves: 2,
            embed_dim: 16,
            ..GroundedRendererConfig::base(vocab)
        }
    }

    fn check(&self) -> Result<()> {
        let levels = self.channels.len();
        let reduction = self.patch << levels.saturating_sub(1);
        if levels == 0 || self.channels.contains(&0) || self.patch == 0 {
            return Err(ModelError::Invalid(format!(
                "renderer channels {:?} and patch {} must be non-empty and non-zero",
                self.channels, self.patch
            )));
        }
        if self.image_size == 0 || !self.image_size.is_multiple_of(reduction) {
            return Err(ModelError::Invalid(format!(
                "renderer image_size {} must be a multiple of {reduction} (patch x 2^(levels-1))",
                self.image_size
            )));
        }
        if self.preconditioning == Preconditioning::Edm && self.prediction != Prediction::Sample {
            return Err(ModelError::Invalid(format!(
                "renderer preconditioning edm needs prediction sample, not {:?}",
                self.prediction
            )));
        }
        let v = &self.vocab;
        for (name, n) in [
            ("backgrounds", v.backgrounds.len()),
            ("styles", v.styles.len()),
            ("lightings", v.lightings.len()),
            ("shapes", v.shapes.len()),
            ("colours", v.colours.len()),
            ("sizes", v.sizes.len()),
        ] {
            if n == 0 {
                return Err(ModelError::Invalid(format!("renderer vocab.{name} is empty")));
            }
        }
        Ok(())
    }

    /// The null ids of the globals (one past each class list): the dropped plan.
    pub fn null_globals(&self) -> [u32; 3] {
        let v = &self.vocab;
        [
            v.backgrounds.len() as u32,
            v.styles.len() as u32,
            v.lightings.len() as u32,
        ]
    }
}

/// A residual block with FiLM: norm, SiLU, conv, modulate, SiLU, conv (zero-initialised,
/// so a block starts as the identity), plus a per-cell projection when widths differ.
struct ResBlock {
    norm: LayerNorm,
    conv1: Conv3x3,
    film: Linear,
    norm2: LayerNorm,
    conv2: Conv3x3,
    skip: Option<Dense>,
}

impl ResBlock {
    fn new(c_in: usize, c_out: usize, embed_dim: usize, vb: VarBuilder) -> Result<ResBlock> {
        let conv2 = vb.pp("conv2");
        conv2.get_with_hints((9, c_out, c_out), "weight", Init::Const(0.0))?;
        Ok(ResBlock {
            // Affine-free norms: FiLM scales and shifts instead.
            norm: LayerNorm::new(c_in, false, vb.pp("norm"))?,
            conv1: Conv3x3::new(c_in, c_out, vb.pp("conv1"))?,
            film: linear(embed_dim, 2 * c_out, vb.pp("film"))?,
            norm2: LayerNorm::new(c_out, false, vb.pp("norm2"))?,
            conv2: Conv3x3::new(c_out, c_out, conv2)?,
            skip: (c_in != c_out)
                .then(|| Dense::new(c_in, c_out, vb.pp("skip")))
                .transpose()?,
        })
    }

    /// grid (b, cells, c_in), cond (b, E).
    fn forward(&self, grid: &CellGrid, cond: &Tensor) -> Result<CellGrid> {
        let h = grid.map(|xs| self.norm.forward(xs)?.silu())?;
        let h = self.conv1.forward(&h)?;
        let film = expand_rows(&self.film.forward(cond)?.unsqueeze(1)?, h.xs.dim(1)?)?;
        let c = film.dim(2)? / 2;
        let (scale, shift) = (film.narrow(2, 0, c)?, film.narrow(2, c, c)?);
        let h = h.map(|xs| (self.norm2.forward(xs)? * scale.affine(1.0, 1.0)?)? + shift.clone())?;
        let h = h.map(|xs| xs.silu())?;
        let h = self.conv2.forward(&h)?;
        let skip = match &self.skip {
            Some(lin) => per_cell(lin, grid)?,
            None => grid.clone(),
        };
        Ok(CellGrid {
            xs: (skip.xs + h.xs)?,
            h: grid.h,
            w: grid.w,
        })
    }
}

/// Resamples a grid by 2: down (space-to-depth, then a per-cell linear map) or up
/// (a per-cell linear map, then depth-to-space).
fn resample(grid: &CellGrid, lin: &Dense, down: bool) -> Result<Tensor> {
    let xs = grid.to_nhwc()?;
    Ok(if down {
        lin.forward(&space_to_depth(&xs, 2)?)?
    } else {
        depth_to_space(&lin.forward(&xs)?, 2)?
    })
}

/// The pixel head's term: every cell's map from the `G` grounding channels to colour,
/// applied at each of its `patch^2` pixels. hidden (b, H, W, c), grounding
/// (b, H patch, W patch, G) -> (b, H, W, patch^2 3), in the layout of the output layer.
fn pixel_adaptive(head: &Dense, hidden: &Tensor, grounding: &Tensor, patch: usize) -> Result<Tensor> {
    let (b, h, w, _) = hidden.dims4()?;
    let g = grounding.dim(3)?;
    let maps = head.forward(hidden)?.reshape((b * h * w, g, 3))?;
    let pixels = space_to_depth(&grounding.contiguous()?, patch)?.reshape((b * h * w, patch * patch, g))?;
    Ok(pixels.matmul(&maps)?.reshape((b, h, w, patch * patch * 3))?)
}

/// The light at a clip time: an MLP of the time's Fourier features and the lighting's
/// embedding, added to the globals. Its output layer starts at zero, so a renderer
/// trained on stills draws as before until it has learnt the light over time.
/// Parameters `hidden`, `out`.
struct ClipLight {
    hidden: Dense,
    out: Dense,
    octaves: usize,
}

impl ClipLight {
    fn new(embed_dim: usize, octaves: usize, vb: VarBuilder) -> Result<ClipLight> {
        Ok(ClipLight {
            hidden: Dense::new(1 + 2 * octaves + embed_dim, embed_dim, vb.pp("hidden"))?,
            out: Dense::zeros(embed_dim, embed_dim, vb.pp("out"))?,
            octaves,
        })
    }

    /// times (b, 1), lighting embeddings (b, E) -> (b, E).
    fn forward(&self, times: &Tensor, lighting: &Tensor) -> Result<Tensor> {
        let encoded = fourier(times, self.octaves)?;
        let h = self.hidden.forward(&Tensor::cat(&[&encoded, lighting], 1)?)?.silu()?;
        Ok(self.out.forward(&h)?)
    }
}

/// The plan's conditioning of a batch, computed once per request and reused at every
/// denoising step (it does not depend on the noisy image).
pub struct Grounding {
    /// (b, h, w, G): object and background fields per pixel.
    pub pixels: Tensor,
    /// (b, E): the globals' embedding (without the timestep).
    pub globals: Tensor,
    /// The object fields' occupancy, for the training loss.
    pub objects: ObjectFieldOutput,
}

/// The grounded renderer. Parameters `backgrounds`, `styles`, `lightings`, `time.*`,
/// `objects.*`, `background.*`, `stem`, `down.{i}`, `downsample.{i}`, `mid.{j}`,
/// `upsample.{i}`, `merge.{i}`, `up.{i}`, `out_norm`, `out`, `out_film`, `input_skip`,
/// `pixel_head`, `clip_light.*`.
pub struct GroundedRenderer {
    backgrounds: Embedding,
    styles: Embedding,
    lightings: Embedding,
    time_in: Linear,
    time_out: Linear,
    objects: ObjectField,
    background: BackgroundField,
    stem: Dense,
    down: Vec<ResBlock>,
    downsample: Vec<Dense>,
    mid: Vec<ResBlock>,
    upsample: Vec<Dense>,
    merge: Vec<Dense>,
    up: Vec<ResBlock>,
    out_norm: LayerNorm,
    out_film: Dense,
    out: Dense,
    input_skip: Dense,
    pixel_head: Option<Dense>,
    clip_light: Option<ClipLight>,
    uv: Tensor,
    schedule: NoiseSchedule,
    config: GroundedRendererConfig,
    device: Device,
}

impl GroundedRenderer {
    /// Builds the renderer from `config` and `vb`.
    pub fn new(config: &GroundedRendererConfig, vb: VarBuilder, device: &Device) -> Result<GroundedRenderer> {
        config.check()?;
        let c = config;
        let e = c.embed_dim;
        let v = &c.vocab;
        let objects = ObjectField::new(
            v.shapes.len(),
            v.colours.len(),
            v.sizes.len(),
            c.field_hidden,
            c.field_features,
            c.colour_features,
            c.octaves,
            vb.pp("objects"),
        )?;
        let background =
            BackgroundField::new(e, c.field_hidden, c.background_features, c.octaves, vb.pp("background"))?;
        let grounding = objects.channels()? + c.background_features;
        let stem_in = (3 + grounding) * c.patch * c.patch;
        let ch = &c.channels;
        let levels = ch.len();
        let mut down = Vec::new();
        let mut downsample = Vec::new();
        let mut upsample = Vec::new();
        let mut merge = Vec::new();
        let mut up = Vec::new();
        for i in 0..levels - 1 {
            down.push(ResBlock::new(ch[i], ch[i], e, vb.pp(format!("down.{i}")))?);
            downsample.push(Dense::new(4 * ch[i], ch[i + 1], vb.pp(format!("downsample.{i}")))?);
            upsample.push(Dense::new(ch[i + 1], 4 * ch[i], vb.pp(format!("upsample.{i}")))?);
            merge.push(Dense::new(2 * ch[i], ch[i], vb.pp(format!("merge.{i}")))?);
            up.push(ResBlock::new(ch[i], ch[i], e, vb.pp(format!("up.{i}")))?);
        }
        let deepest = ch[levels - 1];
        let mid = (0..2)
            .map(|j| ResBlock::new(deepest, deepest, e, vb.pp(format!("mid.{j}"))))
            .collect::<Result<Vec<_>>>()?;
        let out_dim = 3 * c.patch * c.patch;
        let out = Dense::zeros(ch[0], out_dim, vb.pp("out"))?;
        // Both start at zero: a model trained before they existed is unchanged by them.
        let out_film = Dense::zeros(e, 2 * ch[0], vb.pp("out_film"))?;
        let input_skip = Dense::zeros(e, out_dim, vb.pp("input_skip"))?;
        Ok(GroundedRenderer {
            backgrounds: embedding(v.backgrounds.len() + 1, e, vb.pp("backgrounds"))?,
            styles: embedding(v.styles.len() + 1, e, vb.pp("styles"))?,
            lightings: embedding(v.lightings.len() + 1, e, vb.pp("lightings"))?,
            time_in: linear(e, e, vb.pp("time.in"))?,
            time_out: linear(e, e, vb.pp("time.out"))?,
            objects,
            background,
            stem: Dense::new(stem_in, ch[0], vb.pp("stem"))?,
            down,
            downsample,
            mid,
            upsample,
            merge,
            up,
            out_norm: LayerNorm::new(ch[0], false, vb.pp("out_norm"))?,
            out_film,
            out,
            input_skip,
            // Zero at first, as the layers above.
            pixel_head: c
                .pixel_head
                .then(|| Dense::zeros(ch[0], 3 * grounding, vb.pp("pixel_head")))
                .transpose()?,
            clip_light: c
                .clip_time
                .then(|| ClipLight::new(e, c.octaves, vb.pp("clip_light")))
                .transpose()?,
            uv: canvas_coords(c.image_size, c.image_size, device)?,
            schedule: NoiseSchedule::new(c.schedule, c.train_steps)?,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GroundedRendererConfig {
        &self.config
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The conditioning of `plans` (see [`Grounding`]).
    pub fn ground(&self, plans: &PlanBatch) -> Result<Grounding> {
        let b = plans.len();
        let g = |i: usize| -> Result<Tensor> { Ok(plans.globals.narrow(1, i, 1)?.squeeze(1)?) };
        let lighting = self.lightings.forward(&g(2)?)?;
        let mut globals = (self.backgrounds.forward(&g(0)?)? + self.styles.forward(&g(1)?)? + &lighting)?;
        if let Some(clip_light) = &self.clip_light {
            globals = (globals + clip_light.forward(&plans.times, &lighting)?)?;
        }
        let objects = self.objects.forward(plans, &self.uv)?;
        let background = self.background.forward(&globals, &self.uv)?;
        let s = self.config.image_size;
        let pixels = Tensor::cat(&[&objects.features, &background], 2)?.reshape((b, s, s, ()))?;
        Ok(Grounding {
            pixels,
            globals,
            objects,
        })
    }

    /// The prediction (as configured) for noisy images `xs` (b, 3, h, w) at
    /// `timesteps` (b,) under `grounding` (of the same batch).
    pub fn predict(&self, xs: &Tensor, timesteps: &Tensor, grounding: &Grounding) -> Result<Tensor> {
        let noisy_input = xs;
        let (b, c, h, w) = xs.dims4()?;
        let s = self.config.image_size;
        if c != 3 || h != s || w != s || grounding.pixels.dim(0)? != b {
            return Err(ModelError::Invalid(format!(
                "renderer input {:?} for grounding of {} plans; expected (b, 3, {s}, {s})",
                xs.dims(),
                grounding.pixels.dim(0)?
            )));
        }
        let e = self.config.embed_dim;
        let t = timestep_embedding(timesteps, e)?;
        let t = self.time_out.forward(&self.time_in.forward(&t)?.silu()?)?;
        let cond = (t + &grounding.globals)?.silu()?;
        let p = self.config.patch;
        let pixels = xs.permute((0, 2, 3, 1))?.contiguous()?;
        let input = Tensor::cat(&[&pixels, &grounding.pixels], 3)?;
        let patches = space_to_depth(&input.contiguous()?, p)?;
        let xs = self.stem.forward(&patches)?;
        let mut grid = CellGrid::from_nhwc(&xs)?;
        let mut skips = Vec::new();
        for (block, down) in self.down.iter().zip(&self.downsample) {
            grid = block.forward(&grid, &cond)?;
            skips.push(grid.clone());
            grid = CellGrid::from_nhwc(&resample(&grid, down, true)?)?;
        }
        for block in &self.mid {
            grid = block.forward(&grid, &cond)?;
        }
        for i in (0..self.up.len()).rev() {
            let upsampled = resample(&grid, &self.upsample[i], false)?;
            let skip = skips[i].to_nhwc()?;
            let merged = self.merge[i].forward(&Tensor::cat(&[upsampled, skip], 3)?)?;
            grid = self.up[i].forward(&CellGrid::from_nhwc(&merged)?, &cond)?;
        }
        // The output layer, modulated by time and globals as DiT's final layer is.
        let xs = grid.to_nhwc()?;
        let (cells, c0) = (xs.dim(1)? * xs.dim(2)?, xs.dim(3)?);
        let film = expand_rows(&self.out_film.forward(&cond)?.unsqueeze(1)?, cells)?.reshape((
            b,
            xs.dim(1)?,
            xs.dim(2)?,
            2 * c0,
        ))?;
        let hidden = ((self.out_norm.forward(&xs)? * film.narrow(3, 0, c0)?.affine(1.0, 1.0)?)?
            + film.narrow(3, c0, c0)?)?
        .silu()?;
        let mut xs = self.out.forward(&hidden)?;
        if let Some(head) = &self.pixel_head {
            xs = (xs + pixel_adaptive(head, &hidden, &grounding.pixels, p)?)?;
        }
        // A direct, time-dependent linear path from the noisy pixels to the output: the
        // share of x_t in the target (the noise, in v) need not squeeze through the
        // per-cell norms of the trunk.
        let noisy = space_to_depth(&pixels, p)?;
        let gain = expand_rows(&self.input_skip.forward(&cond)?.unsqueeze(1)?, cells)?.reshape(noisy.shape())?;
        let xs = (xs + (noisy * gain)?)?;
        let output = depth_to_space(&xs, p)?.permute((0, 3, 1, 2))?.contiguous()?;
        match self.config.preconditioning {
            Preconditioning::Plain => Ok(output),
            Preconditioning::Edm => self.edm(&output, noisy_input, timesteps),
        }
    }

    /// `c_skip y + c_out F` with `y = x_t sqrt(1 + sigma^2)` (sigma coordinates).
    fn edm(&self, output: &Tensor, noisy: &Tensor, timesteps: &Tensor) -> Result<Tensor> {
        let b = output.dim(0)?;
        let sd2 = SIGMA_DATA * SIGMA_DATA;
        let (mut skip, mut scale) = (Vec::with_capacity(b), Vec::with_capacity(b));
        for t in timesteps.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()? {
            let sigma = self.schedule.sigma_at(t);
            let s2 = sigma * sigma;
            // c_skip, applied to y = x_t sqrt(1 + sigma^2).
            skip.push((sd2 / (s2 + sd2) * (1.0 + s2).sqrt()) as f32);
            scale.push((sigma * SIGMA_DATA / (s2 + sd2).sqrt()) as f32);
        }
        let column = |v: Vec<f32>| Tensor::from_vec(v, (b, 1, 1, 1), output.device());
        Ok((noisy.broadcast_mul(&column(skip)?)? + output.broadcast_mul(&column(scale)?)?)?)
    }
}
