//! The image and shape probes' accuracy on fresh renders (their training streams are
//! in the train crate): on still images, and on the frames of clips, which the video
//! task reads. Fresh seeds, no augmentation; the detection threshold is calibrated on
//! a stream of its own.

use std::collections::BTreeMap;

use candle_core::Device;
use image::RgbImage;
use rand::Rng;
use serde::Serialize;

use super::image::{images_to_tensor, ImageProbe, ImageReading};
use super::shape::{ObjectBox, ShapeProbe};
use crate::align::in_region;
use crate::error::Result;
use crate::track::MIN_JUDGED_RADIUS;
use mmgen_world::layout::{relation_holds, Pose};
use mmgen_world::render::{frame_time, Scene};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{Motion, Placement, SceneSpec, Size, SpecSampler, Split, Style};

/// A background crop of an image with objects at `poses`: a random centre whose
/// crop centre is off every object's bounding circle by at least half the crop's
/// radius (the crop may show parts of objects at its edge, as a detection on a cloud
/// beside an object would), `None` if none was found in a few tries.
pub fn background_box(poses: &[Pose], rng: &mut impl Rng) -> Option<ObjectBox> {
    for _ in 0..16 {
        let radius = (rng.random_range(0.04f32.ln()..0.2f32.ln())).exp();
        let (cx, cy) = (rng.random_range(0.05..0.95), rng.random_range(0.05..0.95));
        if poses
            .iter()
            .all(|p| (p.cx - cx).hypot(p.cy - cy) > p.radius + 0.5 * radius)
        {
            return Some(ObjectBox { cx, cy, radius });
        }
    }
    None
}

const ACCURACY_STREAM: u64 = 0xE7A1_0000;
const CALIBRATION_STREAM: u64 = 0xCA11_B000;

/// Fresh still renders (mid-clip frames, no augmentation) of `split` for measuring,
/// with their truth.
struct MeasurementChunk {
    specs: Vec<SceneSpec>,
    /// Object poses in each frame.
    poses: Vec<Vec<Pose>>,
    images: Vec<RgbImage>,
}

/// The `n` renders of the measurement stream of `split` under `seed`, `size` pixels
/// square, in chunks of 64. Accuracy uses the stream `seed ^` [`ACCURACY_STREAM`],
/// calibration `seed ^` [`CALIBRATION_STREAM`], so the two never share a render.
fn measurement_chunks(seed: u64, split: Split, n: usize, size: u32) -> impl Iterator<Item = Result<MeasurementChunk>> {
    let sampler = SpecSampler::default();
    (0..n).step_by(64).map(move |start| {
        let mut chunk = MeasurementChunk {
            specs: Vec::new(),
            poses: Vec::new(),
            images: Vec::new(),
        };
        for i in start..(start + 64).min(n) {
            let s = mix64(seed ^ mix64(i as u64));
            let spec = sampler.sample(split, s);
            let scene = Scene::new(&spec, s);
            chunk.images.push(scene.frame(size, size, 0.5)?);
            chunk.poses.push(scene.poses_at(0.5));
            chunk.specs.push(spec);
        }
        Ok(chunk)
    })
}

/// The shape probe's own accuracy on the objects of `n` fresh still renders of
/// `split`, cropped at their true poses (the same renders as
/// [`image_probe_accuracy`]'s). With a box head also: objects kept (objectness at
/// least 0.5 at their true poses), radius within 10% after correction from a crop
/// 1.5 times off, and background crops rejected.
pub fn shape_probe_accuracy(
    probe: &ShapeProbe,
    n: usize,
    seed: u64,
    split: Split,
    device: &Device,
) -> Result<BTreeMap<&'static str, Tally>> {
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let box_head = probe.config().box_head;
    let mut rng = rng_for(seed ^ 0xB0C5, Purpose::Augment);
    for chunk in measurement_chunks(seed ^ ACCURACY_STREAM, split, n, probe.config().image_size as u32) {
        let chunk = chunk?;
        let xs = images_to_tensor(&chunk.images, device)?;
        let boxes: Vec<Vec<ObjectBox>> = chunk
            .poses
            .iter()
            .map(|poses| poses.iter().map(|&p| ObjectBox::from(p)).collect())
            .collect();
        let read = probe.read(&xs, &boxes)?;
        for (spec, objects) in chunk.specs.iter().zip(&read) {
            for (object, reading) in spec.objects.iter().zip(objects) {
                let ok = reading.shape == object.shape;
                tallies.entry("shape").or_default().add(ok);
                tallies.entry(shape_by_size(object.size)).or_default().add(ok);
                tallies.entry(shape_by_style(spec.style)).or_default().add(ok);
                if box_head {
                    tallies.entry("object kept").or_default().add(reading.objectness >= 0.5);
                }
            }
        }
        if !box_head {
            continue;
        }
        // Radius correction: every object cropped 1.5 times too large or too small
        // (alternately), its corrected radius within 10% of the truth; and one
        // background crop per image, rejected.
        let (mut off, mut background) = (Vec::new(), Vec::new());
        for poses in &chunk.poses {
            off.push(
                poses
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| ObjectBox {
                        radius: p.radius * if k % 2 == 0 { 1.5 } else { 1.0 / 1.5 },
                        ..ObjectBox::from(p)
                    })
                    .collect::<Vec<_>>(),
            );
            background.push(background_box(poses, &mut rng).into_iter().collect::<Vec<_>>());
        }
        for ((poses, boxes), readings) in chunk.poses.iter().zip(&off).zip(probe.read(&xs, &off)?) {
            for ((pose, b), reading) in poses.iter().zip(boxes).zip(readings) {
                let corrected = b.radius * reading.scale;
                tallies
                    .entry("radius within 10%")
                    .or_default()
                    .add((corrected / pose.radius - 1.0).abs() <= 0.1);
            }
        }
        for reading in probe.read(&xs, &background)?.into_iter().flatten() {
            tallies
                .entry("background rejected")
                .or_default()
                .add(reading.objectness < 0.5);
        }
    }
    Ok(tallies)
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

/// Detection thresholds tried by [`calibrate_detection_threshold`].
pub const THRESHOLD_CANDIDATES: [f64; 13] = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7];

/// The outcome of [`calibrate_detection_threshold`].
#[derive(Clone, Debug, Serialize)]
pub struct ThresholdCalibration {
    /// The chosen threshold.
    pub threshold: f64,
    /// Count accuracy at each candidate threshold, in [`THRESHOLD_CANDIDATES`] order.
    pub count_accuracy: Vec<(f64, f64)>,
    /// Renders used.
    pub n: usize,
    /// Their seed.
    pub seed: u64,
    /// Their split (always the training split: the held-out split stays for measuring).
    pub split: Split,
}

/// Chooses the detection threshold that reads the object count of `n` fresh still
/// train-split renders best (ties go to the lower threshold).
///
/// The heat map of a focal-loss detector is a ranking, not a calibrated probability,
/// so the threshold is a setting to choose on data. The renders come from seeds the
/// accuracy measurement ([`image_probe_accuracy`]) never uses, and from the training
/// split only, so the held-out accuracy stays an honest measurement.
pub fn calibrate_detection_threshold(
    probe: &ImageProbe,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<ThresholdCalibration> {
    let lowest = THRESHOLD_CANDIDATES[0];
    let mut correct = [0usize; THRESHOLD_CANDIDATES.len()];
    let size = probe.config().image_size as u32;
    for chunk in measurement_chunks(seed ^ CALIBRATION_STREAM, Split::Train, n, size) {
        let chunk = chunk?;
        // The whole reading: a shape probe with a box head drops detections that hold
        // no object, which moves the best threshold down.
        let readings = probe.read_above(&images_to_tensor(&chunk.images, device)?, lowest)?;
        for (spec, reading) in chunk.specs.iter().zip(&readings) {
            for (k, &t) in THRESHOLD_CANDIDATES.iter().enumerate() {
                let count = reading.objects.iter().filter(|d| d.score as f64 >= t).count();
                correct[k] += (count == spec.objects.len()) as usize;
            }
        }
    }
    let count_accuracy: Vec<(f64, f64)> = THRESHOLD_CANDIDATES
        .iter()
        .zip(correct)
        .map(|(&t, c)| (t, c as f64 / n.max(1) as f64))
        .collect();
    Ok(ThresholdCalibration {
        threshold: best_threshold(&count_accuracy),
        count_accuracy,
        n,
        seed,
        split: Split::Train,
    })
}

/// The threshold of the highest accuracy in (threshold, accuracy) pairs, the first
/// (lowest threshold) among equals.
fn best_threshold(accuracy_by_threshold: &[(f64, f64)]) -> f64 {
    accuracy_by_threshold
        .iter()
        .fold(None, |best: Option<(f64, f64)>, &c| match best {
            Some(b) if b.1 >= c.1 => Some(b),
            _ => Some(c),
        })
        .map_or(super::image::DEFAULT_DETECTION_THRESHOLD, |b| b.0)
}

/// Per-attribute accuracy of the image probe on `n` fresh still renders of `split`.
pub fn image_probe_accuracy(
    probe: &ImageProbe,
    n: usize,
    seed: u64,
    split: Split,
    device: &Device,
) -> Result<BTreeMap<&'static str, Tally>> {
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for chunk in measurement_chunks(seed ^ ACCURACY_STREAM, split, n, probe.config().image_size as u32) {
        let chunk = chunk?;
        let readings = probe.read(&images_to_tensor(&chunk.images, device)?)?;
        for ((spec, poses), reading) in chunk.specs.iter().zip(&chunk.poses).zip(&readings) {
            tallies
                .entry("background")
                .or_default()
                .add(reading.background == spec.background);
            tallies.entry("style").or_default().add(reading.style == spec.style);
            tallies
                .entry("count")
                .or_default()
                .add(reading.objects.len() == spec.objects.len());
            let matched: Vec<Option<usize>> = poses.iter().map(|pose| nearest_detection(reading, pose)).collect();
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

/// The detection of `reading` nearest the object at `pose`, if one is closer to its
/// centre than 0.6 of its radius (at least 0.04 of the canvas).
fn nearest_detection(reading: &ImageReading, pose: &Pose) -> Option<usize> {
    reading
        .objects
        .iter()
        .enumerate()
        .map(|(k, d)| (k, (d.cx - pose.cx).hypot(d.cy - pose.cy)))
        .filter(|(_, dist)| *dist < (0.6 * pose.radius).max(0.04))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

const CLIP_STREAM: u64 = 0xC11F_5000;

/// Frames per clip of the clip-frame accuracy that `mmgen calibrate-probe` records
/// (the video task's default).
pub const CLIP_FRAMES: u32 = 24;

/// Per-attribute accuracy of the whole image reading on every frame of `n` fresh
/// clips of `split`, `frames` frames each: the frames the video task reads, where
/// objects move, spin, grow and shrink and the light changes, none of which still
/// renders show. Per frame: background and style. Per object, in the frames where the
/// video task judges it ([`judged_in_frame`]): detected, and if so its shape and
/// colour; the shape also by style and by motion, to show where errors come from.
/// Sizes are not tallied: a growing object shows another size class than its spec's
/// for part of the clip.
pub fn clip_frame_accuracy(
    probe: &ImageProbe,
    n: usize,
    frames: u32,
    seed: u64,
    split: Split,
    device: &Device,
) -> Result<BTreeMap<&'static str, Tally>> {
    let size = probe.config().image_size as u32;
    let sampler = SpecSampler::default();
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for i in 0..n {
        let clip_seed = mix64(seed ^ CLIP_STREAM ^ mix64(i as u64));
        let spec = sampler.sample(split, clip_seed);
        let scene = Scene::new(&spec, clip_seed);
        let readings = probe.read(&images_to_tensor(&scene.clip(size, size, frames)?, device)?)?;
        for (f, reading) in readings.iter().enumerate() {
            let poses = scene.poses_at(frame_time(f as u32, frames));
            tallies
                .entry("background")
                .or_default()
                .add(reading.background == spec.background);
            tallies.entry("style").or_default().add(reading.style == spec.style);
            for (k, object) in spec.objects.iter().enumerate() {
                if !judged_in_frame(&poses, k) {
                    continue;
                }
                let found = nearest_detection(reading, &poses[k]).map(|j| &reading.objects[j]);
                tallies.entry("detected").or_default().add(found.is_some());
                let Some(d) = found else { continue };
                let shape_ok = d.shape == object.shape;
                tallies.entry("shape").or_default().add(shape_ok);
                tallies.entry(shape_by_style(spec.style)).or_default().add(shape_ok);
                tallies.entry(shape_by_motion(object.motion)).or_default().add(shape_ok);
                tallies.entry("colour").or_default().add(d.colour == object.colour);
            }
        }
    }
    Ok(tallies)
}

/// Whether the video task judges object `k` of a frame whose objects stand at
/// `poses`: it is at least [`MIN_JUDGED_RADIUS`] in radius and no other object covers
/// its middle (their centres are closer than the larger radius), as
/// [`crate::track::Track::judge_visibility`] decides from tracks.
fn judged_in_frame(poses: &[Pose], k: usize) -> bool {
    let p = poses[k];
    p.radius >= MIN_JUDGED_RADIUS
        && !poses
            .iter()
            .enumerate()
            .any(|(j, q)| j != k && (p.cx - q.cx).hypot(p.cy - q.cy) < p.radius.max(q.radius))
}

fn shape_by_motion(motion: Motion) -> &'static str {
    match motion {
        Motion::Still => "shape | still",
        Motion::MoveLeft => "shape | move_left",
        Motion::MoveRight => "shape | move_right",
        Motion::MoveUp => "shape | move_up",
        Motion::MoveDown => "shape | move_down",
        Motion::Bounce => "shape | bounce",
        Motion::Spin => "shape | spin",
        Motion::Grow => "shape | grow",
        Motion::Shrink => "shape | shrink",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_judged_in_a_frame_when_big_enough_and_uncovered() {
        let at = |cx: f32, cy: f32, radius: f32| Pose {
            cx,
            cy,
            radius,
            angle: 0.0,
        };
        let apart = [at(0.2, 0.5, 0.1), at(0.8, 0.5, 0.085)];
        assert!(judged_in_frame(&apart, 0) && judged_in_frame(&apart, 1));
        // The end of a growth: too small to read.
        let tiny = [at(0.2, 0.5, 0.1), at(0.8, 0.5, MIN_JUDGED_RADIUS * 0.9)];
        assert!(judged_in_frame(&tiny, 0) && !judged_in_frame(&tiny, 1));
        // One passing over the other's middle: neither is judged.
        let crossing = [at(0.5, 0.5, 0.15), at(0.56, 0.5, 0.085)];
        assert!(!judged_in_frame(&crossing, 0) && !judged_in_frame(&crossing, 1));
        // Touching edges only.
        let touching = [at(0.4, 0.5, 0.1), at(0.58, 0.5, 0.085)];
        assert!(judged_in_frame(&touching, 0) && judged_in_frame(&touching, 1));
    }

    #[test]
    fn clip_frames_are_read_one_by_one_and_every_reading_is_tallied() {
        let dev = Device::Cpu;
        let varmap = candle_nn::VarMap::new();
        let vb = mmgen_nn::seeded_var_builder(&varmap, 3, candle_core::DType::F32, &dev);
        let mut probe = ImageProbe::new(&super::super::image::ImageProbeConfig::tiny(), vb).unwrap();
        // An untrained probe: a low threshold, so that objects are found to read.
        probe.set_detection_threshold(1e-6).unwrap();
        let (clips, frames) = (6, 5);
        let tallies = clip_frame_accuracy(&probe, clips, frames, 3, Split::Heldout, &dev).unwrap();
        let total = |key: &str| tallies.get(key).map_or(0, |t| t.total);
        assert_eq!(total("background"), clips * frames as usize);
        assert_eq!(total("style"), clips * frames as usize);
        // Objects are judged in at most every frame, each read for shape and colour once
        // it is detected, and every shape reading is counted once by style and once by
        // motion.
        let sampler = SpecSampler::default();
        let objects: usize = (0..clips)
            .map(|i| {
                sampler
                    .sample(Split::Heldout, mix64(3 ^ CLIP_STREAM ^ mix64(i as u64)))
                    .objects
                    .len()
            })
            .sum();
        assert!(total("detected") > 0 && total("detected") <= objects * frames as usize);
        assert!(total("shape") > 0 && total("shape") <= total("detected"));
        assert_eq!(total("colour"), total("shape"));
        let by = |names: &[&str]| -> usize { names.iter().map(|n| total(&format!("shape | {n}"))).sum() };
        let styles: Vec<&str> = Style::ALL.iter().map(|s| s.name()).collect();
        let motions: Vec<&str> = Motion::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(by(&styles), total("shape"));
        assert_eq!(by(&motions), total("shape"));
        // Reproducible from the seed.
        assert_eq!(
            clip_frame_accuracy(&probe, clips, frames, 3, Split::Heldout, &dev).unwrap(),
            tallies
        );
    }

    #[test]
    fn best_threshold_is_the_most_accurate_and_the_lowest_of_equals() {
        assert_eq!(best_threshold(&[(0.2, 0.5), (0.3, 0.9), (0.4, 0.7)]), 0.3);
        assert_eq!(best_threshold(&[(0.2, 0.5), (0.3, 0.9), (0.4, 0.9), (0.5, 0.1)]), 0.3);
        assert_eq!(best_threshold(&[]), super::super::image::DEFAULT_DETECTION_THRESHOLD);
    }
}
