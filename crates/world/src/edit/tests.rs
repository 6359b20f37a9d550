//! Edit pairs checked over many seeds, and on hand-built scenes.

use super::wording::bare_place;
use super::*;
use crate::caption::lexicon::*;
use std::collections::HashSet;

fn has(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// The words that can name each attribute of an object.
struct Words {
    shape: Vec<&'static str>,
    colour: &'static [&'static str],
    size: &'static [&'static str],
}

fn words(lang: Lang, o: &ObjectSpec) -> Words {
    match lang {
        Lang::En => Words {
            shape: shape_en(o.shape).iter().map(|(singular, _)| *singular).collect(),
            colour: colour_en(o.colour),
            size: size_en(o.size),
        },
        Lang::Zh => Words {
            shape: shape_zh(o.shape).to_vec(),
            colour: colour_zh(o.colour),
            size: size_zh(o.size),
        },
    }
}

fn places(lang: Lang, p: Position) -> Vec<&'static str> {
    match lang {
        Lang::En => [position_en(p), position_to_en(p)].concat(),
        Lang::Zh => position_zh(p).iter().map(|w| bare_place(w)).collect(),
    }
}

/// The after spec, rebuilt from the before spec and only the edited part of the after spec.
fn expected_after(e: &SceneEdit) -> SceneSpec {
    let (mut x, a, t) = (e.before.clone(), &e.after, e.target.unwrap_or(usize::MAX));
    assert_eq!(
        e.target.is_none(),
        matches!(e.kind, EditKind::Restyle | EditKind::Background)
    );
    match e.kind {
        EditKind::Recolour => x.objects[t].colour = a.objects[t].colour,
        EditKind::Reshape => x.objects[t].shape = a.objects[t].shape,
        EditKind::Move => {
            assert!(matches!(a.objects[t].placement, Placement::At(_)), "{e:?}");
            x.objects[t].placement = a.objects[t].placement;
        }
        EditKind::Add => {
            assert_eq!(t + 1, a.objects.len(), "{e:?}");
            x.objects.push(a.objects[t]);
        }
        EditKind::Remove => {
            x.objects.remove(t);
            for o in &mut x.objects {
                if let Placement::Relative { of, .. } = &mut o.placement {
                    assert_ne!(*of, t, "removed an anchor: {e:?}");
                    *of = if *of > t { *of - 1 } else { *of };
                }
            }
        }
        EditKind::Restyle => x.style = a.style,
        EditKind::Background => x.background = a.background,
    }
    x
}

/// The instruction names the new value and singles out the target.
fn check_instruction(e: &SceneEdit) {
    let (text, lang, t) = (&e.instruction, e.lang, e.target.unwrap_or(0));
    let says_new = match e.kind {
        EditKind::Recolour => has(text, words(lang, &e.after.objects[t]).colour),
        EditKind::Reshape => has(text, &words(lang, &e.after.objects[t]).shape),
        EditKind::Add => {
            let (o, w) = (e.after.objects[t], words(lang, &e.after.objects[t]));
            let at = match o.placement {
                Placement::At(p) => has(text, &places(lang, p)),
                _ => true,
            };
            at && has(text, w.colour) && has(text, &w.shape) && has(text, w.size)
        }
        EditKind::Move => match e.after.objects[t].placement {
            Placement::At(p) => has(text, &places(lang, p)),
            _ => false,
        },
        EditKind::Remove => true,
        EditKind::Restyle if lang == Lang::En => {
            has(text, &[style_en(e.after.style), style_adj_en(e.after.style)].concat())
        }
        EditKind::Restyle => has(text, style_zh(e.after.style)),
        EditKind::Background if lang == Lang::En => has(text, background_en(e.after.background)),
        EditKind::Background => has(text, background_zh(e.after.background)),
    };
    assert!(says_new, "{text:?} does not name the new value of {e:?}");
    if matches!(e.kind, EditKind::Add | EditKind::Restyle | EditKind::Background) {
        return;
    }
    let (objects, o) = (&e.before.objects, e.before.objects[t]);
    if text.split(' ').any(|w| w == "it") || text.contains('它') {
        assert_eq!(objects.len(), 1, "{text:?} says 'it' of {e:?}");
        return;
    }
    let shared = |same: &dyn Fn(&ObjectSpec) -> bool| objects.iter().filter(|p| same(p)).count() > 1;
    let w = words(lang, &o);
    assert!(has(text, &w.shape), "{text:?} of {e:?}");
    if shared(&|p| p.shape == o.shape) {
        assert!(has(text, w.colour), "{text:?} of {e:?}");
    }
    if shared(&|p| (p.shape, p.colour) == (o.shape, o.colour)) {
        assert!(has(text, w.size), "{text:?} of {e:?}");
    }
}

fn check(e: &SceneEdit) {
    e.after.validate().unwrap();
    assert_eq!(e.after, expected_after(e), "more than the edit changed");
    assert_ne!(e.after, e.before);
    check_instruction(e);
    let text = &e.instruction;
    assert!(
        !text.is_empty() && !text.contains("  ") && !text.contains('{') && text.trim() == text,
        "{text:?}"
    );
    let fine = |c: char| match e.lang {
        Lang::En => c.is_ascii_lowercase() || c.is_ascii_digit() || c == ' ' || c == '-',
        Lang::Zh => !c.is_ascii_alphanumeric() && c != ' ',
    };
    assert!(text.chars().all(fine), "{text:?}");
}

#[test]
fn edits_follow_the_rules_in_both_splits_and_languages() {
    let mut kinds = HashSet::new();
    for split in [Split::Train, Split::Heldout] {
        for lang in [Lang::En, Lang::Zh] {
            for seed in 0..250 {
                let e = edit_for_seed(split, lang, seed);
                assert_eq!(e.before, SpecSampler::default().sample(split, seed));
                assert_eq!(split_of(&e.after), split, "{e:?}");
                check(&e);
                kinds.insert((split, lang, e.kind));
            }
        }
    }
    assert_eq!(kinds.len(), 2 * 2 * EditKind::ALL.len(), "kinds missing: {kinds:?}");
    for (i, kind) in EditKind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), i);
        assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{}\"", kind.name()));
    }
}

#[test]
fn same_seed_same_edit_in_both_languages() {
    for seed in 0..50 {
        let en = edit_for_seed(Split::Train, Lang::En, seed);
        assert_eq!(en, edit_for_seed(Split::Train, Lang::En, seed));
        let zh = edit_for_seed(Split::Train, Lang::Zh, seed);
        assert_eq!((en.kind, en.target, &en.after), (zh.kind, zh.target, &zh.after));
    }
    let distinct: HashSet<String> = (0..50)
        .map(|seed| edit_for_seed(Split::Heldout, Lang::En, seed).instruction)
        .collect();
    assert!(distinct.len() >= 45, "{distinct:?}");
}

fn object(shape: Shape, colour: Colour, size: Size) -> ObjectSpec {
    ObjectSpec {
        shape,
        colour,
        size,
        placement: Placement::Free,
        motion: Motion::Still,
    }
}

#[test]
fn targets_are_named_unambiguously_and_anchors_stay() {
    // Stars told apart by colour, green circles by size; the large circle stands above
    // the blue star, so removing the red star renumbers its anchor.
    let mut scene = SpecSampler::default().sample(Split::Train, 0);
    let mut above = object(Shape::Circle, Colour::Green, Size::Large);
    above.placement = Placement::Relative {
        relation: Relation::Above,
        of: 1,
    };
    scene.objects = vec![
        object(Shape::Star, Colour::Red, Size::Large),
        object(Shape::Star, Colour::Blue, Size::Large),
        object(Shape::Circle, Colour::Green, Size::Small),
        above,
    ];
    let mut twins = scene.clone();
    twins.objects = vec![object(Shape::Heart, Colour::Pink, Size::Small); 3];
    let mut rng = rng_for(7, Purpose::Edit);
    let mut renumbered = 0;
    for lang in [Lang::En, Lang::Zh] {
        for _ in 0..200 {
            let e = sample_edit(&scene, lang, &mut rng).unwrap();
            check(&e);
            if let Some(t) = e.target {
                let w = words(lang, &scene.objects[t]);
                assert!(has(&e.instruction, w.colour), "{e:?}");
                assert!(t < 2 || has(&e.instruction, w.size), "{e:?}");
                assert!(
                    t != 1 || matches!(e.kind, EditKind::Recolour | EditKind::Reshape),
                    "{e:?}"
                );
                renumbered += usize::from(e.kind == EditKind::Remove && t == 0);
            }
            let e = sample_edit(&twins, lang, &mut rng).unwrap();
            check(&e);
            let allowed = [EditKind::Add, EditKind::Restyle, EditKind::Background];
            assert!(allowed.contains(&e.kind), "{e:?}");
        }
    }
    assert!(renumbered > 0);
}

#[test]
#[ignore = "prints sample instructions: cargo test -p mmgen-world print_edits -- --ignored --nocapture"]
fn print_edits() {
    for seed in 0..10u64 {
        let lang = if seed % 2 == 0 { Lang::En } else { Lang::Zh };
        let e = edit_for_seed(Split::Train, lang, seed);
        println!("{:?} {:<10} {}", e.lang, e.kind.name(), e.instruction);
    }
}
