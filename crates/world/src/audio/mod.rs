//! The audio renderer: music from a score plus ambience, 16 kHz mono by default,
//! deterministic from (spec, seed).

pub mod ambience;
pub mod filter;
pub mod instruments;
pub mod music;

use crate::error::{Result, WorldError};
use crate::rng::{rng_for, Purpose};
use crate::spec::SceneSpec;

/// The built-in models' sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Longest render accepted, seconds.
pub const MAX_SECONDS: f32 = 600.0;

/// Scales `xs` so that its peak is `peak` (silence stays silence).
fn normalise_peak(xs: &mut [f32], peak: f32) {
    let max = xs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max > 1e-9 {
        xs.iter_mut().for_each(|x| *x *= peak / max);
    }
}

fn rms(xs: &[f32]) -> f32 {
    (xs.iter().map(|x| x * x).sum::<f32>() / xs.len().max(1) as f32).sqrt()
}

/// `seconds` of the scene's sound at `sample_rate`: its music over its ambience,
/// peak at most 0.9. A scene with neither is silent.
pub fn render_audio(spec: &SceneSpec, seed: u64, seconds: f32, sample_rate: u32) -> Result<Vec<f32>> {
    if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(WorldError::InvalidOption(format!(
            "seconds is {seconds}; allowed more than 0, up to {MAX_SECONDS}"
        )));
    }
    if !(8_000..=96_000).contains(&sample_rate) {
        return Err(WorldError::InvalidOption(format!(
            "sample rate is {sample_rate}; allowed 8000 to 96000"
        )));
    }
    let sr = sample_rate as f32;
    let n = (seconds * sr).round() as usize;
    let mut rng = rng_for(seed, Purpose::Sound);
    let mut mix = vec![0.0f32; n];
    if let Some(music) = &spec.music {
        for note in music::score(music, seconds, seed) {
            let rendered =
                instruments::render_voice(music.instrument, note.voice, note.duration, note.velocity, sr, &mut rng);
            let start = (note.onset * sr).round() as usize;
            for (out, x) in mix.iter_mut().skip(start).zip(rendered) {
                *out += x;
            }
        }
        normalise_peak(&mut mix, 0.8);
    }
    if let Some(kind) = spec.ambience {
        let mut bed = ambience::render_ambience(kind, n, sr, &mut rng);
        let target = if spec.music.is_some() { 0.05 } else { 0.2 };
        let level = rms(&bed);
        if level > 1e-9 {
            bed.iter_mut().for_each(|x| *x *= target / level);
        }
        mix.iter_mut().zip(&bed).for_each(|(m, b)| *m += b);
    }
    let peak = mix.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 0.9 {
        normalise_peak(&mut mix, 0.9);
    }
    Ok(mix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{estimate_pitch, estimate_tempo};
    use crate::spec::*;
    use rand::SeedableRng;

    fn music_spec(instrument: Instrument, mood: Mood, tempo_bpm: u32, ambience: Option<Ambience>) -> SceneSpec {
        SceneSpec {
            version: SPEC_VERSION,
            background: Background::SunsetSea,
            objects: vec![ObjectSpec {
                shape: Shape::Circle,
                colour: Colour::Red,
                size: Size::Small,
                placement: Placement::Free,
                motion: Motion::Still,
            }],
            lighting: Lighting::Steady,
            style: Style::Flat,
            music: Some(MusicSpec {
                instrument,
                mood,
                tempo_bpm,
            }),
            ambience,
        }
    }

    #[test]
    fn tempo_is_heard_within_five_percent() {
        let mut worst: f32 = 0.0;
        let mut failures = Vec::new();
        for (k, &instrument) in Instrument::ALL.iter().enumerate() {
            for (j, bpm) in [60u32, 75, 92, 110, 128, 145, 160].into_iter().enumerate() {
                let mood = Mood::ALL[(k + j) % Mood::ALL.len()];
                let ambience = [None, Some(Ambience::Waves), Some(Ambience::Wind), Some(Ambience::Rain)][j % 4];
                let spec = music_spec(instrument, mood, bpm, ambience);
                let xs = render_audio(&spec, (k * 10 + j) as u64, 8.0, SAMPLE_RATE).unwrap();
                let est = estimate_tempo(&xs, SAMPLE_RATE, 60.0, 160.0).expect("a tempo");
                let err = (est - bpm as f32).abs() / bpm as f32;
                worst = worst.max(err);
                if err >= 0.05 {
                    failures.push(format!("{instrument} {mood} {bpm} bpm {ambience:?}: heard {est:.1}"));
                }
            }
        }
        eprintln!("worst tempo error {:.2}%", worst * 100.0);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn notes_sound_at_their_pitch() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for instrument in [
            Instrument::Piano,
            Instrument::Strings,
            Instrument::Flute,
            Instrument::Pluck,
        ] {
            for midi in [57.0f32, 64.0, 69.0, 76.0] {
                let voice = music::Voice::Melody(midi);
                let xs = instruments::render_voice(instrument, voice, 1.0, 1.0, SAMPLE_RATE as f32, &mut rng);
                // Skip the attack; read a steady stretch.
                let f = estimate_pitch(&xs[1600..], SAMPLE_RATE, 60.0, 2000.0).expect("a pitch");
                let want = music::midi_to_hz(midi);
                assert!(
                    (f - want).abs() / want < 0.01,
                    "{instrument} midi {midi}: {f:.1} Hz, want {want:.1}"
                );
            }
        }
    }

    #[test]
    fn audio_is_deterministic_bounded_and_sized() {
        let spec = music_spec(Instrument::Pluck, Mood::Happy, 100, Some(Ambience::Rain));
        let a = render_audio(&spec, 3, 2.5, SAMPLE_RATE).unwrap();
        assert_eq!(a, render_audio(&spec, 3, 2.5, SAMPLE_RATE).unwrap());
        assert_ne!(a, render_audio(&spec, 4, 2.5, SAMPLE_RATE).unwrap());
        assert_eq!(a.len(), 40_000);
        assert!(a.iter().all(|x| x.abs() <= 0.9001));
        assert!(rms(&a) > 0.02);
        assert!(render_audio(&spec, 3, 0.0, SAMPLE_RATE)
            .unwrap_err()
            .to_string()
            .contains("seconds is 0"));
        assert!(render_audio(&spec, 3, 1e9, SAMPLE_RATE).is_err());
    }
}
