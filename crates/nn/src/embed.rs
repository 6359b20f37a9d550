//! Timestep embeddings.

use candle_core::{Result, Tensor, D};

/// Sinusoidal embedding of (possibly fractional) timesteps (Vaswani et al. 2017, as
/// DDPM and DiT use it): t (b,) -> (b, dim), `[cos(t f_i), sin(t f_i)]` with
/// frequencies `f_i = 10000^(-i / (dim/2))`.
pub fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let device = t.device();
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f64.ln()) * i as f64 / half as f64).exp() as f32)
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), device)?;
    let args = t
        .to_dtype(candle_core::DType::F32)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    Tensor::cat(&[args.cos()?, args.sin()?], D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shape_and_values() {
        let t = Tensor::new(&[0f32, 10.0], &Device::Cpu).unwrap();
        let e = timestep_embedding(&t, 8).unwrap();
        assert_eq!(e.dims(), &[2, 8]);
        let rows: Vec<Vec<f32>> = e.to_vec2().unwrap();
        assert_eq!(&rows[0][..4], &[1.0; 4]);
        assert!((rows[1][4] - 10f32.sin()).abs() < 1e-6);
    }
}
