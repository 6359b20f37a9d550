//! Captions in English and Chinese: many templates, synonyms and orderings per spec,
//! so that a text encoder learns the language and not one template.
//!
//! A caption is drawn with a random generator: the same (spec, options, rng state)
//! always gives the same text, and different draws give different phrasings of the
//! same content (the "synonym replacement" augmentation of the design lives here).
//! With `dropout = 0` every attribute relevant to the medium is stated, which is what
//! evaluation prompts use; training uses some dropout so that models also learn to
//! fill in what a user leaves unsaid.

mod en;
pub mod lexicon;
pub mod parse;
mod zh;

use rand::seq::IndexedRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::WorldError;
use crate::rng::{rng_for, Purpose};
use crate::spec::{ObjectSpec, Placement, SceneSpec};

/// Caption language.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl std::str::FromStr for Lang {
    type Err = WorldError;
    fn from_str(s: &str) -> Result<Lang, WorldError> {
        match s {
            "en" => Ok(Lang::En),
            "zh" => Ok(Lang::Zh),
            _ => Err(WorldError::UnknownValue {
                what: "language",
                got: s.into(),
                allowed: "en, zh".into(),
            }),
        }
    }
}

/// What the caption asks for; decides which attributes it may mention.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    /// A still picture: objects, background, style.
    Image,
    /// A clip: also motion and lighting, and the soundtrack if the scene has one.
    Video,
    /// Sound only: music and ambience, sometimes the scene they go with.
    Audio,
}

/// How a caption is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CaptionOptions {
    /// What is asked for.
    pub medium: Medium,
    /// Chance of leaving out each optional detail (size, a flat style, mood, tempo,
    /// and, for clips with music, the objects altogether).
    pub dropout: f64,
}

impl CaptionOptions {
    /// Every attribute stated: evaluation prompts.
    pub fn full(medium: Medium) -> CaptionOptions {
        CaptionOptions { medium, dropout: 0.0 }
    }

    /// Training captions: details sometimes left unsaid.
    pub fn training(medium: Medium) -> CaptionOptions {
        CaptionOptions { medium, dropout: 0.15 }
    }
}

/// One caption of `spec` in `lang`.
pub fn caption(spec: &SceneSpec, lang: Lang, options: CaptionOptions, rng: &mut impl Rng) -> String {
    match lang {
        Lang::En => en::caption(spec, options, rng),
        Lang::Zh => zh::caption(spec, options, rng),
    }
}

/// The caption of sample `seed` (a fixed draw).
pub fn caption_for_seed(spec: &SceneSpec, lang: Lang, options: CaptionOptions, seed: u64) -> String {
    caption(spec, lang, options, &mut rng_for(seed, Purpose::Caption))
}

/// Distinct phrasings among `draws` captions of one spec.
pub fn distinct_captions(
    spec: &SceneSpec,
    lang: Lang,
    options: CaptionOptions,
    draws: usize,
) -> std::collections::BTreeSet<String> {
    let mut rng = rng_for(0, Purpose::Caption);
    (0..draws).map(|_| caption(spec, lang, options, &mut rng)).collect()
}

/// Identical neighbouring objects with no named place are described together
/// ("three red stars").
#[derive(Clone, Copy, Debug)]
pub(crate) struct Group {
    pub object: ObjectSpec,
    pub count: usize,
}

pub(crate) fn groups(spec: &SceneSpec) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for object in &spec.objects {
        match out.last_mut() {
            Some(g) if g.object == *object && object.placement == Placement::Free => g.count += 1,
            _ => out.push(Group {
                object: *object,
                count: 1,
            }),
        }
    }
    out
}

/// A random entry of a phrase list ("" for an empty list).
pub(crate) fn pick<'a>(rng: &mut impl Rng, list: &[&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{SpecSampler, Split};
    use crate::spec::*;

    fn seed_request_spec() -> SceneSpec {
        SceneSpec {
            version: SPEC_VERSION,
            background: Background::SunsetSea,
            objects: vec![ObjectSpec {
                shape: Shape::Circle,
                colour: Colour::Orange,
                size: Size::Large,
                placement: Placement::Free,
                motion: Motion::MoveDown,
            }],
            lighting: Lighting::Steady,
            style: Style::Flat,
            music: Some(MusicSpec {
                instrument: Instrument::Piano,
                mood: Mood::Calm,
                tempo_bpm: 80,
            }),
            ambience: None,
        }
    }

    #[test]
    fn many_phrasings_per_spec() {
        let sampler = SpecSampler::default();
        for seed in 0..40 {
            let spec = sampler.sample(Split::Train, seed);
            for medium in [Medium::Image, Medium::Video] {
                let en = distinct_captions(&spec, Lang::En, CaptionOptions::full(medium), 200);
                let zh = distinct_captions(&spec, Lang::Zh, CaptionOptions::full(medium), 200);
                assert!(en.len() >= 20, "{} English phrasings of {spec:?}: {en:#?}", en.len());
                assert!(zh.len() >= 10, "{} Chinese phrasings of {spec:?}: {zh:#?}", zh.len());
            }
        }
    }

    #[test]
    fn the_seed_requests_are_among_the_phrasings() {
        let spec = seed_request_spec();
        let opts = CaptionOptions {
            medium: Medium::Video,
            dropout: 0.9,
        };
        let zh = distinct_captions(&spec, Lang::Zh, opts, 100_000);
        assert!(
            zh.contains("生成一段描述海边日落的短视频,配乐为钢琴曲"),
            "{:?}",
            zh.iter().take(20).collect::<Vec<_>>()
        );
        let en = distinct_captions(&spec, Lang::En, opts, 100_000);
        assert!(
            en.contains("a short video of a sunset over the sea with piano music"),
            "{:?}",
            en.iter().take(20).collect::<Vec<_>>()
        );
    }

    #[test]
    fn full_captions_state_every_attribute() {
        let sampler = SpecSampler::default();
        let mut rng = rng_for(1, Purpose::Caption);
        for seed in 0..300 {
            let spec = sampler.sample(Split::Train, seed);
            let text = caption(&spec, Lang::En, CaptionOptions::full(Medium::Video), &mut rng);
            for o in &spec.objects {
                assert!(lexicon::colour_en(o.colour).iter().any(|w| text.contains(w)), "{text}");
                assert!(
                    lexicon::shape_en(o.shape)
                        .iter()
                        .any(|(s, p)| text.contains(s) || text.contains(p)),
                    "{text}"
                );
                assert!(lexicon::motion_en(o.motion).iter().any(|w| text.contains(w)), "{text}");
            }
            assert!(
                lexicon::background_en(spec.background).iter().any(|w| text.contains(w)),
                "{text}"
            );
            if let Some(m) = spec.music {
                assert!(
                    lexicon::instrument_en(m.instrument).iter().any(|w| text.contains(w)),
                    "{text}"
                );
                assert!(lexicon::mood_en(m.mood).iter().any(|w| text.contains(w)), "{text}");
            }
            let zh = caption(&spec, Lang::Zh, CaptionOptions::full(Medium::Image), &mut rng);
            for o in &spec.objects {
                assert!(lexicon::colour_zh(o.colour).iter().any(|w| zh.contains(w)), "{zh}");
                assert!(lexicon::shape_zh(o.shape).iter().any(|w| zh.contains(w)), "{zh}");
            }
            assert!(
                lexicon::background_zh(spec.background).iter().any(|w| zh.contains(w)),
                "{zh}"
            );
        }
    }

    #[test]
    fn images_never_mention_motion_or_music() {
        let spec = seed_request_spec();
        for text in distinct_captions(&spec, Lang::En, CaptionOptions::full(Medium::Image), 300) {
            assert!(
                !text.contains("piano") && !text.contains("moving") && !text.contains("sinking"),
                "{text}"
            );
        }
    }
}
