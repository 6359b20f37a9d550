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
        }
    }

    fn tokens(&self) -> usize {
        (self.latent_size / self.patch).pow(2)
    }
}

/// A linear layer whose weights start at zero (adaLN-Zero: every block starts as
/// the identity, and the output starts at zero).
fn zero_linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
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
    fn new(cfg: &DitConfig, vb: VarBuilder) -> Result<DitBlock> {
        Ok(DitBlock {
            norm1: LayerNorm::new(cfg.dim, false, vb.pp("norm1"))?,
            attn: Attention::new(cfg.dim, cfg.dim, cfg.heads, vb.pp("attn"))?,
            norm_cross: LayerNorm::new(cfg.dim, true, vb.pp("norm_cross"))?,
            cross: Attention::new(cfg.dim, cfg.text_dim, cfg.heads, vb.pp("cross"))?,
            norm2: LayerNorm::new(cfg.dim, false, vb.pp("norm2"))?,
            mlp: FeedForward::new(cfg.dim, 4 * cfg.dim, vb.pp("mlp"))?,
            ada: zero_linear(cfg.dim, 6 * cfg.dim, vb.pp("ada"))?,
        })
    }

    /// xs (b, n, d), cond (b, d), text: this block's projection of the text states.
    fn forward(&self, xs: &Tensor, cond: &Tensor, text: &AttentionContext) -> Result<Tensor> {
        let m = self.ada.forward(&cond.silu()?)?.chunk(6, 1)?;
        let (shift1, scale1, gate1, shift2, scale2, gate2) = (&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
        let h = modulate(&self.norm1.forward(xs)?, shift1, scale1)?;
        let xs = (xs + self.attn.forward(&h, None, None)?.broadcast_mul(&gate1.unsqueeze(1)?)?)?;
        let xs = (&xs + self.cross.forward_context(&self.norm_cross.forward(&xs)?, text)?)?;
        let h = modulate(&self.norm2.forward(&xs)?, shift2, scale2)?;
        Ok((&xs + self.mlp.forward(&h)?.broadcast_mul(&gate2.unsqueeze(1)?)?)?)
    }
}

/// Text conditioning prepared for [`Dit::forward_prepared`].
pub struct DitText {
    blocks: Vec<AttentionContext>,
    pooled: Tensor,
}

/// The diffusion transformer. Parameters `patch_in`, `positions`, `time.{0,1}`,
/// `pooled`, `blocks.{i}`, `final_ada`, `patch_out`.
pub struct Dit {
    patch_in: Linear,
    positions: Tensor,
    time1: Linear,
    time2: Linear,
    pooled: Linear,
    blocks: Vec<DitBlock>,
    final_norm: LayerNorm,
    final_ada: Linear,
    patch_out: Linear,
    config: DitConfig,
}

/// Width of the sinusoidal timestep features.
const TIME_FEATURES: usize = 256;

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
            time1: linear(TIME_FEATURES, config.dim, vb.pp("time.0"))?,
            time2: linear(config.dim, config.dim, vb.pp("time.1"))?,
            pooled: linear(config.text_dim, config.dim, vb.pp("pooled"))?,
            blocks: (0..config.depth)
                .map(|i| DitBlock::new(config, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            final_norm: LayerNorm::new(config.dim, false, vb.pp("final_norm"))?,
            final_ada: zero_linear(config.dim, 2 * config.dim, vb.pp("final_ada"))?,
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

    /// [`Self::forward`] with prepared text.
    pub fn forward_prepared(&self, xs: &Tensor, timesteps: &Tensor, text: &DitText) -> Result<Tensor> {
        let (_, h, w, c) = xs.dims4()?;
        let s = self.config.latent_size;
        if (h, w, c) != (s, s, self.config.latent_channels) {
            return Err(ModelError::Invalid(format!(
                "the DiT takes (b, {s}, {s}, {}) latents; got {:?}",
                self.config.latent_channels,
                xs.dims()
            )));
        }
        let t = timestep_embedding(timesteps, TIME_FEATURES)?;
        let cond = (self.time2.forward(&self.time1.forward(&t)?.silu()?)? + &text.pooled)?;
        let mut tokens = self
            .patch_in
            .forward(&self.patchify(xs)?)?
            .broadcast_add(&self.positions.unsqueeze(0)?)?;
        for (block, context) in self.blocks.iter().zip(&text.blocks) {
            tokens = block.forward(&tokens, &cond, context)?;
        }
        let m = self.final_ada.forward(&cond.silu()?)?.chunk(2, 1)?;
        let tokens = modulate(&self.final_norm.forward(&tokens)?, &m[0], &m[1])?;
        self.unpatchify(&self.patch_out.forward(&tokens)?)
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
}
