//! Diffusion for every mmgen decoder (image, video, audio latents): the noise
//! schedule, what a network predicts, and the samplers that turn predictions into
//! samples, kept apart as stable-diffusion.cpp keeps them.
//!
//! Conventions. Training uses the variance-preserving (VP) form of DDPM (Ho et al.
//! 2020): `x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`. Samplers work in the
//! equivalent variance-exploding coordinates of Karras et al. 2022 (EDM):
//! `y = x_t / sqrt(abar_t) = x0 + sigma eps`, `sigma = sqrt((1 - abar) / abar)`, where
//! every algorithm is a few lines on the denoised estimate `x0_hat`. A network always
//! sees `x_t` and a (possibly fractional) training timestep.

#![warn(missing_docs)]

pub mod cancel;
mod ddim;
mod denoise;
mod dpmpp_2m;
mod error;
mod euler;
mod euler_ancestral;
mod noise;
mod prediction;
mod sampler;
mod schedule;

pub use ddim::Ddim;
pub use denoise::{batch_noise, denoise, guided, DenoiseRequest, Inpaint};
pub use dpmpp_2m::DpmPp2m;
pub use error::{DiffusionError, Result};
pub use euler::Euler;
pub use euler_ancestral::EulerAncestral;
pub use noise::gaussian;
pub use prediction::Prediction;
pub use sampler::{sampler_by_name, Level, Sampler, Spacing, SAMPLER_NAMES};
pub use schedule::{BetaSchedule, NoiseSchedule};
