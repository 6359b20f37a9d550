//! The text encoder: a pre-norm Transformer encoder (Vaswani et al. 2017; pre-norm as
//! in GPT-2 / Xiong et al. 2020) over BPE tokens with learnt positions and a key
//! padding mask. Its per-token states condition the diffusion decoder through
//! cross-attention (Stable Diffusion, PixArt-alpha); their masked mean is the pooled
//! text vector.

use candle_core::{Device, Module, Tensor, D};
use candle_nn::{embedding, Embedding, Init, VarBuilder};
use mmgen_nn::{Attention, FeedForward, LayerNorm};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::tokenizer::TextTokenizer;

/// Shape of a text encoder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TextEncoderConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Longest token sequence (longer prompts are truncated).
    pub max_len: usize,
    /// Width of token states.
    pub dim: usize,
    /// Transformer layers.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
}

impl TextEncoderConfig {
    /// The shipped encoder's shape for a `vocab_size` tokenizer.
    pub fn base(vocab_size: usize) -> TextEncoderConfig {
        TextEncoderConfig {
            vocab_size,
            max_len: 64,
            dim: 128,
            depth: 4,
            heads: 4,
        }
    }

    /// A tiny encoder for tests.
    pub fn tiny(vocab_size: usize) -> TextEncoderConfig {
        TextEncoderConfig {
            vocab_size,
            max_len: 16,
            dim: 16,
            depth: 1,
            heads: 2,
        }
    }
}

impl TextEncoderConfig {
    /// Refuses a tokenizer with more tokens than the encoder embeds.
    pub fn check_tokenizer(&self, tokenizer: &TextTokenizer) -> Result<()> {
        if tokenizer.vocab_size() > self.vocab_size {
            return Err(ModelError::Invalid(format!(
                "the tokenizer has {} tokens; the text encoder embeds {}",
                tokenizer.vocab_size(),
                self.vocab_size
            )));
        }
        Ok(())
    }
}

struct EncoderLayer {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: FeedForward,
}

impl EncoderLayer {
    fn new(cfg: &TextEncoderConfig, vb: VarBuilder) -> Result<EncoderLayer> {
        Ok(EncoderLayer {
            norm1: LayerNorm::new(cfg.dim, true, vb.pp("norm1"))?,
            attn: Attention::new(cfg.dim, cfg.dim, cfg.heads, vb.pp("attn"))?,
            norm2: LayerNorm::new(cfg.dim, true, vb.pp("norm2"))?,
            mlp: FeedForward::new(cfg.dim, 4 * cfg.dim, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = self.norm1.forward(xs)?;
        let xs = (xs + self.attn.forward(&h, None, Some(mask))?)?;
        Ok((&xs + self.mlp.forward(&self.norm2.forward(&xs)?)?)?)
    }
}

/// The text encoder. Parameters `tokens`, `positions`, `layers.{i}`, `norm`.
pub struct TextEncoder {
    tokens: Embedding,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
    config: TextEncoderConfig,
}

impl TextEncoder {
    /// Builds the encoder from `config` and `vb`.
    pub fn new(config: &TextEncoderConfig, vb: VarBuilder) -> Result<TextEncoder> {
        if config.dim == 0 || config.max_len == 0 || config.vocab_size == 0 {
            return Err(ModelError::Invalid(format!(
                "text encoder config {config:?} has a zero size"
            )));
        }
        let layers = (0..config.depth)
            .map(|i| EncoderLayer::new(config, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(TextEncoder {
            tokens: embedding(config.vocab_size, config.dim, vb.pp("tokens"))?,
            positions: vb.get_with_hints(
                (config.max_len, config.dim),
                "positions",
                Init::Randn { mean: 0.0, stdev: 0.02 },
            )?,
            layers,
            norm: LayerNorm::new(config.dim, true, vb.pp("norm"))?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TextEncoderConfig {
        &self.config
    }

    /// ids (b, L) u32 -> each token's own embedding (b, L, dim), before positions
    /// and attention: what a token is, whatever stands beside it.
    pub fn token_embeddings(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.tokens.forward(ids)?)
    }

    /// ids (b, L) u32, mask (b, L) f32 -> (token states (b, L, dim), pooled (b, dim)).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, len) = ids.dims2()?;
        if len > self.config.max_len {
            return Err(ModelError::Invalid(format!(
                "{len} tokens; the text encoder takes at most {}",
                self.config.max_len
            )));
        }
        let mut xs = self
            .tokens
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, len)?.unsqueeze(0)?)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, mask)?;
        }
        let xs = self.norm.forward(&xs)?;
        let pooled = masked_mean(&xs, mask)?;
        Ok((xs, pooled))
    }
}

/// Text conditioning of a batch: states (b, L, d), mask (b, L), pooled (b, d).
pub struct TextStates {
    /// Per-token states.
    pub states: Tensor,
    /// Key mask.
    pub mask: Tensor,
    /// Masked mean.
    pub pooled: Tensor,
}

impl TextEncoder {
    /// Encodes prompts with `tokenizer` (padded to a common length).
    pub fn encode_prompts(&self, tokenizer: &TextTokenizer, prompts: &[&str], device: &Device) -> Result<TextStates> {
        let (ids, mask) = tokenizer.encode_batch(prompts, self.config.max_len, device)?;
        self.encode_ids(&ids, &mask)
    }

    /// Encodes token ids (b, L) with their mask (b, L).
    pub fn encode_ids(&self, ids: &Tensor, mask: &Tensor) -> Result<TextStates> {
        let (states, pooled) = self.forward(ids, mask)?;
        Ok(TextStates {
            states,
            mask: mask.clone(),
            pooled,
        })
    }
}

/// Mean over the non-padded rows of `xs` (b, L, d) under `mask` (b, L).
pub fn masked_mean(xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let weights = mask.unsqueeze(D::Minus1)?;
    Ok(xs
        .broadcast_mul(&weights)?
        .sum(1)?
        .broadcast_div(&weights.sum(1)?.clamp(1.0, f64::MAX)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn padding_does_not_change_the_states_of_real_tokens() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let enc = TextEncoder::new(
            &TextEncoderConfig::tiny(50),
            VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        )
        .unwrap();
        let short = Tensor::new(&[[5u32, 6, 7]], &dev).unwrap();
        let long = Tensor::new(&[[5u32, 6, 7, 0, 0]], &dev).unwrap();
        let (a, pa) = enc
            .forward(&short, &Tensor::ones((1, 3), DType::F32, &dev).unwrap())
            .unwrap();
        let (b, pb) = enc
            .forward(&long, &Tensor::new(&[[1f32, 1.0, 1.0, 0.0, 0.0]], &dev).unwrap())
            .unwrap();
        let diff: f32 = (a - b.narrow(1, 0, 3).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let diff: f32 = (pa - pb)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let too_long = Tensor::zeros((1, 17), DType::U32, &dev).unwrap();
        assert!(enc
            .forward(&too_long, &Tensor::ones((1, 17), DType::F32, &dev).unwrap())
            .is_err());
    }
}
