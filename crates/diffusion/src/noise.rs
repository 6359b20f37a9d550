//! Seeded Gaussian noise: candle's own `randn` on CPU draws from an unseeded thread
//! RNG, and generation must be reproducible from a seed on every device.

use candle_core::{Device, Shape, Tensor};

use crate::error::Result;

/// Standard normal noise of `shape` from `seed` (Box-Muller over ChaCha8), made on the
/// host and moved to `device`, so that the same seed gives the same noise anywhere.
pub fn gaussian(shape: impl Into<Shape>, seed: u64, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let values = mmgen_nn::init::seeded_normal(seed, shape.elem_count(), 0.0, 1.0);
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
