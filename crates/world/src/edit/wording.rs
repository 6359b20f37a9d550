//! The words of an edit: the instruction templates of each kind in English and
//! Chinese, how an object is named, and the value phrases, all from the lexicon.

use rand::seq::IndexedRandom;
use rand::Rng;

use super::{naming, Change, EditKind, Naming};
use crate::caption::lexicon::*;
use crate::caption::{pick, Lang};
use crate::spec::*;

/// English instruction templates, one row per kind in [`EditKind::ALL`] order. `{t}` is
/// the target ("the red star", "it"), `{v}` the new value, `{to}` / `{at}` a position
/// after "move" / "put", `{a}` "a watercolour picture", `{all}` "it" or "everything".
#[rustfmt::skip]
const TEMPLATES_EN: [&[&str]; 7] = [
    &["make {t} {v}", "turn {t} {v}", "change {t} to {v}", "paint {t} {v}", "change the colour of {t} to {v}"],
    &["turn {t} into {v}", "make {t} {v}", "change {t} into {v}", "reshape {t} into {v}"],
    &["move {t} {to}", "shift {t} {to}", "put {t} {at}", "place {t} {at}"],
    &["add {v}", "also add {v}", "now add {v}", "also draw {v}", "draw {v}"],
    &["remove {t}", "delete {t}", "take away {t}", "get rid of {t}", "erase {t}", "take out {t}"],
    &["now {v}", "redraw it {v}", "draw it again {v}", "redo it {v}", "now show it {v}", "same scene but {v}",
      "make it {a}"],
    &["change the background to {v}", "make the background {v}", "replace the background with {v}",
      "use {v} as the background", "put {all} in front of {v}"],
];

/// Chinese instruction templates, as [`TEMPLATES_EN`]: `{t}` the target, `{v}` the new value.
#[rustfmt::skip]
const TEMPLATES_ZH: [&[&str]; 7] = [
    &["把{t}改成{v}", "把{t}变成{v}", "把{t}涂成{v}", "将{t}改为{v}", "把{t}的颜色改为{v}"],
    &["把{t}变成{v}", "把{t}换成{v}", "把{t}改成{v}"],
    &["把{t}移到{v}", "把{t}放到{v}", "把{t}挪到{v}", "把{t}移动到{v}"],
    &["加一个{v}", "添加一个{v}", "再画一个{v}", "再加一个{v}"],
    &["去掉{t}", "删除{t}", "删掉{t}", "移除{t}", "把{t}去掉", "把{t}删掉", "把{t}拿掉"],
    &["改成{v}", "换成{v}", "用{v}重新画一遍", "整体改为{v}"],
    &["背景换成{v}", "把背景改成{v}", "背景改为{v}", "把背景换成{v}"],
];

/// The instruction of an edit of `kind` making `change` to `objects[target]` (or to the
/// scene), in `lang`.
pub(super) fn instruction(
    kind: EditKind,
    change: Change,
    target: Option<usize>,
    objects: &[ObjectSpec],
    lang: Lang,
    rng: &mut impl Rng,
) -> String {
    let the = match (change, target) {
        (Change::Add(_), _) | (_, None) => String::new(),
        (_, Some(t)) => reference(objects, t, lang, rng),
    };
    let (table, values) = match lang {
        Lang::En => (TEMPLATES_EN, values_en(change, objects.len() > 1, rng)),
        Lang::Zh => (TEMPLATES_ZH, values_zh(change, rng)),
    };
    let mut instruction = pick(rng, table[kind.index()]).replace("{t}", &the);
    for (slot, value) in values {
        instruction = instruction.replace(slot, &value);
    }
    instruction
}

/// "the star", "the red star", "the large red star" ("星星", "红色的星星", "大的红色星星"),
/// or "it" / "它" for the only object.
fn reference(objects: &[ObjectSpec], i: usize, lang: Lang, rng: &mut impl Rng) -> String {
    if objects.len() == 1 && rng.random_bool(0.25) {
        return if lang == Lang::En { "it" } else { "它" }.to_string();
    }
    // People often say one word more than needed ("the red star" of a lone star).
    let naming = match naming(objects, i).unwrap_or(Naming::Size) {
        Naming::Shape if rng.random_bool(0.25) => Naming::Colour,
        Naming::Colour if rng.random_bool(0.25) => Naming::Size,
        n => n,
    };
    let o = objects[i];
    match (lang, naming) {
        (Lang::En, _) => {
            let size = pick(rng, size_en(o.size));
            let colour = pick(rng, colour_en(o.colour));
            let words = match naming {
                Naming::Shape => vec!["the"],
                Naming::Colour => vec!["the", colour],
                Naming::Size => vec!["the", size, colour],
            };
            format!("{} {}", words.join(" "), shape_word_en(o.shape, rng))
        }
        (Lang::Zh, Naming::Shape) => pick(rng, shape_zh(o.shape)).to_string(),
        (Lang::Zh, Naming::Colour) => format!("{}的{}", colour_word_zh(o.colour, rng), pick(rng, shape_zh(o.shape))),
        (Lang::Zh, Naming::Size) => {
            let colour = colour_word_zh(o.colour, rng);
            format!("{}{colour}{}", size_adj_zh(o.size, rng), pick(rng, shape_zh(o.shape)))
        }
    }
}

/// Slot values of [`TEMPLATES_EN`]; `many` when the scene has several objects.
fn values_en(change: Change, many: bool, rng: &mut impl Rng) -> Vec<(&'static str, String)> {
    let with_article = |word: &str| format!("{} {word}", article(word));
    match change {
        Change::Colour(colour) => vec![("{v}", pick(rng, colour_en(colour)).into())],
        Change::Shape(shape) => vec![("{v}", with_article(shape_word_en(shape, rng)))],
        Change::Move(p) => vec![
            ("{to}", pick(rng, position_to_en(p)).into()),
            ("{at}", pick(rng, position_en(p)).into()),
        ],
        Change::Add(o) => {
            let (size, colour) = (pick(rng, size_en(o.size)), pick(rng, colour_en(o.colour)));
            let mut text = format!("{} {colour} {}", with_article(size), shape_word_en(o.shape, rng));
            if let Placement::At(p) = o.placement {
                text = format!("{text} {}", pick(rng, position_en(p)));
            }
            if o.motion != Motion::Still {
                text = format!("{text} that is {}", pick(rng, motion_en(o.motion)));
            }
            vec![("{v}", text)]
        }
        Change::Remove => Vec::new(),
        Change::Style(style) => {
            let adj = with_article(pick(rng, style_adj_en(style)));
            let noun = pick(rng, &["picture", "image", "illustration"]);
            vec![
                ("{v}", pick(rng, style_en(style)).into()),
                ("{a}", format!("{adj} {noun}")),
            ]
        }
        Change::Background(background) => {
            let all = if many { "everything" } else { "it" };
            vec![
                ("{v}", pick(rng, background_en(background)).into()),
                ("{all}", all.into()),
            ]
        }
    }
}

/// Slot values of [`TEMPLATES_ZH`].
fn values_zh(change: Change, rng: &mut impl Rng) -> Vec<(&'static str, String)> {
    let value = match change {
        Change::Colour(colour) => colour_word_zh(colour, rng).to_string(),
        Change::Shape(shape) => pick(rng, shape_zh(shape)).to_string(),
        Change::Move(p) => bare_place(pick(rng, position_zh(p))).to_string(),
        Change::Add(o) => {
            let shape = pick(rng, shape_zh(o.shape));
            let colour = colour_word_zh(o.colour, rng);
            let mut text = if rng.random_bool(0.5) {
                format!("{}{colour}{shape}", size_adj_zh(o.size, rng))
            } else {
                format!("{colour}的{}{shape}", size_zh(o.size).first().copied().unwrap_or(""))
            };
            if let Placement::At(p) = o.placement {
                text = format!("{text}在{}", bare_place(pick(rng, position_zh(p))));
            }
            if o.motion != Motion::Still {
                text = format!("{text},让它{}", pick(rng, motion_zh(o.motion)));
            }
            text
        }
        Change::Remove => String::new(),
        Change::Style(style) => pick(rng, style_zh(style)).to_string(),
        Change::Background(background) => pick(rng, background_zh(background)).to_string(),
    };
    vec![("{v}", value)]
}

fn shape_word_en(shape: Shape, rng: &mut impl Rng) -> &'static str {
    shape_en(shape).choose(rng).map_or("shape", |(singular, _)| singular)
}

fn article(next: &str) -> &'static str {
    match next.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | '8') => "an",
        _ => "a",
    }
}

/// A colour word that stands alone as a predicate: "红色", not "红".
fn colour_word_zh(colour: Colour, rng: &mut impl Rng) -> &'static str {
    let words: Vec<&'static str> = colour_zh(colour)
        .iter()
        .copied()
        .filter(|w| w.ends_with('色'))
        .collect();
    pick(rng, &words)
}

/// "小的", "大大的", "巨大的": a size adjective ready to stand before a noun.
fn size_adj_zh(size: Size, rng: &mut impl Rng) -> String {
    let word = pick(rng, size_zh(size));
    let tail = if word.ends_with('的') { "" } else { "的" };
    format!("{word}{tail}")
}

/// A position phrase without its leading "在" / "位于", to follow "移到" or "放到".
pub(super) fn bare_place(phrase: &str) -> &str {
    phrase
        .strip_prefix("位于")
        .or_else(|| phrase.strip_prefix('在'))
        .unwrap_or(phrase)
}
