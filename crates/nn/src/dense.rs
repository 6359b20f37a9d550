//! Broadcasts whose backward pass is a GEMM, and the linear layer built on them.
//!
//! Why: candle's backward of a broadcast sums the gradient over the broadcast
//! dimensions, and its CPU sum over any but the last dimensions walks every element
//! with two integer divisions. A bias added to 260 k pixel rows, or a FiLM scale
//! spread over every cell, then costs more than the layer's matrix multiply. Here
//! the broadcast is an outer product with a ones vector, so that its gradient is
//! `ones^T @ grad`: one GEMM, on every core.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// `v` (..., 1, c) repeated to (..., rows, c) as `ones(..., rows, 1) @ v`.
pub fn expand_rows(v: &Tensor, rows: usize) -> Result<Tensor> {
    let dims = v.dims();
    let rank = dims.len();
    if rank < 2 || dims[rank - 2] != 1 {
        candle_core::bail!("expand_rows: expected (..., 1, c), got {dims:?}");
    }
    let mut ones_shape = dims.to_vec();
    ones_shape[rank - 2] = rows;
    ones_shape[rank - 1] = 1;
    let ones = Tensor::ones(ones_shape, DType::F32, v.device())?.to_dtype(v.dtype())?;
    ones.matmul(&v.contiguous()?)
}

/// `xs` (..., c) plus `bias` (c,), with the bias gradient as a GEMM.
pub fn add_bias(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let c = bias.dim(0)?;
    let rows = xs.elem_count() / c.max(1);
    let flat = xs.reshape((rows, c))?;
    (flat + expand_rows(&bias.reshape((1, c))?, rows)?)?.reshape(xs.shape())
}

/// A linear layer (`weight` (out, in), `bias` (out)) for inputs with many rows; the
/// same parameters and values as `candle_nn::Linear`.
#[derive(Clone, Debug)]
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    /// With a bias; candle's default initialisation.
    pub fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Dense> {
        let inner = candle_nn::linear(c_in, c_out, vb)?;
        Ok(Dense {
            weight: inner.weight().clone(),
            bias: inner.bias().cloned(),
        })
    }

    /// Without a bias.
    pub fn no_bias(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Dense> {
        let inner = candle_nn::linear_no_bias(c_in, c_out, vb)?;
        Ok(Dense {
            weight: inner.weight().clone(),
            bias: None,
        })
    }

    /// Zero weight and bias: a layer whose output starts at zero.
    pub fn zeros(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Dense> {
        Ok(Dense {
            weight: vb.get_with_hints((c_out, c_in), "weight", Init::Const(0.0))?,
            bias: Some(vb.get_with_hints(c_out, "bias", Init::Const(0.0))?),
        })
    }

    /// The weight (out, in).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Dense {
    /// xs: (..., in) -> (..., out).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims();
        let c_in = *dims.last().unwrap_or(&0);
        let rows = xs.elem_count() / c_in.max(1);
        let ys = xs.contiguous()?.reshape((rows, c_in))?.matmul(&self.weight.t()?)?;
        let ys = match &self.bias {
            Some(b) => (&ys + expand_rows(&b.unsqueeze(0)?, rows)?)?,
            None => ys,
        };
        let mut out = dims.to_vec();
        if let Some(last) = out.last_mut() {
            *last = self.weight.dim(0)?;
        }
        ys.reshape(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_broadcast_values_and_gradients() {
        let dev = Device::Cpu;
        let xs = Tensor::randn(0f32, 1.0, (2, 5, 3), &dev).unwrap();
        let bias = Var::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
        let ours = add_bias(&xs, bias.as_tensor()).unwrap();
        let reference = xs.broadcast_add(bias.as_tensor()).unwrap();
        let diff: f32 = (&ours - &reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
        let grads = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g_ours: Vec<f32> = grads.get(bias.as_tensor()).unwrap().to_vec1().unwrap();
        let grads = reference.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref: Vec<f32> = grads.get(bias.as_tensor()).unwrap().to_vec1().unwrap();
        for (a, b) in g_ours.iter().zip(&g_ref) {
            assert!((a - b).abs() < 1e-4, "{g_ours:?} vs {g_ref:?}");
        }
        let v = Tensor::randn(0f32, 1.0, (4, 1, 3), &dev).unwrap();
        let expanded = expand_rows(&v, 6).unwrap();
        let diff: f32 = (expanded - v.broadcast_as((4, 6, 3)).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
        assert!(expand_rows(&Tensor::zeros((4, 2, 3), DType::F32, &dev).unwrap(), 6).is_err());
    }

    #[test]
    fn dense_equals_candle_linear() {
        let dev = Device::Cpu;
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let dense = Dense::new(4, 3, vb.pp("l")).unwrap();
        let linear = candle_nn::Linear::new(dense.weight.clone(), dense.bias.clone());
        let xs = Tensor::randn(0f32, 1.0, (2, 7, 4), &dev).unwrap();
        let diff: f32 = (dense.forward(&xs).unwrap() - linear.forward(&xs).unwrap())
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
