//! Edit pairs: a scene before, an instruction in English or Chinese, the scene after.
//!
//! They train and judge the learned scene editor behind the content studio's
//! multi-turn edits ("make the star blue", "move it to the left", "now as pixel art").
//! As with captions, the world gives data and ground truth only: the after spec differs
//! from the before spec in exactly the part the instruction names, and every attribute
//! word comes from the [`lexicon`](crate::caption::lexicon). The structure of an edit
//! (kind, target, new value) is drawn before its wording, so one rng state gives the
//! same after spec in both languages.

use rand::seq::IndexedRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::caption::Lang;
use crate::rng::{mix64, rng_for, Purpose};
use crate::sampler::{split_of, SpecSampler, Split};
use crate::spec::*;

/// What an edit instruction changes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EditKind {
    /// One object gets another colour.
    Recolour,
    /// One object gets another shape.
    Reshape,
    /// One object goes to a named position.
    Move,
    /// A new object is appended.
    Add,
    /// One object is taken out.
    Remove,
    /// The drawing style changes.
    Restyle,
    /// The background changes.
    Background,
}

const KIND_NAMES: [&str; 7] = ["recolour", "reshape", "move", "add", "remove", "restyle", "background"];

impl EditKind {
    /// Every kind, in index order.
    pub const ALL: [EditKind; 7] = [
        EditKind::Recolour,
        EditKind::Reshape,
        EditKind::Move,
        EditKind::Add,
        EditKind::Remove,
        EditKind::Restyle,
        EditKind::Background,
    ];

    /// Machine name, as in JSON.
    pub fn name(self) -> &'static str {
        KIND_NAMES[self.index()]
    }

    /// Position in [`Self::ALL`]; stable class id.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One edit: a scene before, the instruction, the scene after.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneEdit {
    /// What changes.
    pub kind: EditKind,
    /// The object changed: its index in `before.objects` (recolour, reshape, move, remove), or
    /// for add the index the new object has in `after.objects` (always the last). None for restyle and background.
    pub target: Option<usize>,
    /// The scene as it is.
    pub before: SceneSpec,
    /// The scene as the instruction asks: valid, and equal to `before` outside the edit.
    pub after: SceneSpec,
    /// The request, in `lang`.
    pub instruction: String,
    /// Language of `instruction`.
    pub lang: Lang,
}

#[cfg(test)]
mod tests;
mod wording;

/// The new value an edit sets; the public record of it is the after spec.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change {
    Colour(Colour),
    Shape(Shape),
    Move(Position),
    Add(ObjectSpec),
    Remove,
    Style(Style),
    Background(Background),
}

/// What an instruction says to single out an object: its shape, also its colour, also its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Naming {
    Shape,
    Colour,
    Size,
}

/// The least that singles out `objects[i]`; None when even size, colour and shape are shared.
pub(crate) fn naming(objects: &[ObjectSpec], i: usize) -> Option<Naming> {
    let o = objects[i];
    let alone = |same: fn(&ObjectSpec, &ObjectSpec) -> bool| objects.iter().filter(|p| same(p, &o)).count() == 1;
    if alone(|p, o| p.shape == o.shape) {
        Some(Naming::Shape)
    } else if alone(|p, o| (p.shape, p.colour) == (o.shape, o.colour)) {
        Some(Naming::Colour)
    } else if alone(|p, o| (p.shape, p.colour, p.size) == (o.shape, o.colour, o.size)) {
        Some(Naming::Size)
    } else {
        None
    }
}

/// Whether no object but `skip` has this shape and colour. Edits keep (shape, colour)
/// pairs distinct, as the sampler does, so the after scene stays nameable in the next turn.
fn unique_pair(objects: &[ObjectSpec], skip: Option<usize>, shape: Shape, colour: Colour) -> bool {
    let same = |(i, o): (usize, &ObjectSpec)| Some(i) != skip && (o.shape, o.colour) == (shape, colour);
    !objects.iter().enumerate().any(same)
}

fn anchors_others(objects: &[ObjectSpec], i: usize) -> bool {
    let anchored_to_i = |o: &ObjectSpec| matches!(o.placement, Placement::Relative { of, .. } if of == i);
    objects.iter().any(anchored_to_i)
}

/// Positions no object is `At`.
fn open_positions(objects: &[ObjectSpec]) -> Vec<Position> {
    let open = |p: &&Position| objects.iter().all(|o| o.placement != Placement::At(**p));
    Position::ALL.iter().filter(open).copied().collect()
}

/// Motions an object of `shape` may have; a spinning circle looks still (see the sampler).
fn motions_for(shape: Shape) -> Vec<Motion> {
    let shows = |m: &&Motion| !(shape == Shape::Circle && **m == Motion::Spin);
    Motion::ALL[1..].iter().filter(shows).copied().collect()
}

/// A random value of `all` other than `current` that `fits`.
fn other<T: Copy + PartialEq>(all: &[T], current: T, fits: impl Fn(T) -> bool, rng: &mut impl Rng) -> Option<T> {
    let options: Vec<T> = all.iter().copied().filter(|&v| v != current && fits(v)).collect();
    options.choose(rng).copied()
}

/// A random valid edit of `before` in `lang`, or None when it has none that fits (only an
/// invalid `before`: every valid scene can at least be restyled).
pub fn sample_edit(before: &SceneSpec, lang: Lang, rng: &mut impl Rng) -> Option<SceneEdit> {
    before.validate().ok()?;
    let objects = &before.objects;
    let named: Vec<usize> = (0..objects.len()).filter(|&i| naming(objects, i).is_some()).collect();
    // An anchor stays: moving or removing it would drag or orphan the objects placed by it.
    let unanchored: Vec<usize> = named.iter().copied().filter(|&i| !anchors_others(objects, i)).collect();
    let fits = |kind: &EditKind| match kind {
        EditKind::Recolour | EditKind::Reshape => !named.is_empty(),
        EditKind::Move => !unanchored.is_empty(),
        EditKind::Add => objects.len() < MAX_OBJECTS,
        EditKind::Remove => objects.len() >= 2 && !unanchored.is_empty(),
        EditKind::Restyle | EditKind::Background => true,
    };
    let valid: Vec<EditKind> = EditKind::ALL.into_iter().filter(fits).collect();
    let kind = *valid.choose(rng)?;

    let mut after = before.clone();
    let (target, change) = match kind {
        EditKind::Recolour => {
            let t = *named.choose(rng)?;
            let o = objects[t];
            let colour = other(
                Colour::ALL,
                o.colour,
                |c| unique_pair(objects, Some(t), o.shape, c),
                rng,
            )?;
            after.objects[t].colour = colour;
            (Some(t), Change::Colour(colour))
        }
        EditKind::Reshape => {
            let t = *named.choose(rng)?;
            let o = objects[t];
            let fits = |s| {
                unique_pair(objects, Some(t), s, o.colour)
                    && (o.motion == Motion::Still || motions_for(s).contains(&o.motion))
            };
            let shape = other(Shape::ALL, o.shape, fits, rng)?;
            after.objects[t].shape = shape;
            (Some(t), Change::Shape(shape))
        }
        EditKind::Move => {
            let t = *unanchored.choose(rng)?;
            // The target's own `At` counts as held: the position must change.
            let position = *open_positions(objects).choose(rng)?;
            after.objects[t].placement = Placement::At(position);
            (Some(t), Change::Move(position))
        }
        EditKind::Add => {
            let object = new_object(objects, rng)?;
            after.objects.push(object);
            (Some(objects.len()), Change::Add(object))
        }
        EditKind::Remove => {
            let t = *unanchored.choose(rng)?;
            after.objects.remove(t);
            for o in &mut after.objects {
                if let Placement::Relative { of, .. } = &mut o.placement {
                    *of -= usize::from(*of > t);
                }
            }
            (Some(t), Change::Remove)
        }
        EditKind::Restyle => {
            after.style = other(Style::ALL, before.style, |_| true, rng)?;
            (None, Change::Style(after.style))
        }
        EditKind::Background => {
            after.background = other(Background::ALL, before.background, |_| true, rng)?;
            (None, Change::Background(after.background))
        }
    };

    let instruction = wording::instruction(kind, change, target, objects, lang, rng);
    Some(SceneEdit {
        kind,
        target,
        before: before.clone(),
        after,
        instruction,
        lang,
    })
}

/// A new object whose (shape, colour) no object has: placed freely half the time, else at an
/// open position; still unless other objects move.
fn new_object(objects: &[ObjectSpec], rng: &mut impl Rng) -> Option<ObjectSpec> {
    let pairs: Vec<(Shape, Colour)> = Shape::ALL
        .iter()
        .flat_map(|&s| Colour::ALL.iter().map(move |&c| (s, c)))
        .filter(|&(s, c)| unique_pair(objects, None, s, c))
        .collect();
    let (shape, colour) = *pairs.choose(rng)?;
    let size = *Size::ALL.choose(rng)?;
    let placement = match open_positions(objects).choose(rng) {
        Some(&p) if rng.random_bool(0.5) => Placement::At(p),
        _ => Placement::Free,
    };
    let moving = objects.iter().any(|o| o.motion != Motion::Still);
    let motion = if moving {
        *motions_for(shape).choose(rng)?
    } else {
        Motion::Still
    };
    Some(ObjectSpec {
        shape,
        colour,
        size,
        placement,
        motion,
    })
}

/// The edit of sample `seed` in `split`: a spec drawn by `SpecSampler::default()` from `split`
/// (the same seed gives the same edit), edited until the after spec is in `split` too
/// (`split_of(&after) == split`): held-out edits then make or keep a held-out composition.
/// Retries with derived seeds (mix64) until one fits; deterministic.
pub fn edit_for_seed(split: Split, lang: Lang, seed: u64) -> SceneEdit {
    let before = SpecSampler::default().sample(split, seed);
    // Restyle and background edits keep the split and fit every scene, so each try fits
    // with probability at least 2/7. A fresh stream per try (rather than one long one)
    // keeps the tries of both languages in step: same seed, same after spec.
    let mut attempt = 0u64;
    loop {
        let mut rng = rng_for(mix64(seed ^ mix64(attempt)), Purpose::Edit);
        if let Some(edit) = sample_edit(&before, lang, &mut rng).filter(|e| split_of(&e.after) == split) {
            return edit;
        }
        attempt += 1;
    }
}
