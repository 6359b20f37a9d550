//! GELU (tanh form) with a vectorisable tanh at inference.
//!
//! candle's CPU `gelu` calls libm's `tanhf` once per element, which `perf` showed as a
//! large share of the hybrid model's sampling loop (docs/speed.md). Here tanh is Eigen's rational approximation
//! (odd degree-13 over even degree-6 polynomial on [-9, 9]; what Eigen, and through
//! it TensorFlow, evaluate): only multiplies, adds and one divide, so LLVM vectorises
//! the loop. Training keeps candle's op, which has a backward pass.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// GELU, tanh approximation (Hendrycks & Gimpel 2016), as candle's `gelu`.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if xs.track_op() || xs.dtype() != DType::F32 || !xs.device().is_cpu() {
        return xs.gelu();
    }
    xs.contiguous()?.apply_op1_no_bwd(&FastGelu)
}

struct FastGelu;

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "fast-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("fast-gelu takes f32")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fast-gelu takes a contiguous tensor")
        };
        let values: Vec<f32> = data[start..end].iter().map(|&x| gelu_scalar(x)).collect();
        Ok((CpuStorage::F32(values), layout.shape().clone()))
    }
}

#[inline(always)]
fn gelu_scalar(x: f32) -> f32 {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_TWO_OVER_PI * x * (1.0 + 0.044715 * x * x)))
}

/// tanh as a rational function (Eigen's `generic_fast_tanh_float`), exact to a few
/// ulp on [-9, 9] and clamped to +-1 outside, where f32 tanh is +-1 anyway.
// The coefficients are kept as published, digits beyond f32 included.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let x = x.clamp(-9.0, 9.0);
    let x2 = x * x;
    let p = ((((((-2.760_768_5e-16 * x2 + 2.000_187_9e-13) * x2 - 8.604_671_5e-11) * x2 + 5.122_297e-8) * x2
        + 1.485_722_4e-5)
        * x2
        + 6.372_619_3e-4)
        * x2
        + 4.893_524_6e-3)
        * x;
    let q = ((1.198_258_4e-6 * x2 + 1.185_347e-4) * x2 + 2.268_434_6e-3) * x2 + 4.893_525e-3;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn tanh_matches_libm() {
        let worst = (-200_000..=200_000)
            .map(|i| i as f32 * 1e-4)
            .map(|x| (tanh(x) - x.tanh()).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-6, "largest error {worst}");
    }

    #[test]
    fn gelu_matches_candle_and_keeps_training_differentiable() {
        let xs = Tensor::arange(-600f32, 600.0, &Device::Cpu)
            .unwrap()
            .affine(0.01, 0.0)
            .unwrap();
        let fast: Vec<f32> = gelu(&xs).unwrap().to_vec1().unwrap();
        let reference: Vec<f32> = xs.gelu().unwrap().to_vec1().unwrap();
        let worst = fast
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        // A transposed (strided) input reads its elements in layout order.
        let grid = xs.reshape((30, 40)).unwrap().t().unwrap();
        let strided: Vec<Vec<f32>> = gelu(&grid).unwrap().to_vec2().unwrap();
        let expected: Vec<Vec<f32>> = grid.gelu().unwrap().to_vec2().unwrap();
        for (row, want) in strided.iter().zip(&expected) {
            for (a, b) in row.iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        let var = candle_core::Var::from_tensor(&xs).unwrap();
        let grads = gelu(var.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(var.as_tensor()).is_some(), "a tracked input gets a gradient");
    }
}
