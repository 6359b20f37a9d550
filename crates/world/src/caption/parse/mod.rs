//! The caption parser: reads a free prompt, English or Chinese, into what it asks for.
//!
//! It knows the words of [`super::lexicon`] and nothing else: a prompt is scanned for
//! the longest lexicon phrase at each position, and the phrases are assembled into
//! objects (number, size and colour words attach to the next shape; place, relation
//! and motion phrases to the last one), background, style, lighting and sound. Words
//! it does not know are skipped, so "please draw a small red star on the left, thanks"
//! reads the same as the world's own caption.
//!
//! This is the evaluation's prompt reader. It also feeds the oracle (render the parsed
//! spec), which is the only place where a parsed prompt may be rendered.

use serde::Serialize;

use super::lexicon::*;
use super::{Lang, Medium};
use crate::error::WorldError;
use crate::spec::*;

/// One object (or group of identical objects) a prompt asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AskedObject {
    /// The shape (always asked: an object is named by its shape).
    pub shape: Shape,
    /// Colour, if said.
    pub colour: Option<Colour>,
    /// Size, if said.
    pub size: Option<Size>,
    /// How many (1 unless a number was said).
    pub count: usize,
    /// Named position, if said.
    pub position: Option<Position>,
    /// Relation to an earlier asked object (its index), if said.
    pub relation: Option<(Relation, usize)>,
    /// Motion, if said.
    pub motion: Option<Motion>,
}

/// The music a prompt asks for; each part optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AskedMusic {
    /// Instrument, if said.
    pub instrument: Option<Instrument>,
    /// Mood, if said.
    pub mood: Option<Mood>,
    /// Exact tempo, if a number was said.
    pub tempo_bpm: Option<u32>,
    /// Tempo class, if a tempo word was said (or implied by the number).
    pub tempo_class: Option<TempoClass>,
}

/// Everything a prompt asks for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    /// The prompt's language (Chinese if it holds any CJK character).
    pub lang: Lang,
    /// What is asked for: a video if a clip word is said, audio if only sound is.
    pub medium: Medium,
    /// Objects in the order said.
    pub objects: Vec<AskedObject>,
    /// Background, if said.
    pub background: Option<Background>,
    /// Style, if said.
    pub style: Option<Style>,
    /// Lighting change, if said.
    pub lighting: Option<Lighting>,
    /// Music, if any part of it was said.
    pub music: Option<AskedMusic>,
    /// Ambience, if said.
    pub ambience: Option<Ambience>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Word {
    Number(usize),
    Size(Size),
    Colour(Colour),
    Shape(Shape, bool),
    Position(Position),
    Relation(Relation),
    Motion(Motion),
    Background(Background),
    Style(Style),
    Lighting(Lighting),
    Instrument(Instrument),
    Mood(Mood),
    TempoClass(TempoClass),
    Ambience(Ambience),
    /// "coloured", "that is", "in" right after a shape: the colour that follows is its.
    ColourAfter,
    /// "在" (Chinese): a place or an anchor follows.
    At,
    /// A clip word: the prompt asks for a video.
    Video,
    /// A sound word with no picture word: audio.
    Sound,
    /// A picture word.
    Picture,
    /// "and", comma: ends a colour's reach.
    Break,
}

fn vocabulary(lang: Lang) -> Vec<(String, Word)> {
    let mut v: Vec<(String, Word)> = Vec::new();
    let mut add = |phrases: &[&str], w: Word| v.extend(phrases.iter().map(|p| (p.to_string(), w)));
    for &s in Shape::ALL {
        match lang {
            Lang::En => {
                for (singular, plural) in shape_en(s) {
                    add(&[singular], Word::Shape(s, false));
                    add(&[plural], Word::Shape(s, true));
                }
            }
            Lang::Zh => add(shape_zh(s), Word::Shape(s, false)),
        }
    }
    macro_rules! each {
        ($all:expr, $en:ident, $zh:ident, $word:expr) => {
            for &x in $all {
                add(if lang == Lang::En { $en(x) } else { $zh(x) }, $word(x));
            }
        };
    }
    each!(Colour::ALL, colour_en, colour_zh, Word::Colour);
    each!(Size::ALL, size_en, size_zh, Word::Size);
    each!(Position::ALL, position_en, position_zh, Word::Position);
    each!(Relation::ALL, relation_en, relation_zh, Word::Relation);
    each!(Motion::ALL, motion_en, motion_zh, Word::Motion);
    each!(Background::ALL, background_en, background_zh, Word::Background);
    each!(
        Background::ALL,
        background_keywords_en,
        background_keywords_zh,
        Word::Background
    );
    each!(Style::ALL, style_en, style_zh, Word::Style);
    each!(Lighting::ALL, lighting_en, lighting_zh, Word::Lighting);
    each!(Instrument::ALL, instrument_en, instrument_zh, Word::Instrument);
    each!(Mood::ALL, mood_en, mood_zh, Word::Mood);
    each!(TempoClass::ALL, tempo_en, tempo_zh, Word::TempoClass);
    each!(Ambience::ALL, ambience_en, ambience_zh, Word::Ambience);
    match lang {
        Lang::En => {
            for &s in Style::ALL {
                add(style_adj_en(s), Word::Style(s));
            }
            for (i, n) in NUMBERS_EN.iter().enumerate().skip(1) {
                add(&[n], Word::Number(i));
            }
            add(&["a", "an"], Word::Number(1));
            add(&["coloured", "colored", "that is", "in"], Word::ColourAfter);
            add(&["video", "clip", "animation", "animate", "movie"], Word::Video);
            add(
                &[
                    "music",
                    "soundtrack",
                    "melody",
                    "piece",
                    "tune",
                    "song",
                    "sound",
                    "audio",
                    "play",
                    "compose",
                ],
                Word::Sound,
            );
            add(
                &["image", "picture", "illustration", "draw", "photo", "painting"],
                Word::Picture,
            );
            add(&["and", ",", "with", "against", "in front of", "behind"], Word::Break);
            // Plain colour words that a style adjective list also holds stay styles.
            add(
                &["watercolour painting", "watercolor painting"],
                Word::Style(Style::Watercolour),
            );
        }
        Lang::Zh => {
            for (i, n) in NUMBERS_ZH.iter().enumerate().skip(1) {
                add(&[n], Word::Number(i));
            }
            add(&["一颗", "一只"], Word::Number(1));
            add(&["两颗", "两只", "二个"], Word::Number(2));
            add(&["三颗"], Word::Number(3));
            add(&["四颗"], Word::Number(4));
            add(&["在"], Word::At);
            add(&["视频", "动画", "短片"], Word::Video);
            add(&["音乐", "配乐", "曲", "旋律"], Word::Sound);
            add(&["图片", "画一幅", "画出", "一张", "给我画", "插画"], Word::Picture);
            add(&[",", ",", "、", "和", "。", ":", ":"], Word::Break);
        }
    }
    // Longest first, so that the scan prefers "sea floor" to "sea".
    v.sort_by_key(|entry| std::cmp::Reverse(entry.0.chars().count()));
    v
}

/// Lowercases and spaces out English punctuation so phrases match on word boundaries.
fn normalise_en(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            ',' | '.' | ';' | ':' | '!' | '?' | '(' | ')' => {
                out.push(' ');
                if c == ',' {
                    out.push_str(", ");
                }
            }
            _ => out.extend(c.to_lowercase()),
        }
    }
    format!(" {} ", out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Scans `text` into words and tempo numbers.
fn scan(text: &str, lang: Lang) -> (Vec<Word>, Option<u32>) {
    let vocab = vocabulary(lang);
    // A phrase spans at most this many tokens (EN) or characters (ZH): matching looks
    // no further ahead, so the scan is linear in the prompt's length.
    let longest = vocab
        .iter()
        .map(|(p, _)| match lang {
            Lang::En => p.split_whitespace().count(),
            Lang::Zh => p.chars().count(),
        })
        .max()
        .unwrap_or(1);
    let mut words = Vec::new();
    let mut tempo = None;
    match lang {
        Lang::En => {
            let phrases: Vec<(String, Word, usize)> = vocab
                .iter()
                .map(|(p, w)| (format!(" {p} "), *w, p.split_whitespace().count().max(1)))
                .collect();
            let text = normalise_en(text);
            let tokens: Vec<&str> = text.split_whitespace().collect();
            let mut i = 0;
            while i < tokens.len() {
                if let Ok(n) = tokens[i].parse::<u32>() {
                    let next = tokens.get(i + 1).copied().unwrap_or("");
                    if next == "bpm" || tokens.get(i.wrapping_sub(1)).is_some_and(|p| *p == "of") {
                        tempo = Some(n);
                        i += 1 + (next == "bpm") as usize;
                        continue;
                    }
                    if (1..=4).contains(&n) {
                        words.push(Word::Number(n as usize));
                    }
                    i += 1;
                    continue;
                }
                let rest = format!(" {} ", tokens[i..tokens.len().min(i + longest)].join(" "));
                match phrases.iter().find(|(p, _, _)| rest.starts_with(p.as_str())) {
                    Some((_, w, length)) => {
                        words.push(*w);
                        i += length;
                    }
                    None => i += 1,
                }
            }
        }
        Lang::Zh => {
            let chars: Vec<char> = text.chars().collect();
            let mut i = 0;
            while i < chars.len() {
                if chars[i].is_ascii_digit() {
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    let n: String = chars[start..i].iter().collect();
                    tempo = n.parse().ok().or(tempo);
                    continue;
                }
                let rest: String = chars[i..chars.len().min(i + longest)].iter().collect();
                match vocab.iter().find(|(p, _)| rest.starts_with(p.as_str())) {
                    Some((p, w)) => {
                        words.push(*w);
                        i += p.chars().count();
                    }
                    None => i += 1,
                }
            }
        }
    }
    (words, tempo)
}

/// Reads `prompt` into a [`Request`]; fails only when nothing at all is recognised.
pub fn parse_prompt(prompt: &str) -> Result<Request, WorldError> {
    let lang = if prompt.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
        Lang::Zh
    } else {
        Lang::En
    };
    let (words, tempo) = scan(prompt, lang);
    let mut request = Request {
        lang,
        medium: Medium::Image,
        objects: Vec::new(),
        background: None,
        style: None,
        lighting: None,
        music: None,
        ambience: None,
    };
    let mut music = AskedMusic {
        tempo_bpm: tempo,
        tempo_class: tempo.map(TempoClass::of),
        ..Default::default()
    };
    let (mut video, mut sound, mut picture) = (false, false, false);
    // Words waiting for the next shape.
    let (mut count, mut size, mut colour): (Option<usize>, Option<Size>, Option<Colour>) = (None, None, None);
    // English: a relation said after object `subject`, waiting for its anchor's shape.
    let mut pending: Option<(Relation, usize)> = None;
    // Chinese: "在<anchor>" read, waiting for the relation word: (subject, anchor).
    let mut zh_anchor: Option<(usize, usize)> = None;
    let mut colour_after = false;
    let mut at_marker = false;
    for (k, &word) in words.iter().enumerate() {
        // An English relation reaches only across "a/the <size> <colour>" to its anchor.
        if !matches!(
            word,
            Word::Number(_) | Word::Size(_) | Word::Colour(_) | Word::Shape(..)
        ) {
            pending = None;
        }
        match word {
            Word::Number(n) => count = Some(n),
            Word::Size(s) => size = Some(s),
            Word::Colour(c) if colour_after => {
                if let Some(last) = request.objects.last_mut() {
                    last.colour = Some(c);
                }
                colour_after = false;
            }
            Word::Colour(c) => colour = Some(c),
            Word::ColourAfter => {
                // Only right after a shape, and only if a colour follows.
                let after_shape = k > 0 && matches!(words[k - 1], Word::Shape(..));
                colour_after = after_shape && matches!(words.get(k + 1), Some(Word::Colour(_)));
            }
            Word::At => at_marker = true,
            Word::Shape(shape, plural) => {
                let anchor_ref = match lang {
                    Lang::En => pending.is_some(),
                    Lang::Zh => at_marker && matches!(words.get(k + 1), Some(Word::Relation(_))),
                };
                let subject = request.objects.len().checked_sub(1);
                // An anchor names an earlier object if one matches, else it is new.
                let existing = anchor_ref
                    .then(|| {
                        request.objects.iter().enumerate().position(|(i, o)| {
                            Some(i) != subject && o.shape == shape && (colour.is_none() || o.colour == colour)
                        })
                    })
                    .flatten();
                let index = match existing {
                    Some(i) => i,
                    None => {
                        request.objects.push(AskedObject {
                            shape,
                            colour,
                            size,
                            count: count.unwrap_or(if plural { 2 } else { 1 }),
                            position: None,
                            relation: None,
                            motion: None,
                        });
                        request.objects.len() - 1
                    }
                };
                if anchor_ref {
                    match (lang, subject) {
                        (Lang::En, Some(subject)) => {
                            if let Some((relation, _)) = pending {
                                request.objects[subject].relation = Some((relation, index));
                            }
                        }
                        (Lang::Zh, Some(subject)) => zh_anchor = Some((subject, index)),
                        _ => {}
                    }
                }
                (count, size, colour) = (None, None, None);
                pending = None;
                at_marker = false;
            }
            Word::Position(p) => {
                if let Some(last) = request.objects.last_mut() {
                    last.position = Some(p);
                }
                at_marker = false;
            }
            Word::Relation(r) => match lang {
                Lang::En => pending = request.objects.len().checked_sub(1).map(|subject| (r, subject)),
                Lang::Zh => {
                    if let Some((subject, anchor)) = zh_anchor.take() {
                        request.objects[subject].relation = Some((r, anchor));
                    }
                }
            },
            Word::Motion(m) => {
                // A motion said after an anchor reference belongs to the subject.
                let target = zh_anchor.map(|(s, _)| s).or(request.objects.len().checked_sub(1));
                if let Some(i) = target {
                    request.objects[i].motion = Some(m);
                }
                video = true;
            }
            Word::Background(b) => request.background = Some(b),
            Word::Style(s) => request.style = Some(s),
            Word::Lighting(l) => {
                request.lighting = Some(l);
                video = true;
            }
            Word::Instrument(i) => music.instrument = Some(i),
            Word::Mood(m) => music.mood = Some(m),
            Word::TempoClass(c) => music.tempo_class = music.tempo_class.or(Some(c)),
            Word::Ambience(a) => request.ambience = Some(a),
            Word::Video => video = true,
            Word::Sound => sound = true,
            Word::Picture => picture = true,
            Word::Break => (count, size, colour, colour_after) = (None, None, None, false),
        }
    }
    let has_music = music != AskedMusic::default();
    if has_music {
        request.music = Some(music);
    }
    let audible = sound || has_music || request.ambience.is_some();
    request.medium = if video {
        Medium::Video
    } else if audible && request.objects.is_empty() && !picture {
        Medium::Audio
    } else {
        Medium::Image
    };
    let nothing = request.objects.is_empty()
        && request.background.is_none()
        && request.music.is_none()
        && request.ambience.is_none()
        && request.style.is_none();
    if nothing {
        return Err(WorldError::InvalidOption(format!(
            "cannot read prompt {prompt:?}: it names no shape, background, style, music or ambience the world knows"
        )));
    }
    Ok(request)
}

/// A spec that has everything `request` asks for, the rest drawn from `seed`. This
/// is the oracle of evaluation (render what was asked); nothing that `mmgen generate`
/// returns may be made this way.
pub fn spec_from_request(request: &Request, seed: u64) -> Result<SceneSpec, WorldError> {
    use rand::Rng;
    let mut rng = crate::rng::rng_for(seed, crate::rng::Purpose::Spec);
    fn pick<T: Copy>(rng: &mut impl Rng, all: &[T]) -> T {
        all[rng.random_range(0..all.len())]
    }
    let inverse = |r: Relation| match r {
        Relation::LeftOf => Relation::RightOf,
        Relation::RightOf => Relation::LeftOf,
        Relation::Above => Relation::Below,
        Relation::Below => Relation::Above,
    };
    let total: usize = request.objects.iter().map(|o| o.count).sum();
    let mut objects: Vec<ObjectSpec> = Vec::new();
    let mut first_of = Vec::new();
    for asked in &request.objects {
        first_of.push(objects.len());
        let colour = asked.colour.unwrap_or_else(|| pick(&mut rng, Colour::ALL));
        let size = asked.size.unwrap_or(if total >= 3 {
            Size::Small
        } else {
            pick(&mut rng, Size::ALL)
        });
        for _ in 0..asked.count {
            if objects.len() == MAX_OBJECTS {
                break;
            }
            let taken = |p: Position, objects: &[ObjectSpec]| objects.iter().any(|o| o.placement == Placement::At(p));
            let placement = match asked.position {
                Some(p) if !taken(p, &objects) => Placement::At(p),
                _ => Placement::Free,
            };
            objects.push(ObjectSpec {
                shape: asked.shape,
                colour,
                size,
                placement,
                motion: asked.motion.unwrap_or(Motion::Still),
            });
        }
    }
    // Relations: the anchor must come first in a spec; a forward anchor takes the
    // inverse relation instead.
    for (i, asked) in request.objects.iter().enumerate() {
        let Some((relation, anchor)) = asked.relation else {
            continue;
        };
        let (Some(&subject), Some(&anchor_at)) = (first_of.get(i), first_of.get(anchor)) else {
            continue;
        };
        if subject >= objects.len() || anchor_at >= objects.len() || subject == anchor_at {
            continue;
        }
        if anchor_at < subject {
            objects[subject].placement = Placement::Relative {
                relation,
                of: anchor_at,
            };
        } else {
            objects[anchor_at].placement = Placement::Relative {
                relation: inverse(relation),
                of: subject,
            };
        }
    }
    if objects.is_empty() {
        objects.push(ObjectSpec {
            shape: pick(&mut rng, Shape::ALL),
            colour: pick(&mut rng, Colour::ALL),
            size: pick(&mut rng, Size::ALL),
            placement: Placement::Free,
            motion: Motion::Still,
        });
    }
    let music = request.music.map(|m| {
        let tempo_bpm = m.tempo_bpm.unwrap_or(match m.tempo_class {
            Some(TempoClass::Slow) => 75,
            Some(TempoClass::Medium) => 105,
            Some(TempoClass::Fast) => 140,
            None => rng.random_range(MIN_TEMPO_BPM..=MAX_TEMPO_BPM),
        });
        MusicSpec {
            instrument: m.instrument.unwrap_or_else(|| pick(&mut rng, Instrument::ALL)),
            mood: m.mood.unwrap_or_else(|| pick(&mut rng, Mood::ALL)),
            tempo_bpm: tempo_bpm.clamp(MIN_TEMPO_BPM, MAX_TEMPO_BPM),
        }
    });
    let spec = SceneSpec {
        version: SPEC_VERSION,
        background: request.background.unwrap_or_else(|| pick(&mut rng, Background::ALL)),
        objects,
        lighting: request.lighting.unwrap_or(Lighting::Steady),
        style: request.style.unwrap_or(Style::Flat),
        music,
        ambience: request.ambience,
    };
    spec.validate()?;
    Ok(spec)
}

/// The attributes of `spec` that a full caption of it states for `medium`, as a
/// [`Request`]: what a parser should read back from such a caption.
pub fn request_of(spec: &SceneSpec, lang: Lang, medium: Medium) -> Request {
    let mut objects: Vec<AskedObject> = Vec::new();
    let mut index_of = Vec::with_capacity(spec.objects.len());
    for group in super::groups(spec) {
        let o = group.object;
        index_of.extend(std::iter::repeat_n(objects.len(), group.count));
        let (position, relation) = match o.placement {
            Placement::Free => (None, None),
            Placement::At(p) => (Some(p), None),
            Placement::Relative { relation, of } => (None, Some((relation, index_of[of]))),
        };
        objects.push(AskedObject {
            shape: o.shape,
            colour: Some(o.colour),
            size: Some(o.size),
            count: group.count,
            position,
            relation,
            motion: (medium == Medium::Video).then_some(o.motion),
        });
    }
    let visual = medium != Medium::Audio;
    let sound = medium != Medium::Image;
    Request {
        lang,
        medium,
        objects: if visual { objects } else { Vec::new() },
        background: Some(spec.background),
        style: visual.then_some(spec.style),
        lighting: (medium == Medium::Video && spec.lighting != Lighting::Steady).then_some(spec.lighting),
        music: if sound {
            spec.music.map(|m| AskedMusic {
                instrument: Some(m.instrument),
                mood: Some(m.mood),
                tempo_bpm: Some(m.tempo_bpm),
                tempo_class: Some(TempoClass::of(m.tempo_bpm)),
            })
        } else {
            None
        },
        ambience: if sound { spec.ambience } else { None },
    }
}

#[cfg(test)]
mod tests;
