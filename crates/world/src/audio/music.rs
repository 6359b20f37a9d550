//! From a music spec to a score: a melody in the mood's key and mode, one note per
//! beat at the spec's tempo, over a bass note each bar (drums get a walking bass, so
//! that their mood is heard too).

use rand::Rng;

use crate::rng::{rng_for, Purpose};
use crate::spec::{Instrument, Mood, MusicSpec};

/// Beats in one bar.
pub const BEATS_PER_BAR: usize = 4;

/// What sounds at one onset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Voice {
    /// The melody instrument at a MIDI pitch.
    Melody(f32),
    /// A soft sine bass at a MIDI pitch.
    Bass(f32),
    /// Bass drum.
    Kick,
    /// Snare drum.
    Snare,
    /// Closed hi-hat.
    Hat,
}

/// One event of the score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Note {
    /// Start, seconds.
    pub onset: f32,
    /// Nominal length, seconds (instruments may ring past it).
    pub duration: f32,
    /// What plays.
    pub voice: Voice,
    /// Loudness, 0 to 1.
    pub velocity: f32,
}

/// The root (MIDI) and scale steps (semitones) of a mood.
pub fn key_of(mood: Mood) -> (i32, &'static [i32]) {
    match mood {
        // C major: bright.
        Mood::Happy => (60, &[0, 2, 4, 5, 7, 9, 11]),
        // A natural minor.
        Mood::Sad => (57, &[0, 2, 3, 5, 7, 8, 10]),
        // F major pentatonic: no half steps, nothing unresolved.
        Mood::Calm => (65, &[0, 2, 4, 7, 9]),
        // E phrygian dominant: the half step above the root and the augmented second.
        Mood::Tense => (64, &[0, 1, 4, 5, 7, 8, 10]),
    }
}

/// MIDI pitch of scale degree `degree` (may exceed one octave) over `root`.
pub fn degree_pitch(root: i32, scale: &[i32], degree: i32) -> f32 {
    let n = scale.len() as i32;
    let octave = degree.div_euclid(n);
    (root + 12 * octave + scale[degree.rem_euclid(n) as usize]) as f32
}

/// Frequency of a MIDI pitch, Hz (A4 = 69 = 440 Hz).
pub fn midi_to_hz(midi: f32) -> f32 {
    440.0 * 2f32.powf((midi - 69.0) / 12.0)
}

/// The score of `seconds` of `music`, from `seed`. The first beat falls at 50 ms.
pub fn score(music: &MusicSpec, seconds: f32, seed: u64) -> Vec<Note> {
    let mut rng = rng_for(seed, Purpose::Melody);
    let beat = 60.0 / music.tempo_bpm as f32;
    let (root, scale) = key_of(music.mood);
    let n = scale.len() as i32;
    let mut notes = Vec::new();
    let mut degree: i32 = 0;
    let mut beat_index = 0usize;
    loop {
        let onset = 0.05 + beat_index as f32 * beat;
        if onset >= seconds {
            break;
        }
        let downbeat = beat_index.is_multiple_of(BEATS_PER_BAR);
        let velocity = if downbeat {
            1.0
        } else {
            0.78 + rng.random_range(-0.05..0.05)
        };
        // A random walk over the scale that returns home at the start of every
        // second bar, so the key is heard.
        degree = if beat_index.is_multiple_of(2 * BEATS_PER_BAR) {
            if rng.random_bool(0.7) {
                0
            } else {
                n
            }
        } else {
            (degree + [-2, -1, -1, 1, 1, 2, 0][rng.random_range(0..7)]).clamp(-2, 2 * n - 1)
        };
        let bar_root = if (beat_index / BEATS_PER_BAR).is_multiple_of(2) {
            0
        } else {
            4.min(n - 1)
        };
        match music.instrument {
            Instrument::Drums => {
                let hit = if beat_index.is_multiple_of(2) {
                    Voice::Kick
                } else {
                    Voice::Snare
                };
                notes.push(Note {
                    onset,
                    duration: beat,
                    voice: hit,
                    velocity,
                });
                notes.push(Note {
                    onset,
                    duration: beat * 0.5,
                    voice: Voice::Hat,
                    velocity: velocity * 0.6,
                });
                // One octave down, not two: low enough to be a bass, high enough that its
                // semitones (and so the mood) can still be told apart.
                let bass = degree_pitch(root - 12, scale, degree.rem_euclid(n));
                notes.push(Note {
                    onset,
                    duration: beat * 0.9,
                    voice: Voice::Bass(bass),
                    velocity: velocity * 0.8,
                });
            }
            _ => {
                let pitch = degree_pitch(root, scale, degree);
                notes.push(Note {
                    onset,
                    duration: beat,
                    voice: Voice::Melody(pitch),
                    velocity,
                });
                if downbeat {
                    let bass = degree_pitch(root - 24, scale, bar_root);
                    let bar = beat * BEATS_PER_BAR as f32;
                    notes.push(Note {
                        onset,
                        duration: bar,
                        voice: Voice::Bass(bass),
                        velocity: 0.55,
                    });
                }
            }
        }
        beat_index += 1;
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_fall_on_beats_and_in_key() {
        for mood in Mood::ALL {
            let music = MusicSpec {
                instrument: Instrument::Piano,
                mood: *mood,
                tempo_bpm: 120,
            };
            let notes = score(&music, 4.0, 3);
            let (root, scale) = key_of(*mood);
            let melody: Vec<_> = notes.iter().filter(|n| matches!(n.voice, Voice::Melody(_))).collect();
            assert_eq!(melody.len(), 8);
            for (i, note) in melody.iter().enumerate() {
                assert!((note.onset - (0.05 + 0.5 * i as f32)).abs() < 1e-5);
                let Voice::Melody(p) = note.voice else { unreachable!() };
                let step = (p as i32 - root).rem_euclid(12);
                assert!(scale.contains(&step), "{mood}: {p} not in key");
            }
        }
    }

    #[test]
    fn a4_is_440() {
        assert!((midi_to_hz(69.0) - 440.0).abs() < 1e-3);
        assert!((midi_to_hz(81.0) - 880.0).abs() < 1e-2);
    }
}
