//! One request: what to make (prompt, seed, modalities) and how (each model's
//! settings, a scene plan to draw), checked at the pipeline's edge.

use image::RgbImage;
use mmgen_models::grounded::{ClipSettings, ScenePlan};
use mmgen_models::hybrid_audio::AudioSettings;
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_models::hybrid_video::VideoSettings;
use mmgen_models::sampling::SamplingSettings;

use crate::error::{PipelineError, Result};
use crate::plan::Modality;

/// One request.
#[derive(Clone, Debug)]
pub struct Request {
    /// What to make, in English or Chinese.
    pub prompt: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// The modalities to make; None reads them from the prompt ([`crate::Plan::read`]).
    pub modalities: Option<Vec<Modality>>,
    /// How to make the image; its steps, guidance, sampler and negative prompt also
    /// drive the video and audio models.
    pub image: ImageSettings,
    /// Frames of the video.
    pub frames: usize,
    /// Seconds of audio when there is no video (with a video, the audio lasts as long
    /// as the clip).
    pub seconds: f64,
    /// Text + image -> video: the clip's first frame.
    pub first_frame: Option<RgbImage>,
    /// How the grounded renderer draws a still (when the pipeline has it).
    pub grounded: ImageSettings,
    /// A scene plan to draw instead of the planner's (layout control; grounded only).
    pub scene_plan: Option<ScenePlan>,
}

impl Request {
    /// A request with the default settings (50 steps, 24 frames, 4 s of audio).
    pub fn new(prompt: &str, seed: u64) -> Request {
        Request {
            prompt: prompt.into(),
            seed,
            modalities: None,
            image: ImageSettings::default(),
            frames: VideoSettings::default().frames,
            seconds: AudioSettings::default().seconds,
            first_frame: None,
            grounded: mmgen_models::grounded::image::default_settings(),
            scene_plan: None,
        }
    }

    /// This request with sampler options over each model's defaults (None keeps the
    /// model's own: 50 steps and guidance 4 for the end-to-end models, the grounded
    /// renderer's for it).
    pub fn with_sampling(self, steps: Option<usize>, guidance: Option<f64>, sampler: &str, negative: &str) -> Request {
        let over = |defaults: ImageSettings| ImageSettings {
            sampling: SamplingSettings {
                steps: steps.unwrap_or(defaults.sampling.steps),
                guidance: guidance.unwrap_or(defaults.sampling.guidance),
                sampler: sampler.to_string(),
                negative: negative.to_string(),
            },
            ..defaults
        };
        Request {
            image: over(ImageSettings::default()),
            grounded: over(mmgen_models::grounded::image::default_settings()),
            ..self
        }
    }

    pub(crate) fn video_settings(&self) -> VideoSettings {
        VideoSettings {
            sampling: self.image.sampling.clone(),
            frames: self.frames,
            first_frame: self.first_frame.clone(),
        }
    }

    /// How the grounded model draws the clip: the still's sampling, the clip's frames
    /// and first frame.
    pub(crate) fn clip_settings(&self) -> ClipSettings {
        ClipSettings {
            image: ImageSettings {
                init: None,
                mask: None,
                ..self.grounded.clone()
            },
            first_frame: self.first_frame.clone(),
            ..ClipSettings::new(self.frames)
        }
    }

    pub(crate) fn audio_settings(&self, seconds: f64) -> AudioSettings {
        AudioSettings {
            sampling: self.image.sampling.clone(),
            seconds,
            ..AudioSettings::default()
        }
    }
}

/// The longest prompt, in characters: far beyond what a text encoder reads (64
/// tokens), short enough that meta.json, caption.txt and image.png stay small.
pub const MAX_PROMPT_CHARS: usize = 2000;

/// Refuses prompts that are empty, too long or hold control characters (they would go
/// raw into caption.txt and meta.json); tabs and newlines are spaces.
pub(crate) fn check_prompt(prompt: &str) -> Result<()> {
    if prompt.trim().is_empty() {
        return Err(PipelineError::Invalid(
            "the prompt is empty; say what to make, e.g. \"a red star over the sea at sunset\"".into(),
        ));
    }
    let chars = prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(PipelineError::Invalid(format!(
            "the prompt is {chars} characters long; at most {MAX_PROMPT_CHARS} are allowed"
        )));
    }
    if let Some((i, c)) = prompt
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !c.is_whitespace())
    {
        return Err(PipelineError::Invalid(format!(
            "the prompt holds a control character (U+{:04X}) at character {}; remove it",
            c as u32,
            i + 1
        )));
    }
    Ok(())
}
