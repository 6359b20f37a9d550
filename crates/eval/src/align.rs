//! GenEval-style alignment (Ghosh et al. 2023): for each prompt, what its request
//! asks is compared with what the probes read from the output. A prompt passes a
//! category only if every attribute of that category it asks for is read back.
//!
//! Image categories follow GenEval: single object, two objects, counting, colours,
//! position, colour attribution; overall is their mean. Background and style are
//! reported beside them, outside the overall.

use mmgen_world::caption::parse::{AskedObject, Request};
use mmgen_world::layout::relation_holds;
use mmgen_world::{Position, TempoClass};
use serde::Serialize;

use crate::probe::audio::AudioReading;
use crate::probe::image::{Detection, ImageReading};

/// What an alignment row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// One object asked: is its shape there?
    SingleObject,
    /// Two or more objects asked: are all their shapes there?
    TwoObjects,
    /// "three red stars": exactly that many of them?
    Counting,
    /// One coloured object asked: is it there in that colour?
    Colours,
    /// Named positions and relations: do they hold?
    Position,
    /// Several coloured objects: is each colour on the right shape?
    ColourAttribution,
    /// The background asked (outside the overall).
    Background,
    /// The style asked (outside the overall).
    Style,
    /// Every asked motion is read back from the clip.
    Motion,
    /// Every asked object keeps its shape and colour through the clip.
    TemporalConsistency,
    /// The asked instrument is heard.
    Instrument,
    /// The asked mood is heard.
    Mood,
    /// The asked tempo is heard (within 10% of a number, or the same tempo class).
    Tempo,
}

impl Category {
    /// Image categories in report order.
    pub const IMAGE: &'static [Category] = &[
        Category::SingleObject,
        Category::TwoObjects,
        Category::Counting,
        Category::Colours,
        Category::Position,
        Category::ColourAttribution,
        Category::Background,
        Category::Style,
    ];

    /// Video categories in report order.
    pub const VIDEO: &'static [Category] = &[Category::Motion, Category::TemporalConsistency];
    /// Audio categories in report order.
    pub const AUDIO: &'static [Category] = &[Category::Instrument, Category::Mood, Category::Tempo];

    /// Whether the category counts towards the overall score.
    pub fn in_overall(self) -> bool {
        !matches!(self, Category::Background | Category::Style)
    }

    /// Name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Category::SingleObject => "single_object",
            Category::TwoObjects => "two_objects",
            Category::Counting => "counting",
            Category::Colours => "colours",
            Category::Position => "position",
            Category::ColourAttribution => "colour_attribution",
            Category::Background => "background",
            Category::Style => "style",
            Category::Motion => "motion",
            Category::TemporalConsistency => "temporal_consistency",
            Category::Instrument => "instrument",
            Category::Mood => "mood",
            Category::Tempo => "tempo",
        }
    }
}

/// Whether a centre at (cx, cy) (canvas fractions) reads as `position`. Regions
/// overlap (an object can be both left and top); each named position of the world's
/// layout lies well inside its region.
pub fn in_region(position: Position, cx: f32, cy: f32) -> bool {
    match position {
        Position::Left => cx < 0.4,
        Position::Right => cx > 0.6,
        Position::Top => cy < 0.42,
        Position::Bottom => cy > 0.62,
        Position::Centre => (cx - 0.5).abs() < 0.15 && (cy - 0.52).abs() < 0.15,
    }
}

pub(crate) fn same_kind(d: &Detection, o: &AskedObject) -> bool {
    d.shape == o.shape && o.colour.is_none_or(|c| c == d.colour)
}

/// Assigns a distinct detection of the right shape and colour to every asked object
/// (one per counted copy), greedily by score; `None` if some object finds none.
fn assign(objects: &[AskedObject], detections: &[Detection], use_colour: bool) -> Option<Vec<Vec<usize>>> {
    let mut used = vec![false; detections.len()];
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        let mut mine = Vec::new();
        for _ in 0..o.count {
            let k = detections.iter().enumerate().position(|(k, d)| {
                !used[k] && d.shape == o.shape && (!use_colour || o.colour.is_none_or(|c| c == d.colour))
            })?;
            used[k] = true;
            mine.push(k);
        }
        out.push(mine);
    }
    Some(out)
}

/// The image categories `request` asks for, each with pass or fail against `reading`.
pub fn image_checks(request: &Request, reading: &ImageReading) -> Vec<(Category, bool)> {
    let objects = &request.objects;
    let dets = &reading.objects;
    let mut out = Vec::new();
    if objects.len() == 1 && objects[0].count == 1 {
        out.push((Category::SingleObject, dets.iter().any(|d| d.shape == objects[0].shape)));
        if objects[0].colour.is_some() {
            out.push((Category::Colours, dets.iter().any(|d| same_kind(d, &objects[0]))));
        }
    }
    if objects.len() >= 2 {
        out.push((Category::TwoObjects, assign(objects, dets, false).is_some()));
        if objects.iter().filter(|o| o.colour.is_some()).count() >= 2 {
            out.push((Category::ColourAttribution, assign(objects, dets, true).is_some()));
        }
    }
    let counted: Vec<&AskedObject> = objects.iter().filter(|o| o.count >= 2).collect();
    if !counted.is_empty() {
        let ok = counted
            .iter()
            .all(|o| dets.iter().filter(|d| same_kind(d, o)).count() == o.count);
        out.push((Category::Counting, ok));
    }
    if objects.iter().any(|o| o.position.is_some() || o.relation.is_some()) {
        let ok = objects.iter().all(|o| {
            let placed = o
                .position
                .is_none_or(|p| dets.iter().any(|d| same_kind(d, o) && in_region(p, d.cx, d.cy)));
            let related = o.relation.is_none_or(|(relation, anchor)| {
                objects.get(anchor).is_some_and(|a| {
                    dets.iter().filter(|d| same_kind(d, o)).any(|d| {
                        dets.iter()
                            .filter(|e| same_kind(e, a) && *e != d)
                            .any(|e| relation_holds(d.pose(), e.pose(), relation))
                    })
                })
            });
            placed && related
        });
        out.push((Category::Position, ok));
    }
    if let Some(b) = request.background {
        out.push((Category::Background, reading.background == b));
    }
    if let Some(s) = request.style {
        out.push((Category::Style, reading.style == s));
    }
    out
}

/// The audio categories `request` asks for, checked against what was heard.
pub fn audio_checks(request: &Request, reading: &AudioReading) -> Vec<(Category, bool)> {
    let mut out = Vec::new();
    let Some(music) = request.music else { return out };
    if let Some(i) = music.instrument {
        out.push((Category::Instrument, reading.instrument == i));
    }
    if let Some(m) = music.mood {
        out.push((Category::Mood, reading.mood == m));
    }
    let heard = reading.tempo_bpm;
    if let Some(bpm) = music.tempo_bpm {
        out.push((
            Category::Tempo,
            heard.is_some_and(|h| (h - bpm as f32).abs() <= 0.1 * bpm as f32),
        ));
    } else if let Some(class) = music.tempo_class {
        out.push((
            Category::Tempo,
            heard.is_some_and(|h| TempoClass::of(h.round() as u32) == class),
        ));
    }
    out
}

/// Hand-made readings for the tests of this crate's evaluation (tracks, categories,
/// per-prompt results).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use mmgen_world::{Background, Colour, Shape, Size, Style};

    /// A sure reading: all the probability on `shape` and on `colour`.
    pub(crate) fn det(shape: Shape, colour: Colour, cx: f32, cy: f32) -> Detection {
        Detection {
            cx,
            cy,
            radius: 0.1,
            shape,
            colour,
            size: Size::Small,
            score: 0.9,
            shape_probabilities: std::array::from_fn(|k| (k == shape.index()) as u8 as f32),
            colour_probabilities: std::array::from_fn(|k| (k == colour.index()) as u8 as f32),
        }
    }

    /// A reading of `shape` (probability 1 - `p`) that gives `second` probability `p`.
    pub(crate) fn unsure(shape: Shape, second: Shape, p: f32, cx: f32, cy: f32, colour: Colour) -> Detection {
        let mut d = det(shape, colour, cx, cy);
        d.shape_probabilities[shape.index()] = 1.0 - p;
        d.shape_probabilities[second.index()] = p;
        d
    }

    pub(crate) fn reading(objects: Vec<Detection>) -> ImageReading {
        ImageReading {
            objects,
            background: Background::Desert,
            style: Style::Flat,
            features: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{det, reading};
    use super::*;
    use mmgen_world::caption::parse::parse_prompt;
    use mmgen_world::layout::layout;
    use mmgen_world::{Colour, Placement, Shape, SpecSampler, Split};

    fn result(checks: &[(Category, bool)], c: Category) -> Option<bool> {
        checks.iter().find(|(k, _)| *k == c).map(|(_, ok)| *ok)
    }

    #[test]
    fn categories_pass_and_fail_as_geneval_would() {
        let r = parse_prompt("two red stars and a blue circle on the left in a desert").unwrap();
        let good = reading(vec![
            det(Shape::Star, Colour::Red, 0.5, 0.5),
            det(Shape::Star, Colour::Red, 0.7, 0.3),
            det(Shape::Circle, Colour::Blue, 0.2, 0.6),
        ]);
        let checks = image_checks(&r, &good);
        for c in [
            Category::TwoObjects,
            Category::Counting,
            Category::ColourAttribution,
            Category::Position,
            Category::Background,
        ] {
            assert_eq!(result(&checks, c), Some(true), "{c:?}: {checks:?}");
        }
        assert_eq!(result(&checks, Category::SingleObject), None);

        // Swapped colours: objects there, attribution wrong.
        let swapped = reading(vec![
            det(Shape::Star, Colour::Blue, 0.5, 0.5),
            det(Shape::Star, Colour::Blue, 0.7, 0.3),
            det(Shape::Circle, Colour::Red, 0.2, 0.6),
        ]);
        let checks = image_checks(&r, &swapped);
        assert_eq!(result(&checks, Category::TwoObjects), Some(true));
        assert_eq!(result(&checks, Category::ColourAttribution), Some(false));
        assert_eq!(result(&checks, Category::Counting), Some(false));

        // Wrong side, one star too many.
        let off = reading(vec![
            det(Shape::Star, Colour::Red, 0.5, 0.5),
            det(Shape::Star, Colour::Red, 0.7, 0.3),
            det(Shape::Star, Colour::Red, 0.5, 0.8),
            det(Shape::Circle, Colour::Blue, 0.8, 0.6),
        ]);
        let checks = image_checks(&r, &off);
        assert_eq!(result(&checks, Category::Position), Some(false));
        assert_eq!(result(&checks, Category::Counting), Some(false));

        let r = parse_prompt("a blue circle to the left of a yellow square").unwrap();
        let ok = reading(vec![
            det(Shape::Circle, Colour::Blue, 0.3, 0.5),
            det(Shape::Square, Colour::Yellow, 0.7, 0.5),
        ]);
        let bad = reading(vec![
            det(Shape::Circle, Colour::Blue, 0.7, 0.5),
            det(Shape::Square, Colour::Yellow, 0.3, 0.5),
        ]);
        assert_eq!(result(&image_checks(&r, &ok), Category::Position), Some(true));
        assert_eq!(result(&image_checks(&r, &bad), Category::Position), Some(false));
    }

    #[test]
    fn laid_out_positions_read_back() {
        let sampler = SpecSampler::default();
        for seed in 0..2000 {
            let spec = sampler.sample(if seed % 2 == 0 { Split::Train } else { Split::Heldout }, seed);
            for (object, pose) in spec.objects.iter().zip(layout(&spec, seed)) {
                if let Placement::At(p) = object.placement {
                    assert!(in_region(p, pose.cx, pose.cy), "{p} at ({}, {})", pose.cx, pose.cy);
                }
            }
        }
    }
}
