//! The training noise schedule: `abar_t` for t = 0..T-1 and its sigma view.

use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};

/// How the betas of the forward process grow over the training timesteps.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Linear betas (Ho et al. 2020: 1e-4 to 0.02).
    Linear {
        /// First beta.
        start: f64,
        /// Last beta.
        end: f64,
    },
    /// Betas linear in sqrt (Stable Diffusion: 0.00085 to 0.012).
    ScaledLinear {
        /// First beta.
        start: f64,
        /// Last beta.
        end: f64,
    },
    /// Cosine `abar` (Nichol & Dhariwal 2021, s = 0.008), betas clipped at 0.999.
    Cosine,
}

impl BetaSchedule {
    /// Stable Diffusion's schedule.
    pub fn stable_diffusion() -> BetaSchedule {
        BetaSchedule::ScaledLinear {
            start: 0.00085,
            end: 0.012,
        }
    }
}

/// `abar_t` for each training timestep, and conversions to and from sigma.
#[derive(Clone, Debug)]
pub struct NoiseSchedule {
    alphas_cumprod: Vec<f64>,
    /// ln sigma_t, increasing in t (for timestep interpolation).
    log_sigmas: Vec<f64>,
}

impl NoiseSchedule {
    /// The schedule of `train_steps` timesteps.
    pub fn new(kind: BetaSchedule, train_steps: usize) -> Result<NoiseSchedule> {
        if train_steps < 2 {
            return Err(DiffusionError::Invalid(format!(
                "train_steps is {train_steps}; allowed 2 or more"
            )));
        }
        let n = train_steps;
        let betas: Vec<f64> = match kind {
            BetaSchedule::Linear { start, end } => (0..n)
                .map(|i| start + (end - start) * i as f64 / (n - 1) as f64)
                .collect(),
            BetaSchedule::ScaledLinear { start, end } => (0..n)
                .map(|i| (start.sqrt() + (end.sqrt() - start.sqrt()) * i as f64 / (n - 1) as f64).powi(2))
                .collect(),
            BetaSchedule::Cosine => {
                let f = |t: f64| {
                    ((t / n as f64 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..n)
                    .map(|i| (1.0 - f(i as f64 + 1.0) / f(i as f64)).min(0.999))
                    .collect()
            }
        };
        if let Some(b) = betas.iter().find(|b| !(**b > 0.0 && **b < 1.0)) {
            return Err(DiffusionError::Invalid(format!(
                "beta {b} of {kind:?} is outside (0, 1)"
            )));
        }
        let mut alphas_cumprod = Vec::with_capacity(n);
        let mut prod = 1.0;
        for b in &betas {
            prod *= 1.0 - b;
            alphas_cumprod.push(prod);
        }
        let log_sigmas = alphas_cumprod.iter().map(|a| ((1.0 - a) / a).sqrt().ln()).collect();
        Ok(NoiseSchedule {
            alphas_cumprod,
            log_sigmas,
        })
    }

    /// Training timesteps T.
    pub fn train_steps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// `abar_t` of integer timestep `t`.
    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alphas_cumprod[t.min(self.train_steps() - 1)]
    }

    /// sigma of integer timestep `t`.
    pub fn sigma(&self, t: usize) -> f64 {
        self.log_sigmas[t.min(self.train_steps() - 1)].exp()
    }

    /// sigma at fractional timestep `t` (log-sigma interpolated, as k-diffusion does).
    pub fn sigma_at(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, (self.train_steps() - 1) as f64);
        let lo = t.floor() as usize;
        let hi = (lo + 1).min(self.train_steps() - 1);
        let w = t - lo as f64;
        ((1.0 - w) * self.log_sigmas[lo] + w * self.log_sigmas[hi]).exp()
    }

    /// The fractional timestep whose sigma is `sigma` (inverse of [`Self::sigma_at`];
    /// clamped to the trained range).
    pub fn timestep_of(&self, sigma: f64) -> f64 {
        let ls = sigma.max(1e-12).ln();
        let last = self.train_steps() - 1;
        if ls <= self.log_sigmas[0] {
            return 0.0;
        }
        if ls >= self.log_sigmas[last] {
            return last as f64;
        }
        // log_sigmas increases with t.
        let hi = self.log_sigmas.partition_point(|v| *v < ls);
        let lo = hi - 1;
        let w = (ls - self.log_sigmas[lo]) / (self.log_sigmas[hi] - self.log_sigmas[lo]);
        lo as f64 + w
    }

    /// Smallest and largest trained sigma.
    pub fn sigma_range(&self) -> (f64, f64) {
        (self.sigma(0), self.sigma(self.train_steps() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_decrease_signal_and_invert() {
        for kind in [
            BetaSchedule::stable_diffusion(),
            BetaSchedule::Linear { start: 1e-4, end: 0.02 },
            BetaSchedule::Cosine,
        ] {
            let s = NoiseSchedule::new(kind, 1000).unwrap();
            assert!((1..1000).all(|t| s.alpha_bar(t) < s.alpha_bar(t - 1)), "{kind:?}");
            for t in [0.0, 3.5, 500.25, 998.0] {
                assert!((s.timestep_of(s.sigma_at(t)) - t).abs() < 1e-6, "{kind:?} {t}");
            }
        }
        let sd = NoiseSchedule::new(BetaSchedule::stable_diffusion(), 1000).unwrap();
        // Stable Diffusion's well-known range: sigma 0.029 to 14.6.
        let (lo, hi) = sd.sigma_range();
        assert!((lo - 0.0292).abs() < 1e-3 && (hi - 14.61).abs() < 0.01, "{lo} {hi}");
        assert!(NoiseSchedule::new(BetaSchedule::Linear { start: 0.5, end: 1.5 }, 10).is_err());
        assert!(NoiseSchedule::new(BetaSchedule::Cosine, 1).is_err());
    }
}
