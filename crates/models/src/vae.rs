//! The image autoencoder: a small KL-regularised VAE (Kingma & Welling 2014) that
//! maps 64x64x3 images to 16x16x4 latents, so that diffusion runs in latent space as
//! in Stable Diffusion (Rombach et al. 2022).
//!
//! Resolution changes are space-to-depth / depth-to-space moves with a per-cell
//! linear map (as a strided convolution would, without candle's slow conv2d input
//! gradient); 3x3 convolutions are [`mmgen_nn::Conv3x3`] on zero-bordered cell grids.
//! No layer runs at full resolution: the input is embedded by 2x2 patches and the
//! output is a sub-pixel layer, which keeps every matmul at least 32 channels wide
//! (thin full-resolution convolutions ran at ~4 GFLOP/s in candle on this CPU).
//! Features are (b, h, w, c) throughout.

use candle_core::{Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use mmgen_nn::{depth_to_space, space_to_depth, CellGrid, Conv3x3};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Shape of an autoencoder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VaeConfig {
    /// Side of the square input images.
    pub image_size: usize,
    /// Pixels per side of the input patch that becomes one cell of the first level
    /// (a patch embedding; the decoder ends with the matching sub-pixel output layer,
    /// Shi et al. 2016).
    pub patch: usize,
    /// Channels at each level, first level first; each further entry halves the side
    /// (64 pixels, patch 2, two levels: 32 -> 16).
    pub channels: Vec<usize>,
    /// Latent channels.
    pub latent_channels: usize,
    /// Residual blocks (two 3x3 convolutions each) per resolution.
    pub blocks: usize,
}

impl VaeConfig {
    /// The shipped 64x64 -> 16x16x4 autoencoder.
    pub fn base() -> VaeConfig {
        VaeConfig {
            image_size: 64,
            patch: 2,
            channels: vec![32, 64],
            latent_channels: 4,
            blocks: 1,
        }
    }

    /// A tiny autoencoder for tests (16x16 -> 4x4x4).
    pub fn tiny() -> VaeConfig {
        VaeConfig {
            image_size: 16,
            patch: 2,
            channels: vec![4, 8],
            latent_channels: 4,
            blocks: 1,
        }
    }

    /// Side of the latent grid.
    pub fn latent_size(&self) -> usize {
        (self.image_size / self.patch.max(1)) >> (self.channels.len().saturating_sub(1))
    }

    fn check(&self) -> Result<()> {
        let halvings = self.channels.len().saturating_sub(1);
        if self.channels.is_empty()
            || self.channels.contains(&0)
            || self.latent_channels == 0
            || self.patch == 0
            || self.image_size == 0
            || !self.image_size.is_multiple_of(self.patch << halvings)
        {
            return Err(ModelError::Invalid(format!(
                "VAE config {self:?}: channels must be non-empty and positive, and image_size a multiple of patch * 2^(levels-1)"
            )));
        }
        Ok(())
    }
}

/// x + conv(silu(conv(silu(x)))).
struct ResBlock {
    conv1: Conv3x3,
    conv2: Conv3x3,
}

impl ResBlock {
    fn new(c: usize, vb: VarBuilder) -> Result<ResBlock> {
        Ok(ResBlock {
            conv1: Conv3x3::new(c, c, vb.pp("conv1"))?,
            conv2: Conv3x3::new(c, c, vb.pp("conv2"))?,
        })
    }

    fn forward(&self, grid: &CellGrid) -> Result<CellGrid> {
        let h = self.conv1.forward(&grid.map(|x| x.silu())?)?;
        let h = self.conv2.forward(&h.map(|x| x.silu())?)?;
        Ok(CellGrid {
            xs: (&grid.xs + h.xs)?,
            ..*grid
        })
    }
}

fn res_stack(blocks: &[ResBlock], xs: &Tensor) -> Result<Tensor> {
    let mut grid = CellGrid::from_nhwc(xs)?;
    for block in blocks {
        grid = block.forward(&grid)?;
    }
    Ok(grid.to_nhwc()?)
}

/// Encoder: parameters `patch_in`, `levels.{i}.blocks.{j}`, `levels.{i}.down`, `out`.
struct Encoder {
    patch_in: Linear,
    blocks: Vec<Vec<ResBlock>>,
    downs: Vec<Linear>,
    out: Linear,
}

/// Decoder: parameters `input`, `levels.{i}.blocks.{j}`, `levels.{i}.up`, `patch_out`.
struct Decoder {
    input: Linear,
    blocks: Vec<Vec<ResBlock>>,
    ups: Vec<Linear>,
    patch_out: Linear,
}

/// The autoencoder. Parameters under `encoder.` and `decoder.`.
pub struct Vae {
    encoder: Encoder,
    decoder: Decoder,
    config: VaeConfig,
}

/// A latent distribution: diagonal Gaussian with `mean` and `log_var`, (b, h, w, c).
pub struct Posterior {
    /// Means.
    pub mean: Tensor,
    /// Log variances (clamped to [-30, 20] as Stable Diffusion does).
    pub log_var: Tensor,
}

impl Posterior {
    /// KL divergence to N(0, I), summed over a sample's latents, averaged over the batch.
    pub fn kl(&self) -> Result<Tensor> {
        let b = self.mean.dim(0)?;
        let terms = ((self.mean.sqr()? + self.log_var.exp()?)? - self.log_var.affine(1.0, 1.0)?)?;
        Ok((terms.sum_all()? * (0.5 / b as f64))?)
    }

    /// A sample `mean + exp(log_var / 2) noise`.
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        Ok((&self.mean + (self.log_var.affine(0.5, 0.0)?.exp()? * noise)?)?)
    }
}

impl Vae {
    /// Builds the autoencoder from `config` and `vb`.
    pub fn new(config: &VaeConfig, vb: VarBuilder) -> Result<Vae> {
        config.check()?;
        let ch = &config.channels;
        let levels = ch.len();
        let venc = vb.pp("encoder");
        let mut enc_blocks = Vec::new();
        let mut downs = Vec::new();
        for (i, &c) in ch.iter().enumerate() {
            let vl = venc.pp(format!("levels.{i}"));
            enc_blocks.push(
                (0..config.blocks)
                    .map(|j| ResBlock::new(c, vl.pp(format!("blocks.{j}"))))
                    .collect::<Result<Vec<_>>>()?,
            );
            if i + 1 < levels {
                downs.push(linear(4 * c, ch[i + 1], vl.pp("down"))?);
            }
        }
        let p2 = config.patch * config.patch;
        let encoder = Encoder {
            patch_in: linear(3 * p2, ch[0], venc.pp("patch_in"))?,
            blocks: enc_blocks,
            downs,
            out: linear(ch[levels - 1], 2 * config.latent_channels, venc.pp("out"))?,
        };
        let vdec = vb.pp("decoder");
        let mut dec_blocks = Vec::new();
        let mut ups = Vec::new();
        // Decoder levels run from the latent resolution up: level i has ch[levels-1-i].
        for i in 0..levels {
            let c = ch[levels - 1 - i];
            let vl = vdec.pp(format!("levels.{i}"));
            dec_blocks.push(
                (0..config.blocks)
                    .map(|j| ResBlock::new(c, vl.pp(format!("blocks.{j}"))))
                    .collect::<Result<Vec<_>>>()?,
            );
            if i + 1 < levels {
                ups.push(linear(c, 4 * ch[levels - 2 - i], vl.pp("up"))?);
            }
        }
        let decoder = Decoder {
            input: linear(config.latent_channels, ch[levels - 1], vdec.pp("input"))?,
            blocks: dec_blocks,
            ups,
            patch_out: linear(ch[0], 3 * p2, vdec.pp("patch_out"))?,
        };
        Ok(Vae {
            encoder,
            decoder,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// images (b, 3, s, s) in [-1, 1] -> the latent distribution (b, s/4, s/4, c).
    pub fn encode(&self, images: &Tensor) -> Result<Posterior> {
        let (_, c, h, w) = images.dims4()?;
        let s = self.config.image_size;
        if (c, h, w) != (3, s, s) {
            return Err(ModelError::Invalid(format!(
                "the VAE takes (b, 3, {s}, {s}) images; got {:?}",
                images.dims()
            )));
        }
        let xs = images.permute((0, 2, 3, 1))?.contiguous()?;
        let e = &self.encoder;
        let mut xs = e.patch_in.forward(&space_to_depth(&xs, self.config.patch)?)?;
        for (i, blocks) in e.blocks.iter().enumerate() {
            xs = res_stack(blocks, &xs)?;
            if let Some(down) = e.downs.get(i) {
                xs = down.forward(&space_to_depth(&xs.silu()?, 2)?)?;
            }
        }
        let moments = e.out.forward(&xs.silu()?)?;
        let lc = self.config.latent_channels;
        Ok(Posterior {
            mean: moments.narrow(3, 0, lc)?.contiguous()?,
            log_var: moments.narrow(3, lc, lc)?.clamp(-30.0, 20.0)?.contiguous()?,
        })
    }

    /// latents (b, s/4, s/4, c) -> images (b, 3, s, s), roughly in [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let (_, h, w, c) = latents.dims4()?;
        let ls = self.config.latent_size();
        if (h, w, c) != (ls, ls, self.config.latent_channels) {
            return Err(ModelError::Invalid(format!(
                "the VAE decodes (b, {ls}, {ls}, {}) latents; got {:?}",
                self.config.latent_channels,
                latents.dims()
            )));
        }
        let d = &self.decoder;
        let mut xs = d.input.forward(latents)?;
        for (i, blocks) in d.blocks.iter().enumerate() {
            xs = res_stack(blocks, &xs)?;
            if let Some(up) = d.ups.get(i) {
                xs = depth_to_space(&up.forward(&xs.silu()?)?, 2)?;
            }
        }
        let out = depth_to_space(&d.patch_out.forward(&xs.silu()?)?, self.config.patch)?;
        Ok(out.tanh()?.permute((0, 3, 1, 2))?.contiguous()?)
    }
}

/// Peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak 2).
pub fn psnr(a: &Tensor, b: &Tensor) -> Result<f64> {
    let mse = (a - b)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
    Ok(10.0 * (4.0 / mse.max(1e-12)).log10())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn shapes_kl_and_errors() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let cfg = VaeConfig::tiny();
        let vae = Vae::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let images = Tensor::randn(0f32, 0.5, (2, 3, 16, 16), &dev).unwrap();
        let post = vae.encode(&images).unwrap();
        assert_eq!(post.mean.dims(), &[2, 4, 4, 4]);
        assert!(post.kl().unwrap().to_scalar::<f32>().unwrap() >= 0.0);
        let out = vae.decode(&post.mean).unwrap();
        assert_eq!(out.dims(), &[2, 3, 16, 16]);
        assert!(vae
            .encode(&Tensor::zeros((1, 3, 8, 8), DType::F32, &dev).unwrap())
            .is_err());
        assert!(vae
            .decode(&Tensor::zeros((1, 4, 4, 3), DType::F32, &dev).unwrap())
            .is_err());
        assert!(psnr(&images, &images).unwrap() > 100.0);
        let bad = VaeConfig { image_size: 18, ..cfg };
        assert!(Vae::new(&bad, VarBuilder::zeros(DType::F32, &dev)).is_err());
    }
}
