//! Random scene specs, and the held-out split.
//!
//! The held-out split is compositional, as in GenEval and T2I-CompBench: certain
//! pairs of attribute values (a red triangle, a bouncing star, a sad flute) never
//! appear in any training spec, while each value on its own does. Evaluation on
//! held-out specs then measures whether a model composes, not whether it remembers.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::rng::{rng_for, Purpose};
use crate::spec::*;

/// Which side of the compositional split a spec comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Specs with no held-out pair: what models train on.
    Train,
    /// Specs with at least one held-out pair: what evaluation uses.
    Heldout,
}

impl std::str::FromStr for Split {
    type Err = crate::WorldError;
    fn from_str(s: &str) -> Result<Split, crate::WorldError> {
        match s {
            "train" => Ok(Split::Train),
            "heldout" => Ok(Split::Heldout),
            _ => Err(crate::WorldError::UnknownValue {
                what: "split",
                got: s.into(),
                allowed: "train, heldout".into(),
            }),
        }
    }
}

/// Colour x shape pairs no training spec contains: one per colour and one per shape.
pub const HELDOUT_COLOUR_SHAPE: &[(Colour, Shape)] = &[
    (Colour::Red, Shape::Triangle),
    (Colour::Orange, Shape::Hexagon),
    (Colour::Yellow, Shape::Square),
    (Colour::Green, Shape::Heart),
    (Colour::Blue, Shape::Star),
    (Colour::Purple, Shape::Circle),
    (Colour::Pink, Shape::Diamond),
    (Colour::White, Shape::Cross),
];

/// Shape x motion pairs no training spec contains.
pub const HELDOUT_SHAPE_MOTION: &[(Shape, Motion)] = &[
    (Shape::Star, Motion::Bounce),
    (Shape::Square, Motion::MoveLeft),
    (Shape::Heart, Motion::Grow),
    (Shape::Triangle, Motion::Spin),
    (Shape::Circle, Motion::MoveUp),
    (Shape::Diamond, Motion::Shrink),
];

/// Instrument x mood pairs no training spec contains.
pub const HELDOUT_INSTRUMENT_MOOD: &[(Instrument, Mood)] = &[
    (Instrument::Flute, Mood::Sad),
    (Instrument::Drums, Mood::Calm),
    (Instrument::Piano, Mood::Tense),
    (Instrument::Strings, Mood::Happy),
];

/// Whether any object, or the music, of `spec` holds a held-out pair.
pub fn is_heldout(spec: &SceneSpec) -> bool {
    let objects = spec.objects.iter().any(|o| {
        HELDOUT_COLOUR_SHAPE.contains(&(o.colour, o.shape)) || HELDOUT_SHAPE_MOTION.contains(&(o.shape, o.motion))
    });
    let music = spec
        .music
        .is_some_and(|m| HELDOUT_INSTRUMENT_MOOD.contains(&(m.instrument, m.mood)));
    objects || music
}

/// The split a spec belongs to.
pub fn split_of(spec: &SceneSpec) -> Split {
    if is_heldout(spec) {
        Split::Heldout
    } else {
        Split::Train
    }
}

/// Draws random specs. Fields are the probabilities of each kind of scene.
#[derive(Clone, Debug)]
pub struct SpecSampler {
    /// Chance that a scene has music.
    pub p_music: f64,
    /// Chance that a scene has ambience.
    pub p_ambience: f64,
    /// Chance that an object moves (videos).
    pub p_motion: f64,
    /// Chance of the flat style; the rest is shared by the other styles.
    pub p_flat: f64,
    /// Chance of a steady light; the rest is shared by sunrise and sunset.
    pub p_steady: f64,
}

impl Default for SpecSampler {
    fn default() -> Self {
        SpecSampler {
            p_music: 0.7,
            p_ambience: 0.5,
            p_motion: 0.8,
            p_flat: 0.4,
            p_steady: 0.6,
        }
    }
}

/// The GenEval-like kinds of scene the sampler mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SceneKind {
    Single,
    Pair,
    Count,
    Crowd,
}

impl SpecSampler {
    /// The spec of sample `index` under `seed` in `split`; the same arguments always
    /// give the same spec.
    pub fn sample(&self, split: Split, seed: u64) -> SceneSpec {
        let mut rng = rng_for(seed, Purpose::Spec);
        // Rejection keeps the two splits' marginals close; about a third of raw
        // specs are held-out, so this loop ends in a few draws.
        loop {
            let spec = self.draw(&mut rng);
            if split_of(&spec) == split {
                return spec;
            }
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> SceneSpec {
        let kind = *[
            SceneKind::Single,
            SceneKind::Single,
            SceneKind::Pair,
            SceneKind::Pair,
            SceneKind::Count,
            SceneKind::Crowd,
        ]
        .choose(rng)
        .unwrap_or(&SceneKind::Single);
        let objects = match kind {
            SceneKind::Single => {
                let mut o = self.object(rng, None);
                if rng.random_bool(0.5) {
                    o.placement = Placement::At(*Position::ALL.choose(rng).unwrap_or(&Position::Centre));
                }
                vec![o]
            }
            SceneKind::Pair => {
                let a = self.object(rng, None);
                let mut b = self.distinct_object(rng, &[a]);
                let mut a = a;
                match rng.random_range(0..3) {
                    0 => {}
                    1 => {
                        let picked: Vec<_> = Position::ALL.choose_multiple(rng, 2).copied().collect();
                        a.placement = Placement::At(picked[0]);
                        b.placement = Placement::At(picked[1]);
                    }
                    _ => {
                        let relation = *Relation::ALL.choose(rng).unwrap_or(&Relation::LeftOf);
                        b.placement = Placement::Relative { relation, of: 0 };
                        // Relations are judged on the resting pose; moves stay small.
                        if rng.random_bool(0.5) {
                            a.motion = Motion::Still;
                            b.motion = Motion::Still;
                        }
                    }
                }
                vec![a, b]
            }
            SceneKind::Count => {
                let mut o = self.object(rng, Some(Size::Small));
                o.placement = Placement::Free;
                vec![o; rng.random_range(2..=MAX_OBJECTS)]
            }
            SceneKind::Crowd => {
                let n = rng.random_range(3..=MAX_OBJECTS);
                let mut objects: Vec<ObjectSpec> = Vec::with_capacity(n);
                let positions: Vec<Position> = Position::ALL.choose_multiple(rng, n).copied().collect();
                let named = rng.random_bool(0.5);
                for position in positions {
                    let mut o = self.distinct_object(rng, &objects);
                    o.size = Size::Small;
                    if named {
                        o.placement = Placement::At(position);
                    }
                    objects.push(o);
                }
                objects
            }
        };
        let style = if rng.random_bool(self.p_flat) {
            Style::Flat
        } else {
            *Style::ALL[1..].choose(rng).unwrap_or(&Style::Flat)
        };
        let lighting = if rng.random_bool(self.p_steady) {
            Lighting::Steady
        } else {
            *Lighting::ALL[1..].choose(rng).unwrap_or(&Lighting::Steady)
        };
        let music = rng.random_bool(self.p_music).then(|| MusicSpec {
            instrument: *Instrument::ALL.choose(rng).unwrap_or(&Instrument::Piano),
            mood: *Mood::ALL.choose(rng).unwrap_or(&Mood::Happy),
            tempo_bpm: rng.random_range(MIN_TEMPO_BPM..=MAX_TEMPO_BPM),
        });
        let ambience = rng
            .random_bool(self.p_ambience)
            .then(|| *Ambience::ALL.choose(rng).unwrap_or(&Ambience::Waves));
        SceneSpec {
            version: SPEC_VERSION,
            background: *Background::ALL.choose(rng).unwrap_or(&Background::DaySky),
            objects,
            lighting,
            style,
            music,
            ambience,
        }
    }

    fn object(&self, rng: &mut ChaCha8Rng, size: Option<Size>) -> ObjectSpec {
        let shape = *Shape::ALL.choose(rng).unwrap_or(&Shape::Circle);
        let motion = if rng.random_bool(self.p_motion) {
            // A spinning circle looks still: it would teach a label the pixels lack.
            let moving: Vec<Motion> = Motion::ALL[1..]
                .iter()
                .copied()
                .filter(|m| !(shape == Shape::Circle && *m == Motion::Spin))
                .collect();
            *moving.choose(rng).unwrap_or(&Motion::Still)
        } else {
            Motion::Still
        };
        ObjectSpec {
            shape,
            colour: *Colour::ALL.choose(rng).unwrap_or(&Colour::Red),
            size: size.unwrap_or_else(|| *Size::ALL.choose(rng).unwrap_or(&Size::Small)),
            placement: Placement::Free,
            motion,
        }
    }

    /// An object whose (shape, colour) differs from every one in `others`, so that a
    /// caption can name each object unambiguously.
    fn distinct_object(&self, rng: &mut ChaCha8Rng, others: &[ObjectSpec]) -> ObjectSpec {
        loop {
            let o = self.object(rng, None);
            if others.iter().all(|p| (p.shape, p.colour) != (o.shape, o.colour)) {
                return o;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn same_seed_same_spec() {
        let sampler = SpecSampler::default();
        for seed in 0..50 {
            assert_eq!(sampler.sample(Split::Train, seed), sampler.sample(Split::Train, seed));
        }
        assert_ne!(sampler.sample(Split::Train, 1), sampler.sample(Split::Train, 2));
    }

    #[test]
    fn heldout_never_leaks_into_train() {
        let sampler = SpecSampler::default();
        for seed in 0..3000 {
            let spec = sampler.sample(Split::Train, seed);
            spec.validate().unwrap();
            for o in &spec.objects {
                assert!(!HELDOUT_COLOUR_SHAPE.contains(&(o.colour, o.shape)), "{spec:?}");
                assert!(!HELDOUT_SHAPE_MOTION.contains(&(o.shape, o.motion)), "{spec:?}");
            }
            if let Some(m) = spec.music {
                assert!(!HELDOUT_INSTRUMENT_MOOD.contains(&(m.instrument, m.mood)));
            }
            let held = sampler.sample(Split::Heldout, seed);
            held.validate().unwrap();
            assert!(is_heldout(&held));
        }
    }

    #[test]
    fn every_attribute_value_is_reachable_in_training() {
        let sampler = SpecSampler::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut counts = HashSet::new();
        for seed in 0..4000 {
            let spec = sampler.sample(Split::Train, seed);
            counts.insert(spec.objects.len());
            seen.insert(format!("background:{}", spec.background));
            seen.insert(format!("style:{}", spec.style));
            seen.insert(format!("lighting:{}", spec.lighting));
            for o in &spec.objects {
                seen.insert(format!("shape:{}", o.shape));
                seen.insert(format!("colour:{}", o.colour));
                seen.insert(format!("size:{}", o.size));
                seen.insert(format!("motion:{}", o.motion));
                match o.placement {
                    Placement::At(p) => seen.insert(format!("position:{p}")),
                    Placement::Relative { relation, .. } => seen.insert(format!("relation:{relation}")),
                    Placement::Free => seen.insert("free".into()),
                };
            }
            if let Some(m) = spec.music {
                seen.insert(format!("instrument:{}", m.instrument));
                seen.insert(format!("mood:{}", m.mood));
                seen.insert(format!("tempo:{}", TempoClass::of(m.tempo_bpm)));
            }
            if let Some(a) = spec.ambience {
                seen.insert(format!("ambience:{a}"));
            }
        }
        let mut expected: Vec<String> = Vec::new();
        expected.extend(Background::ALL.iter().map(|v| format!("background:{v}")));
        expected.extend(Style::ALL.iter().map(|v| format!("style:{v}")));
        expected.extend(Lighting::ALL.iter().map(|v| format!("lighting:{v}")));
        expected.extend(Shape::ALL.iter().map(|v| format!("shape:{v}")));
        expected.extend(Colour::ALL.iter().map(|v| format!("colour:{v}")));
        expected.extend(Size::ALL.iter().map(|v| format!("size:{v}")));
        expected.extend(Motion::ALL.iter().map(|v| format!("motion:{v}")));
        expected.extend(Position::ALL.iter().map(|v| format!("position:{v}")));
        expected.extend(Relation::ALL.iter().map(|v| format!("relation:{v}")));
        expected.extend(Instrument::ALL.iter().map(|v| format!("instrument:{v}")));
        expected.extend(Mood::ALL.iter().map(|v| format!("mood:{v}")));
        expected.extend(TempoClass::ALL.iter().map(|v| format!("tempo:{v}")));
        expected.extend(Ambience::ALL.iter().map(|v| format!("ambience:{v}")));
        for value in expected {
            assert!(seen.contains(&value), "{value} never sampled in training");
        }
        assert_eq!(counts, (1..=MAX_OBJECTS).collect());
    }

    #[test]
    fn heldout_pairs_leave_every_value_trainable() {
        // Each held-out list removes at most one pair per value, so every value keeps
        // partners in training.
        for colour in Colour::ALL {
            assert!(HELDOUT_COLOUR_SHAPE.iter().filter(|(c, _)| c == colour).count() <= 1);
        }
        for shape in Shape::ALL {
            assert!(HELDOUT_COLOUR_SHAPE.iter().filter(|(_, s)| s == shape).count() <= 1);
            assert!(HELDOUT_SHAPE_MOTION.iter().filter(|(s, _)| s == shape).count() <= 1);
        }
    }
}
