//! What the network predicts, and how that becomes a denoised estimate.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The network's output type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The added noise (Ho et al. 2020).
    Epsilon,
    /// `v = sqrt(abar) eps - sqrt(1 - abar) x0` (Salimans & Ho 2022): well scaled at
    /// every noise level, including pure noise.
    V,
    /// The clean sample itself.
    Sample,
}

impl Prediction {
    /// The denoised estimate `x0_hat` from the network's `output` for `ys` (sigma
    /// coordinates, `ys = x0 + sigma eps`) at noise level `sigma`.
    pub fn denoised(self, output: &Tensor, ys: &Tensor, sigma: f64) -> Result<Tensor> {
        let abar = 1.0 / (1.0 + sigma * sigma);
        Ok(match self {
            // x0 = y - sigma eps
            Prediction::Epsilon => (ys - output.affine(sigma, 0.0)?)?,
            // x0 = sqrt(abar) x_t - sqrt(1 - abar) v, with x_t = sqrt(abar) y
            Prediction::V => (ys.affine(abar, 0.0)? - output.affine((1.0 - abar).sqrt(), 0.0)?)?,
            Prediction::Sample => output.clone(),
        })
    }

    /// The training target for clean `x0` noised with `noise` at `abar`.
    pub fn target(self, x0: &Tensor, noise: &Tensor, abar: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Prediction::Epsilon => noise.clone(),
            Prediction::V => {
                (noise.broadcast_mul(&abar.sqrt()?)? - x0.broadcast_mul(&abar.affine(-1.0, 1.0)?.sqrt()?)?)?
            }
            Prediction::Sample => x0.clone(),
        })
    }

    /// The network's input for clean `x0`, `noise` and `abar` (per sample, broadcast):
    /// `x_t = sqrt(abar) x0 + sqrt(1 - abar) noise`.
    pub fn noised(x0: &Tensor, noise: &Tensor, abar: &Tensor) -> Result<Tensor> {
        Ok((x0.broadcast_mul(&abar.sqrt()?)? + noise.broadcast_mul(&abar.affine(-1.0, 1.0)?.sqrt()?)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A perfect prediction of each type gives back x0 exactly.
    #[test]
    fn perfect_predictions_denoise_exactly() {
        let dev = Device::Cpu;
        let x0 = crate::gaussian((2, 8), 1, &dev).unwrap();
        let noise = crate::gaussian((2, 8), 2, &dev).unwrap();
        for sigma in [0.05f64, 1.0, 14.6] {
            let abar_v = 1.0 / (1.0 + sigma * sigma);
            let abar = Tensor::new(&[[abar_v as f32], [abar_v as f32]], &dev).unwrap();
            let xt = Prediction::noised(&x0, &noise, &abar).unwrap();
            let ys = xt.affine(1.0 / abar_v.sqrt(), 0.0).unwrap();
            for p in [Prediction::Epsilon, Prediction::V, Prediction::Sample] {
                let target = p.target(&x0, &noise, &abar).unwrap();
                let back = p.denoised(&target, &ys, sigma).unwrap();
                let err: f32 = (back - &x0)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap();
                assert!(err < 2e-4 * (1.0 + sigma as f32), "{p:?} sigma {sigma}: {err}");
            }
        }
    }
}
