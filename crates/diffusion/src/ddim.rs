//! DDIM (Song et al. 2021, eq. 12) and, with eta = 1, the DDPM ancestral sampler (Ho
//! et al. 2020, eq. 6-7: DDIM with eta = 1 draws from the same posterior
//! q(x_{t-1} | x_t, x0) over any subsequence of timesteps).

use candle_core::Tensor;

use crate::error::Result;
use crate::sampler::{need_noise, pair, Level, Sampler, Spacing};
use crate::schedule::NoiseSchedule;

/// DDIM with stochasticity `eta` (0: deterministic; 1: DDPM).
#[derive(Clone, Debug)]
pub struct Ddim {
    schedule: NoiseSchedule,
    eta: f64,
    levels: Vec<Level>,
}

impl Ddim {
    /// DDIM with `eta` (clamped to 0..=1).
    pub fn new(schedule: NoiseSchedule, eta: f64) -> Ddim {
        Ddim {
            schedule,
            eta: eta.clamp(0.0, 1.0),
            levels: Vec::new(),
        }
    }

    /// The DDPM ancestral sampler.
    pub fn ddpm(schedule: NoiseSchedule) -> Ddim {
        Ddim::new(schedule, 1.0)
    }
}

impl Sampler for Ddim {
    fn name(&self) -> &'static str {
        if self.eta == 1.0 {
            "ddpm"
        } else {
            "ddim"
        }
    }

    fn set_timesteps(&mut self, steps: usize) -> Result<()> {
        self.levels = Spacing::Trailing.levels(&self.schedule, steps)?;
        Ok(())
    }

    fn levels(&self) -> &[Level] {
        &self.levels
    }

    fn is_stochastic(&self) -> bool {
        self.eta > 0.0
    }

    fn step(&mut self, i: usize, ys: &Tensor, denoised: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        let (s, s_next) = pair(&self.levels, i)?;
        let abar = 1.0 / (1.0 + s * s);
        let abar_next = 1.0 / (1.0 + s_next * s_next);
        // eps_hat = (y - x0_hat) / sigma
        let eps = ((ys - denoised)? / s)?;
        // sigma_eta of eq. 16, in the VP coordinates of x_t.
        let sigma_eta = self.eta * ((1.0 - abar_next) / (1.0 - abar)).sqrt() * (1.0 - abar / abar_next).max(0.0).sqrt();
        let direction = (1.0 - abar_next - sigma_eta * sigma_eta).max(0.0).sqrt();
        // x_next = sqrt(abar') x0 + direction eps + sigma_eta z, then y' = x' / sqrt(abar').
        let scale = 1.0 / abar_next.sqrt();
        let mut next = (denoised + eps.affine(direction * scale, 0.0)?)?;
        if sigma_eta > 0.0 {
            next = (next + need_noise(noise, self.name())?.affine(sigma_eta * scale, 0.0)?)?;
        }
        Ok(next)
    }
}
