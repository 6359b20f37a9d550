//! The `Generator` trait every model family plugs into, and the reference generators
//! that prove the metric: the oracle (renders the parsed prompt, the upper bound), a
//! deliberately wrong one (renders a random spec, near chance), and a control for
//! temporal consistency (the oracle's clips with one object changing identity
//! halfway: the category must fail them).

use image::RgbImage;
use mmgen_world::audio::render_audio;
use mmgen_world::caption::parse::{parse_prompt, spec_from_request};
use mmgen_world::render::Scene;
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{Colour, Shape, SpecSampler, Split};
use rand::Rng;
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

/// The scene a prompt asks for, as the oracle and its morph control render it: the
/// only place where a prompt is parsed into a spec for rendering (the README's rule:
/// this exists only inside evaluation).
pub(crate) fn parsed_spec(prompt: &str, seed: u64) -> Result<mmgen_world::SceneSpec> {
    Ok(spec_from_request(&parse_prompt(prompt)?, seed)?)
}

/// The upper bound: parses the prompt and renders it with the world.
pub struct Oracle;

impl Generator for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        render_spec(&parsed_spec(prompt, seed)?, seed, settings)
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

/// A control for temporal consistency: renders the parsed prompt as the oracle does,
/// except that halfway through each clip one of its objects turns into another shape
/// or takes another colour (which object, which of the two and what it becomes are
/// drawn from the seed; it keeps its place, size and motion). Its stills, audio and
/// object paths are the oracle's, so temporal consistency must fail it: the share of
/// its clips that pass is how often the category misses an identity change, where
/// the random generator only shows it failing a wrong scene. (Motion fails too when
/// the changed object is one whose motion is asked: its track ends at the change.)
pub struct MorphingClip;

impl Generator for MorphingClip {
    fn name(&self) -> String {
        "morph".into()
    }

    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        let spec = parsed_spec(prompt, seed)?;
        let mut generated = render_spec(&spec, seed, settings)?;
        if let (Some(video), Some(changed)) = (generated.video.as_mut(), morphed(&spec, seed)) {
            // The layout and the other objects' shades do not depend on what an object
            // is, so the second half continues the first.
            let after = Scene::new(&changed, seed).clip(settings.size, settings.size, settings.frames)?;
            let half = video.len() / 2;
            video.splice(half.., after.into_iter().skip(half));
        }
        Ok(generated)
    }
}

/// `spec` with one object given another shape or colour (see [`MorphingClip`]); None
/// without objects.
fn morphed(spec: &mmgen_world::SceneSpec, seed: u64) -> Option<mmgen_world::SceneSpec> {
    if spec.objects.is_empty() {
        return None;
    }
    // Its own stream: the draws of the oracle's render are untouched.
    let mut rng = rng_for(mix64(seed ^ 0x000D_0C70_0000_0000), Purpose::Augment);
    fn other<T: Copy + PartialEq>(rng: &mut impl Rng, all: &[T], not: T) -> T {
        let others: Vec<T> = all.iter().copied().filter(|&x| x != not).collect();
        others[rng.random_range(0..others.len())]
    }
    let mut changed = spec.clone();
    let object = &mut changed.objects[rng.random_range(0..spec.objects.len())];
    if rng.random_bool(0.5) {
        object.shape = other(&mut rng, Shape::ALL, object.shape);
    } else {
        object.colour = other(&mut rng, Colour::ALL, object.colour);
    }
    Some(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_morphing_clip_changes_one_object_halfway_and_nothing_else() {
        let settings = GenerationSettings {
            size: 32,
            frames: 8,
            seconds: 0.5,
            ..GenerationSettings::image()
        };
        let prompt = "a video of a small red circle moving right and a large blue square spinning on a snowy field";
        for seed in 0..6 {
            let oracle = Oracle.generate(prompt, seed, &settings).unwrap();
            let morph = MorphingClip.generate(prompt, seed, &settings).unwrap();
            assert_eq!(morph.image, oracle.image, "the still is the oracle's");
            assert_eq!(morph.audio, oracle.audio, "the audio is the oracle's");
            let (a, b) = (oracle.video.unwrap(), morph.video.unwrap());
            assert_eq!(a.len(), b.len());
            assert_eq!(a[..4], b[..4], "the first half is the oracle's");
            assert!((4..8).all(|f| a[f] != b[f]), "every frame of the second half differs");
            let spec = parsed_spec(prompt, seed).unwrap();
            let changed = morphed(&spec, seed).unwrap();
            let differences: Vec<(bool, bool)> = spec
                .objects
                .iter()
                .zip(&changed.objects)
                .map(|(a, b)| (a.shape != b.shape, a.colour != b.colour))
                .filter(|&(shape, colour)| shape || colour)
                .collect();
            assert_eq!(differences.len(), 1, "one object changes");
            assert!(
                differences[0].0 != differences[0].1,
                "its shape or its colour, not both"
            );
            let mut same = spec.clone();
            same.objects = changed.objects.clone();
            assert_eq!(same, changed, "only objects change");
        }
    }
}
