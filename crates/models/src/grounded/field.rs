//! The grounding fields of the renderer: learned implicit functions that turn a plan
//! into per-pixel features where the trunk draws.
//!
//! Each object's field is a small MLP of object-centric coordinates, Fourier-encoded
//! (Tancik et al. 2020), conditioned on its shape and size embeddings: a neural field
//! (as in CoordConv / NeRF-style implicit shapes) that learns each silhouette as a
//! local function, which a few 1x1 layers fit in minutes where a text-conditioned
//! U-Net needs millions of samples. Objects are composited back to front by their
//! learned occupancy, so the later ones cover the earlier ones as in the plan. The
//! background field is the same kind of MLP over canvas coordinates, conditioned on
//! the globals. The plan says where and what; the fields draw nothing by hand.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::{embedding, Embedding, VarBuilder};
use mmgen_nn::{expand_rows, Dense};

use crate::error::Result;
use crate::grounded::plan::{PlanBatch, MAX_OBJECTS};

/// An object's support: `max(|x|, |y|) < SUPPORT` in units of its radius (the world's
/// shapes fit in the unit circle; the margin holds outlines and anti-aliasing).
pub const SUPPORT: f32 = 1.6;

/// Fourier features of coordinates `xs` (..., 2): the coordinates and
/// `sin / cos(pi 2^j x)` for `j < octaves`; (..., 2 + 4 octaves).
pub fn fourier(xs: &Tensor, octaves: usize) -> Result<Tensor> {
    let mut parts = vec![xs.clone()];
    for j in 0..octaves {
        let scaled = xs.affine(std::f64::consts::PI * (1u64 << j) as f64, 0.0)?;
        parts.push(scaled.sin()?);
        parts.push(scaled.cos()?);
    }
    Ok(Tensor::cat(&parts, D::Minus1)?)
}

/// Pixel-centre coordinates of an `h` x `w` canvas, (h w, 2) as (u, v) in [0, 1].
pub fn canvas_coords(h: usize, w: usize, device: &candle_core::Device) -> Result<Tensor> {
    let mut uv = Vec::with_capacity(h * w * 2);
    for y in 0..h {
        for x in 0..w {
            uv.push((x as f32 + 0.5) / w as f32);
            uv.push((y as f32 + 0.5) / h as f32);
        }
    }
    Ok(Tensor::from_vec(uv, (h * w, 2), device)?)
}

/// Object-centric coordinates of every pixel for every slot: (b, K, h w, 2), the
/// offset from the centre unrotated and divided by the radius, y up.
pub fn object_coords(poses: &Tensor, uv: &Tensor) -> Result<Tensor> {
    let (b, k, _) = poses.dims3()?;
    let n = uv.dim(0)?;
    let part = |i: usize| -> Result<Tensor> { Ok(poses.narrow(2, i, 1)?.reshape((b, k, 1))?) };
    let (cx, cy, radius, angle) = (part(0)?, part(1)?, part(2)?, part(3)?);
    let u = uv.narrow(1, 0, 1)?.reshape((1, 1, n))?;
    let v = uv.narrow(1, 1, 1)?.reshape((1, 1, n))?;
    let dx = u.broadcast_sub(&cx)?;
    let dy = v.broadcast_sub(&cy)?;
    let (s, c) = (angle.sin()?, angle.cos()?);
    let lx = (dx.broadcast_mul(&c)? + dy.broadcast_mul(&s)?)?.broadcast_div(&radius)?;
    let ly = (dx.broadcast_mul(&s)? - dy.broadcast_mul(&c)?)?.broadcast_div(&radius)?;
    Ok(Tensor::stack(&[lx, ly], 3)?)
}

/// 1 inside each slot's support, 0 outside: (b, K, h w) from coordinates (b, K, h w, 2).
pub fn support(coords: &Tensor) -> Result<Tensor> {
    let reach = coords.abs()?.max(D::Minus1)?;
    Ok(reach.lt(SUPPORT as f64)?.to_dtype(DType::F32)?)
}

/// The object fields. Parameters `shapes`, `sizes`, `colours`, `coords`, `hidden`, `out`.
pub struct ObjectField {
    shape_weights: Embedding,
    shapes: Embedding,
    sizes: Embedding,
    colours: Embedding,
    hidden: Dense,
    out: Dense,
    octaves: usize,
}

/// What the object fields give a batch.
pub struct ObjectFieldOutput {
    /// (b, h w, features + colours + 1): the composited object features and coverage.
    pub features: Tensor,
    /// (b, K, h w): each slot's occupancy logit (before support and presence).
    pub occupancy: Tensor,
    /// (b, K, h w): 1 where a present slot's support covers the pixel.
    pub weight: Tensor,
}

impl ObjectField {
    /// `n_*`: class counts; `hidden` units, `features` shape features and
    /// `colour_dim` colour features per pixel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n_shapes: usize,
        n_colours: usize,
        n_sizes: usize,
        hidden: usize,
        features: usize,
        colour_dim: usize,
        octaves: usize,
        vb: VarBuilder,
    ) -> Result<ObjectField> {
        let inputs = 2 + 4 * octaves;
        // Each shape has its own first layer (a hypernetwork of one lookup), so that
        // every silhouette gets its own hyperplanes in Fourier space.
        let std = 1.0 / (inputs as f64).sqrt();
        let shape_weights = vb.pp("shape_weights").get_with_hints(
            (n_shapes, inputs * hidden),
            "weight",
            candle_nn::Init::Randn { mean: 0.0, stdev: std },
        )?;
        Ok(ObjectField {
            shape_weights: Embedding::new(shape_weights, inputs * hidden),
            shapes: embedding(n_shapes, hidden, vb.pp("shapes"))?,
            sizes: embedding(n_sizes, hidden, vb.pp("sizes"))?,
            colours: embedding(n_colours, colour_dim, vb.pp("colours"))?,
            hidden: Dense::new(hidden, hidden, vb.pp("hidden"))?,
            out: Dense::new(hidden, 1 + features, vb.pp("out"))?,
            octaves,
        })
    }

    /// Channels of [`ObjectFieldOutput::features`].
    pub fn channels(&self) -> Result<usize> {
        Ok(self.out.weight().dim(0)? - 1 + self.colours.embeddings().dim(1)? + 1)
    }

    /// The fields of `plans` on the canvas `uv` (h w, 2).
    pub fn forward(&self, plans: &PlanBatch, uv: &Tensor) -> Result<ObjectFieldOutput> {
        let (b, k) = (plans.len(), MAX_OBJECTS);
        let n = uv.dim(0)?;
        let coords = object_coords(&plans.poses, uv)?;
        let weight = support(&coords)?.broadcast_mul(&plans.present.unsqueeze(2)?)?;
        let id = |i: usize| -> Result<Tensor> { Ok(plans.object_ids.narrow(2, i, 1)?.reshape((b, k))?) };
        // Per-slot vectors spread over the canvas: (b, K, d) -> (b, K, n, d).
        let spread = |v: Tensor| -> Result<Tensor> {
            let d = v.dim(2)?;
            Ok(expand_rows(&v.reshape((b * k, 1, d))?, n)?.reshape((b, k, n, d))?)
        };
        let bias = spread((self.shapes.forward(&id(0)?)? + self.sizes.forward(&id(2)?)?)?)?;
        let colour = spread(self.colours.forward(&id(1)?)?)?;
        let inputs = 2 + 4 * self.octaves;
        let hidden = bias.dim(3)?;
        let weights = self.shape_weights.forward(&id(0)?)?.reshape((b * k, inputs, hidden))?;
        let encoded = fourier(&coords, self.octaves)?.reshape((b * k, n, inputs))?;
        let h = (encoded.matmul(&weights)?.reshape((b, k, n, hidden))? + bias)?.silu()?;
        let h = self.hidden.forward(&h)?.silu()?;
        let out = self.out.forward(&h)?;
        let features = out.dim(3)? - 1;
        let occupancy = out.narrow(3, 0, 1)?.squeeze(3)?;
        let alpha = candle_nn::ops::sigmoid(&occupancy)?.mul(&weight)?;
        let value = Tensor::cat(&[out.narrow(3, 1, features)?, colour], 3)?;
        // Front (the last slot) to back: each slot shows through what is in front of it.
        let mut through = Tensor::ones((b, n, 1), DType::F32, uv.device())?;
        let mut acc: Option<Tensor> = None;
        for slot in (0..k).rev() {
            let a = alpha.narrow(1, slot, 1)?.reshape((b, n, 1))?;
            let v = value.narrow(1, slot, 1)?.squeeze(1)?;
            let term = v.broadcast_mul(&(&through * &a)?)?;
            acc = Some(match acc {
                Some(s) => (s + term)?,
                None => term,
            });
            through = (&through * a.affine(-1.0, 1.0)?)?;
        }
        let acc = acc.ok_or_else(|| candle_core::Error::Msg("no object slots".into()))?;
        let coverage = through.affine(-1.0, 1.0)?;
        Ok(ObjectFieldOutput {
            features: Tensor::cat(&[acc, coverage], 2)?,
            occupancy,
            weight,
        })
    }
}

/// The background field: an MLP of canvas coordinates conditioned on the globals'
/// embedding. Parameters `coords`, `globals`, `out`.
pub struct BackgroundField {
    coords: Dense,
    globals: Dense,
    out: Dense,
    octaves: usize,
}

impl BackgroundField {
    /// `embed_dim`: width of the globals' embedding.
    pub fn new(embed_dim: usize, hidden: usize, features: usize, octaves: usize, vb: VarBuilder) -> Result<Self> {
        Ok(BackgroundField {
            coords: Dense::new(2 + 4 * octaves, hidden, vb.pp("coords"))?,
            globals: Dense::new(embed_dim, hidden, vb.pp("globals"))?,
            out: Dense::new(hidden, features, vb.pp("out"))?,
            octaves,
        })
    }

    /// globals (b, E), uv (h w, 2) -> (b, h w, features).
    pub fn forward(&self, globals: &Tensor, uv: &Tensor) -> Result<Tensor> {
        let b = globals.dim(0)?;
        let at = self.coords.forward(&fourier(uv, self.octaves)?)?;
        let (n, h) = at.dims2()?;
        let at = expand_rows(&at.reshape((1, n * h))?, b)?.reshape((b, n, h))?;
        let g = expand_rows(&self.globals.forward(globals)?.unsqueeze(1)?, n)?;
        Ok(self.out.forward(&(at + g)?.silu()?)?)
    }
}
