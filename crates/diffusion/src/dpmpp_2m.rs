//! DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver
//! of the probability-flow ODE in the data-prediction form, in log-SNR time
//! `lambda = -ln sigma`, on Karras-spaced levels ("DPM++ 2M Karras"). The last step
//! (to sigma 0) is first order, as in k-diffusion.

use candle_core::Tensor;

use crate::error::Result;
use crate::sampler::{pair, Level, Sampler, Spacing};
use crate::schedule::NoiseSchedule;

/// Deterministic DPM-Solver++(2M).
#[derive(Clone, Debug)]
pub struct DpmPp2m {
    schedule: NoiseSchedule,
    levels: Vec<Level>,
    /// The previous step's denoised estimate and its index.
    previous: Option<(usize, Tensor)>,
}

impl DpmPp2m {
    /// Over `schedule`.
    pub fn new(schedule: NoiseSchedule) -> DpmPp2m {
        DpmPp2m {
            schedule,
            levels: Vec::new(),
            previous: None,
        }
    }
}

impl Sampler for DpmPp2m {
    fn name(&self) -> &'static str {
        "dpmpp-2m"
    }

    fn set_timesteps(&mut self, steps: usize) -> Result<()> {
        self.levels = Spacing::Karras.levels(&self.schedule, steps)?;
        self.previous = None;
        Ok(())
    }

    fn levels(&self) -> &[Level] {
        &self.levels
    }

    fn step(&mut self, i: usize, ys: &Tensor, denoised: &Tensor, _noise: Option<&Tensor>) -> Result<Tensor> {
        let (s, s_next) = pair(&self.levels, i)?;
        let previous = self.previous.take().filter(|(j, _)| *j + 1 == i);
        self.previous = Some((i, denoised.clone()));
        if s_next == 0.0 {
            return Ok(denoised.clone());
        }
        let lambda = |sigma: f64| -sigma.ln();
        let h = lambda(s_next) - lambda(s);
        // The data estimate: first order, or the 2M extrapolation D = (1 + 1/2r) x0_i -
        // (1/2r) x0_{i-1} with r = h_{i-1} / h_i.
        let d = match previous {
            Some((j, old)) => {
                let h_last = lambda(s) - lambda(self.levels[j].sigma);
                let r = h_last / h;
                (denoised.affine(1.0 + 1.0 / (2.0 * r), 0.0)? - old.affine(1.0 / (2.0 * r), 0.0)?)?
            }
            None => denoised.clone(),
        };
        // y' = (sigma'/sigma) y - expm1(-h) D
        Ok((ys.affine(s_next / s, 0.0)? + d.affine(-(-h).exp_m1(), 0.0)?)?)
    }
}
