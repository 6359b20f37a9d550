//! Which modalities a request asks for, and in which language it was written.
//!
//! The modalities are read from the prompt by a network (the grounded sound's music
//! planner, whose medium, music and ambience heads were trained on the world's
//! image, clip and sound captions), not by keywords or the world's caption parser:
//! what `generate` decides, a trained network decides, and nothing that generates
//! may depend on the world (the design's rule; `crates/cli/tests/architecture.rs`).

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
    /// For each planned modality, what the request reader read that asked for it
    /// (none for a still, and for modalities given by `--modalities`).
    pub because: Vec<(Modality, Option<String>)>,
}

/// What the request reader (the grounded sound's music planner, a network trained on
/// the world's image, clip and sound captions) made of a prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// "image", "video" or "audio": a still, a clip, or sound alone (None where the
    /// reader has no medium head).
    pub medium: Option<String>,
    /// Whether it asks for music.
    pub music: bool,
    /// The ambience it asks for, if any.
    pub ambience: Option<String>,
}

impl Plan {
    /// The plan of a prompt as the request reader read it: a clip comes with its key
    /// image, sound alone with no picture, music or ambience adds sound to a still or
    /// a clip. Without a reading (no reader loaded), a still.
    pub fn read(prompt: &str, reading: Option<&Reading>) -> Plan {
        let medium = reading.and_then(|r| r.medium.as_deref());
        let said = |what: &str| Some(format!("the request reads as {what}"));
        let mut because = match medium {
            Some("video") => vec![(Modality::Image, None), (Modality::Video, said("a clip"))],
            Some("audio") => vec![(Modality::Audio, said("sound alone"))],
            _ => vec![(Modality::Image, None)],
        };
        if let Some(r) = reading.filter(|_| medium != Some("audio")) {
            let sound = match (&r.ambience, r.music) {
                (_, true) => Some("asking for music".to_string()),
                (Some(ambience), false) => Some(format!("asking for the sound of {ambience}")),
                (None, false) => None,
            };
            if let Some(sound) = sound {
                because.push((Modality::Audio, said(&sound)));
            }
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

    fn reading(medium: Option<&str>, music: bool, ambience: Option<&str>) -> Reading {
        Reading {
            medium: medium.map(String::from),
            music,
            ambience: ambience.map(String::from),
        }
    }

    #[test]
    fn a_reading_becomes_the_modalities() {
        let all = vec![Modality::Image, Modality::Video, Modality::Audio];
        let headline = "生成一段描述海边日落的短视频,配乐为钢琴曲";
        let zh = Plan::read(headline, Some(&reading(Some("video"), true, None)));
        assert_eq!((zh.modalities.clone(), zh.lang), (all, Lang::Zh));
        assert_eq!(
            zh.because[1],
            (Modality::Video, Some("the request reads as a clip".into()))
        );
        let still = Plan::read("a red star", Some(&reading(Some("image"), false, None)));
        assert_eq!((still.modalities, still.lang), (vec![Modality::Image], Lang::En));
        let alone = Plan::read("calm piano music", Some(&reading(Some("audio"), true, Some("rain"))));
        assert_eq!(alone.modalities, vec![Modality::Audio], "sound alone has no picture");
        let rain = Plan::read("a clip of rain", Some(&reading(Some("video"), false, Some("rain"))));
        assert_eq!(rain.modalities.last(), Some(&Modality::Audio));
        assert!(rain.because[2].1.as_deref().unwrap().contains("rain"));
        assert_eq!(
            Plan::read("anything", None).modalities,
            vec![Modality::Image],
            "no reader, a still"
        );
        let old = Plan::read("x", Some(&reading(None, true, None)));
        assert_eq!(
            old.modalities,
            vec![Modality::Image, Modality::Audio],
            "a reader without the medium head"
        );
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
