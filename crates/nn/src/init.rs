//! Seeded parameter initialisation.
//!
//! candle's [`candle_nn::Init`] draws from an unseeded thread RNG on the CPU, so two
//! trainings with the same seed started from different weights and could end apart
//! (a test that asserted a loss drop passed or failed by chance). [`seeded_var_builder`]
//! keeps candle's initialisers (same distributions, same Kaiming gains) but draws each
//! variable from ChaCha8 seeded by the run's seed and the variable's name: the same
//! seed gives the same weights on every device, whatever order layers are built in.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A [`VarBuilder`] that creates missing variables in `varmap` (as
/// [`VarBuilder::from_varmap`] does) with values drawn from `seed` and their name.
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(SeededVarMap {
            map: varmap.clone(),
            seed,
        }),
        dtype,
        device.clone(),
    )
}

struct SeededVarMap {
    map: VarMap,
    seed: u64,
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut vars = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?;
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("shape mismatch on {name}: {shape:?} <> {:?}", var.shape())
            }
            return Ok(var.as_tensor().clone());
        }
        let values = init_values(&init, &shape, self.seed ^ name_hash(name));
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> Result<Tensor> {
        candle_core::bail!("`get_unchecked` of {name}: a seeded variable map needs the shape, use `get`")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|vars| vars.contains_key(name))
            .unwrap_or(false)
    }
}

/// The values candle's `init` would draw, from a seeded generator.
fn init_values(init: &Init, shape: &Shape, seed: u64) -> Vec<f32> {
    let n = shape.elem_count();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform =
        |lo: f64, up: f64| -> Vec<f32> { (0..n).map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32).collect() };
    match *init {
        Init::Const(value) => vec![value as f32; n],
        Init::Uniform { lo, up } => uniform(lo, up),
        Init::Randn { mean, stdev } => normal_draws(&mut rng, n, mean, stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(-bound, bound)
                }
                NormalOrUniform::Normal => normal_draws(&mut rng, n, 0.0, std),
            }
        }
    }
}

/// `n` normal draws of `mean` and `std` from `seed` (Box-Muller over ChaCha8): the
/// one seeded Gaussian of the workspace (diffusion noise uses it too).
pub fn seeded_normal(seed: u64, n: usize, mean: f64, std: f64) -> Vec<f32> {
    normal_draws(&mut ChaCha8Rng::seed_from_u64(seed), n, mean, std)
}

fn normal_draws(rng: &mut ChaCha8Rng, n: usize, mean: f64, std: f64) -> Vec<f32> {
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        // u1 in (0, 1] keeps the logarithm finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        values.push((mean + std * r * angle.cos()) as f32);
        values.push((mean + std * r * angle.sin()) as f32);
    }
    values.truncate(n);
    values
}

/// FNV-1a of a variable name: stable across runs and platforms (unlike `DefaultHasher`'s
/// documented freedom to change).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Module;

    fn weights(seed: u64) -> Vec<f32> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, DType::F32, &Device::Cpu);
        let layer = candle_nn::linear(16, 8, vb.pp("proj")).unwrap();
        let x = Tensor::ones((1, 16), DType::F32, &Device::Cpu).unwrap();
        layer.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        assert_eq!(weights(3), weights(3));
        assert_ne!(weights(3), weights(4));
    }

    #[test]
    fn follows_the_requested_distribution() {
        let n = 64 * 256;
        let shape = Shape::from((64, 256));
        let kaiming = init_values(&candle_nn::init::DEFAULT_KAIMING_NORMAL, &shape, 1);
        let std = (kaiming.iter().map(|v| v * v).sum::<f32>() / n as f32).sqrt();
        // ReLU gain sqrt(2) over fan-in 256.
        assert!((std - (2f32 / 256.0).sqrt()).abs() < 0.003, "kaiming std {std}");
        let uniform = init_values(&Init::Uniform { lo: -0.5, up: 0.5 }, &shape, 1);
        assert!(uniform.iter().all(|v| (-0.5..0.5).contains(v)));
        let ones = init_values(&Init::Const(1.0), &shape, 1);
        assert!(ones.iter().all(|&v| v == 1.0));
    }
}
