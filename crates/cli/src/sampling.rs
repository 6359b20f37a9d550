//! The sampling options every command that runs a diffusion model takes (`generate`,
//! `eval --source hybrid`, `bench generate`), declared once so that their names,
//! defaults and limits cannot drift apart.

use clap::Args;
use mmgen_models::hybrid_audio::AudioSettings;
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_models::hybrid_video::VideoSettings;

#[derive(Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Sampler steps.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub steps: u64,
    /// Classifier-free guidance scale (1: no guidance, and half the work).
    #[arg(long, default_value_t = 4.0)]
    pub guidance: f64,
    /// Sampler: ddim, ddpm, euler, euler-a or dpmpp-2m.
    #[arg(long, default_value = "ddim")]
    pub sampler: String,
}

impl SamplingArgs {
    /// Text-to-image settings with these options and no negative prompt, init or mask.
    pub fn image_settings(&self) -> ImageSettings {
        ImageSettings {
            steps: self.steps as usize,
            guidance: self.guidance,
            sampler: self.sampler.clone(),
            ..ImageSettings::default()
        }
    }

    /// Text-to-video settings with these options (default frame count, no first frame).
    pub fn video_settings(&self) -> VideoSettings {
        VideoSettings {
            steps: self.steps as usize,
            guidance: self.guidance,
            sampler: self.sampler.clone(),
            ..VideoSettings::default()
        }
    }

    /// Text-to-audio settings with these options (default length).
    pub fn audio_settings(&self) -> AudioSettings {
        AudioSettings {
            steps: self.steps as usize,
            guidance: self.guidance,
            sampler: self.sampler.clone(),
            ..AudioSettings::default()
        }
    }
}
