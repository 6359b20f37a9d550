//! Seeded Gaussian noise: candle's own `randn` on CPU draws from an unseeded thread
//! RNG, and generation must be reproducible from a seed on every device.

use candle_core::{Device, Shape, Tensor};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;

/// Standard normal noise of `shape` from `seed` (Box-Muller over ChaCha8), made on the
/// host and moved to `device`, so that the same seed gives the same noise anywhere.
pub fn gaussian(shape: impl Into<Shape>, seed: u64, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let n = shape.elem_count();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        // u1 in (0, 1] keeps the logarithm finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        values.push((r * angle.cos()) as f32);
        values.push((r * angle.sin()) as f32);
    }
    values.truncate(n);
    Ok(Tensor::from_vec(values, shape, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_standard_normal() {
        let a: Vec<f32> = gaussian(20_000, 3, &Device::Cpu).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = gaussian(20_000, 3, &Device::Cpu).unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        let c: Vec<f32> = gaussian(20_000, 4, &Device::Cpu).unwrap().to_vec1().unwrap();
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.03, "{mean} {var}");
    }
}
