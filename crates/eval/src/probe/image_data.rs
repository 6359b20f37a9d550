//! Training and test data of the image probe, and its accuracy on fresh renders.
//!
//! Probes are judges, not generators: they are trained on every composition, both
//! sides of the split (a quarter held-out), so that they can read what a generator is
//! asked to compose. Training images are frames at random clip times (so the probe
//! also reads video frames), mirrored half the time, and blurred or noised so that it
//! reads imperfect, generated-looking images too. Accuracy is measured on fresh seeds,
//! still images, no augmentation.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use image::imageops;
use image::RgbImage;
use rand::Rng;
use serde::Serialize;

use super::image::{images_to_tensor, ImageProbe, ImageTargets};
use crate::align::in_region;
use crate::error::Result;
use mmgen_world::augment::mirror_spec;
use mmgen_world::layout::{relation_holds, Pose};
use mmgen_world::render::Scene;
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{Placement, SceneSpec, Size, SpecSampler, Split, Style};

/// One rendered frame with its ground truth.
#[derive(Clone, Debug)]
pub struct ImageSample {
    /// The scene (relabelled if mirrored).
    pub spec: SceneSpec,
    /// The frame.
    pub image: RgbImage,
    /// Object poses in the frame.
    pub poses: Vec<Pose>,
}

/// Sample `seed`: a spec from either split, a frame of it, and its poses.
pub fn image_sample(seed: u64, size: u32, augment: bool) -> Result<ImageSample> {
    let mut rng = rng_for(seed, Purpose::Augment);
    let split = if rng.random_bool(0.25) {
        Split::Heldout
    } else {
        Split::Train
    };
    let spec = SpecSampler::default().sample(split, seed);
    let scene = Scene::new(&spec, seed);
    let t = if !augment || rng.random_bool(0.5) {
        0.5
    } else {
        rng.random_range(0.0..=1.0)
    };
    let mut image = scene.frame(size, size, t)?;
    let mut poses = scene.poses_at(t);
    let mut spec = spec.clone();
    if augment {
        if rng.random_bool(0.5) {
            image = imageops::flip_horizontal(&image);
            spec = mirror_spec(&spec);
            poses.iter_mut().for_each(|p| p.cx = 1.0 - p.cx);
        }
        if rng.random_bool(0.2) {
            image = imageops::blur(&image, rng.random_range(0.3..1.0));
        }
    }
    Ok(ImageSample { spec, image, poses })
}

/// A training batch: images (b, 3, s, s) and their targets.
pub struct ImageBatch {
    /// Images in [-1, 1], noised for augmentation.
    pub xs: Tensor,
    /// What the probe should read.
    pub targets: ImageTargets,
}

/// Batch `index` of the training stream under `seed`.
pub fn image_batch(probe_size: usize, batch: usize, seed: u64, index: u64, device: &Device) -> Result<ImageBatch> {
    let samples = (0..batch)
        .map(|j| {
            image_sample(
                mix64(seed ^ mix64(index * batch as u64 + j as u64)),
                probe_size as u32,
                true,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let images: Vec<RgbImage> = samples.iter().map(|s| s.image.clone()).collect();
    let mut xs = images_to_tensor(&images, device)?;
    // Gaussian pixel noise of a random strength on half the images.
    let mut rng = rng_for(seed ^ index, Purpose::Augment);
    let sigmas: Vec<f32> = (0..batch)
        .map(|_| {
            if rng.random_bool(0.5) {
                rng.random_range(0.0..0.15)
            } else {
                0.0
            }
        })
        .collect();
    let sigma = Tensor::from_vec(sigmas, (batch, 1, 1, 1), device)?;
    let noise = xs.randn_like(0.0, 1.0)?.broadcast_mul(&sigma)?;
    xs = (xs + noise)?;
    let pairs: Vec<(&SceneSpec, &[Pose])> = samples.iter().map(|s| (&s.spec, s.poses.as_slice())).collect();
    let targets = ImageTargets::build(&pairs, probe_size / super::image::STRIDE, device)?;
    Ok(ImageBatch { xs, targets })
}

/// Correct and total counts of one attribute.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Tally {
    /// Readings that matched the truth.
    pub correct: usize,
    /// Readings made.
    pub total: usize,
}

impl Tally {
    /// Adds one reading.
    pub fn add(&mut self, ok: bool) {
        self.correct += ok as usize;
        self.total += 1;
    }

    /// correct / total (1 when empty).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

fn shape_by_size(size: Size) -> &'static str {
    match size {
        Size::Small => "shape | small",
        Size::Large => "shape | large",
    }
}

fn shape_by_style(style: Style) -> &'static str {
    match style {
        Style::Flat => "shape | flat",
        Style::Watercolour => "shape | watercolour",
        Style::PixelArt => "shape | pixel_art",
        Style::Sketch => "shape | sketch",
        Style::Neon => "shape | neon",
    }
}

/// Per-attribute accuracy of the image probe on `n` fresh still renders of `split`.
pub fn image_probe_accuracy(
    probe: &ImageProbe,
    n: usize,
    seed: u64,
    split: Split,
    device: &Device,
) -> Result<BTreeMap<&'static str, Tally>> {
    let size = probe.config().image_size as u32;
    let sampler = SpecSampler::default();
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for chunk_start in (0..n).step_by(64) {
        let seeds: Vec<u64> = (chunk_start..(chunk_start + 64).min(n))
            .map(|i| mix64(seed ^ 0xE7A1_0000 ^ mix64(i as u64)))
            .collect();
        let specs: Vec<SceneSpec> = seeds.iter().map(|&s| sampler.sample(split, s)).collect();
        let scenes: Vec<Scene> = specs.iter().zip(&seeds).map(|(spec, &s)| Scene::new(spec, s)).collect();
        let images = scenes
            .iter()
            .map(|sc| sc.frame(size, size, 0.5))
            .collect::<mmgen_world::Result<Vec<_>>>()?;
        let readings = probe.read(&images_to_tensor(&images, device)?)?;
        for ((spec, scene), reading) in specs.iter().zip(&scenes).zip(&readings) {
            let poses = scene.poses_at(0.5);
            tallies
                .entry("background")
                .or_default()
                .add(reading.background == spec.background);
            tallies.entry("style").or_default().add(reading.style == spec.style);
            tallies
                .entry("count")
                .or_default()
                .add(reading.objects.len() == spec.objects.len());
            let matched: Vec<Option<usize>> = poses
                .iter()
                .map(|pose| {
                    reading
                        .objects
                        .iter()
                        .enumerate()
                        .map(|(k, d)| (k, ((d.cx - pose.cx).powi(2) + (d.cy - pose.cy).powi(2)).sqrt()))
                        .filter(|(_, dist)| *dist < (0.6 * pose.radius).max(0.04))
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(k, _)| k)
                })
                .collect();
            for (i, object) in spec.objects.iter().enumerate() {
                tallies.entry("detected").or_default().add(matched[i].is_some());
                let Some(k) = matched[i] else { continue };
                let d = &reading.objects[k];
                tallies.entry("shape").or_default().add(d.shape == object.shape);
                // Where shape errors come from (diagnostics, not an attribute of their own).
                tallies
                    .entry(shape_by_size(object.size))
                    .or_default()
                    .add(d.shape == object.shape);
                tallies
                    .entry(shape_by_style(spec.style))
                    .or_default()
                    .add(d.shape == object.shape);
                tallies.entry("colour").or_default().add(d.colour == object.colour);
                tallies.entry("size").or_default().add(d.size == object.size);
                match object.placement {
                    Placement::At(p) => tallies.entry("position").or_default().add(in_region(p, d.cx, d.cy)),
                    Placement::Relative { relation, of } => {
                        let ok =
                            matched[of].is_some_and(|a| relation_holds(d.pose(), reading.objects[a].pose(), relation));
                        tallies.entry("relation").or_default().add(ok);
                    }
                    Placement::Free => {}
                }
            }
        }
    }
    Ok(tallies)
}
