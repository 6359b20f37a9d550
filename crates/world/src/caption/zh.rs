//! Chinese captions.

use rand::Rng;

use super::lexicon::*;
use super::{groups, pick, CaptionOptions, Group, Medium};
use crate::spec::{Lighting, Placement, SceneSpec, Size, Style, TempoClass};

/// "一个红色的小星星", "三个小小的蓝色圆球".
fn noun_phrase(group: &Group, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let o = group.object;
    let number = NUMBERS_ZH[group.count.min(4)];
    let shape = pick(rng, shape_zh(o.shape));
    let colour = pick(rng, colour_zh(o.colour));
    if rng.random_bool(options.dropout) {
        return format!("{number}{colour}的{shape}");
    }
    // 小/大 right before the noun, or a reduplicated adjective in front.
    let (plain, doubled) = match o.size {
        Size::Small => ("小", pick(rng, &["小小的"])),
        Size::Large => ("大", pick(rng, &["大大的", "巨大的"])),
    };
    if rng.random_bool(0.5) {
        format!("{number}{colour}的{plain}{shape}")
    } else {
        format!("{number}{doubled}{colour}{shape}")
    }
}

fn object_clause(spec: &SceneSpec, group: &Group, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let mut text = noun_phrase(group, options, rng);
    match group.object.placement {
        Placement::Free => {}
        Placement::At(position) => text.push_str(pick(rng, position_zh(position))),
        Placement::Relative { relation, of } => {
            let anchor = spec.objects[of];
            text.push_str(&format!(
                "在{}{}{}",
                pick(rng, colour_zh(anchor.colour)),
                shape_zh(anchor.shape)[0],
                pick(rng, relation_zh(relation))
            ));
        }
    }
    if options.medium == Medium::Video {
        // "正在" reads well after a bare noun; after a place phrase it would stack "在".
        if group.object.placement == Placement::Free {
            text.push_str(pick(rng, &["", "正在"]));
        }
        text.push_str(pick(rng, motion_zh(group.object.motion)));
    }
    text
}

fn music_phrase(spec: &SceneSpec, options: CaptionOptions, rng: &mut impl Rng) -> Option<String> {
    let music = spec.music?;
    let instrument = pick(rng, instrument_zh(music.instrument));
    let mood = (!rng.random_bool(options.dropout)).then(|| pick(rng, mood_zh(music.mood)));
    let tempo = match rng.random_range(0..3) {
        _ if rng.random_bool(options.dropout) => String::new(),
        0 => format!(",每分钟{}拍", music.tempo_bpm),
        1 => format!(",速度{} BPM", music.tempo_bpm),
        _ => format!(",{}", pick(rng, tempo_zh(TempoClass::of(music.tempo_bpm)))),
    };
    let m = mood.map(|m| format!("{m}的")).unwrap_or_default();
    Some(match rng.random_range(0..4) {
        0 => format!("配乐为{m}{instrument}曲{tempo}"),
        1 => format!("背景音乐是{m}{instrument}{tempo}"),
        2 => format!("配上{m}{instrument}音乐{tempo}"),
        _ => format!("伴随着{m}{instrument}声{tempo}"),
    })
}

fn sound_tail(spec: &SceneSpec, options: CaptionOptions, rng: &mut impl Rng, comma: &str) -> String {
    let mut tail = String::new();
    if let Some(music) = music_phrase(spec, options, rng) {
        tail.push_str(comma);
        tail.push_str(&music);
    }
    if let Some(ambience) = spec.ambience {
        tail.push_str(comma);
        tail.push_str(pick(rng, &["伴有", "还能听到", "夹杂着"]));
        tail.push_str(pick(rng, ambience_zh(ambience)));
    }
    tail
}

/// One Chinese caption of `spec`.
pub fn caption(spec: &SceneSpec, options: CaptionOptions, rng: &mut impl Rng) -> String {
    let background = pick(rng, background_zh(spec.background));
    // Both the ASCII and the full-width comma occur in real requests.
    let comma = pick(rng, &[",", ","]);
    if options.medium == Medium::Audio {
        let music = music_phrase(spec, options, rng).unwrap_or_default();
        let ambience = spec
            .ambience
            .map(|a| format!("伴有{}", pick(rng, ambience_zh(a))))
            .unwrap_or_default();
        let scene = if rng.random_bool(0.4) {
            format!("为{background}{comma}")
        } else {
            String::new()
        };
        let prefix = pick(rng, &["", "生成一段音乐:", "创作一段音乐,", "来一段"]);
        let body: Vec<String> = [music, ambience].into_iter().filter(|s| !s.is_empty()).collect();
        return format!("{prefix}{scene}{}", body.join(comma));
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
        clauses.join(pick(rng, &[",", "、", "和"]))
    };
    // Flat is the default look: training captions often leave it unsaid.
    let drop_flat = options.dropout > 0.0 && rng.random_bool(options.dropout.max(0.5));
    let say_style = spec.style != Style::Flat || !drop_flat;
    let style = pick(rng, style_zh(spec.style));
    let mut text = if video {
        let lead = match rng.random_range(0..3) {
            0 => format!("生成一段描述{background}的短视频"),
            1 => format!(
                "{}{background}",
                pick(rng, &["生成一段短视频:", "制作一段视频:", "一段动画:"])
            ),
            _ => format!("在{background}的背景下"),
        };
        [lead, objects]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(comma)
    } else {
        let prefix = pick(rng, &["", "画一幅", "生成一张图片:", "请画出", "给我画"]);
        match rng.random_range(0..3) {
            0 => format!("{prefix}{background}{comma}{objects}"),
            1 => format!("{prefix}{objects}{comma}背景是{background}"),
            _ => format!("在{background}的背景下{comma}{objects}"),
        }
    };
    if say_style {
        text.push_str(comma);
        text.push_str(style);
    }
    if video {
        if spec.lighting != Lighting::Steady {
            text.push_str(comma);
            text.push_str(pick(rng, lighting_zh(spec.lighting)));
        }
        text.push_str(&sound_tail(spec, options, rng, comma));
    }
    if rng.random_bool(0.3) {
        text.push('。');
    }
    text
}
