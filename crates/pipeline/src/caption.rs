//! `caption.txt`: what the package holds, said in the prompt's language.

use crate::plan::{Lang, Modality, Plan};

/// What a package holds: image side, (frames, fps) of a video, seconds of audio.
pub(crate) struct Made {
    pub(crate) size: usize,
    pub(crate) video: Option<(usize, u32)>,
    pub(crate) audio_seconds: Option<f64>,
}

/// What was made, in the prompt's language.
pub(crate) fn caption(plan: &Plan, made: &Made, prompt: &str, seed: u64) -> String {
    let prompt = prompt.trim();
    let size = made.size;
    match plan.lang {
        Lang::En => {
            let mut parts = Vec::new();
            if let Some((frames, fps)) = made.video {
                parts.push(format!(
                    "a {size}x{size} video of {frames} frames ({:.1} s at {fps} fps) with its key frame",
                    frames as f64 / fps as f64
                ));
            } else if plan.modalities.contains(&Modality::Image) {
                parts.push(format!("a {size}x{size} image"));
            }
            if let Some(seconds) = made.audio_seconds {
                parts.push(format!("{seconds:.1} s of music"));
            }
            let what = parts.join(" and ");
            let mut chars = what.chars();
            let what = chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default();
            format!("{what} made for the request \"{prompt}\" (seed {seed}).")
        }
        Lang::Zh => {
            let mut parts = Vec::new();
            if let Some((frames, fps)) = made.video {
                parts.push(format!(
                    "{size}x{size} 的 {frames} 帧视频({:.1} 秒,每秒 {fps} 帧)及其关键帧",
                    frames as f64 / fps as f64
                ));
            } else if plan.modalities.contains(&Modality::Image) {
                parts.push(format!("{size}x{size} 图像"));
            }
            if let Some(seconds) = made.audio_seconds {
                parts.push(format!("{seconds:.1} 秒音乐"));
            }
            format!("根据请求“{prompt}”生成的{}(种子 {seed})。", parts.join("和"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_three() -> Vec<Modality> {
        vec![Modality::Image, Modality::Video, Modality::Audio]
    }

    #[test]
    fn captions_follow_the_prompt_language() {
        let image = Made {
            size: 64,
            video: None,
            audio_seconds: None,
        };
        let en = caption(&Plan::read("a red star", None), &image, "a red star", 3);
        assert_eq!(en, "A 64x64 image made for the request \"a red star\" (seed 3).");
        let zh = caption(&Plan::read("一颗红色的星星", None), &image, "一颗红色的星星", 3);
        assert_eq!(zh, "根据请求“一颗红色的星星”生成的64x64 图像(种子 3)。");
        let all = Made {
            size: 64,
            video: Some((24, 8)),
            audio_seconds: Some(3.0),
        };
        let prompt = "生成一段描述海边日落的短视频,配乐为钢琴曲";
        let zh = caption(&Plan::given(prompt, all_three()), &all, prompt, 0);
        assert!(zh.contains("24 帧视频(3.0 秒") && zh.contains("3.0 秒音乐"), "{zh}");
        let prompt = "a short video of the sea with piano music";
        let en = caption(&Plan::given(prompt, all_three()), &all, prompt, 0);
        assert!(
            en.starts_with("A 64x64 video of 24 frames (3.0 s at 8 fps) with its key frame and 3.0 s of music"),
            "{en}"
        );
    }
}
