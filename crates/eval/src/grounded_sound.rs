//! The grounded family's sound under evaluation (`mmgen eval --task audio --source
//! grounded` and `grounded-layout`): the music planner's plan, or, to judge the note
//! model and synthesiser alone, the parsed prompt's true music, composed by the note
//! model and played by the synthesiser, as `mmgen generate` does.

use mmgen_models::grounded::music::{
    render_sound, MusicPlan, MusicPlanner, NoteModel, SoundPlan, SoundSettings, Synth,
};

use crate::error::{EvalError, Result};
use crate::generator::{parsed_spec, Generated, GenerationSettings, Generator};

/// Where the music plan comes from.
pub enum MusicSource {
    /// The learned music planner (the whole model).
    Planner(Box<MusicPlanner>),
    /// The parsed prompt's spec (the note model and synthesiser alone; an
    /// evaluation-only path, like the oracle).
    TrueMusic,
}

/// The grounded sound model: plan -> score -> synthesiser.
pub struct GroundedSoundGenerator {
    source: MusicSource,
    notes: NoteModel,
    synth: Synth,
}

impl GroundedSoundGenerator {
    /// Plays plans from `source` with `notes` and `synth`.
    pub fn new(source: MusicSource, notes: NoteModel, synth: Synth) -> GroundedSoundGenerator {
        GroundedSoundGenerator { source, notes, synth }
    }

    fn plan(&self, prompt: &str, seed: u64) -> Result<SoundPlan> {
        Ok(match &self.source {
            MusicSource::Planner(planner) => planner.plan(&[(prompt, seed)])?.remove(0),
            MusicSource::TrueMusic => {
                let spec = parsed_spec(prompt, seed)?;
                SoundPlan {
                    music: spec.music.map(|m| MusicPlan {
                        instrument: m.instrument.name().into(),
                        mood: m.mood.name().into(),
                        tempo_bpm: m.tempo_bpm as f32,
                    }),
                    ambience: spec.ambience.map(|a| a.name().into()),
                }
            }
        })
    }
}

impl Generator for GroundedSoundGenerator {
    fn name(&self) -> String {
        match self.source {
            MusicSource::Planner(_) => "grounded".into(),
            MusicSource::TrueMusic => "grounded-layout".into(),
        }
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
