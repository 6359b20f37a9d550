//! Layer normalisation and softmax that are fast at inference and differentiable in
//! training.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::dense::expand_rows;

/// Layer norm over the last dimension (Ba et al. 2016), with or without a learnt
/// scale and shift (adaLN blocks modulate an affine-free norm).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    dim: usize,
    eps: f64,
}

impl LayerNorm {
    /// With parameters `weight` (ones) and `bias` (zeros) when `affine`.
    pub fn new(dim: usize, affine: bool, vb: VarBuilder) -> Result<LayerNorm> {
        let (weight, bias) = if affine {
            (
                Some(vb.get_with_hints(dim, "weight", Init::Const(1.0))?),
                Some(vb.get_with_hints(dim, "bias", Init::Const(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(LayerNorm {
            weight,
            bias,
            dim,
            eps: 1e-5,
        })
    }
}

impl Module for LayerNorm {
    /// xs: (..., dim).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let tracked = xs.track_op() || self.weight.as_ref().is_some_and(|w| w.track_op());
        if !tracked && xs.is_contiguous() && xs.dtype() == DType::F32 {
            let ones;
            let zeros;
            let (w, b) = match (&self.weight, &self.bias) {
                (Some(w), Some(b)) => (w, b),
                _ => {
                    ones = Tensor::ones(self.dim, xs.dtype(), xs.device())?;
                    zeros = Tensor::zeros(self.dim, xs.dtype(), xs.device())?;
                    (&ones, &zeros)
                }
            };
            return candle_nn::ops::layer_norm(xs, w, b, self.eps as f32);
        }
        let mean = xs.mean_keepdim(D::Minus1)?;
        let centred = xs.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        match (&self.weight, &self.bias) {
            // The affine as rows of a GEMM broadcast: its gradient is then a GEMM too.
            (Some(w), Some(b)) => {
                let rows = normed.elem_count() / self.dim.max(1);
                let flat = normed.reshape((rows, self.dim))?;
                let scale = expand_rows(&w.reshape((1, self.dim))?, rows)?;
                let shift = expand_rows(&b.reshape((1, self.dim))?, rows)?;
                ((flat * scale)? + shift)?.reshape(normed.shape())
            }
            _ => Ok(normed),
        }
    }
}

/// Softmax over the last dimension: candle's fused kernel when no gradient is
/// tracked, the differentiable composition otherwise.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if xs.track_op() {
        candle_nn::ops::softmax(xs, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    #[test]
    fn fast_and_differentiable_paths_agree() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let norm = LayerNorm::new(6, true, vb).unwrap();
        let plain = Tensor::randn(0f32, 2.0, (3, 6), &dev).unwrap();
        let var = Var::from_tensor(&plain).unwrap();
        // The affine parameters are variables: both inputs take the slow path...
        let slow = norm.forward(var.as_tensor()).unwrap();
        // ...and an affine-free norm of a plain tensor takes the fused kernel.
        let fast = LayerNorm::new(6, false, VarBuilder::zeros(DType::F32, &dev))
            .unwrap()
            .forward(&plain)
            .unwrap();
        let diff: f32 = (slow - &fast)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-4, "{diff}");
        // Gradients flow through the slow path.
        let loss = norm.forward(var.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap();
        assert!(loss.backward().unwrap().get(var.as_tensor()).is_some());
        let s1 = softmax_last_dim(&plain).unwrap();
        let s2 = softmax_last_dim(var.as_tensor()).unwrap();
        let diff: f32 = (s1 - s2)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
    }
}
