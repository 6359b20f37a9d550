//! Training the grounded family's sound on the world's scores and the audio they
//! render to (aligned by timestamp):
//! - the note model on the world's scores of training-split music (held-out
//!   instrument x mood pairs never seen);
//! - the synthesiser on single notes of every timbre, rendered by the world's
//!   instruments, through the multi-resolution STFT loss.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mmgen_models::grounded::music::score::{BASS, MELODY};
use mmgen_models::grounded::music::synth::stft_loss;
use mmgen_models::grounded::music::{
    NoteModel, NoteModelConfig, Score, ScoreNote, ScoreVocab, Synth, SynthConfig, SynthNote,
};
use mmgen_nn::seeded_var_builder;
use mmgen_world::audio::ambience::render_ambience;
use mmgen_world::audio::instruments::render_voice;
use mmgen_world::audio::music::{key_of, score, Note, Voice};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::sampler::HELDOUT_INSTRUMENT_MOOD;
use mmgen_world::{Ambience, Instrument, Mood, MusicSpec, MAX_TEMPO_BPM, MIN_TEMPO_BPM};
use rand::Rng;
use serde_json::json;

use crate::error::Result;
use crate::fit::{fit, resume, save_model_runs, FitOptions, RunInfo, StepReport};
use crate::renderer::previous_runs;
use mmgen_models::weights::{load_f32, set_inflated};

/// The world's first beat, seconds after the start.
const LEAD_IN: f32 = 0.05;
/// The world's drum voices, in the note model's percussion order.
const PERCUSSION: [&str; 3] = ["kick", "snare", "hat"];

/// The world's instruments, moods and drums (the note model's vocabulary).
pub fn world_score_vocab() -> ScoreVocab {
    ScoreVocab {
        instruments: Instrument::ALL.iter().map(|i| i.name().to_string()).collect(),
        moods: Mood::ALL.iter().map(|m| m.name().to_string()).collect(),
        percussion: PERCUSSION.iter().map(|p| p.to_string()).collect(),
    }
}

/// The synthesiser's timbres: every instrument that plays a melody, the bass, the
/// drums and the ambiences.
pub fn world_timbres() -> Vec<String> {
    Instrument::ALL
        .iter()
        .filter(|i| **i != Instrument::Drums)
        .map(|i| i.name().to_string())
        .chain([BASS.to_string()])
        .chain(PERCUSSION.iter().map(|p| p.to_string()))
        .chain(Ambience::ALL.iter().map(|a| a.name().to_string()))
        .collect()
}

/// The world's score of `music` as beats and voices.
pub fn score_from_world(music: &MusicSpec, notes: &[Note]) -> Score {
    let beat = 60.0 / music.tempo_bpm as f32;
    let notes = notes
        .iter()
        .map(|n| {
            let (voice, pitch) = match n.voice {
                Voice::Melody(p) => (MELODY, Some(p)),
                Voice::Bass(p) => (BASS, Some(p)),
                Voice::Kick => (PERCUSSION[0], None),
                Voice::Snare => (PERCUSSION[1], None),
                Voice::Hat => (PERCUSSION[2], None),
            };
            ScoreNote {
                beat: (n.onset - LEAD_IN) / beat,
                beats: n.duration / beat,
                voice: voice.to_string(),
                pitch,
                velocity: n.velocity,
            }
        })
        .collect();
    Score {
        instrument: music.instrument.name().to_string(),
        mood: music.mood.name().to_string(),
        notes,
    }
}

/// `seconds` of `score` at `tempo_bpm` played by the world's instruments (the mix
/// peak at 0.8, as the world's own music): the reference a generated score's
/// synthesis is heard beside.
pub fn render_score_with_world(score: &Score, tempo_bpm: f32, seconds: f32, seed: u64) -> Result<Vec<f32>> {
    let instrument = Instrument::ALL
        .iter()
        .copied()
        .find(|i| i.name() == score.instrument)
        .ok_or_else(|| crate::TrainError::Invalid(format!("the world has no instrument {:?}", score.instrument)))?;
    if !(tempo_bpm.is_finite() && tempo_bpm > 0.0 && seconds.is_finite() && seconds > 0.0 && seconds <= 600.0) {
        return Err(crate::TrainError::Invalid(format!(
            "tempo {tempo_bpm} bpm and {seconds} s: need a tempo above 0 and 0 to 600 seconds"
        )));
    }
    let sr = mmgen_world::audio::SAMPLE_RATE as f32;
    let beat = 60.0 / tempo_bpm;
    let mut mix = vec![0f32; (seconds * sr).round() as usize];
    let mut rng = rng_for(seed, Purpose::Sound);
    for note in &score.notes {
        let voice = match (note.voice.as_str(), note.pitch) {
            (MELODY, Some(p)) => Voice::Melody(p),
            (BASS, Some(p)) => Voice::Bass(p),
            ("kick", _) => Voice::Kick,
            ("snare", _) => Voice::Snare,
            ("hat", _) => Voice::Hat,
            _ => continue,
        };
        let audio = render_voice(instrument, voice, note.beats * beat, note.velocity, sr, &mut rng);
        let start = ((LEAD_IN + note.beat * beat) * sr).round() as usize;
        for (out, x) in mix.iter_mut().skip(start).zip(audio) {
            *out += x;
        }
    }
    let peak = mix.iter().fold(0f32, |m, x| m.max(x.abs()));
    if peak > 1e-9 {
        mix.iter_mut().for_each(|x| *x *= 0.8 / peak);
    }
    Ok(mix)
}

/// A random music spec of `held_out` or training instrument x mood pairs.
fn random_music(rng: &mut impl Rng, held_out: bool) -> MusicSpec {
    loop {
        let music = MusicSpec {
            instrument: Instrument::ALL[rng.random_range(0..Instrument::ALL.len())],
            mood: Mood::ALL[rng.random_range(0..Mood::ALL.len())],
            tempo_bpm: rng.random_range(MIN_TEMPO_BPM..=MAX_TEMPO_BPM),
        };
        if music_is_heldout(&music) == held_out {
            return music;
        }
    }
}

fn music_is_heldout(music: &MusicSpec) -> bool {
    HELDOUT_INSTRUMENT_MOOD.contains(&(music.instrument, music.mood))
}

/// `batch` token windows of `window` tokens: the conditioning pair, then a stretch of
/// a world score from a random place (the first bar in a third of them).
fn note_batch(
    config: &NoteModelConfig,
    held_out: bool,
    batch: usize,
    seed: u64,
    index: u64,
    device: &Device,
) -> Result<Tensor> {
    let mut rng = rng_for(mix64(seed ^ mix64(index)), Purpose::Melody);
    let body = config.window - 2;
    let mut rows = Vec::with_capacity(batch * config.window);
    while rows.len() < batch * config.window {
        let music = random_music(&mut rng, held_out);
        // Enough bars that a window fits with room to move (drums need about 45
        // tokens a bar, the rest about 25).
        let bars = body / 20 + 4;
        let seconds = LEAD_IN + (bars * 4) as f32 * 60.0 / music.tempo_bpm as f32;
        let tokens = score_from_world(&music, &score(&music, seconds, rng.random())).tokens(&config.vocab)?;
        if tokens.len() < config.window {
            continue;
        }
        let start = if rng.random_bool(1.0 / 3.0) {
            2
        } else {
            rng.random_range(2..=tokens.len() - body)
        };
        rows.extend_from_slice(&tokens[..2]);
        rows.extend_from_slice(&tokens[start..start + body]);
    }
    Ok(Tensor::from_vec(rows, (batch, config.window), device)?)
}

/// Scale share, beat-grid share and pitch-class histogram distance of scores the
/// model writes for `pairs` prompts of `held_out` pairs, against the world's.
fn measure_notes(model: &NoteModel, held_out: bool, pairs: usize, seed: u64) -> Result<serde_json::Value> {
    let mut rng = rng_for(seed ^ 0x5C0E, Purpose::Melody);
    let (mut in_scale, mut pitched, mut on_grid, mut notes) = (0usize, 0usize, 0usize, 0usize);
    let mut made = [0f64; 12];
    let mut world = [0f64; 12];
    for _ in 0..pairs {
        let music = random_music(&mut rng, held_out);
        let (root, scale) = key_of(music.mood);
        let bars = 4;
        let made_score = model.generate(music.instrument.name(), music.mood.name(), bars, rng.random(), 1.0)?;
        let seconds = LEAD_IN + (bars * 4) as f32 * 60.0 / music.tempo_bpm as f32;
        let world_score = score_from_world(&music, &score(&music, seconds, rng.random()));
        for (s, histogram) in [(&made_score, &mut made), (&world_score, &mut world)] {
            for n in s.notes.iter().filter(|n| n.pitch.is_some()) {
                let class = (n.pitch.unwrap_or(0.0).round() as i32).rem_euclid(12);
                histogram[class as usize] += 1.0;
            }
        }
        for n in &made_score.notes {
            notes += 1;
            on_grid += (n.beat.fract() == 0.0) as usize;
            if let Some(p) = n.pitch {
                pitched += 1;
                in_scale += scale.contains(&(p.round() as i32 - root).rem_euclid(12)) as usize;
            }
        }
    }
    let normalise = |h: &[f64; 12]| {
        let total: f64 = h.iter().sum::<f64>().max(1.0);
        h.map(|x| x / total)
    };
    let (m, w) = (normalise(&made), normalise(&world));
    let distance: f64 = m.iter().zip(&w).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0;
    Ok(json!({
        "scores": pairs,
        "notes": notes,
        "pitched_in_scale": in_scale as f64 / pitched.max(1) as f64,
        "onsets_on_beats": on_grid as f64 / notes.max(1) as f64,
        "pitch_class_distance": distance,
        "notes_per_bar": notes as f64 / (pairs * 4) as f64,
    }))
}

/// Trains a note model of `config` (or continues `run.resume`) and writes its folder.
pub fn train_notes(
    config: &NoteModelConfig,
    fit_options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (config, history) = match run.resume {
        Some(dir) => (
            mmgen_models::weights::read_folder_config(dir, "note model")?,
            previous_runs(dir),
        ),
        None => (config.clone(), Vec::new()),
    };
    let mut varmap = VarMap::new();
    let model = NoteModel::new(
        &config,
        seeded_var_builder(&varmap, fit_options.seed, DType::F32, device),
        device,
    )?;
    if let Some(dir) = run.resume {
        resume(&mut varmap, dir, device, |_| false)?;
    }
    let validation = note_batch(&config, true, 64, fit_options.seed, 1 << 40, device)?;
    let before = model.loss(&validation)?.to_scalar::<f32>()?;
    let (batch, seed, dev, c) = (fit_options.batch, fit_options.seed, device.clone(), config.clone());
    let batches = (0u64..).map(move |i| note_batch(&c, false, batch, seed, i, &dev));
    let outcome = fit(
        &varmap,
        fit_options,
        batches,
        |b| Ok((model.loss(b)?, Vec::new())),
        progress,
    )?;
    let after = model.loss(&validation)?.to_scalar::<f32>()?;
    // Sampling is token by token: a few hundred scores measure it well enough.
    let samples = run.eval_samples.clamp(1, 200);
    let mut record = json!({
        "command": run.command,
        "device": format!("{device:?}"),
        "options": fit_options,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "validation_loss": {
            "about": "next-token cross-entropy on 64 windows of held-out instrument x mood scores",
            "initial": before,
            "final": after,
        },
        "scores": {
            "about": "four-bar scores sampled at temperature 1: the share of pitched notes in the mood's scale, of onsets on a beat, and the total-variation distance of their pitch-class histogram from the world's",
            "heldout": measure_notes(&model, true, samples, fit_options.seed)?,
            "train": measure_notes(&model, false, samples, fit_options.seed)?,
        },
    });
    outcome.record_into(&mut record, fit_options.batch);
    save_model_runs(run.out, &config, &varmap, "grounded-notes", history, &record)?;
    Ok(record)
}

/// Seconds of an ambience chunk (`mmgen_models::grounded::music::AMBIENCE_CHUNK`).
const AMBIENCE_CHUNK: f32 = mmgen_models::grounded::music::AMBIENCE_CHUNK;
/// RMS of the world's ambience without music.
const AMBIENCE_LEVEL: f32 = 0.2;

/// The synthesiser's timbre embedding.
const TIMBRE_TABLE: &str = "timbres.weight";

/// Samples per synthesiser training segment.
const SEGMENT: usize = 8192;
/// FFT sizes of the STFT loss.
pub const STFT_SIZES: [usize; 4] = [1024, 512, 256, 128];

/// One synthesiser batch: the notes, their segment offsets (seconds), the world's
/// audio of each segment (b, SEGMENT) and the noise bands of each.
struct SynthBatch {
    notes: Vec<SynthNote>,
    offset: Vec<f32>,
    target: Tensor,
    noise: Tensor,
    timbre_of: Vec<u32>,
}

/// A note of timbre `timbre` at `velocity` as the world plays it: (audio,
/// duration, pitch). An ambience "note" is a chunk of its bed under a sin^2 window
/// (chunks [`AMBIENCE_CHUNK`] long, half a chunk apart, sum to the bed), at the
/// world's level for sound without music times the velocity.
fn world_note(timbre: &str, velocity: f32, sr: f32, rng: &mut impl Rng) -> (Vec<f32>, f32, Option<f32>) {
    if let Some(kind) = Ambience::ALL.iter().copied().find(|a| a.name() == timbre) {
        let n = (AMBIENCE_CHUNK * sr) as usize;
        let mut bed = render_ambience(kind, n, sr, rng);
        let rms = (bed.iter().map(|x| x * x).sum::<f32>() / n as f32).sqrt().max(1e-9);
        for (i, x) in bed.iter_mut().enumerate() {
            let w = (std::f32::consts::PI * i as f32 / n as f32).sin().powi(2);
            *x *= AMBIENCE_LEVEL * velocity / rms * w;
        }
        return (bed, AMBIENCE_CHUNK, None);
    }
    let (instrument, voice, duration, pitch) = world_voice(timbre, rng);
    (
        render_voice(instrument, voice, duration, velocity, sr, rng),
        duration,
        pitch,
    )
}

/// A note of timbre `timbre` as the world's score plays it: (voice, duration, pitch).
fn world_voice(timbre: &str, rng: &mut impl Rng) -> (Instrument, Voice, f32, Option<f32>) {
    let beat = 60.0 / rng.random_range(MIN_TEMPO_BPM..=MAX_TEMPO_BPM) as f32;
    match timbre {
        BASS => {
            let pitch = rng.random_range(28..=60) as f32;
            // A bar under a melody, or most of a beat under drums.
            let duration = if rng.random_bool(0.5) { 4.0 * beat } else { 0.9 * beat };
            (Instrument::Piano, Voice::Bass(pitch), duration, Some(pitch))
        }
        "kick" => (Instrument::Drums, Voice::Kick, beat, None),
        "snare" => (Instrument::Drums, Voice::Snare, beat, None),
        "hat" => (Instrument::Drums, Voice::Hat, 0.5 * beat, None),
        melody => {
            let instrument = Instrument::ALL
                .iter()
                .copied()
                .find(|i| i.name() == melody)
                .unwrap_or(Instrument::Piano);
            let pitch = rng.random_range(52..=90) as f32;
            (instrument, Voice::Melody(pitch), beat, Some(pitch))
        }
    }
}

fn synth_batch(synth: &Synth, batch: usize, seed: u64, index: u64, device: &Device) -> Result<SynthBatch> {
    let mut rng = rng_for(mix64(seed ^ mix64(index)), Purpose::Sound);
    let config = synth.config();
    let sr = config.sample_rate as f32;
    let (mut notes, mut offset, mut target, mut noise, mut timbre_of) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..batch {
        let timbre = rng.random_range(0..config.timbres.len()) as u32;
        let velocity = rng.random_range(0.5..1.0);
        let (audio, duration, pitch) = world_note(&config.timbres[timbre as usize], velocity, sr, &mut rng);
        // From the onset half of the time (attacks matter most), else from any frame.
        let frames = audio.len() / config.hop;
        let start_frame = if rng.random_bool(0.5) || frames < 2 {
            0
        } else {
            rng.random_range(0..frames)
        };
        let start = start_frame * config.hop;
        let mut segment: Vec<f32> = audio.iter().skip(start).take(SEGMENT).copied().collect();
        segment.resize(SEGMENT, 0.0);
        target.extend(segment);
        noise.extend(synth.noise_bands(rng.random(), SEGMENT)?);
        offset.push(start as f32 / sr);
        notes.push(SynthNote {
            onset: 0.0,
            duration,
            timbre,
            pitch,
            velocity,
        });
        timbre_of.push(timbre);
    }
    Ok(SynthBatch {
        target: Tensor::from_vec(target, (batch, SEGMENT), device)?,
        noise: Tensor::from_vec(noise, (batch, config.noise_bands, SEGMENT), device)?,
        notes,
        offset,
        timbre_of,
    })
}

/// The synthesiser's audio of a batch's segments (b, SEGMENT).
fn synthesise_batch(synth: &Synth, b: &SynthBatch) -> Result<Tensor> {
    // Segments start at different offsets: controls are built per note, then joined.
    let mut inputs = Vec::with_capacity(b.notes.len());
    for (note, &offset) in b.notes.iter().zip(&b.offset) {
        inputs.push(synth.controls(std::slice::from_ref(note), offset, SEGMENT)?);
    }
    let controls = mmgen_models::grounded::music::synth::NoteControls {
        inputs: Tensor::cat(&inputs.iter().map(|c| &c.inputs).collect::<Vec<_>>(), 0)?,
        timbres: Tensor::cat(&inputs.iter().map(|c| &c.timbres).collect::<Vec<_>>(), 0)?,
        f0: Tensor::cat(&inputs.iter().map(|c| &c.f0).collect::<Vec<_>>(), 0)?,
    };
    Ok(synth.synthesise(&controls, &b.noise)?)
}

/// The STFT loss per timbre on `batches` held-out batches of 32.
fn measure_synth(synth: &Synth, seed: u64, batches: u64, device: &Device) -> Result<serde_json::Value> {
    let timbres = &synth.config().timbres;
    let mut sums = vec![(0f64, 0usize); timbres.len()];
    for i in 0..batches {
        let b = synth_batch(synth, 32, seed ^ 0xD1CE, (1 << 40) + i, device)?;
        let made = synthesise_batch(synth, &b)?;
        for (row, &timbre) in b.timbre_of.iter().enumerate() {
            let one = stft_loss(&made.narrow(0, row, 1)?, &b.target.narrow(0, row, 1)?, &STFT_SIZES)?;
            sums[timbre as usize].0 += one.to_scalar::<f32>()? as f64;
            sums[timbre as usize].1 += 1;
        }
    }
    let mut out = serde_json::Map::new();
    for (name, (sum, n)) in timbres.iter().zip(sums) {
        out.insert(name.clone(), if n == 0 { json!(null) } else { json!(sum / n as f64) });
    }
    Ok(serde_json::Value::Object(out))
}

/// Trains a synthesiser of `config` (or continues `run.resume`) and writes its folder.
pub fn train_synth(
    config: &SynthConfig,
    fit_options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    // A resumed synthesiser learns the timbres of `config` it lacks (rows added to its
    // timbre table, fresh); everything it has keeps its weights.
    let (config, history, kept_timbres) = match run.resume {
        Some(dir) => {
            let mut resumed: SynthConfig = mmgen_models::weights::read_folder_config(dir, "synthesiser")?;
            let kept = resumed.timbres.len();
            let added: Vec<String> = config
                .timbres
                .iter()
                .filter(|t| !resumed.timbres.contains(t))
                .cloned()
                .collect();
            resumed.timbres.extend(added);
            (resumed, previous_runs(dir), Some(kept))
        }
        None => (config.clone(), Vec::new(), None),
    };
    let varmap = VarMap::new();
    let synth = Synth::new(
        &config,
        seeded_var_builder(&varmap, fit_options.seed, DType::F32, device),
        device,
    )?;
    if let (Some(dir), Some(kept)) = (run.resume, kept_timbres) {
        let path = dir.join("model.safetensors");
        let cannot = |e: &dyn std::fmt::Display| crate::TrainError::file(&path, format!("cannot resume: {e}"));
        let mut tensors = load_f32(&path, device).map_err(|e| cannot(&e))?;
        let old = tensors.remove(TIMBRE_TABLE).ok_or_else(|| cannot(&"no timbre table"))?;
        set_inflated(&varmap, &tensors, |name| name == TIMBRE_TABLE).map_err(|e| cannot(&e))?;
        let data = varmap.data().lock().map_err(|_| cannot(&"variable map poisoned"))?;
        let table = data.get(TIMBRE_TABLE).ok_or_else(|| cannot(&"no timbre table"))?;
        let fresh = table.as_tensor().narrow(0, kept, config.timbres.len() - kept)?;
        table.set(&Tensor::cat(&[old, fresh], 0)?)?;
    }
    let checks = (run.eval_samples as u64 / 32).clamp(1, 16);
    let before = measure_synth(&synth, fit_options.seed, checks, device)?;
    let (batch, seed) = (fit_options.batch, fit_options.seed);
    let batches = (0u64..).map(|i| synth_batch(&synth, batch, seed, i, device));
    let outcome = fit(
        &varmap,
        fit_options,
        batches,
        |b| {
            Ok((
                stft_loss(&synthesise_batch(&synth, b)?, &b.target, &STFT_SIZES)?,
                Vec::new(),
            ))
        },
        progress,
    )?;
    let mut record = json!({
        "command": run.command,
        "device": format!("{device:?}"),
        "options": fit_options,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "stft_loss": {
            "about": "multi-resolution STFT loss (FFT sizes 1024, 512, 256, 128; linear + log magnitude) per timbre on held-out world notes",
            "initial": before,
            "final": measure_synth(&synth, fit_options.seed, checks, device)?,
        },
    });
    outcome.record_into(&mut record, fit_options.batch);
    save_model_runs(run.out, &config, &varmap, "grounded-synth", history, &record)?;
    Ok(record)
}

#[cfg(test)]
mod tests;
