//! Exponential moving average of weights (Polyak averaging; used by DDPM and every
//! diffusion model since): the shipped weights are the average, which samples better
//! than the last step's.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use crate::error::Result;

/// EMA copies of named variables.
pub struct Ema {
    decay: f64,
    vars: Vec<(String, Var)>,
    averages: HashMap<String, Tensor>,
}

impl Ema {
    /// Starts the averages at the variables' current values.
    pub fn new(vars: Vec<(String, Var)>, decay: f64) -> Result<Ema> {
        let averages = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().detach().copy()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Ema { decay, vars, averages })
    }

    /// average = decay * average + (1 - decay) * value, for every variable. The decay
    /// ramps up as min(decay, (1 + step) / (10 + step)) so early averages are not
    /// dominated by the random initialisation.
    pub fn update(&mut self, step: usize) -> Result<()> {
        let d = self.decay.min((1 + step) as f64 / (10 + step) as f64);
        for (name, var) in &self.vars {
            if let Some(avg) = self.averages.get_mut(name) {
                *avg = ((&*avg * d)? + (var.as_tensor().detach() * (1.0 - d))?)?;
            }
        }
        Ok(())
    }

    /// The averages by variable name.
    pub fn averages(&self) -> &HashMap<String, Tensor> {
        &self.averages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn averages_follow_the_weights() {
        let var = Var::new(&[0f32, 0.0], &Device::Cpu).unwrap();
        let mut ema = Ema::new(vec![("w".into(), var.clone())], 0.9).unwrap();
        var.set(&Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        for step in 0..200 {
            ema.update(step).unwrap();
        }
        let avg: Vec<f32> = ema.averages()["w"].to_vec1().unwrap();
        assert!((avg[0] - 1.0).abs() < 1e-3 && (avg[1] - 2.0).abs() < 1e-3, "{avg:?}");
        let mut ema = Ema::new(vec![("w".into(), var.clone())], 0.99).unwrap();
        var.set(&Tensor::new(&[3f32, 3.0], &Device::Cpu).unwrap()).unwrap();
        ema.update(1000).unwrap();
        let avg: Vec<f32> = ema.averages()["w"].to_vec1().unwrap();
        assert!((avg[0] - (0.99 * 1.0 + 0.01 * 3.0)).abs() < 1e-5, "{avg:?}");
    }
}
