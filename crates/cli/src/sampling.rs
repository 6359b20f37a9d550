//! The sampling options every command that runs a diffusion model takes (`generate`,
//! `eval --source hybrid`, `bench generate`), declared once so that their names,
//! defaults and limits cannot drift apart.

use clap::Args;
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_models::sampling::SamplingSettings;

#[derive(Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Sampler steps [default: 50; 20 for the grounded renderer].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub steps: Option<u64>,
    /// Classifier-free guidance scale (1: no guidance, and half the work) [default: 4;
    /// 1 for the grounded renderer].
    #[arg(long, value_parser = guidance_value)]
    pub guidance: Option<f64>,
    /// Sampler.
    #[arg(long, default_value = "ddim", value_parser = ["ddim", "ddpm", "euler", "euler-a", "dpmpp-2m"])]
    pub sampler: String,
}

/// A number in `low..=high` (clap then names the flag in its error).
pub fn number_in(text: &str, low: f64, high: f64) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("'{text}' is not a number"))?;
    if value.is_finite() && (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is out of range; allowed {low} to {high}"))
    }
}

/// Seconds of audio: 0.1 s to an hour.
pub fn seconds_value(text: &str) -> Result<f64, String> {
    number_in(text, 0.1, 3600.0)
}

fn guidance_value(text: &str) -> Result<f64, String> {
    number_in(text, 0.0, 50.0)
}

impl SamplingArgs {
    /// These options over `defaults` (a model's own steps and guidance where not given).
    pub fn over(&self, defaults: SamplingSettings) -> SamplingSettings {
        SamplingSettings {
            steps: self.steps.map_or(defaults.steps, |s| s as usize),
            guidance: self.guidance.unwrap_or(defaults.guidance),
            sampler: self.sampler.clone(),
            ..defaults
        }
    }

    /// Text-to-image settings with these options and no negative prompt, init or mask.
    pub fn image_settings(&self) -> ImageSettings {
        ImageSettings {
            sampling: self.over(SamplingSettings::default()),
            ..ImageSettings::default()
        }
    }

    /// The grounded renderer's settings: these options over its defaults.
    pub fn grounded_settings(&self) -> ImageSettings {
        let defaults = mmgen_models::grounded::image::default_settings();
        ImageSettings {
            sampling: self.over(defaults.sampling.clone()),
            ..defaults
        }
    }
}
