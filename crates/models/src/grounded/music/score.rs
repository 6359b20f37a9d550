//! A score: notes on a beat grid, by voice, and its tokens (REMI, Huang & Yang 2020:
//! bar, position, then each event's voice, pitch, duration and velocity).
//!
//! The voices are the melody (played on the score's instrument), the bass, and the
//! percussion named by the [`ScoreVocab`] that the trainer writes into a note model's
//! config. A score is readable JSON (`meta.json`) and a MIDI file ([`Score::to_midi`]).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Beats in a bar.
pub const BEATS_PER_BAR: usize = 4;
/// Grid positions in a bar (a position is half a beat).
pub const POSITIONS_PER_BAR: usize = 8;
/// Lowest and highest MIDI pitch a score holds.
pub const PITCH_RANGE: (u32, u32) = (24, 96);
/// Longest event, in positions (two bars).
pub const MAX_DURATION: u32 = 16;
/// Velocity bins.
pub const VELOCITY_BINS: u32 = 8;
/// The melody voice's name.
pub const MELODY: &str = "melody";
/// The bass voice's name.
pub const BASS: &str = "bass";

/// The names a note model was trained with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScoreVocab {
    /// Instruments, in id order.
    pub instruments: Vec<String>,
    /// Moods, in id order.
    pub moods: Vec<String>,
    /// Unpitched voices (drums), in id order.
    pub percussion: Vec<String>,
}

impl ScoreVocab {
    /// Every voice: melody, bass, then the percussion.
    pub fn voices(&self) -> Vec<String> {
        [MELODY.to_string(), BASS.to_string()]
            .into_iter()
            .chain(self.percussion.iter().cloned())
            .collect()
    }

    fn id(names: &[String], name: &str, field: &str) -> Result<u32> {
        names.iter().position(|n| n == name).map(|i| i as u32).ok_or_else(|| {
            ModelError::Invalid(format!(
                "{field}: unknown value {name:?}; allowed: {}",
                names.join(", ")
            ))
        })
    }

    /// The id of instrument `name`.
    pub fn instrument_id(&self, name: &str) -> Result<u32> {
        Self::id(&self.instruments, name, "instrument")
    }

    /// The id of mood `name`.
    pub fn mood_id(&self, name: &str) -> Result<u32> {
        Self::id(&self.moods, name, "mood")
    }
}

/// One note of a score.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScoreNote {
    /// Start, beats from the first beat.
    pub beat: f32,
    /// Length, beats.
    pub beats: f32,
    /// Voice name ([`MELODY`], [`BASS`] or a percussion name).
    pub voice: String,
    /// MIDI pitch of pitched voices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch: Option<f32>,
    /// Loudness, 0 to 1.
    pub velocity: f32,
}

/// A score: its instrument and mood, and its notes in time order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Score {
    /// Instrument of the melody.
    pub instrument: String,
    /// Mood it was made in.
    pub mood: String,
    /// The notes, by start.
    pub notes: Vec<ScoreNote>,
}

/// What a token means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// A new bar.
    Bar,
    /// A grid position within the bar.
    Position(u32),
    /// The next event's voice.
    Voice(u32),
    /// The event's MIDI pitch.
    Pitch(u32),
    /// The event's length, positions.
    Duration(u32),
    /// The event's velocity bin.
    Velocity(u32),
    /// Conditioning: the instrument.
    Instrument(u32),
    /// Conditioning: the mood.
    Mood(u32),
}

/// Token ids of a vocabulary: the kinds in [`Token`] order, one range each.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLayout {
    starts: [u32; 8],
    sizes: [u32; 8],
    voices: usize,
}

impl TokenLayout {
    /// The layout for `vocab`.
    pub fn new(vocab: &ScoreVocab) -> TokenLayout {
        let voices = vocab.voices().len();
        let sizes = [
            1,
            POSITIONS_PER_BAR as u32,
            voices as u32,
            PITCH_RANGE.1 - PITCH_RANGE.0 + 1,
            MAX_DURATION,
            VELOCITY_BINS,
            vocab.instruments.len() as u32,
            vocab.moods.len() as u32,
        ];
        let mut starts = [0u32; 8];
        for i in 1..8 {
            starts[i] = starts[i - 1] + sizes[i - 1];
        }
        TokenLayout { starts, sizes, voices }
    }

    /// Tokens in the vocabulary.
    pub fn len(&self) -> usize {
        (self.starts[7] + self.sizes[7]) as usize
    }

    /// Whether the vocabulary is empty (never: it always holds the bar token).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Kind index of a token (its place in [`Token`]) and its value.
    fn kind(token: Token) -> (usize, u32) {
        match token {
            Token::Bar => (0, 0),
            Token::Position(v) => (1, v),
            Token::Voice(v) => (2, v),
            Token::Pitch(v) => (3, v - PITCH_RANGE.0),
            Token::Duration(v) => (4, v - 1),
            Token::Velocity(v) => (5, v),
            Token::Instrument(v) => (6, v),
            Token::Mood(v) => (7, v),
        }
    }

    /// The id of `token`.
    pub fn id(&self, token: Token) -> u32 {
        let (kind, value) = Self::kind(token);
        self.starts[kind] + value.min(self.sizes[kind] - 1)
    }

    /// The token of `id`, if it is in the vocabulary.
    pub fn token(&self, id: u32) -> Option<Token> {
        let kind = (0..8).rev().find(|&k| id >= self.starts[k])?;
        let value = id - self.starts[kind];
        if value >= self.sizes[kind] {
            return None;
        }
        Some(match kind {
            0 => Token::Bar,
            1 => Token::Position(value),
            2 => Token::Voice(value),
            3 => Token::Pitch(value + PITCH_RANGE.0),
            4 => Token::Duration(value + 1),
            5 => Token::Velocity(value),
            6 => Token::Instrument(value),
            _ => Token::Mood(value),
        })
    }

    /// The id range of kind `kind` (its place in [`Token`]).
    pub fn range(&self, kind: usize) -> std::ops::Range<u32> {
        self.starts[kind]..self.starts[kind] + self.sizes[kind]
    }

    /// Whether voice `v` carries a pitch (melody and bass).
    pub fn pitched(&self, voice: u32) -> bool {
        voice < 2 && (voice as usize) < self.voices
    }
}

impl Score {
    /// The tokens of the score: instrument, mood, then bar after bar.
    pub fn tokens(&self, vocab: &ScoreVocab) -> Result<Vec<u32>> {
        let layout = TokenLayout::new(vocab);
        let voices = vocab.voices();
        let mut out = vec![
            layout.id(Token::Instrument(vocab.instrument_id(&self.instrument)?)),
            layout.id(Token::Mood(vocab.mood_id(&self.mood)?)),
        ];
        let per_beat = (POSITIONS_PER_BAR / BEATS_PER_BAR) as f32;
        let mut notes: Vec<&ScoreNote> = self.notes.iter().collect();
        notes.sort_by(|a, b| a.beat.total_cmp(&b.beat));
        let mut bar = None;
        let mut position = None;
        for note in notes {
            let slot = (note.beat.max(0.0) * per_beat).round() as usize;
            let (this_bar, this_position) = (slot / POSITIONS_PER_BAR, (slot % POSITIONS_PER_BAR) as u32);
            while bar.is_none_or(|b| b < this_bar) {
                out.push(layout.id(Token::Bar));
                bar = Some(bar.map_or(0, |b| b + 1));
                position = None;
            }
            if position != Some(this_position) {
                out.push(layout.id(Token::Position(this_position)));
                position = Some(this_position);
            }
            let voice = ScoreVocab::id(&voices, &note.voice, "voice")?;
            out.push(layout.id(Token::Voice(voice)));
            if layout.pitched(voice) {
                let pitch = note.pitch.ok_or_else(|| {
                    ModelError::Invalid(format!("a {} note at beat {} has no pitch", note.voice, note.beat))
                })?;
                out.push(layout.id(Token::Pitch((pitch.round() as u32).clamp(PITCH_RANGE.0, PITCH_RANGE.1))));
            }
            let duration = ((note.beats * per_beat).round() as u32).clamp(1, MAX_DURATION);
            out.push(layout.id(Token::Duration(duration)));
            let velocity = ((note.velocity * VELOCITY_BINS as f32) as u32).min(VELOCITY_BINS - 1);
            out.push(layout.id(Token::Velocity(velocity)));
        }
        Ok(out)
    }

    /// The score of `tokens` (as [`Self::tokens`] writes them, or a model's): an
    /// event cut short or out of order is dropped.
    pub fn from_tokens(tokens: &[u32], vocab: &ScoreVocab) -> Score {
        let layout = TokenLayout::new(vocab);
        let voices = vocab.voices();
        let per_beat = (POSITIONS_PER_BAR / BEATS_PER_BAR) as f32;
        let (mut instrument, mut mood) = (String::new(), String::new());
        let mut notes = Vec::new();
        let (mut bar, mut position) = (-1i64, 0u32);
        // The event being read: voice, pitch, duration.
        let mut event: (Option<u32>, Option<u32>, Option<u32>) = (None, None, None);
        for &id in tokens {
            let Some(token) = layout.token(id) else { continue };
            match token {
                Token::Instrument(i) => instrument = vocab.instruments[i as usize].clone(),
                Token::Mood(m) => mood = vocab.moods[m as usize].clone(),
                Token::Bar => {
                    bar += 1;
                    position = 0;
                    event = (None, None, None);
                }
                Token::Position(p) => {
                    position = p;
                    event = (None, None, None);
                }
                Token::Voice(v) => event = (Some(v), None, None),
                Token::Pitch(p) => event.1 = Some(p),
                Token::Duration(d) => event.2 = Some(d),
                Token::Velocity(v) => {
                    if let (Some(voice), pitch, Some(duration)) = event {
                        if bar >= 0 && layout.pitched(voice) == pitch.is_some() {
                            let slot = bar as usize * POSITIONS_PER_BAR + position as usize;
                            notes.push(ScoreNote {
                                beat: slot as f32 / per_beat,
                                beats: duration as f32 / per_beat,
                                voice: voices[voice as usize].clone(),
                                pitch: pitch.map(|p| p as f32),
                                velocity: (v as f32 + 0.5) / VELOCITY_BINS as f32,
                            });
                        }
                    }
                    event = (None, None, None);
                }
            }
        }
        Score {
            instrument,
            mood,
            notes,
        }
    }

    /// Beats the score spans (the end of its last note).
    pub fn beats(&self) -> f32 {
        self.notes.iter().map(|n| n.beat + n.beats).fold(0.0, f32::max)
    }

    /// The score as a standard MIDI file (format 1: the melody on channel 1, the
    /// bass on channel 2, drums on channel 10 with General MIDI keys in
    /// `drum_keys` order of the percussion), at `tempo_bpm`.
    pub fn to_midi(&self, vocab: &ScoreVocab, tempo_bpm: f32, drum_keys: &[u8]) -> Result<Vec<u8>> {
        use midly::num::{u15, u24, u28, u4, u7};
        use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
        const TICKS: u16 = 480;
        if !(tempo_bpm > 0.0 && tempo_bpm.is_finite()) {
            return Err(ModelError::Invalid(format!(
                "tempo is {tempo_bpm} bpm; allowed above 0"
            )));
        }
        let mut events: Vec<(u32, bool, u8, u8, u8)> = Vec::new(); // tick, on, channel, key, velocity
        for note in &self.notes {
            let (channel, key) = match note.voice.as_str() {
                MELODY => (0, note.pitch.unwrap_or(60.0).round() as u8),
                BASS => (1, note.pitch.unwrap_or(36.0).round() as u8),
                drum => {
                    let i = vocab.percussion.iter().position(|p| p == drum).unwrap_or(0);
                    (9, *drum_keys.get(i).unwrap_or(&38))
                }
            };
            let start = (note.beat * TICKS as f32).round() as u32;
            let end = start + ((note.beats * TICKS as f32).round() as u32).max(1);
            let velocity = (note.velocity * 127.0).round().clamp(1.0, 127.0) as u8;
            events.push((start, true, channel, key.min(127), velocity));
            events.push((end, false, channel, key.min(127), 0));
        }
        // Offs before ons at the same tick, so that a repeated key sounds again.
        events.sort_by_key(|e| (e.0, e.1));
        let micros = (60_000_000.0 / tempo_bpm).round() as u32;
        let mut track = vec![TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(micros.min(0xFF_FFFF)))),
        }];
        let mut last = 0;
        for (tick, on, channel, key, velocity) in events {
            let message = if on {
                MidiMessage::NoteOn {
                    key: u7::new(key),
                    vel: u7::new(velocity.min(127)),
                }
            } else {
                MidiMessage::NoteOff {
                    key: u7::new(key),
                    vel: u7::new(0),
                }
            };
            track.push(TrackEvent {
                delta: u28::new(tick - last),
                kind: TrackEventKind::Midi {
                    channel: u4::new(channel),
                    message,
                },
            });
            last = tick;
        }
        track.push(TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        });
        let smf = Smf {
            header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(TICKS))),
            tracks: vec![track],
        };
        let mut bytes = Vec::new();
        smf.write_std(&mut bytes)
            .map_err(|e| ModelError::Invalid(format!("cannot write MIDI: {e}")))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn vocab() -> ScoreVocab {
        ScoreVocab {
            instruments: vec!["keys".into(), "kit".into()],
            moods: vec!["up".into(), "down".into()],
            percussion: vec!["boom".into(), "tick".into()],
        }
    }

    fn score() -> Score {
        let note = |beat: f32, beats: f32, voice: &str, pitch: Option<f32>| ScoreNote {
            beat,
            beats,
            voice: voice.into(),
            pitch,
            velocity: 0.8125,
        };
        Score {
            instrument: "keys".into(),
            mood: "down".into(),
            notes: vec![
                note(0.0, 1.0, MELODY, Some(60.0)),
                note(0.0, 4.0, BASS, Some(36.0)),
                note(1.0, 1.0, MELODY, Some(62.0)),
                note(4.5, 0.5, "tick", None),
                note(9.0, 1.0, MELODY, Some(67.0)),
            ],
        }
    }

    #[test]
    fn a_score_round_trips_through_its_tokens() {
        let vocab = vocab();
        let tokens = score().tokens(&vocab).unwrap();
        let layout = TokenLayout::new(&vocab);
        assert!(tokens.iter().all(|&t| (t as usize) < layout.len()));
        for id in 0..layout.len() as u32 {
            assert_eq!(layout.id(layout.token(id).unwrap()), id);
        }
        assert_eq!(Score::from_tokens(&tokens, &vocab), score());
        // An event cut short is dropped, the rest is kept.
        let cut = &tokens[..tokens.len() - 1];
        assert_eq!(Score::from_tokens(cut, &vocab).notes.len(), 4);
    }

    #[test]
    fn a_score_writes_a_midi_file_that_reads_back() {
        let bytes = score().to_midi(&vocab(), 90.0, &[36, 42]).unwrap();
        let smf = midly::Smf::parse(&bytes).unwrap();
        let ons = smf.tracks[0]
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    midly::TrackEventKind::Midi {
                        message: midly::MidiMessage::NoteOn { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(ons, 5);
        assert!(score().to_midi(&vocab(), 0.0, &[]).is_err());
        let mut bad = score();
        bad.notes[0].voice = "choir".into();
        assert!(bad.tokens(&vocab()).unwrap_err().to_string().contains("choir"));
    }
}
