//! Euler's method on the probability-flow ODE `dy/dsigma = (y - x0_hat) / sigma`
//! (Karras et al. 2022, Algorithm 1 without the Heun correction), on Karras-spaced
//! levels. On the same levels it would equal DDIM step for step; the spacing, denser at
//! small sigma, is what makes it a different discretisation.

use candle_core::Tensor;

use crate::error::Result;
use crate::sampler::{pair, Level, Sampler, Spacing};
use crate::schedule::NoiseSchedule;

/// Deterministic Euler sampler.
#[derive(Clone, Debug)]
pub struct Euler {
    schedule: NoiseSchedule,
    levels: Vec<Level>,
}

impl Euler {
    /// Over `schedule`.
    pub fn new(schedule: NoiseSchedule) -> Euler {
        Euler {
            schedule,
            levels: Vec::new(),
        }
    }
}

impl Sampler for Euler {
    fn name(&self) -> &'static str {
        "euler"
    }

    fn set_timesteps(&mut self, steps: usize) -> Result<()> {
        self.levels = Spacing::Karras.levels(&self.schedule, steps)?;
        Ok(())
    }

    fn levels(&self) -> &[Level] {
        &self.levels
    }

    fn step(&mut self, i: usize, ys: &Tensor, denoised: &Tensor, _noise: Option<&Tensor>) -> Result<Tensor> {
        let (s, s_next) = pair(&self.levels, i)?;
        // d = (y - x0_hat) / sigma; y' = y + (sigma' - sigma) d
        let d = ((ys - denoised)? / s)?;
        Ok((ys + d.affine(s_next - s, 0.0)?)?)
    }
}
