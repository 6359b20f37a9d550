//! `mmgen eval`: a prompt set, a generator, the probes, and a per-category report.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use mmgen_world::caption::parse::{parse_prompt, spec_from_request};
use mmgen_world::render::Scene;
use mmgen_world::rng::mix64;
use mmgen_world::{caption_for_seed, CaptionOptions, Lang, Medium, SpecSampler, Split};
use serde::Serialize;

use crate::align::{image_checks, Category};
use crate::error::{EvalError, Result};
use crate::fd::frechet_distance;
use crate::generator::{GenerationSettings, Generator};
use crate::probe::fit::{load_config, load_weights};
use crate::probe::image::{images_to_tensor, ImageProbe, ImageProbeConfig};

/// Which modality is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Still images.
    Image,
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
    /// The prompt texts, deterministic from `seed`.
    pub fn texts(&self, medium: Medium, seed: u64) -> Vec<String> {
        match self {
            Prompts::World { n, split, lang } => (0..*n as u64)
                .map(|i| {
                    let s = mix64(seed ^ mix64(i));
                    let spec = SpecSampler::default().sample(*split, s);
                    caption_for_seed(&spec, *lang, CaptionOptions::full(medium), s)
                })
                .collect(),
            Prompts::Given(list) => list.clone(),
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CategoryScore {
    /// Prompts that passed.
    pub passed: usize,
    /// Prompts that asked for this category.
    pub total: usize,
    /// passed / total.
    pub score: f64,
    /// Whether it counts towards the overall score.
    pub in_overall: bool,
}

/// The result of one evaluation; its JSON form is documented in the README.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Task evaluated.
    pub task: Task,
    /// Generator name.
    pub source: String,
    /// Prompts evaluated.
    pub prompts: usize,
    /// Seed of prompts and generation.
    pub seed: u64,
    /// Per-category scores, by category name.
    pub categories: BTreeMap<&'static str, CategoryScore>,
    /// Mean score of the overall categories that had prompts.
    pub overall: f64,
    /// Frechet distance between probe features of the outputs and of fresh renders of
    /// the same prompts (world-FD); lower is closer.
    pub world_fd: f64,
    /// The probe's own per-attribute accuracy on held-out renders (from its metrics.json).
    pub probe_accuracy: serde_json::Value,
}

/// The probes an evaluation reads with.
pub struct Probes {
    image: ImageProbe,
    image_accuracy: serde_json::Value,
    device: Device,
}

impl Probes {
    /// Loads the probes from `dir` (holding `probe-image/`, ...).
    pub fn load(dir: &Path, device: &Device) -> Result<Probes> {
        let image_dir = dir.join("probe-image");
        let config: ImageProbeConfig = load_config(&image_dir)?;
        let image = ImageProbe::new(&config, load_weights(&image_dir, device)?)?;
        let metrics_path = image_dir.join("metrics.json");
        let image_accuracy = std::fs::read_to_string(&metrics_path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|m| m["accuracy"]["heldout"].clone())
            .unwrap_or(serde_json::Value::Null);
        Ok(Probes {
            image,
            image_accuracy,
            device: device.clone(),
        })
    }

    /// From an already built image probe (tests).
    pub fn from_image_probe(image: ImageProbe, device: &Device) -> Probes {
        Probes {
            image,
            image_accuracy: serde_json::Value::Null,
            device: device.clone(),
        }
    }
}

/// Evaluates `generator` on `prompts`, calling `progress(done, total)` as it goes.
pub fn evaluate(
    generator: &mut dyn Generator,
    probes: &Probes,
    task: Task,
    prompts: &Prompts,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport> {
    let medium = match task {
        Task::Image => Medium::Image,
    };
    let texts = prompts.texts(medium, seed);
    if texts.is_empty() {
        return Err(EvalError::Invalid("no prompts to evaluate".into()));
    }
    let settings = GenerationSettings {
        size: probes.image.config().image_size as u32,
        ..GenerationSettings::image()
    };
    let mut rows: BTreeMap<Category, (usize, usize)> = BTreeMap::new();
    let (mut generated_features, mut real_features) = (Vec::new(), Vec::new());
    for chunk_start in (0..texts.len()).step_by(32) {
        let chunk = &texts[chunk_start..(chunk_start + 32).min(texts.len())];
        let mut images = Vec::with_capacity(chunk.len());
        let mut references = Vec::with_capacity(chunk.len());
        let mut requests = Vec::with_capacity(chunk.len());
        for (k, text) in chunk.iter().enumerate() {
            let request = parse_prompt(text).map_err(|e| EvalError::Prompt {
                prompt: text.clone(),
                reason: e.to_string(),
            })?;
            let s = mix64(seed ^ 0x6E4E ^ (chunk_start + k) as u64);
            let out = generator.generate(text, s, &settings)?;
            let image = out
                .image
                .ok_or_else(|| EvalError::Invalid(format!("{} returned no image for {text:?}", generator.name())))?;
            images.push(image);
            // A fresh render of the same request: the real side of the world-FD.
            let real = spec_from_request(&request, mix64(s))?;
            references.push(Scene::new(&real, mix64(s)).frame(settings.size, settings.size, 0.5)?);
            requests.push(request);
        }
        let readings = probes.image.read(&images_to_tensor(&images, &probes.device)?)?;
        let real_readings = probes.image.read(&images_to_tensor(&references, &probes.device)?)?;
        for (request, reading) in requests.iter().zip(&readings) {
            for (category, ok) in image_checks(request, reading) {
                let row = rows.entry(category).or_default();
                row.0 += ok as usize;
                row.1 += 1;
            }
        }
        generated_features.extend(readings.into_iter().map(|r| r.features));
        real_features.extend(real_readings.into_iter().map(|r| r.features));
        progress((chunk_start + chunk.len()).min(texts.len()), texts.len());
    }
    let categories: BTreeMap<&'static str, CategoryScore> = Category::IMAGE
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
    let overall = overall_rows.iter().sum::<f64>() / overall_rows.len().max(1) as f64;
    let world_fd = if texts.len() >= 2 {
        frechet_distance(&generated_features, &real_features)?
    } else {
        f64::NAN
    };
    Ok(EvalReport {
        task,
        source: generator.name(),
        prompts: texts.len(),
        seed,
        categories,
        overall,
        world_fd,
        probe_accuracy: probes.image_accuracy.clone(),
    })
}

impl EvalReport {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:?} alignment of `{}` on {} prompts (seed {})\n",
            self.task, self.source, self.prompts, self.seed
        )
        .to_lowercase();
        out.push_str(&format!(
            "{:<20} {:>8} {:>7} {:>7}\n",
            "category", "score", "passed", "total"
        ));
        for (name, row) in &self.categories {
            let mark = if row.in_overall { "" } else { "  (not in overall)" };
            out.push_str(&format!(
                "{name:<20} {:>8.3} {:>7} {:>7}{mark}\n",
                row.score, row.passed, row.total
            ));
        }
        out.push_str(&format!("{:<20} {:>8.3}\n", "overall", self.overall));
        out.push_str(&format!("{:<20} {:>8.3}\n", "world-FD", self.world_fd));
        out
    }
}
