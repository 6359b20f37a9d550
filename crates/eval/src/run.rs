//! `mmgen eval`: a prompt set, a generator, the probes, and a per-category report.

use std::collections::BTreeMap;

use mmgen_world::caption::parse::parse_prompt;
use mmgen_world::rng::mix64;
use mmgen_world::{caption_for_seed, CaptionOptions, Lang, Medium, SpecSampler, Split};
use serde::Serialize;

use crate::align::Category;
use crate::error::{EvalError, Result};
use crate::fd::frechet_distance;
use crate::generator::{GenerationSettings, Generator, Oracle};
use crate::probes::Probes;
use crate::report::{CategoryScore, EvalReport, PromptResult};
use crate::score::score_prompt;

/// Which modality is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Still images: the six GenEval categories.
    Image,
    /// Clips: motion and temporal consistency.
    Video,
    /// Sound: instrument, mood, tempo.
    Audio,
}

impl Task {
    fn medium(self) -> Medium {
        match self {
            Task::Image => Medium::Image,
            Task::Video => Medium::Video,
            Task::Audio => Medium::Audio,
        }
    }

    fn categories(self) -> &'static [Category] {
        match self {
            Task::Image => Category::IMAGE,
            Task::Video => Category::VIDEO,
            Task::Audio => Category::AUDIO,
        }
    }
}

/// Where the prompts come from.
#[derive(Clone, Debug)]
pub enum Prompts {
    /// Full captions of `n` specs of a split, in one language.
    World {
        /// How many.
        n: usize,
        /// Which side of the split.
        split: Split,
        /// Caption language.
        lang: Lang,
    },
    /// Free prompts, one per entry.
    Given(Vec<String>),
}

impl Prompts {
    /// The prompt texts for `medium`, deterministic from `seed`. Audio prompts come
    /// from scenes with music.
    pub fn texts(&self, medium: Medium, seed: u64) -> Vec<String> {
        match self {
            Prompts::World { n, split, lang } => {
                let sampler = SpecSampler {
                    p_music: if medium == Medium::Audio { 1.0 } else { 0.7 },
                    ..Default::default()
                };
                (0..*n as u64)
                    .map(|i| {
                        let s = mix64(seed ^ mix64(i));
                        caption_for_seed(&sampler.sample(*split, s), *lang, CaptionOptions::full(medium), s)
                    })
                    .collect()
            }
            Prompts::Given(list) => list.clone(),
        }
    }
}

/// Frames and seconds of the generated media.
#[derive(Clone, Copy, Debug)]
pub struct MediaOptions {
    /// Frames per clip (video task).
    pub frames: u32,
    /// Seconds per clip (audio task).
    pub seconds: f32,
}

impl Default for MediaOptions {
    fn default() -> Self {
        MediaOptions {
            frames: 24,
            seconds: 4.0,
        }
    }
}

/// Evaluates `generator` on `prompts`, calling `progress(done, total, result)` with each
/// prompt's result as it goes; each result's `reading` (what the probes read, frame by
/// frame for clips) is built only with `per_prompt`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    generator: &mut dyn Generator,
    probes: &Probes,
    task: Task,
    prompts: &Prompts,
    seed: u64,
    media: MediaOptions,
    per_prompt: bool,
    mut progress: impl FnMut(usize, usize, &PromptResult),
) -> Result<EvalReport> {
    let texts = prompts.texts(task.medium(), seed);
    if texts.is_empty() {
        return Err(EvalError::Invalid("no prompts to evaluate".into()));
    }
    let settings = GenerationSettings {
        size: probes.image.config().image_size as u32,
        frames: if task == Task::Video { media.frames } else { 0 },
        seconds: if task == Task::Audio { media.seconds } else { 0.0 },
        ..GenerationSettings::image()
    };
    let mut rows: BTreeMap<Category, (usize, usize)> = BTreeMap::new();
    let (mut generated_features, mut real_features) = (Vec::new(), Vec::new());
    for (i, text) in texts.iter().enumerate() {
        let request = parse_prompt(text).map_err(|e| EvalError::Prompt {
            prompt: text.clone(),
            reason: e.to_string(),
        })?;
        let s = mix64(seed ^ 0x6E4E ^ i as u64);
        let out = generator.generate(text, s, &settings)?;
        // A fresh render of the same request: the real side of the world-FD.
        let real = Oracle.generate(text, mix64(s), &settings)?;
        let scored = score_prompt(probes, task, &request, &out, &real, &generator.name(), text, per_prompt)?;
        for &(category, ok) in &scored.checks {
            let row = rows.entry(category).or_default();
            row.0 += ok as usize;
            row.1 += 1;
        }
        let result = PromptResult {
            prompt: text.clone(),
            seed: s,
            checks: scored.checks.iter().map(|&(c, ok)| (c.name(), ok)).collect(),
            reading: scored.reading,
        };
        generated_features.push(scored.generated);
        real_features.push(scored.real);
        progress(i + 1, texts.len(), &result);
    }
    let categories: BTreeMap<&'static str, CategoryScore> = task
        .categories()
        .iter()
        .filter_map(|c| {
            rows.get(c).map(|&(passed, total)| {
                (
                    c.name(),
                    CategoryScore {
                        passed,
                        total,
                        score: passed as f64 / total as f64,
                        in_overall: c.in_overall(),
                    },
                )
            })
        })
        .collect();
    let overall_rows: Vec<f64> = categories.values().filter(|r| r.in_overall).map(|r| r.score).collect();
    // No prompt asked for a category of this task (e.g. a video prompt without
    // objects): there is no score, rather than a score of 0 (JSON null).
    let overall = if overall_rows.is_empty() {
        f64::NAN
    } else {
        overall_rows.iter().sum::<f64>() / overall_rows.len() as f64
    };
    let world_fd = if texts.len() >= 2 {
        frechet_distance(&generated_features, &real_features)?
    } else {
        f64::NAN
    };
    let probe_accuracy = match task {
        Task::Image => probes.accuracy.get("image"),
        Task::Video => probes.accuracy.get("video"),
        Task::Audio => probes.accuracy.get("audio"),
    };
    Ok(EvalReport {
        task,
        source: generator.name(),
        prompts: texts.len(),
        seed,
        categories,
        overall,
        world_fd,
        probe_accuracy: probe_accuracy.cloned().unwrap_or(serde_json::Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::fixtures::{det, reading, unsure};
    use crate::generator::RandomScene;
    use crate::probe::audio::{AudioProbe, AudioProbeConfig};
    use crate::probe::image::{ImageProbe, ImageProbeConfig};
    use crate::probe::video::TrackPoint;
    use crate::probe::video::{VideoProbe, VideoProbeConfig};
    use crate::probes::*;
    use crate::report::*;
    use crate::score::*;
    use crate::track::Track;
    use candle_core::DType;
    use candle_core::Device;
    use candle_nn::VarBuilder;
    use mmgen_world::{Colour, Shape};

    fn tiny_probes() -> Probes {
        let dev = Device::Cpu;
        let vb = || VarBuilder::zeros(DType::F32, &dev);
        let image = ImageProbe::new(
            &ImageProbeConfig {
                stem: vec![],
                ..ImageProbeConfig::tiny()
            },
            vb(),
        )
        .unwrap();
        let video = VideoProbe::new(&VideoProbeConfig::tiny(), vb()).unwrap();
        let audio = AudioProbe::new(&AudioProbeConfig::tiny(), vb()).unwrap();
        Probes::new(image, Some(video), Some(audio), &dev)
    }

    #[test]
    fn the_table_lists_the_probes_accuracy_without_the_breakdowns() {
        let tally = |a: f64| serde_json::json!({"accuracy": a, "correct": 1, "total": 1});
        let record = serde_json::json!({
            "motion": tally(0.997),
            "frames": {"shape": tally(0.994), "shape | pixel_art": tally(0.944), "deeper": {"x": tally(0.5)}},
        });
        assert_eq!(
            probe_attributes(&record),
            vec![("frames.shape".to_string(), 0.994), ("motion".to_string(), 0.997)]
        );
        assert!(probe_attributes(&serde_json::Value::Null).is_empty());
    }

    #[test]
    fn the_video_accuracy_carries_the_image_readings_on_clip_frames() {
        let dir = std::env::temp_dir().join(format!("mmgen-frame-reading-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let motion = serde_json::json!({"motion": {"accuracy": 0.99, "correct": 99, "total": 100}});
        let with_video = || {
            let mut accuracy = serde_json::Map::new();
            accuracy.insert("video".into(), motion.clone());
            accuracy
        };
        // No clip-frame record (a folder calibrated with --clips 0, or before it existed).
        std::fs::write(dir.join("metrics.json"), r#"{"accuracy": {"heldout": {}}}"#).unwrap();
        let mut accuracy = with_video();
        add_frame_reading(&mut accuracy, &dir);
        assert_eq!(accuracy["video"], motion);
        // With one: next to the motion probe's own.
        let shape = serde_json::json!({"accuracy": 0.98, "correct": 98, "total": 100});
        let record = serde_json::json!({"clip_frames": {"train": {}, "heldout": {"shape": shape}}});
        std::fs::write(dir.join("metrics.json"), record.to_string()).unwrap();
        let mut accuracy = with_video();
        add_frame_reading(&mut accuracy, &dir);
        assert_eq!(accuracy["video"]["motion"], motion["motion"]);
        assert_eq!(accuracy["video"]["frames"]["shape"], shape);
        // Without a video probe there is nothing to put it next to.
        let mut accuracy = serde_json::Map::new();
        add_frame_reading(&mut accuracy, &dir);
        assert!(accuracy.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_task_runs_and_reports_its_categories() {
        let probes = tiny_probes();
        let prompts = Prompts::World {
            n: 6,
            split: Split::Heldout,
            lang: Lang::Zh,
        };
        let media = MediaOptions {
            frames: 8,
            seconds: 1.0,
        };
        let mut counted_objects = 0;
        for task in [Task::Image, Task::Video, Task::Audio] {
            let mut per_prompt = Vec::new();
            let report = evaluate(
                &mut Oracle,
                &probes,
                task,
                &prompts,
                1,
                media,
                true,
                |done, _, result| {
                    per_prompt.push(result.clone());
                    assert_eq!(done, per_prompt.len());
                },
            )
            .unwrap();
            assert_eq!((report.prompts, per_prompt.len()), (6, 6));
            assert!(!report.categories.is_empty(), "{task:?}");
            for name in report.categories.keys() {
                assert!(task.categories().iter().any(|c| c.name() == *name));
            }
            assert!((0.0..=1.0).contains(&report.overall));
            let json = serde_json::to_value(&report).unwrap();
            for key in [
                "task",
                "source",
                "prompts",
                "seed",
                "categories",
                "overall",
                "world_fd",
                "probe_accuracy",
            ] {
                assert!(json.get(key).is_some(), "{key}");
            }
            // Each prompt's result adds up to the report.
            for (name, row) in &report.categories {
                let results: Vec<bool> = per_prompt.iter().filter_map(|r| r.checks.get(name).copied()).collect();
                assert_eq!(
                    (results.iter().filter(|&&ok| ok).count(), results.len()),
                    (row.passed, row.total),
                    "{name}"
                );
            }
            for result in &per_prompt {
                let keys: &[&str] = match task {
                    Task::Image => &["objects", "background", "style"],
                    Task::Video => &["objects", "style"],
                    Task::Audio => &["instrument", "mood", "tempo_bpm"],
                };
                for key in keys {
                    assert!(result.reading.get(key).is_some(), "{task:?} reading lacks {key}");
                }
                if task == Task::Video {
                    // One entry per asked object; a found one has a character per frame,
                    // and a counted one lists every copy.
                    let objects = result.reading["objects"].as_array().unwrap();
                    let asked = parse_prompt(&result.prompt).unwrap().objects;
                    assert_eq!(objects.len(), asked.len());
                    for (o, a) in objects.iter().zip(&asked) {
                        let copies = o.get("copies").map(|c| c.as_array().unwrap().clone());
                        assert_eq!(copies.as_ref().map(Vec::len), (a.count > 1).then_some(a.count));
                        counted_objects += (a.count > 1) as usize;
                        for frames in std::iter::once(&o["frames"]).chain(copies.iter().flatten()) {
                            if let Some(frames) = frames.as_str() {
                                assert!(
                                    frames.len() == 8 && frames.chars().all(|c| "#.-".contains(c)),
                                    "{frames}"
                                );
                            }
                        }
                        // `misread` lists exactly the `.` frames of every copy.
                        let patterns: Vec<&serde_json::Value> = match &copies {
                            Some(c) => c.iter().collect(),
                            None => vec![&o["frames"]],
                        };
                        let mut dots: Vec<(u64, u64)> = Vec::new();
                        for (k, pattern) in patterns.iter().enumerate() {
                            for (f, c) in pattern.as_str().unwrap_or("").chars().enumerate() {
                                if c == '.' {
                                    dots.push((k as u64, f as u64));
                                }
                            }
                        }
                        let listed: Vec<(u64, u64)> = o
                            .get("misread")
                            .map(|m| m.as_array().unwrap().clone())
                            .unwrap_or_default()
                            .iter()
                            .map(|m| (m["copy"].as_u64().unwrap_or(0), m["frame"].as_u64().unwrap()))
                            .collect();
                        assert_eq!(listed, dots, "{o}");
                    }
                }
            }
        }
        assert!(counted_objects > 0, "the prompts ask for a counted object in a clip");
        // The same run twice gives the same report.
        let a = evaluate(
            &mut RandomScene,
            &probes,
            Task::Image,
            &prompts,
            3,
            media,
            false,
            |_, _, _| (),
        )
        .unwrap();
        let b = evaluate(
            &mut RandomScene,
            &probes,
            Task::Image,
            &prompts,
            3,
            media,
            false,
            |_, _, _| (),
        )
        .unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }

    #[test]
    fn a_track_shows_its_frames_seen_missed_and_not_judged() {
        let point = TrackPoint {
            cx: 0.5,
            cy: 0.5,
            radius: 0.1,
        };
        let track = Track {
            points: vec![point; 4],
            seen: vec![true, false, true, false],
            judged: vec![true, true, false, false],
        };
        assert_eq!(track_pattern(&track), "#.--");
    }

    #[test]
    fn misread_frames_say_what_was_read_at_the_object() {
        // Seen in frame 0; read as a hexagon at its place in frame 1; nothing within its
        // radius in frame 2 (a star further off); frame 3 not judged.
        let readings = vec![
            reading(vec![det(Shape::Star, Colour::Red, 0.5, 0.5)]),
            reading(vec![
                det(Shape::Star, Colour::Red, 0.9, 0.5),
                unsure(Shape::Hexagon, Shape::Star, 0.1, 0.53, 0.5, Colour::Red),
            ]),
            reading(vec![det(Shape::Star, Colour::Red, 0.8, 0.5)]),
            reading(vec![]),
        ];
        let track = Track {
            points: vec![
                TrackPoint {
                    cx: 0.5,
                    cy: 0.5,
                    radius: 0.1,
                };
                4
            ],
            seen: vec![true, false, false, false],
            judged: vec![true, true, true, false],
        };
        let asked = parse_prompt("a red star").unwrap().objects.remove(0);
        assert_eq!(
            misreads(&track, &readings, &asked, None),
            vec![
                serde_json::json!({"frame": 1, "shape": "hexagon", "colour": "red", "p_shape": 0.1, "p_colour": 1.0}),
                serde_json::json!({"frame": 2}),
            ]
        );
        let of_copy = misreads(&track, &readings, &asked, Some(2));
        assert!(of_copy.iter().all(|m| m["copy"] == 2), "{of_copy:?}");
        // Without an asked colour there is no colour probability to give.
        let any_colour = parse_prompt("a star").unwrap().objects.remove(0);
        assert!(misreads(&track, &readings, &any_colour, None)[0]
            .get("p_colour")
            .is_none());
    }

    #[test]
    fn unreadable_prompts_fail_clearly() {
        let probes = tiny_probes();
        let prompts = Prompts::Given(vec!["a red star".into(), "lorem ipsum".into()]);
        let err = evaluate(
            &mut Oracle,
            &probes,
            Task::Image,
            &prompts,
            1,
            MediaOptions::default(),
            false,
            |_, _, _| (),
        )
        .unwrap_err();
        assert!(err.to_string().contains("lorem ipsum"), "{err}");
    }
}
