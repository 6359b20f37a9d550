//! Multi-head attention (self or cross, with a key padding mask) and the
//! Transformer feed-forward block (Vaswani et al. 2017).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::dense::Dense;
use crate::norm::softmax_last_dim;

/// Multi-head scaled dot-product attention. Parameters `q`, `k`, `v`, `out`.
#[derive(Clone, Debug)]
pub struct Attention {
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Queries from `dim`-wide inputs, keys and values from `context_dim`-wide ones
    /// (equal for self-attention), `heads` heads splitting `dim`.
    pub fn new(dim: usize, context_dim: usize, heads: usize, vb: VarBuilder) -> Result<Attention> {
        if heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!("attention: {dim} channels do not split into {heads} heads");
        }
        Ok(Attention {
            q: Dense::new(dim, dim, vb.pp("q"))?,
            k: Dense::new(context_dim, dim, vb.pp("k"))?,
            v: Dense::new(context_dim, dim, vb.pp("v"))?,
            out: Dense::new(dim, dim, vb.pp("out"))?,
            heads,
            head_dim: dim / heads,
        })
    }

    fn split(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, n, _) = xs.dims3()?;
        xs.reshape((b, n, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// xs: (b, n, dim); context: (b, m, context_dim) or None for self-attention;
    /// key_mask: (b, m) with 1 for real keys and 0 for padding. Returns (b, n, dim).
    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>, key_mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward_context(xs, &self.context(context.unwrap_or(xs), key_mask)?)
    }

    /// The keys, values and mask bias of `context` (b, m, context_dim), for
    /// [`Self::forward_context`]: a context that stays the same across calls (the text
    /// of a diffusion run, at every step) is projected once.
    pub fn context(&self, context: &Tensor, key_mask: Option<&Tensor>) -> Result<AttentionContext> {
        Ok(AttentionContext {
            keys_t: self.split(&self.k.forward(context)?)?.transpose(2, 3)?.contiguous()?,
            values: self.split(&self.v.forward(context)?)?,
            // 0 for keys, -1e4 for padding: (b, 1, 1, m), added before the softmax.
            bias: match key_mask {
                Some(mask) => Some(mask.affine(1e4, -1e4)?.unsqueeze(1)?.unsqueeze(1)?),
                None => None,
            },
        })
    }

    /// Attention of xs (b, n, dim) over a prepared context. Returns (b, n, dim).
    pub fn forward_context(&self, xs: &Tensor, context: &AttentionContext) -> Result<Tensor> {
        let (b, n, _) = xs.dims3()?;
        let q = self.split(&self.q.forward(xs)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut scores = (q.matmul(&context.keys_t)? * scale)?;
        if let Some(bias) = &context.bias {
            scores = scores.broadcast_add(bias)?;
        }
        let weights = softmax_last_dim(&scores)?;
        let ys = weights
            .matmul(&context.values)?
            .transpose(1, 2)?
            .reshape((b, n, self.heads * self.head_dim))?;
        self.out.forward(&ys)
    }
}

impl Attention {
    /// Causal self-attention of new tokens `xs` (b, n, dim) that follow the tokens in
    /// `cache`: each sees the cached tokens and the new ones up to itself, and the new
    /// keys and values join the cache (autoregressive decoding without recomputing the
    /// past). Equals the last `n` rows of a causal [`Self::forward_context`] over all
    /// the tokens. Returns (b, n, dim).
    pub fn forward_cached(&self, xs: &Tensor, cache: &mut candle_nn::kv_cache::KvCache) -> Result<Tensor> {
        let (b, n, _) = xs.dims3()?;
        let past = cache.current_seq_len();
        let q = self.split(&self.q.forward(xs)?)?;
        let (keys, values) = cache.append(&self.split(&self.k.forward(xs)?)?, &self.split(&self.v.forward(xs)?)?)?;
        let m = past + n;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut scores = (q.matmul(&keys.transpose(2, 3)?.contiguous()?)? * scale)?;
        if n > 1 {
            // New token i stands at past + i: it sees keys 0..=past + i.
            let bias: Vec<f32> = (0..n * m)
                .map(|at| if at % m > past + at / m { -1e4 } else { 0.0 })
                .collect();
            scores = scores.broadcast_add(&Tensor::from_vec(bias, (1, 1, n, m), xs.device())?)?;
        }
        let weights = softmax_last_dim(&scores)?;
        let ys = weights
            .matmul(&values.contiguous()?)?
            .transpose(1, 2)?
            .reshape((b, n, self.heads * self.head_dim))?;
        self.out.forward(&ys)
    }
}

/// Projected keys (transposed), values and padding bias of an attention context.
#[derive(Clone, Debug)]
pub struct AttentionContext {
    /// (b, heads, head_dim, m).
    keys_t: Tensor,
    /// (b, heads, m, head_dim).
    values: Tensor,
    /// (b, 1, 1, m) or, causal, (b or 1, 1, n, m); None without a mask.
    bias: Option<Tensor>,
}

impl AttentionContext {
    /// The same context seen causally by `n` queries (self-attention over `n` tokens):
    /// query `i` sees keys `0..=i` only.
    pub fn causal(self, n: usize) -> Result<AttentionContext> {
        let device = self.values.device().clone();
        let bias: Vec<f32> = (0..n * n).map(|i| if i % n > i / n { -1e4 } else { 0.0 }).collect();
        let causal = Tensor::from_vec(bias, (1, 1, n, n), &device)?;
        let bias = match self.bias {
            Some(keys) => keys.broadcast_add(&causal)?,
            None => causal,
        };
        Ok(AttentionContext {
            bias: Some(bias),
            ..self
        })
    }

    /// The context of a batch repeated `k` times along the batch, copy after copy.
    pub fn repeat_batch(&self, k: usize) -> Result<AttentionContext> {
        let repeat = |t: &Tensor| {
            let mut times = vec![1usize; t.rank()];
            times[0] = k;
            t.repeat(times)
        };
        Ok(AttentionContext {
            keys_t: repeat(&self.keys_t)?,
            values: repeat(&self.values)?,
            bias: self.bias.as_ref().map(repeat).transpose()?,
        })
    }
}

/// Position-wise feed-forward: linear, GELU, linear. Parameters `up`, `down`.
#[derive(Clone, Debug)]
pub struct FeedForward {
    up: Dense,
    down: Dense,
}

impl FeedForward {
    /// `dim` -> `hidden` -> `dim`.
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<FeedForward> {
        Ok(FeedForward {
            up: Dense::new(dim, hidden, vb.pp("up"))?,
            down: Dense::new(hidden, dim, vb.pp("down"))?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.down.forward(&crate::activation::gelu(&self.up.forward(xs)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// The largest absolute difference of two tensors of one shape.
    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

    /// A padded key changes nothing; a real key does.
    #[test]
    fn padding_mask_hides_keys() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let attn = Attention::new(8, 6, 2, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (1, 3, 8), &dev).unwrap();
        let ctx = Tensor::randn(0f32, 1.0, (1, 4, 6), &dev).unwrap();
        let other = Tensor::cat(
            &[
                ctx.narrow(1, 0, 3).unwrap(),
                Tensor::ones((1, 1, 6), DType::F32, &dev).unwrap(),
            ],
            1,
        )
        .unwrap();
        let mask = Tensor::new(&[[1f32, 1.0, 1.0, 0.0]], &dev).unwrap();
        let a = attn.forward(&xs, Some(&ctx), Some(&mask)).unwrap();
        let b = attn.forward(&xs, Some(&other), Some(&mask)).unwrap();
        let diff = max_abs_diff(&a, &b);
        assert!(diff < 1e-5, "{diff}");
        let c = attn.forward(&xs, Some(&other), None).unwrap();
        let diff = max_abs_diff(&a, &c);
        assert!(diff > 1e-4);
        assert!(Attention::new(8, 8, 3, VarBuilder::zeros(DType::F32, &dev)).is_err());
    }

    /// Under a causal mask, changing a later token leaves earlier outputs unchanged.
    #[test]
    fn causal_queries_do_not_see_later_tokens() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let attn = Attention::new(8, 8, 2, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (1, 3, 8), &dev).unwrap();
        let changed = Tensor::cat(
            &[
                xs.narrow(1, 0, 2).unwrap(),
                Tensor::ones((1, 1, 8), DType::F32, &dev).unwrap(),
            ],
            1,
        )
        .unwrap();
        let run = |x: &Tensor| {
            let ctx = attn.context(x, None).unwrap().causal(3).unwrap();
            attn.forward_context(x, &ctx).unwrap()
        };
        let (a, b) = (run(&xs), run(&changed));
        let early = max_abs_diff(&a.narrow(1, 0, 2).unwrap(), &b.narrow(1, 0, 2).unwrap());
        assert!(early < 1e-6, "{early}");
        let last = max_abs_diff(&a.narrow(1, 2, 1).unwrap(), &b.narrow(1, 2, 1).unwrap());
        assert!(last > 1e-4);
    }

    /// Feeding tokens through the cache, a few at a time, gives the rows of one causal
    /// pass over all of them.
    #[test]
    fn cached_decoding_equals_one_causal_pass() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let attn = Attention::new(8, 8, 2, crate::seeded_var_builder(&varmap, 4, DType::F32, &dev)).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (2, 7, 8), &dev).unwrap();
        let whole = attn
            .forward_context(&xs, &attn.context(&xs, None).unwrap().causal(7).unwrap())
            .unwrap();
        let mut cache = candle_nn::kv_cache::KvCache::new(2, 7);
        let mut rows = Vec::new();
        for (start, n) in [(0, 3), (3, 1), (4, 1), (5, 2)] {
            rows.push(
                attn.forward_cached(&xs.narrow(1, start, n).unwrap(), &mut cache)
                    .unwrap(),
            );
        }
        let cached = Tensor::cat(&rows, 1).unwrap();
        let diff = max_abs_diff(&whole, &cached);
        assert!(diff < 1e-5, "{diff}");
        assert_eq!(cache.current_seq_len(), 7);
    }
}
