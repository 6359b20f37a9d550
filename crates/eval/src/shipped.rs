//! What `mmgen generate` ships, under evaluation (`mmgen eval --source hybrid` and
//! `--source grounded`): each prompt goes through the pipeline, so the scores are of
//! exactly what a user gets (the same plans, settings and key frame), before the
//! media are encoded.

use mmgen_pipeline::{Modality, Pipeline, Request};

use crate::error::{EvalError, Result};
use crate::generator::{Generated, GenerationSettings, Generator};

/// The pipeline as a generator of one modality.
pub struct ShippedGenerator {
    name: String,
    pipeline: Pipeline,
    modality: Modality,
    template: Request,
}

impl ShippedGenerator {
    /// Makes `modality` with `pipeline`; `template` holds the sampler settings (its
    /// prompt, seed, frames and seconds are each call's).
    pub fn new(name: &str, pipeline: Pipeline, modality: Modality, template: Request) -> ShippedGenerator {
        ShippedGenerator {
            name: name.into(),
            pipeline,
            modality,
            template,
        }
    }
}

impl Generator for ShippedGenerator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        let size = self.pipeline.image_size() as u32;
        let clip = self.modality == Modality::Video;
        if settings.size != size || clip != (settings.frames > 0) {
            let (name, what) = (&self.name, if clip { "clips" } else { "images" });
            return Err(EvalError::Invalid(format!(
                "the {name} pipeline draws {size}x{size} {what}; {0}x{0} with {1} frames were asked",
                settings.size, settings.frames,
            )));
        }
        let request = Request {
            prompt: prompt.into(),
            seed,
            modalities: Some(vec![self.modality]),
            frames: if clip {
                settings.frames as usize
            } else {
                self.template.frames
            },
            seconds: match self.modality {
                Modality::Audio => settings.seconds as f64,
                _ => self.template.seconds,
            },
            ..self.template.clone()
        };
        let media = self.pipeline.render(&request, &mut |_, _, _| {})?.media;
        if let Some(heard) = &media.sound {
            if heard.rate != settings.sample_rate {
                return Err(EvalError::Invalid(format!(
                    "the {} pipeline plays {} Hz; the evaluation asked for {} Hz",
                    self.name, heard.rate, settings.sample_rate
                )));
            }
        }
        Ok(Generated {
            image: media.image,
            video: media.clip.map(|(frames, _)| frames),
            audio: media.sound.map(|heard| heard.samples),
        })
    }
}
