//! The `Generator` trait every model family plugs into, and the two reference
//! generators that prove the metric: the oracle (renders the parsed prompt, the upper
//! bound) and a deliberately wrong one (renders a random spec, near chance).

use image::RgbImage;
use mmgen_world::audio::render_audio;
use mmgen_world::caption::parse::{parse_prompt, spec_from_request};
use mmgen_world::render::Scene;
use mmgen_world::{SpecSampler, Split};
use serde::Serialize;

use crate::error::Result;

/// What to produce for a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GenerationSettings {
    /// Image side, pixels.
    pub size: u32,
    /// Video frames (0: no video).
    pub frames: u32,
    /// Audio seconds (0: no audio).
    pub seconds: f32,
    /// Audio sample rate.
    pub sample_rate: u32,
}

impl GenerationSettings {
    /// A 64x64 image only.
    pub fn image() -> GenerationSettings {
        GenerationSettings {
            size: 64,
            frames: 0,
            seconds: 0.0,
            sample_rate: mmgen_world::audio::SAMPLE_RATE,
        }
    }
}

/// A generator's outputs for one prompt.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    /// A still image.
    pub image: Option<RgbImage>,
    /// Video frames.
    pub video: Option<Vec<RgbImage>>,
    /// Mono audio in [-1, 1].
    pub audio: Option<Vec<f32>>,
}

/// Anything that turns a prompt and a seed into media: every model family implements
/// this, so that `mmgen eval --source <family>` needs no new evaluation code.
pub trait Generator {
    /// Name for reports.
    fn name(&self) -> String;
    /// The outputs for `prompt` under `seed`.
    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated>;
}

fn render_spec(spec: &mmgen_world::SceneSpec, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
    let scene = Scene::new(spec, seed);
    let image = Some(scene.frame(settings.size, settings.size, 0.5)?);
    let video = if settings.frames > 0 {
        Some(scene.clip(settings.size, settings.size, settings.frames)?)
    } else {
        None
    };
    let audio = if settings.seconds > 0.0 {
        Some(render_audio(spec, seed, settings.seconds, settings.sample_rate)?)
    } else {
        None
    };
    Ok(Generated { image, video, audio })
}

/// The upper bound: parses the prompt and renders it with the world. The only place
/// where a parsed prompt is rendered.
pub struct Oracle;

impl Generator for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        let spec = spec_from_request(&parse_prompt(prompt)?, seed)?;
        render_spec(&spec, seed, settings)
    }
}

/// A deliberately wrong generator: ignores the prompt and renders a random spec. It
/// shows what chance looks like under each metric.
pub struct RandomScene;

impl Generator for RandomScene {
    fn name(&self) -> String {
        "random".into()
    }

    fn generate(&mut self, _prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        let spec = SpecSampler {
            p_music: 1.0,
            ..Default::default()
        }
        .sample(Split::Train, seed ^ 0x0BAD_5EED);
        render_spec(&spec, seed, settings)
    }
}

/// The hybrid family's text-to-image model (`mmgen eval --source hybrid`): it draws
/// the image; video and audio are not its task.
pub struct HybridImageGenerator {
    model: mmgen_models::hybrid_image::HybridImage,
    settings: mmgen_models::hybrid_image::ImageSettings,
}

impl HybridImageGenerator {
    /// Generates with `model` under `settings` (steps, guidance, sampler).
    pub fn new(
        model: mmgen_models::hybrid_image::HybridImage,
        settings: mmgen_models::hybrid_image::ImageSettings,
    ) -> HybridImageGenerator {
        HybridImageGenerator { model, settings }
    }
}

impl Generator for HybridImageGenerator {
    fn name(&self) -> String {
        "hybrid".into()
    }

    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        let size = self.model.config().vae.image_size as u32;
        if settings.size != size {
            return Err(crate::error::EvalError::Invalid(format!(
                "the hybrid model draws {size}x{size} images; {0}x{0} were asked",
                settings.size
            )));
        }
        let request = mmgen_models::hybrid_image::ImageRequest {
            prompt: prompt.to_string(),
            seed,
        };
        let mut images = self.model.generate(&[request], &self.settings, |_, _| {})?;
        Ok(Generated {
            image: images.pop(),
            video: None,
            audio: None,
        })
    }
}
