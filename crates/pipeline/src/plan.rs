//! Which modalities a request asks for, and in which language it was written.
//!
//! The plan is read from the prompt's own words ("a short video ... with piano music",
//! "生成一段...短视频,配乐为钢琴曲") by keyword, not by the world's caption parser: the
//! pipeline must work for any prompt, and nothing that generates may depend on the
//! world (the design's rule; `crates/cli/tests/architecture.rs`).

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};

/// One kind of output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// A still image (`image.png`; the key frame of a video).
    Image,
    /// A short video (`video.mp4`, `video.gif`).
    Video,
    /// Music or sound (`audio.wav`, and the MP4's audio track).
    Audio,
}

/// The names `--modalities` takes.
pub const MODALITY_NAMES: [&str; 3] = ["image", "video", "audio"];

impl Modality {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Image => "image",
            Modality::Video => "video",
            Modality::Audio => "audio",
        }
    }

    /// Parses a comma-separated list ("image,audio"), de-duplicated and ordered.
    pub fn parse_list(text: &str) -> Result<Vec<Modality>> {
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let modality = match word.to_ascii_lowercase().as_str() {
                "image" => Modality::Image,
                "video" => Modality::Video,
                "audio" => Modality::Audio,
                _ => {
                    return Err(PipelineError::Invalid(format!(
                        "unknown modality '{word}'; allowed: {} (comma-separated)",
                        MODALITY_NAMES.join(", ")
                    )))
                }
            };
            out.push(modality);
        }
        Modality::ordered(out)
    }

    /// A list of modalities in the order of a package (image, video, audio), each
    /// once; an empty list is refused.
    pub fn ordered(mut list: Vec<Modality>) -> Result<Vec<Modality>> {
        if list.is_empty() {
            return Err(PipelineError::Invalid(format!(
                "no modality given; allowed: {} (comma-separated)",
                MODALITY_NAMES.join(", ")
            )));
        }
        list.sort();
        list.dedup();
        Ok(list)
    }
}

/// The language of a prompt (and of the package's caption).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English (or anything without Chinese characters).
    En,
    /// Chinese: the prompt holds CJK ideographs.
    Zh,
}

impl Lang {
    /// Chinese if any character is a CJK ideograph, else English.
    pub fn of(prompt: &str) -> Lang {
        let cjk = |c: char| matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF);
        if prompt.chars().any(cjk) {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// What a prompt asks for, and the words that said so.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// The modalities to make, ordered (image, video, audio).
    pub modalities: Vec<Modality>,
    /// The prompt's language.
    pub lang: Lang,
    /// For each planned modality, the prompt word that asked for it (none when it was
    /// the default or given by `--modalities`).
    pub because: Vec<(Modality, Option<String>)>,
}

const VIDEO_WORDS: [&str; 12] = [
    "video",
    "clip",
    "animation",
    "animated",
    "movie",
    "film",
    "footage",
    "视频",
    "短片",
    "动画",
    "影片",
    "录像",
];
const AUDIO_WORDS: [&str; 15] = [
    "music",
    "song",
    "audio",
    "sound",
    "melody",
    "soundtrack",
    "tune",
    "piano",
    "音乐",
    "配乐",
    "乐曲",
    "歌",
    "音频",
    "声音",
    "钢琴",
];

impl Plan {
    /// Reads the plan from the prompt: video words ("video", "视频", ...) add video,
    /// music words ("music", "配乐", ...) add audio; a video comes with its key image;
    /// a prompt that names neither gets an image.
    pub fn from_prompt(prompt: &str) -> Plan {
        let lower = prompt.to_lowercase();
        let find = |words: &[&str]| words.iter().find(|w| lower.contains(*w)).map(|w| w.to_string());
        let (video, audio) = (find(&VIDEO_WORDS), find(&AUDIO_WORDS));
        let mut because = Vec::new();
        if video.is_some() || audio.is_none() {
            because.push((Modality::Image, None));
        }
        if let Some(word) = video {
            because.push((Modality::Video, Some(word)));
        }
        if let Some(word) = audio {
            because.push((Modality::Audio, Some(word)));
        }
        Plan {
            modalities: because.iter().map(|(m, _)| *m).collect(),
            lang: Lang::of(prompt),
            because,
        }
    }

    /// The plan for explicitly chosen modalities.
    pub fn given(prompt: &str, modalities: Vec<Modality>) -> Plan {
        Plan {
            because: modalities.iter().map(|m| (*m, None)).collect(),
            modalities,
            lang: Lang::of(prompt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_modalities_from_the_prompt() {
        let all = vec![Modality::Image, Modality::Video, Modality::Audio];
        let zh = Plan::from_prompt("生成一段描述海边日落的短视频,配乐为钢琴曲");
        assert_eq!((zh.modalities.clone(), zh.lang), (all.clone(), Lang::Zh));
        assert_eq!(zh.because[1], (Modality::Video, Some("视频".into())));
        let en = Plan::from_prompt("A short video of a sunset over the sea, with piano music");
        assert_eq!((en.modalities, en.lang), (all, Lang::En));
        let image = Plan::from_prompt("a red star above a blue circle");
        assert_eq!(image.modalities, vec![Modality::Image]);
        let music = Plan::from_prompt("calm piano music at 80 bpm");
        assert_eq!(music.modalities, vec![Modality::Audio]);
    }

    #[test]
    fn parses_modality_lists_and_refuses_unknown_ones() {
        assert_eq!(
            Modality::parse_list("audio, image,audio").unwrap(),
            vec![Modality::Image, Modality::Audio]
        );
        let err = Modality::parse_list("image,smell").unwrap_err().to_string();
        assert!(
            err.contains("unknown modality 'smell'") && err.contains("image, video, audio"),
            "{err}"
        );
        assert!(Modality::parse_list(" , ").is_err());
    }
}
