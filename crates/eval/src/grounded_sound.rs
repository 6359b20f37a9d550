//! The grounded family's note model and synthesiser alone (`mmgen eval --task audio
//! --source grounded-layout`): the parsed prompt's true music, composed and played as
//! `mmgen generate` plays the music planner's. An evaluation-only path, like the
//! oracle: the whole model (`--source grounded`) is scored through the pipeline
//! ([`crate::shipped`]).

use mmgen_models::grounded::music::{render_sound, MusicPlan, NoteModel, SoundPlan, SoundSettings, Synth};

use crate::error::{EvalError, Result};
use crate::generator::{parsed_spec, Generated, GenerationSettings, Generator};

/// The parsed prompt's true music, composed by the note model and played by the
/// synthesiser.
pub struct TrueMusicGenerator {
    notes: NoteModel,
    synth: Synth,
}

impl TrueMusicGenerator {
    /// Plays true music with `notes` and `synth`.
    pub fn new(notes: NoteModel, synth: Synth) -> TrueMusicGenerator {
        TrueMusicGenerator { notes, synth }
    }

    fn plan(&self, prompt: &str, seed: u64) -> Result<SoundPlan> {
        let spec = parsed_spec(prompt, seed)?;
        Ok(SoundPlan {
            music: spec.music.map(|m| MusicPlan {
                instrument: m.instrument.name().into(),
                mood: m.mood.name().into(),
                tempo_bpm: m.tempo_bpm as f32,
            }),
            ambience: spec.ambience.map(|a| a.name().into()),
        })
    }
}

impl Generator for TrueMusicGenerator {
    fn name(&self) -> String {
        "grounded-layout".into()
    }

    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        let rate = self.synth.config().sample_rate;
        if settings.sample_rate != rate {
            return Err(EvalError::Invalid(format!(
                "the synthesiser plays at {rate} Hz; the evaluation asked for {} Hz",
                settings.sample_rate
            )));
        }
        let samples = (settings.seconds * rate as f32).round() as usize;
        let mut audio = Vec::with_capacity(samples);
        render_sound(
            &self.notes,
            &self.synth,
            &self.plan(prompt, seed)?,
            seed,
            &SoundSettings::new(settings.seconds),
            |block| {
                audio.extend_from_slice(block);
                Ok(())
            },
        )?;
        audio.resize(samples, 0.0);
        Ok(Generated {
            audio: Some(audio),
            ..Generated::default()
        })
    }
}
