//! English captions.

use rand::Rng;

use super::lexicon::*;
use super::{groups, pick, CaptionOptions, Group, Medium};
use crate::spec::{Lighting, Placement, SceneSpec, Style, TempoClass};

fn article(next: &str) -> &'static str {
    match next.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | '8') => "an",
        _ => "a",
    }
}

/// "a small red star", "three blue balls", "a star coloured red".
fn noun_phrase(group: &Group, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let o = group.object;
    let (singular, plural) = *shape_en(o.shape)
        .get(rng.random_range(0..shape_en(o.shape).len()))
        .unwrap_or(&("thing", "things"));
    let colour = pick(rng, colour_en(o.colour));
    let size = if rng.random_bool(options.dropout) {
        None
    } else {
        Some(pick(rng, size_en(o.size)))
    };
    if group.count > 1 {
        let words: Vec<&str> = [Some(NUMBERS_EN[group.count.min(4)]), size, Some(colour), Some(plural)]
            .into_iter()
            .flatten()
            .collect();
        return words.join(" ");
    }
    if rng.random_bool(0.2) {
        let head = match size {
            Some(s) => format!("{} {s} {singular}", article(s)),
            None => format!("{} {singular}", article(singular)),
        };
        let tail = pick(rng, &["coloured", "that is", "in"]);
        return format!("{head} {tail} {colour}");
    }
    let words: Vec<&str> = [size, Some(colour), Some(singular)].into_iter().flatten().collect();
    let det = if rng.random_bool(0.1) { "one" } else { article(words[0]) };
    format!("{det} {}", words.join(" "))
}

/// "the red star": how a later object refers to its anchor.
fn reference(spec: &SceneSpec, index: usize, rng: &mut impl Rng) -> String {
    let o = spec.objects[index];
    let (singular, _) = shape_en(o.shape)[0];
    format!("the {} {singular}", pick(rng, colour_en(o.colour)))
}

/// One object group with its place and (for clips) its motion.
fn object_clause(spec: &SceneSpec, group: &Group, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let mut text = noun_phrase(group, options, rng);
    match group.object.placement {
        Placement::Free => {}
        Placement::At(position) => {
            text.push(' ');
            text.push_str(pick(rng, position_en(position)));
        }
        Placement::Relative { relation, of } => {
            text.push(' ');
            text.push_str(pick(rng, relation_en(relation)));
            text.push(' ');
            text.push_str(&reference(spec, of, rng));
        }
    }
    if options.medium == Medium::Video {
        let motion = pick(rng, motion_en(group.object.motion));
        match rng.random_range(0..4) {
            0 if group.count == 1 => text.push_str(&format!(" that is {motion}")),
            0 => text.push_str(&format!(" that are {motion}")),
            _ => text.push_str(&format!(" {motion}")),
        }
    }
    text
}

fn join(items: &[String], rng: &mut impl Rng) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => {
            let comma = if init.len() > 1 && rng.random_bool(0.5) {
                ","
            } else {
                ""
            };
            format!("{}{comma} and {last}", init.join(", "))
        }
    }
}

/// "calm piano music at 80 bpm", with mood and tempo subject to dropout.
fn music_phrase(spec: &SceneSpec, options: CaptionOptions, rng: &mut impl Rng) -> Option<String> {
    let music = spec.music?;
    let instrument = pick(rng, instrument_en(music.instrument));
    let mood = (!rng.random_bool(options.dropout)).then(|| pick(rng, mood_en(music.mood)));
    let tempo_word = pick(rng, tempo_en(TempoClass::of(music.tempo_bpm)));
    let tempo = match rng.random_range(0..3) {
        _ if rng.random_bool(options.dropout) => String::new(),
        0 => format!(" at {} bpm", music.tempo_bpm),
        1 => format!(" ({} BPM)", music.tempo_bpm),
        _ => format!(", {tempo_word}"),
    };
    let adj = mood.map(|m| format!("{m} ")).unwrap_or_default();
    Some(match rng.random_range(0..4) {
        0 => format!("{adj}{instrument} music{tempo}"),
        1 => format!("a {adj}{instrument} piece{tempo}"),
        2 => format!("{adj}{instrument} melody{tempo}"),
        _ => format!(
            "{instrument} music{}{tempo}",
            mood.map(|m| format!(" that sounds {m}")).unwrap_or_default()
        ),
    })
}

fn sound_tail(spec: &SceneSpec, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let mut tail = String::new();
    if let Some(music) = music_phrase(spec, options, rng) {
        tail.push_str(pick(
            rng,
            &[" with ", ", set to ", ", accompanied by ", " with a soundtrack of "],
        ));
        tail.push_str(&music);
    }
    if let Some(ambience) = spec.ambience {
        let sound = pick(rng, ambience_en(ambience));
        tail.push_str(&if spec.music.is_some() {
            format!("{}{sound}", pick(rng, &[" and ", " over ", ", plus "]))
        } else {
            format!("{}{sound}", pick(rng, &[" with ", ", with ", " and "]))
        });
    }
    tail
}

/// One English caption of `spec`.
pub fn caption(spec: &SceneSpec, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let background = pick(rng, background_en(spec.background));
    if options.medium == Medium::Audio {
        return audio_caption(spec, background, options, rng);
    }
    let video = options.medium == Medium::Video;
    let drop_objects = video && spec.has_audio() && rng.random_bool(options.dropout * 0.5);
    let objects = if drop_objects {
        String::new()
    } else {
        let clauses: Vec<String> = groups(spec)
            .iter()
            .map(|g| object_clause(spec, g, options, rng))
            .collect();
        join(&clauses, rng)
    };
    // Flat is the default look: training captions often leave it unsaid.
    let drop_flat = options.dropout > 0.0 && rng.random_bool(options.dropout.max(0.5));
    let say_style = spec.style != Style::Flat || !drop_flat;
    let style_tail = if say_style {
        format!(" {}", pick(rng, style_en(spec.style)))
    } else {
        String::new()
    };
    let prefix = if video {
        pick(
            rng,
            &[
                "a short video of ",
                "a clip of ",
                "an animation of ",
                "generate a short video of ",
                "make a video showing ",
                "video: ",
            ],
        )
    } else {
        pick(
            rng,
            &[
                "",
                "an image of ",
                "a picture of ",
                "draw ",
                "generate an image of ",
                "show me ",
                "please draw ",
                "illustration of ",
            ],
        )
    };
    let mut text = if objects.is_empty() {
        format!("{prefix}{background}")
    } else {
        match rng.random_range(0..4) {
            0 => format!(
                "{prefix}{objects} {} {background}",
                pick(rng, &["in front of", "against", "set against", "over"])
            ),
            1 => format!("{prefix}{background} with {objects}"),
            2 => format!("{prefix}{objects}, with {background} behind"),
            _ if say_style && !video => {
                let adj = pick(rng, style_adj_en(spec.style));
                let noun = pick(rng, &["picture", "image", "illustration"]);
                let lead = format!("{} {adj} {noun}", article(adj));
                return finish(
                    format!(
                        "{lead} of {objects} {} {background}",
                        pick(rng, &["in front of", "against", "with"])
                    ),
                    rng,
                );
            }
            _ => format!(
                "{prefix}{objects} {} {background}",
                pick(rng, &["in front of", "against"])
            ),
        }
    };
    text.push_str(&style_tail);
    if video {
        if spec.lighting != Lighting::Steady {
            text.push_str(", ");
            text.push_str(pick(rng, lighting_en(spec.lighting)));
        }
        text.push_str(&sound_tail(spec, options, rng));
    }
    finish(text, rng)
}

fn audio_caption(spec: &SceneSpec, background: &str, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let music = music_phrase(spec, options, rng);
    let ambience = spec.ambience.map(|a| pick(rng, ambience_en(a)).to_string());
    let sound = match (music, ambience) {
        (Some(m), Some(a)) => format!("{m} {} {a}", pick(rng, &["with", "over", "and"])),
        (Some(m), None) => m,
        (None, Some(a)) => a,
        (None, None) => "silence".to_string(),
    };
    let prefix = pick(
        rng,
        &["", "play ", "compose ", "generate ", "a soundtrack of ", "audio: "],
    );
    let text = if rng.random_bool(0.4) {
        format!("{prefix}{sound} for {background}")
    } else {
        format!("{prefix}{sound}")
    };
    finish(text, rng)
}

/// Capitalisation and final punctuation vary too.
fn finish(mut text: String, rng: &mut impl Rng) -> String {
    if rng.random_bool(0.5) {
        if let Some(first) = text.chars().next() {
            text = first.to_uppercase().collect::<String>() + &text[first.len_utf8()..];
        }
    }
    if rng.random_bool(0.4) {
        text.push('.');
    }
    text
}
