//! The diffusion decoder: a Diffusion Transformer (Peebles & Xie 2023) over patches
//! of VAE latents, with adaLN-Zero conditioning on the timestep and pooled text, and
//! cross-attention to the text encoder's token states (PixArt-alpha, Chen et al. 2024).

use candle_core::{Module, Tensor};
use candle_nn::{linear, Init, Linear, VarBuilder};
use mmgen_nn::{timestep_embedding, Attention, AttentionContext, FeedForward, LayerNorm};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Shape of a diffusion transformer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DitConfig {
    /// Side of the latent grid.
    pub latent_size: usize,
    /// Latent channels.
    pub latent_channels: usize,
    /// Side of a patch (one token per patch).
    pub patch: usize,
    /// Token width.
    pub dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of the text encoder's states.
    pub text_dim: usize,
    /// Most frames per window of temporal attention (0: an image model, no temporal
    /// layers).
    #[serde(default)]
    pub frames: usize,
}

impl DitConfig {
    /// The shipped decoder for 16x16x4 latents (64 tokens).
    pub fn base(text_dim: usize) -> DitConfig {
        DitConfig {
            latent_size: 16,
            latent_channels: 4,
            patch: 2,
            dim: 192,
            depth: 6,
            heads: 6,
            text_dim,
            frames: 0,
        }
    }

    /// A tiny decoder for tests (4x4x4 latents).
    pub fn tiny(text_dim: usize) -> DitConfig {
        DitConfig {
            latent_size: 4,
            latent_channels: 4,
            patch: 2,
            dim: 16,
            depth: 1,
            heads: 2,
            text_dim,
            frames: 0,
        }
    }

    /// The same decoder with temporal attention over windows of `frames` frames.
    pub fn with_frames(&self, frames: usize) -> DitConfig {
        DitConfig { frames, ..self.clone() }
    }

    fn tokens(&self) -> usize {
        (self.latent_size / self.patch).pow(2)
    }
}

/// A linear layer whose weights start at zero (adaLN-Zero: every block starts as
/// the identity, and the output starts at zero).
pub(crate) fn zero_linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((d_out, d_in), "weight", Init::Const(0.0))?;
    let b = vb.get_with_hints(d_out, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

/// x * (1 + scale) + shift, with (b, d) modulations broadcast over tokens.
fn modulate(xs: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(xs
        .broadcast_mul(&scale.affine(1.0, 1.0)?.unsqueeze(1)?)?
        .broadcast_add(&shift.unsqueeze(1)?)?)
}

/// Tokens (b, f*n, d) laid out frame after frame -> (b*f, n, d): one sequence per frame.
fn per_frame(xs: &Tensor, frames: usize) -> Result<Tensor> {
    let (b, fn_, d) = xs.dims3()?;
    Ok(xs.reshape((b * frames, fn_ / frames, d))?)
}

/// Tokens (b, f*n, d) -> (b*n, f, d): one sequence per spatial position, across frames.
fn per_position(xs: &Tensor, frames: usize) -> Result<Tensor> {
    let (b, fn_, d) = xs.dims3()?;
    let n = fn_ / frames;
    Ok(xs
        .reshape((b, frames, n, d))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * n, frames, d))?)
}

/// The inverse of [`per_position`].
fn from_per_position(xs: &Tensor, b: usize, frames: usize) -> Result<Tensor> {
    let (bn, _, d) = xs.dims3()?;
    let n = bn / b;
    Ok(xs
        .reshape((b, n, frames, d))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, frames * n, d))?)
}

struct DitBlock {
    norm1: LayerNorm,
    attn: Attention,
    norm_cross: LayerNorm,
    cross: Attention,
    norm2: LayerNorm,
    mlp: FeedForward,
    ada: Linear,
}

impl DitBlock {
    fn new(dim: usize, heads: usize, text_dim: usize, vb: VarBuilder) -> Result<DitBlock> {
        Ok(DitBlock {
            norm1: LayerNorm::new(dim, false, vb.pp("norm1"))?,
            attn: Attention::new(dim, dim, heads, vb.pp("attn"))?,
            norm_cross: LayerNorm::new(dim, true, vb.pp("norm_cross"))?,
            cross: Attention::new(dim, text_dim, heads, vb.pp("cross"))?,
            norm2: LayerNorm::new(dim, false, vb.pp("norm2"))?,
            mlp: FeedForward::new(dim, 4 * dim, vb.pp("mlp"))?,
            ada: zero_linear(dim, 6 * dim, vb.pp("ada"))?,
        })
    }

    /// xs (b, f*n, d), cond (b, d), text: this block's projection of the text states.
    /// Self-attention stays within each of the `frames` frames; cross-attention and
    /// the MLP act per token.
    fn forward(&self, xs: &Tensor, cond: &Tensor, text: &AttentionContext, frames: usize) -> Result<Tensor> {
        let m = self.ada.forward(&cond.silu()?)?.chunk(6, 1)?;
        let (shift1, scale1, gate1, shift2, scale2, gate2) = (&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
        let h = modulate(&self.norm1.forward(xs)?, shift1, scale1)?;
        let attended = if frames > 1 {
            self.attn
                .forward(&per_frame(&h, frames)?, None, None)?
                .reshape(xs.shape())?
        } else {
            self.attn.forward(&h, None, None)?
        };
        let xs = (xs + attended.broadcast_mul(&gate1.unsqueeze(1)?)?)?;
        let xs = (&xs + self.cross.forward_context(&self.norm_cross.forward(&xs)?, text)?)?;
        let h = modulate(&self.norm2.forward(&xs)?, shift2, scale2)?;
        Ok((&xs + self.mlp.forward(&h)?.broadcast_mul(&gate2.unsqueeze(1)?)?)?)
    }
}

/// Temporal attention (factorised space-time, as in Video LDM, Blattmann et al. 2023):
/// each spatial position attends to itself across frames. Its adaLN-Zero gate starts
/// at zero, so a video model inflated from an image model starts as that image model
/// applied to every frame.
struct TemporalBlock {
    norm: LayerNorm,
    attn: Attention,
    ada: Linear,
}

impl TemporalBlock {
    fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<TemporalBlock> {
        Ok(TemporalBlock {
            norm: LayerNorm::new(dim, false, vb.pp("norm"))?,
            attn: Attention::new(dim, dim, heads, vb.pp("attn"))?,
            ada: zero_linear(dim, 3 * dim, vb.pp("ada"))?,
        })
    }

    /// xs (b, f*n, d) with frame embeddings `frame_positions` (f, d).
    fn forward(&self, xs: &Tensor, cond: &Tensor, frames: usize, frame_positions: &Tensor) -> Result<Tensor> {
        let b = xs.dim(0)?;
        let m = self.ada.forward(&cond.silu()?)?.chunk(3, 1)?;
        let h = modulate(&self.norm.forward(xs)?, &m[0], &m[1])?;
        let h = per_position(&h, frames)?.broadcast_add(frame_positions)?;
        let attended = from_per_position(&self.attn.forward(&h, None, None)?, b, frames)?;
        Ok((xs + attended.broadcast_mul(&m[2].unsqueeze(1)?)?)?)
    }
}

/// Text conditioning prepared for [`Dit::forward_prepared`] and
/// [`DitTrunk::forward`].
pub struct DitText {
    blocks: Vec<AttentionContext>,
    pooled: Tensor,
}

impl DitText {
    /// The text of a batch repeated `k` times along the batch (copy after copy), for
    /// `k` windows of a long sequence stacked window-major.
    pub fn repeat(&self, k: usize) -> Result<DitText> {
        Ok(DitText {
            blocks: self
                .blocks
                .iter()
                .map(|c| c.repeat_batch(k))
                .collect::<candle_core::Result<_>>()?,
            pooled: self.pooled.repeat((k, 1))?,
        })
    }
}

/// What every diffusion transformer of mmgen shares, whatever its tokens: the
/// timestep and pooled-text conditioning, the blocks (with temporal attention when
/// built for video) and the final modulated norm. Parameters `time.{0,1}`, `pooled`,
/// `blocks.{i}`, `temporal.{i}`, `frame_positions`, `final_norm`, `final_ada`.
pub struct DitTrunk {
    time1: Linear,
    time2: Linear,
    pooled: Linear,
    blocks: Vec<DitBlock>,
    temporal: Vec<TemporalBlock>,
    frame_positions: Option<Tensor>,
    final_norm: LayerNorm,
    final_ada: Linear,
}

/// Width of the sinusoidal timestep features.
const TIME_FEATURES: usize = 256;

impl DitTrunk {
    /// `depth` blocks of width `dim` with `heads` heads attending to `text_dim`-wide
    /// text; with `max_frames` > 0, each block is followed by temporal attention over
    /// at most that many frames.
    pub fn new(
        dim: usize,
        depth: usize,
        heads: usize,
        text_dim: usize,
        max_frames: usize,
        vb: VarBuilder,
    ) -> Result<DitTrunk> {
        if heads == 0 || !dim.is_multiple_of(heads) {
            return Err(ModelError::Invalid(format!(
                "a DiT of width {dim} does not split into {heads} heads"
            )));
        }
        let temporal = if max_frames > 0 {
            (0..depth)
                .map(|i| TemporalBlock::new(dim, heads, vb.pp(format!("temporal.{i}"))))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let frame_positions = if max_frames > 0 {
            // Zero at first: an inflated image model starts frame-order blind.
            Some(vb.get_with_hints((max_frames, dim), "frame_positions", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(DitTrunk {
            time1: linear(TIME_FEATURES, dim, vb.pp("time.0"))?,
            time2: linear(dim, dim, vb.pp("time.1"))?,
            pooled: linear(text_dim, dim, vb.pp("pooled"))?,
            blocks: (0..depth)
                .map(|i| DitBlock::new(dim, heads, text_dim, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            temporal,
            frame_positions,
            final_norm: LayerNorm::new(dim, false, vb.pp("final_norm"))?,
            final_ada: zero_linear(dim, 2 * dim, vb.pp("final_ada"))?,
        })
    }

    /// Most frames temporal attention was built for (0: none).
    pub fn max_frames(&self) -> usize {
        self.frame_positions.as_ref().map_or(0, |p| p.dims()[0])
    }

    /// What the text contributes at every step, computed once: each block's
    /// cross-attention keys and values, and the pooled text's projection. A sampler
    /// calls the network 2 x steps times with the same text.
    pub fn prepare_text(&self, text: &Tensor, mask: &Tensor, pooled: &Tensor) -> Result<DitText> {
        Ok(DitText {
            blocks: self
                .blocks
                .iter()
                .map(|block| block.cross.context(text, Some(mask)))
                .collect::<candle_core::Result<_>>()?,
            pooled: self.pooled.forward(pooled)?,
        })
    }

    /// Embedded tokens (b, f*n, d), frame after frame, -> output features (b, f*n, d),
    /// at `timesteps` (b,). `frames` is 1 for images and audio.
    pub fn forward(&self, tokens: &Tensor, frames: usize, timesteps: &Tensor, text: &DitText) -> Result<Tensor> {
        let video = frames > 1;
        if video && frames > self.max_frames() {
            return Err(ModelError::Invalid(format!(
                "{frames} frames in one window; this DiT's temporal attention spans at most {}",
                self.max_frames()
            )));
        }
        let t = timestep_embedding(timesteps, TIME_FEATURES)?;
        let cond = (self.time2.forward(&self.time1.forward(&t)?.silu()?)? + &text.pooled)?;
        let mut tokens = tokens.clone();
        for (i, (block, context)) in self.blocks.iter().zip(&text.blocks).enumerate() {
            tokens = block.forward(&tokens, &cond, context, frames)?;
            if let (true, Some(temporal), Some(positions)) = (video, self.temporal.get(i), &self.frame_positions) {
                tokens = temporal.forward(&tokens, &cond, frames, &positions.narrow(0, 0, frames)?)?;
            }
        }
        let m = self.final_ada.forward(&cond.silu()?)?.chunk(2, 1)?;
        modulate(&self.final_norm.forward(&tokens)?, &m[0], &m[1])
    }
}

/// The diffusion transformer over latent images or clips. Parameters `patch_in`,
/// `positions`, `patch_out` and the [`DitTrunk`]'s.
pub struct Dit {
    patch_in: Linear,
    positions: Tensor,
    trunk: DitTrunk,
    patch_out: Linear,
    config: DitConfig,
}

impl Dit {
    /// Builds the decoder from `config` and `vb`.
    pub fn new(config: &DitConfig, vb: VarBuilder) -> Result<Dit> {
        if config.patch == 0
            || !config.latent_size.is_multiple_of(config.patch)
            || !config.dim.is_multiple_of(config.heads.max(1))
        {
            return Err(ModelError::Invalid(format!(
                "DiT config {config:?}: latent_size must be a multiple of patch, dim of heads"
            )));
        }
        let patch_dim = config.patch * config.patch * config.latent_channels;
        Ok(Dit {
            patch_in: linear(patch_dim, config.dim, vb.pp("patch_in"))?,
            positions: vb.get_with_hints(
                (config.tokens(), config.dim),
                "positions",
                Init::Randn { mean: 0.0, stdev: 0.02 },
            )?,
            trunk: DitTrunk::new(
                config.dim,
                config.depth,
                config.heads,
                config.text_dim,
                config.frames,
                vb.clone(),
            )?,
            patch_out: zero_linear(config.dim, patch_dim, vb.pp("patch_out"))?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DitConfig {
        &self.config
    }

    /// latents (b, s, s, c) -> tokens (b, (s/p)^2, p*p*c), patches in raster order.
    fn patchify(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, s, _, c) = xs.dims4()?;
        let (p, g) = (self.config.patch, s / self.config.patch);
        Ok(xs
            .reshape((b, g, p, g, p * c))?
            .permute((0, 1, 3, 2, 4))?
            .reshape((b, g * g, p * p * c))?)
    }

    fn unpatchify(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, _, _) = xs.dims3()?;
        let (p, c) = (self.config.patch, self.config.latent_channels);
        let g = self.config.latent_size / p;
        Ok(xs
            .reshape((b, g, g, p, p * c))?
            .permute((0, 1, 3, 2, 4))?
            .reshape((b, g * p, g * p, c))?)
    }

    /// The prediction for noisy latents `xs` (b, s, s, c) at `timesteps` (b,) given
    /// text states (b, m, text_dim), their mask (b, m) and pooled text (b, text_dim).
    pub fn forward(
        &self,
        xs: &Tensor,
        timesteps: &Tensor,
        text: &Tensor,
        mask: &Tensor,
        pooled: &Tensor,
    ) -> Result<Tensor> {
        self.forward_prepared(xs, timesteps, &self.prepare_text(text, mask, pooled)?)
    }

    /// See [`DitTrunk::prepare_text`].
    pub fn prepare_text(&self, text: &Tensor, mask: &Tensor, pooled: &Tensor) -> Result<DitText> {
        self.trunk.prepare_text(text, mask, pooled)
    }

    /// [`Self::forward`] with prepared text, for latent images (b, s, s, c) or, when
    /// the DiT has temporal attention, latent clips (b, f, s, s, c).
    pub fn forward_prepared(&self, xs: &Tensor, timesteps: &Tensor, text: &DitText) -> Result<Tensor> {
        let s = self.config.latent_size;
        let c = self.config.latent_channels;
        let (b, frames) = match *xs.dims() {
            [b, h, w, ch] if (h, w, ch) == (s, s, c) => (b, 1),
            [b, f, h, w, ch] if (h, w, ch) == (s, s, c) && self.config.frames > 0 => (b, f),
            _ => {
                let clip = if self.config.frames > 0 {
                    " or clips (b, f, s, s, c)"
                } else {
                    ""
                };
                return Err(ModelError::Invalid(format!(
                    "the DiT takes latents (b, {s}, {s}, {c}){clip}; got {:?}",
                    xs.dims()
                )));
            }
        };
        let frames_first = xs.reshape((b * frames, s, s, c))?;
        let n = self.config.tokens();
        let tokens = self
            .patch_in
            .forward(&self.patchify(&frames_first)?)?
            .broadcast_add(&self.positions.unsqueeze(0)?)?
            .reshape((b, frames * n, self.config.dim))?;
        let tokens = self.trunk.forward(&tokens, frames, timesteps, text)?;
        let out = self.unpatchify(
            &self
                .patch_out
                .forward(&tokens.reshape((b * frames, n, self.config.dim))?)?,
        )?;
        Ok(out.reshape(xs.shape())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn patches_round_trip_and_output_starts_at_zero() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let dit = Dit::new(&DitConfig::tiny(8), VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (2, 4, 4, 4), &dev).unwrap();
        let back = dit.unpatchify(&dit.patchify(&xs).unwrap()).unwrap();
        let diff: f32 = (back - &xs)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
        let text = Tensor::randn(0f32, 1.0, (2, 3, 8), &dev).unwrap();
        let mask = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
        let pooled = Tensor::randn(0f32, 1.0, (2, 8), &dev).unwrap();
        let t = Tensor::new(&[10f32, 500.0], &dev).unwrap();
        let out = dit.forward(&xs, &t, &text, &mask, &pooled).unwrap();
        assert_eq!(out.dims(), &[2, 4, 4, 4]);
        // adaLN-Zero: the untrained output is exactly zero.
        assert_eq!(out.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        assert!(dit
            .forward(&xs.narrow(3, 0, 3).unwrap(), &t, &text, &mask, &pooled)
            .is_err());
    }

    /// Sets every variable of `varmap` to seeded random values (so that zero-init
    /// gates do not hide anything), except names matching `keep_zero`.
    fn randomise(varmap: &VarMap, keep_zero: impl Fn(&str) -> bool) {
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for (i, name) in names.into_iter().enumerate() {
            let var = &data[name];
            let values = (mmgen_diffusion::gaussian(var.shape(), i as u64, &Device::Cpu).unwrap() * 0.2).unwrap();
            if keep_zero(name) {
                var.set(&values.zeros_like().unwrap()).unwrap();
            } else {
                var.set(&values).unwrap();
            }
        }
    }

    /// A video DiT inflated from an image DiT is, before its temporal gates open,
    /// the image DiT applied to every frame; once they open, frames see each other.
    #[test]
    fn inflated_video_dit_starts_as_the_image_dit() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let video = Dit::new(&DitConfig::tiny(8).with_frames(3), vb.clone()).unwrap();
        let image = Dit::new(&DitConfig::tiny(8), vb).unwrap();
        randomise(&varmap, |name| name.starts_with("temporal.") && name.contains(".ada."));
        let clip = Tensor::randn(0f32, 1.0, (2, 3, 4, 4, 4), &dev).unwrap();
        let text = Tensor::randn(0f32, 1.0, (2, 3, 8), &dev).unwrap();
        let mask = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
        let pooled = Tensor::randn(0f32, 1.0, (2, 8), &dev).unwrap();
        let t = Tensor::new(&[10f32, 500.0], &dev).unwrap();
        let out = video.forward(&clip, &t, &text, &mask, &pooled).unwrap();
        assert_eq!(out.dims(), &[2, 3, 4, 4, 4]);
        let max_diff =
            |a: &Tensor, b: &Tensor| -> f32 { (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
        for f in 0..3 {
            let frame = clip.narrow(1, f, 1).unwrap().squeeze(1).unwrap();
            let alone = image.forward(&frame, &t, &text, &mask, &pooled).unwrap();
            let d = max_diff(&out.narrow(1, f, 1).unwrap().squeeze(1).unwrap(), &alone);
            assert!(d < 1e-4, "frame {f}: {d}");
        }
        assert!(out.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
        // Open the gates: changing frame 0 now changes frame 2's output.
        randomise(&varmap, |_| false);
        let out = video.forward(&clip, &t, &text, &mask, &pooled).unwrap();
        let changed = Tensor::cat(
            &[
                (clip.narrow(1, 0, 1).unwrap() + 1.0).unwrap(),
                clip.narrow(1, 1, 2).unwrap(),
            ],
            1,
        )
        .unwrap();
        let out2 = video.forward(&changed, &t, &text, &mask, &pooled).unwrap();
        let d = max_diff(&out.narrow(1, 2, 1).unwrap(), &out2.narrow(1, 2, 1).unwrap());
        assert!(d > 1e-4, "temporal attention carries across frames: {d}");
        // More frames than the temporal window is refused; the image DiT refuses clips.
        let long = Tensor::randn(0f32, 1.0, (2, 4, 4, 4, 4), &dev).unwrap();
        assert!(video.forward(&long, &t, &text, &mask, &pooled).is_err());
        assert!(image.forward(&clip, &t, &text, &mask, &pooled).is_err());
    }
}
