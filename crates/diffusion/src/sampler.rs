//! The trait every sampler implements, noise-level spacings, and lookup by name.

use candle_core::Tensor;

use crate::error::{DiffusionError, Result};
use crate::schedule::NoiseSchedule;
use crate::{Ddim, DpmPp2m, Euler, EulerAncestral};

/// One noise level of a sampling run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    /// Noise standard deviation in sigma coordinates (0 at the end of a run).
    pub sigma: f64,
    /// The (fractional) training timestep the network is told.
    pub timestep: f64,
}

/// How a run's noise levels are spread between the largest trained sigma and 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    /// Evenly spaced training timesteps from T-1 down ("trailing", Lin et al. 2024:
    /// the first step starts at the largest trained noise).
    Trailing,
    /// Karras et al. 2022 eq. 5 (rho = 7): denser near small sigma.
    Karras,
}

impl Spacing {
    /// `steps + 1` levels: `steps` from the spacing, then sigma 0.
    pub fn levels(self, schedule: &NoiseSchedule, steps: usize) -> Result<Vec<Level>> {
        if steps == 0 {
            return Err(DiffusionError::Invalid("steps is 0; allowed 1 or more".into()));
        }
        let t_max = (schedule.train_steps() - 1) as f64;
        let mut levels: Vec<Level> = match self {
            Spacing::Trailing => (0..steps)
                .map(|i| {
                    let t = (t_max + 1.0) * (1.0 - i as f64 / steps as f64) - 1.0;
                    let t = t.round().max(0.0);
                    Level {
                        sigma: schedule.sigma_at(t),
                        timestep: t,
                    }
                })
                .collect(),
            Spacing::Karras => {
                let rho = 7.0;
                let (lo, hi) = schedule.sigma_range();
                let (a, b) = (hi.powf(1.0 / rho), lo.powf(1.0 / rho));
                (0..steps)
                    .map(|i| {
                        let frac = if steps == 1 { 0.0 } else { i as f64 / (steps - 1) as f64 };
                        let sigma = (a + frac * (b - a)).powf(rho);
                        Level {
                            sigma,
                            timestep: schedule.timestep_of(sigma),
                        }
                    })
                    .collect()
            }
        };
        levels.push(Level {
            sigma: 0.0,
            timestep: 0.0,
        });
        Ok(levels)
    }
}

/// A sampling algorithm (diffusers' scheduler interface, in sigma coordinates).
///
/// A run: [`Sampler::set_timesteps`], then for i in 0..steps the pipeline asks the
/// network for a denoised estimate at `levels()[i]` and calls [`Sampler::step`] to
/// move the sample to `levels()[i + 1]`.
pub trait Sampler: Send {
    /// The name the CLI uses (`ddim`, ...).
    fn name(&self) -> &'static str;

    /// Plans a run of `steps` network evaluations.
    fn set_timesteps(&mut self, steps: usize) -> Result<()>;

    /// The run's noise levels, noisiest first; `steps + 1` of them, the last sigma 0.
    fn levels(&self) -> &[Level];

    /// Whether [`Sampler::step`] needs fresh noise.
    fn is_stochastic(&self) -> bool {
        false
    }

    /// Moves `ys` (sigma coordinates) from level `i` to level `i + 1`, given the
    /// network's denoised estimate at level `i`. `noise` (standard normal, shaped as
    /// `ys`) is used by stochastic samplers only.
    fn step(&mut self, i: usize, ys: &Tensor, denoised: &Tensor, noise: Option<&Tensor>) -> Result<Tensor>;

    /// Clean `x0` noised to level `i`: `x0 + sigma_i noise` (img2img, inpainting).
    fn add_noise(&self, x0: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        let sigma = self
            .levels()
            .get(i)
            .ok_or_else(|| DiffusionError::Invalid(format!("level {i} is past the run's end")))?
            .sigma;
        Ok((x0 + noise.affine(sigma, 0.0)?)?)
    }
}

/// Sampler names, as `--sampler` takes them.
pub const SAMPLER_NAMES: &[&str] = &["ddim", "ddpm", "euler", "euler-a", "dpmpp-2m"];

/// A sampler by name over `schedule`.
pub fn sampler_by_name(name: &str, schedule: &NoiseSchedule) -> Result<Box<dyn Sampler>> {
    let s = schedule.clone();
    Ok(match name {
        "ddim" => Box::new(Ddim::new(s, 0.0)),
        "ddpm" => Box::new(Ddim::ddpm(s)),
        "euler" => Box::new(Euler::new(s)),
        "euler-a" => Box::new(EulerAncestral::new(s)),
        "dpmpp-2m" => Box::new(DpmPp2m::new(s)),
        other => {
            return Err(DiffusionError::Invalid(format!(
                "unknown sampler '{other}'; allowed: {}",
                SAMPLER_NAMES.join(", ")
            )))
        }
    })
}

/// `levels[i]` and `levels[i + 1]`, or an error past the end of the run.
pub(crate) fn pair(levels: &[Level], i: usize) -> Result<(f64, f64)> {
    match (levels.get(i), levels.get(i + 1)) {
        (Some(a), Some(b)) => Ok((a.sigma, b.sigma)),
        _ => Err(DiffusionError::Invalid(format!(
            "step {i} is outside a run of {} steps (call set_timesteps first)",
            levels.len().saturating_sub(1)
        ))),
    }
}

/// The noise a stochastic sampler was not given.
pub(crate) fn need_noise<'a>(noise: Option<&'a Tensor>, name: &str) -> Result<&'a Tensor> {
    noise.ok_or_else(|| DiffusionError::Invalid(format!("the {name} sampler needs noise at every step")))
}
