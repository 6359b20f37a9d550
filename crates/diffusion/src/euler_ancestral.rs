//! Euler ancestral (k-diffusion's `sample_euler_ancestral`): an Euler step down to
//! `sigma_down`, then fresh noise of `sigma_up`, with `sigma_down^2 + sigma_up^2 =
//! sigma_next^2`. In sigma coordinates this step is exactly DDPM's posterior step
//! (sigma_up^2 = sigma'^2 (sigma^2 - sigma'^2) / sigma^2 is DDIM's sigma_eta at eta = 1,
//! divided by abar'), so the two samplers differ only in their levels: DDPM on
//! trailing timesteps, Euler ancestral on Karras levels, denser at small sigma.

use candle_core::Tensor;

use crate::error::Result;
use crate::sampler::{need_noise, pair, Level, Sampler, Spacing};
use crate::schedule::NoiseSchedule;

/// Stochastic Euler ancestral sampler.
#[derive(Clone, Debug)]
pub struct EulerAncestral {
    schedule: NoiseSchedule,
    levels: Vec<Level>,
}

impl EulerAncestral {
    /// Over `schedule`.
    pub fn new(schedule: NoiseSchedule) -> EulerAncestral {
        EulerAncestral {
            schedule,
            levels: Vec::new(),
        }
    }
}

impl Sampler for EulerAncestral {
    fn name(&self) -> &'static str {
        "euler-a"
    }

    fn set_timesteps(&mut self, steps: usize) -> Result<()> {
        self.levels = Spacing::Karras.levels(&self.schedule, steps)?;
        Ok(())
    }

    fn levels(&self) -> &[Level] {
        &self.levels
    }

    fn is_stochastic(&self) -> bool {
        true
    }

    fn step(&mut self, i: usize, ys: &Tensor, denoised: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        let (s, s_next) = pair(&self.levels, i)?;
        let sigma_up = (s_next * s_next * (s * s - s_next * s_next) / (s * s))
            .max(0.0)
            .sqrt()
            .min(s_next);
        let sigma_down = (s_next * s_next - sigma_up * sigma_up).max(0.0).sqrt();
        let d = ((ys - denoised)? / s)?;
        let mut next = (ys + d.affine(sigma_down - s, 0.0)?)?;
        if sigma_up > 0.0 {
            next = (next + need_noise(noise, self.name())?.affine(sigma_up, 0.0)?)?;
        }
        Ok(next)
    }
}
