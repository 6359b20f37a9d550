//! The grounded family's sound: a plan's music attributes, a learned score, a
//! neural synthesiser (MuseCoco's text -> attributes -> symbolic music, Lu et al.
//! 2023; DDSP, Engel et al. 2020).
//!
//! - [`score`]: the score as beats and voices, and its tokens;
//! - [`notes`]: the note model, an autoregressive Transformer over score tokens;
//! - [`synth`]: the synthesiser that renders a score, streaming.

pub mod attributes;
pub mod notes;
pub mod score;
pub mod synth;

pub use attributes::{Asked, MusicPlan, MusicPlanner, MusicPlannerConfig, MusicVocab, PlannerAttention, SoundPlan};
pub use notes::{NoteModel, NoteModelConfig};
pub use score::{Score, ScoreNote, ScoreVocab};
pub use synth::{render_stream, MixSettings, Synth, SynthConfig, SynthNote};

use crate::error::{ModelError, Result};

/// Seconds before the first beat.
pub const LEAD_IN: f32 = 0.05;
/// Seconds of an ambience chunk: the bed is played as chunks this long, half a chunk
/// apart (their windows, learned from the training targets, sum to the bed).
pub const AMBIENCE_CHUNK: f32 = 4.0;
/// Loudness of an ambience under music, against the ambience alone (the world's
/// 0.05 and 0.2 RMS).
const AMBIENCE_UNDER_MUSIC: f32 = 0.25;

/// How a score becomes sound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoundSettings {
    /// Length, seconds.
    pub seconds: f32,
    /// Note-model sampling temperature (1: as learned).
    pub temperature: f32,
    /// Samples per block handed to the sink.
    pub block: usize,
    /// Gain of the mix before its soft clip.
    pub gain: f32,
}

impl SoundSettings {
    /// `seconds` of sound at the defaults.
    pub fn new(seconds: f32) -> SoundSettings {
        SoundSettings {
            seconds,
            temperature: 1.0,
            block: 16_384,
            gain: 0.7,
        }
    }
}

/// The synthesiser's notes of `score` at `tempo_bpm`, by onset; notes whose voice
/// the synthesiser has no timbre for (a melody for drums) are left out.
pub fn synth_notes(score: &Score, tempo_bpm: f32, synth: &Synth) -> Vec<SynthNote> {
    let beat = 60.0 / tempo_bpm;
    let mut notes: Vec<SynthNote> = score
        .notes
        .iter()
        .filter_map(|n| {
            let timbre_name = if n.voice == score::MELODY {
                &score.instrument
            } else {
                &n.voice
            };
            let timbre = synth.config().timbre_id(timbre_name).ok()?;
            Some(SynthNote {
                onset: LEAD_IN + n.beat * beat,
                duration: n.beats * beat,
                timbre,
                pitch: n.pitch,
                velocity: n.velocity,
            })
        })
        .collect();
    notes.sort_by(|a, b| a.onset.total_cmp(&b.onset));
    notes
}

/// The ambience bed of `seconds` as synthesiser notes: chunks half a chunk apart,
/// quieter under music. None when the synthesiser has no such timbre.
fn ambience_notes(synth: &Synth, ambience: &str, seconds: f32, under_music: bool) -> Option<Vec<SynthNote>> {
    let timbre = synth.config().timbre_id(ambience).ok()?;
    let step = AMBIENCE_CHUNK / 2.0;
    let chunks = (seconds / step).ceil() as usize + 1;
    Some(
        (0..chunks)
            .map(|k| SynthNote {
                // The first chunk starts half a chunk early, so the bed is full at 0.
                onset: k as f32 * step - step,
                duration: AMBIENCE_CHUNK,
                timbre,
                pitch: None,
                velocity: if under_music { AMBIENCE_UNDER_MUSIC } else { 1.0 },
            })
            .collect(),
    )
}

/// Writes `plan`'s sound: a score from `notes` long enough for `settings.seconds`
/// (when the plan has music) over its ambience (when the synthesiser has its timbre),
/// rendered by `synth` block by block into `sink`. Returns the score.
pub fn render_sound(
    notes: &NoteModel,
    synth: &Synth,
    plan: &SoundPlan,
    seed: u64,
    settings: &SoundSettings,
    sink: impl FnMut(&[f32]) -> Result<()>,
) -> Result<Option<Score>> {
    let score = compose(notes, plan, seed, settings)?;
    render_score(synth, plan, score.as_ref(), seed, settings, sink)?;
    Ok(score)
}

/// The score of `plan`'s music long enough for `settings.seconds`, from `notes`
/// (None when the plan has no music).
pub fn compose(notes: &NoteModel, plan: &SoundPlan, seed: u64, settings: &SoundSettings) -> Result<Option<Score>> {
    check_seconds(settings)?;
    let Some(music) = &plan.music else {
        return Ok(None);
    };
    check_tempo(music.tempo_bpm)?;
    let bar_seconds = score::BEATS_PER_BAR as f32 * 60.0 / music.tempo_bpm;
    let bars = ((settings.seconds - LEAD_IN).max(0.0) / bar_seconds).ceil().max(1.0) as usize;
    Ok(Some(notes.generate(
        &music.instrument,
        &music.mood,
        bars,
        seed,
        settings.temperature,
    )?))
}

/// Renders `score` (the plan's music) over the plan's ambience (when the synthesiser
/// has its timbre) with `synth`, block by block into `sink`.
pub fn render_score(
    synth: &Synth,
    plan: &SoundPlan,
    score: Option<&Score>,
    seed: u64,
    settings: &SoundSettings,
    mut sink: impl FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    check_seconds(settings)?;
    let mut all = Vec::new();
    if let (Some(score), Some(music)) = (score, &plan.music) {
        check_tempo(music.tempo_bpm)?;
        all.extend(synth_notes(score, music.tempo_bpm, synth));
    }
    if let Some(bed) = plan
        .ambience
        .as_deref()
        .and_then(|a| ambience_notes(synth, a, settings.seconds, plan.music.is_some()))
    {
        all.extend(bed);
    }
    all.sort_by(|a, b| a.onset.total_cmp(&b.onset));
    let samples = (settings.seconds * synth.config().sample_rate as f32).round() as usize;
    let mix = MixSettings {
        samples,
        block: settings.block,
        gain: settings.gain,
    };
    render_stream(synth, &all, seed, &mix, |block| {
        mmgen_diffusion::cancel::check()?;
        sink(block)
    })?;
    Ok(())
}

fn check_seconds(settings: &SoundSettings) -> Result<()> {
    if !(settings.seconds.is_finite() && settings.seconds > 0.0) {
        return Err(ModelError::Invalid(format!(
            "seconds is {}; allowed more than 0",
            settings.seconds
        )));
    }
    Ok(())
}

fn check_tempo(tempo_bpm: f32) -> Result<()> {
    if !(tempo_bpm.is_finite() && (20.0..=400.0).contains(&tempo_bpm)) {
        return Err(ModelError::Invalid(format!(
            "tempo is {tempo_bpm} bpm; allowed 20 to 400"
        )));
    }
    Ok(())
}
