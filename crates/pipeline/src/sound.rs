//! The sound models of the pipeline: the grounded family's plan -> score ->
//! synthesiser (the default), or the end-to-end mel model (the baseline).

use std::path::Path;

use candle_core::Device;
use mmgen_models::grounded::music::{render_sound, MusicPlanner, NoteModel, Score, SoundPlan, SoundSettings, Synth};
use mmgen_models::hybrid_audio::{AudioRequest, HybridAudio};
use mmgen_models::ModelError;
use serde_json::json;

use crate::error::{PipelineError, Result};
use crate::plan::Reading;
use crate::{Loaded, Progress, Request};

/// General MIDI drum keys of the world's percussion order (kick, snare, closed hat).
const DRUM_KEYS: [u8; 3] = [36, 38, 42];

/// The grounded family's sound: music planner, note model, synthesiser.
pub(crate) struct GroundedSound {
    planner: Loaded<MusicPlanner>,
    notes: Loaded<NoteModel>,
    synth: Loaded<Synth>,
}

/// The model that makes the sound.
pub(crate) enum AudioModel {
    /// The end-to-end text-to-audio model (mel DiT + Griffin-Lim).
    Hybrid(Box<Loaded<HybridAudio>>),
    /// The grounded sound models.
    Grounded(Box<GroundedSound>),
}

/// What the sound model made.
#[derive(Debug)]
pub struct Heard {
    /// Mono samples in [-1, 1]; empty when the grounded sound was asked not to keep
    /// them (the WAV alone is written).
    pub samples: Vec<f32>,
    /// The grounded sound's WAV, written as its blocks were made (None for the
    /// end-to-end model).
    pub wav: Option<Vec<u8>>,
    /// Their rate, Hz.
    pub rate: u32,
    /// The grounded model's sound plan and score (with its MIDI file).
    pub plan: Option<(SoundPlan, Score, Vec<u8>)>,
}

impl AudioModel {
    /// The end-to-end model in `dir`.
    pub(crate) fn hybrid(dir: &Path, device: &Device) -> Result<AudioModel> {
        Ok(AudioModel::Hybrid(Box::new(Loaded::load(dir, |files| {
            HybridAudio::from_files(files, device)
        })?)))
    }

    /// The grounded sound models in these folders.
    pub(crate) fn grounded(planner: &Path, notes: &Path, synth: &Path, device: &Device) -> Result<AudioModel> {
        Ok(AudioModel::Grounded(Box::new(GroundedSound {
            planner: Loaded::load(planner, |files| MusicPlanner::from_files(files, device))?,
            notes: Loaded::load(notes, |files| NoteModel::from_files(files, device))?,
            synth: Loaded::load(synth, |files| Synth::from_files(files, device))?,
        })))
    }

    /// What the prompt asks to be made, read by the grounded sound's music planner
    /// (None for the end-to-end model, which reads no request).
    pub(crate) fn read(&self, prompt: &str) -> Result<Option<Reading>> {
        let AudioModel::Grounded(sound) = self else {
            return Ok(None);
        };
        let asked = sound.planner.model.asked(&[prompt])?.remove(0);
        Ok(Some(Reading {
            medium: asked.medium,
            music: asked.music,
            ambience: asked.ambience,
        }))
    }

    /// Refuses settings it cannot make before any work is done.
    pub(crate) fn check(&self, request: &Request, seconds: f64) -> Result<()> {
        match self {
            AudioModel::Hybrid(_) => Ok(request.audio_settings(seconds).check()?),
            AudioModel::Grounded(_) => {
                if !(seconds.is_finite() && seconds > 0.0 && seconds <= mmgen_models::hybrid_audio::MAX_AUDIO_SECONDS) {
                    return Err(PipelineError::Invalid(format!(
                        "seconds is {seconds}; allowed more than 0, up to {}",
                        mmgen_models::hybrid_audio::MAX_AUDIO_SECONDS
                    )));
                }
                Ok(())
            }
        }
    }

    /// `seconds` of the request's sound. The grounded sound writes its WAV block by
    /// block and keeps the samples only when `keep_samples` (a clip's soundtrack, the
    /// evaluation's probes): a long sound then costs its WAV's bytes alone.
    pub(crate) fn make(
        &self,
        request: &Request,
        seconds: f64,
        keep_samples: bool,
        progress: &mut Progress,
    ) -> Result<Heard> {
        match self {
            AudioModel::Hybrid(audio) => {
                let settings = request.audio_settings(seconds);
                let clip = audio.model.generate(
                    &[AudioRequest {
                        prompt: request.prompt.clone(),
                        seed: request.seed,
                    }],
                    &settings,
                    |done, total| progress("audio", done, total),
                )?;
                Ok(Heard {
                    samples: clip.into_iter().next().unwrap_or_default(),
                    wav: None,
                    rate: audio.model.config().mel.sample_rate,
                    plan: None,
                })
            }
            AudioModel::Grounded(g) => {
                let plan = g
                    .planner
                    .model
                    .plan_music(&[(&request.prompt, request.seed)])?
                    .remove(0);
                let rate = g.synth.model.config().sample_rate;
                let total = (seconds * rate as f64).round() as usize;
                let mut samples = Vec::with_capacity(if keep_samples { total } else { 0 });
                let mut bytes = std::io::Cursor::new(Vec::with_capacity(mmgen_media::wav_bytes(total)));
                let mut wav = mmgen_media::WavStream::new(&mut bytes, rate)?;
                let mut done = 0;
                let score = render_sound(
                    &g.notes.model,
                    &g.synth.model,
                    &plan,
                    request.seed,
                    &SoundSettings::new(seconds as f32),
                    |block| {
                        wav.push(block).map_err(|e| ModelError::Invalid(e.to_string()))?;
                        if keep_samples {
                            samples.extend_from_slice(block);
                        }
                        done += block.len();
                        progress("audio", done, total);
                        Ok(())
                    },
                )?;
                wav.finish()?;
                let (score, tempo) = match (score, &plan.music) {
                    (Some(score), Some(music)) => (score, music.tempo_bpm),
                    _ => return Err(PipelineError::Invalid("the music planner planned no music".into())),
                };
                let midi = score.to_midi(&g.notes.model.config().vocab, tempo, &DRUM_KEYS)?;
                Ok(Heard {
                    samples,
                    wav: Some(bytes.into_inner()),
                    rate,
                    plan: Some((plan, score, midi)),
                })
            }
        }
    }

    /// Its folders and weights, for `meta.json`.
    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            AudioModel::Hybrid(m) => json!({"audio": m.json()}),
            AudioModel::Grounded(g) => json!({
                "music_planner": g.planner.json(),
                "notes": g.notes.json(),
                "synth": g.synth.json(),
            }),
        }
    }

    /// The digest of its folders, for cache keys.
    pub(crate) fn folder_sha256(&self) -> String {
        match self {
            AudioModel::Hybrid(m) => m.folder_sha256.clone(),
            AudioModel::Grounded(g) => format!(
                "{}+{}+{}",
                g.planner.folder_sha256, g.notes.folder_sha256, g.synth.folder_sha256
            ),
        }
    }

    /// How it made the sound of `request`, for `meta.json` and the cache key.
    pub(crate) fn settings_json(&self, request: &Request, seconds: f64) -> serde_json::Value {
        match self {
            AudioModel::Hybrid(audio) => {
                let a = request.audio_settings(seconds);
                json!({"model": audio.dir.display().to_string(), "steps": a.sampling.steps, "guidance": a.sampling.guidance,
                       "sampler": a.sampling.sampler, "negative": a.sampling.negative, "seconds": a.seconds,
                       "vocoder": "griffin-lim", "vocoder_iters": a.vocoder_iters,
                       "sample_rate": audio.model.config().mel.sample_rate})
            }
            AudioModel::Grounded(g) => {
                let s = SoundSettings::new(seconds as f32);
                json!({"model": "grounded", "notes": g.notes.dir.display().to_string(),
                       "synth": g.synth.dir.display().to_string(), "seconds": seconds,
                       "temperature": s.temperature, "gain": s.gain,
                       "sample_rate": g.synth.model.config().sample_rate})
            }
        }
    }
}
