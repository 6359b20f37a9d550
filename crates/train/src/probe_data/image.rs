//! Training streams of the image and shape probes.
//!
//! Probes are judges, not generators: they are trained on every composition, both
//! sides of the split (a quarter held-out), so that they can read what a generator is
//! asked to compose. Training images are frames at random clip times, the clip's ends
//! drawn more often (so the probe also reads video frames), mirrored half the time,
//! and blurred or noised so that it reads imperfect, generated-looking images too.

use candle_core::{Device, Tensor};
use image::imageops;
use image::RgbImage;
use mmgen_eval::probe::image::{images_to_tensor, ImageTargets, STRIDE};
use mmgen_eval::probe::image_data::background_box;
use mmgen_eval::probe::shape::{crop_rotated, crops_tensor, BoxTargets, ObjectBox, ShapeProbe, ShapeProbeConfig};
use mmgen_world::augment::mirror_spec;
use mmgen_world::layout::Pose;
use mmgen_world::render::Scene;
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{Motion, SceneSpec, SpecSampler, Split, Style};
use rand::Rng;

use crate::error::Result;

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

/// Length (clip time) of each end of the clip that augmented samples draw a fifth of
/// their frames from.
pub const CLIP_END: f32 = 0.12;

/// A training stream's extra share of one style: that share of its scenes are drawn
/// in `style` whatever the sampler chose (the rest keep the sampler's mix, which
/// includes `style` too). Style is no part of the compositional split, so every
/// scene stays on its side. Used to train a probe further where it reads worst
/// (pixel art, for the shape probe).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StyleShare {
    /// The style drawn more often.
    pub style: Style,
    /// Share of scenes redrawn in it, in [0, 1].
    pub share: f64,
}

/// Where a probe's training stream dwells beyond the world's mix, to train a probe
/// further where it reads worst. The default is the plain stream, the one every
/// probe before these options saw (no extra random draws are made without them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StreamFocus {
    /// One style drawn more often.
    pub style: Option<StyleShare>,
    /// Share of augmented scenes, in [0, 1], shown turned: each of their objects
    /// spins with probability one half, and the frame is drawn at a uniform clip time,
    /// so that every shape is seen at every angle as the world draws it. Spinning
    /// objects are otherwise rare at odd angles (a still sample is the clip's middle
    /// half the time, where a spin has turned half-way round), and the shape probe's
    /// turned crops turn the pixel grid with the shape, which a pixel-art sprite
    /// spinning on its fixed grid never does. Objects keep their shape, colour and
    /// size; a scene may change split (a spinning triangle is a held-out pair), which
    /// a probe's stream, drawn from both splits, allows.
    pub spin: f64,
}

/// Sample `seed`: a spec from either split (redrawn in `focus`'s style for its share
/// of seeds), a frame of it, and its poses: the middle frame, or with `augment` half
/// the time another one (a fifth of all samples from the clip's ends, [`CLIP_END`]),
/// mirrored and blurred at random. With `augment`, `focus.spin` of the scenes are
/// turned (see [`StreamFocus`]).
pub fn image_sample(seed: u64, size: u32, augment: bool, focus: StreamFocus) -> Result<ImageSample> {
    let mut rng = rng_for(seed, Purpose::Augment);
    let split = if rng.random_bool(0.25) {
        Split::Heldout
    } else {
        Split::Train
    };
    let mut spec = SpecSampler::default().sample(split, seed);
    // Drawn only with a focus, so that the plain stream is the one earlier probes saw.
    if let Some(focus) = focus.style.filter(|f| rng.random_bool(f.share.clamp(0.0, 1.0))) {
        spec.style = focus.style;
    }
    let turned = augment && focus.spin > 0.0 && rng.random_bool(focus.spin.min(1.0));
    if turned {
        for object in &mut spec.objects {
            if rng.random_bool(0.5) {
                object.motion = Motion::Spin;
            }
        }
    }
    let scene = Scene::new(&spec, seed);
    let t = if turned {
        rng.random_range(0.0..=1.0)
    } else {
        sample_time(&mut rng, augment)
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

/// The clip time of a sample's frame: the middle, or with `augment` half the time
/// another one, two fifths of those from the clip's ends (the first and last
/// [`CLIP_END`]), the rest uniform.
fn sample_time(rng: &mut impl Rng, augment: bool) -> f32 {
    if !augment || rng.random_bool(0.5) {
        0.5
    } else if rng.random_bool(0.4) {
        // The clip's ends, where growing and shrinking objects are at their tiniest
        // and moving ones furthest out: uniform times drew them too rarely for the
        // probe to read a 6-pixel object in a video's first or last frames.
        let end = rng.random_range(0.0..=CLIP_END);
        if rng.random_bool(0.5) {
            end
        } else {
            1.0 - end
        }
    } else {
        rng.random_range(0.0..=1.0)
    }
}

/// A training batch: images (b, 3, s, s) and their targets.
pub struct ImageBatch {
    /// Images in [-1, 1], noised for augmentation.
    pub xs: Tensor,
    /// What the probe should read.
    pub targets: ImageTargets,
}

/// Batch `index` of the training stream under `seed`, with `focus` (see
/// [`StreamFocus`]).
pub fn image_batch(
    probe_size: usize,
    batch: usize,
    seed: u64,
    index: u64,
    focus: StreamFocus,
    device: &Device,
) -> Result<ImageBatch> {
    let (samples, xs) = noised_samples(probe_size, batch, seed, index, focus, device)?;
    let pairs: Vec<(&SceneSpec, &[Pose])> = samples.iter().map(|s| (&s.spec, s.poses.as_slice())).collect();
    let targets = ImageTargets::build(&pairs, probe_size / STRIDE, device)?;
    Ok(ImageBatch { xs, targets })
}

/// `batch` augmented samples of the stream under `seed` (batch `index`) and their
/// pixels (b, 3, s, s) in [-1, 1] with Gaussian noise of a random strength added to
/// half of them.
fn noised_samples(
    size: usize,
    batch: usize,
    seed: u64,
    index: u64,
    focus: StreamFocus,
    device: &Device,
) -> Result<(Vec<ImageSample>, Tensor)> {
    let samples = (0..batch)
        .map(|j| {
            image_sample(
                mix64(seed ^ mix64(index * batch as u64 + j as u64)),
                size as u32,
                true,
                focus,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let images: Vec<RgbImage> = samples.iter().map(|s| s.image.clone()).collect();
    let xs = images_to_tensor(&images, device)?;
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
    Ok((samples, (xs + noise)?))
}

/// Share of the shape probe's training crops turned by a random angle.
pub const P_ROTATED: f64 = 0.3;

/// With a box head: share of object crops whose radius is off by a factor in
/// [`SCALE_RANGE`] (the others are off by at most 10%, as a good detection is), so
/// that the head learns to correct the radius.
pub const P_RESCALED: f64 = 0.5;
/// Factors (log-uniform) by which a rescaled crop's radius is off. The detector reads
/// a growing object's smallest size up to 1.6 times too large and its largest up to
/// 0.8 times too small; a crop much smaller than the object cuts its outline off
/// (models/README.md, shape probe stages 3 and 4).
pub const SCALE_RANGE: (f32, f32) = (0.7, 1.8);
/// With a box head: background crops per training image.
pub const BACKGROUND_CROPS: usize = 1;

/// A training batch of the shape probe: object crops (first) and background crops.
pub struct ShapeBatch {
    /// Crops (n, 3, crop, crop) in [-1, 1]: `shapes.len()` object crops, then
    /// background crops.
    pub crops: Tensor,
    /// Shape indices of the object crops.
    pub shapes: Tensor,
    /// ln(true radius / crop radius) of the object crops.
    pub log_scales: Tensor,
    /// Number of object crops.
    pub objects: usize,
}

impl ShapeBatch {
    /// The shape probe's loss on this batch.
    pub fn loss(&self, probe: &ShapeProbe) -> mmgen_eval::Result<(Tensor, Vec<(&'static str, Tensor)>)> {
        let targets = BoxTargets {
            objects: self.objects,
            log_scales: &self.log_scales,
        };
        probe.loss(&self.crops, &self.shapes, &targets)
    }
}

/// Batch `index` of the shape probe's stream under `seed`: every object of `images`
/// augmented, noised renders (as the image probe's stream makes them), cropped around
/// its true pose moved by up to a pixel and scaled by 0.9-1.1, as a detection would
/// place it, and turned by a random angle [`P_ROTATED`] of the time: a spinning object
/// shows every angle in a video, while still frames show almost only upright shapes
/// (a probe trained without turning misread a quarter of spinning objects' frames).
/// With a box head, [`P_RESCALED`] of the object crops are scaled by a factor in
/// [`SCALE_RANGE`], and each image adds [`BACKGROUND_CROPS`] crops of background.
/// The scenes follow `focus` (see [`StreamFocus`]).
pub fn shape_batch(
    config: &ShapeProbeConfig,
    images: usize,
    seed: u64,
    index: u64,
    focus: StreamFocus,
    device: &Device,
) -> Result<ShapeBatch> {
    // The pixels are cropped on the CPU whatever the training device.
    let (samples, xs) = noised_samples(config.image_size, images, seed, index, focus, &Device::Cpu)?;
    let pixels: Vec<f32> = xs.flatten_all()?.to_vec1()?;
    let side = config.image_size;
    let per_image = 3 * side * side;
    let jitter = 1.0 / side as f32;
    let mut rng = rng_for(seed ^ mix64(index ^ 0x5A4E), Purpose::Augment);
    let (mut data, mut shapes, mut log_scales) = (Vec::new(), Vec::new(), Vec::new());
    let mut background = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let image = &pixels[i * per_image..(i + 1) * per_image];
        for (object, pose) in sample.spec.objects.iter().zip(&sample.poses) {
            let factor = if config.box_head && rng.random_bool(P_RESCALED) {
                rng.random_range(SCALE_RANGE.0.ln()..=SCALE_RANGE.1.ln()).exp()
            } else {
                rng.random_range(0.9..=1.1)
            };
            let jittered = ObjectBox {
                cx: pose.cx + rng.random_range(-jitter..=jitter),
                cy: pose.cy + rng.random_range(-jitter..=jitter),
                radius: pose.radius * factor,
            };
            let angle = if rng.random_bool(P_ROTATED) {
                rng.random_range(0.0..std::f32::consts::TAU)
            } else {
                0.0
            };
            crop_rotated(image, side, side, jittered, angle, config, &mut data);
            shapes.push(object.shape.index() as u32);
            log_scales.push(-factor.ln());
        }
        if config.box_head {
            for _ in 0..BACKGROUND_CROPS {
                if let Some(b) = background_box(&sample.poses, &mut rng) {
                    crop_rotated(image, side, side, b, 0.0, config, &mut background);
                }
            }
        }
    }
    let objects = shapes.len();
    data.extend(background);
    Ok(ShapeBatch {
        crops: crops_tensor(data, config, device)?,
        shapes: Tensor::from_vec(shapes, objects, device)?,
        log_scales: Tensor::from_vec(log_scales, objects, device)?,
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmented_frames_come_from_the_middle_the_ends_and_between() {
        let mut rng = rng_for(3, Purpose::Augment);
        let n = 4000;
        let times: Vec<f32> = (0..n).map(|_| sample_time(&mut rng, true)).collect();
        let share = |f: &dyn Fn(f32) -> bool| times.iter().filter(|&&t| f(t)).count() as f32 / n as f32;
        let middle = share(&|t| t == 0.5);
        let ends = share(&|t| t <= CLIP_END || t >= 1.0 - CLIP_END);
        // Half in the middle; a fifth at the ends plus the uniform draws that land there.
        assert!((middle - 0.5).abs() < 0.03, "middle {middle}");
        let expected_ends = 0.2 + 0.3 * 2.0 * CLIP_END;
        assert!(
            (ends - expected_ends).abs() < 0.03,
            "ends {ends}, expected {expected_ends}"
        );
        assert!(times.iter().all(|t| (0.0..=1.0).contains(t)));
        let mut rng = rng_for(3, Purpose::Augment);
        assert!((0..100).all(|_| sample_time(&mut rng, false) == 0.5));
    }

    #[test]
    fn a_style_share_redraws_that_share_of_scenes_and_keeps_their_objects() {
        let focus = StyleShare {
            style: Style::PixelArt,
            share: 0.5,
        };
        let n = 300;
        let mut focused_pixel_art = 0;
        let mut plain_pixel_art = 0;
        for seed in 0..n {
            let plain = image_sample(seed, 32, true, StreamFocus::default()).unwrap();
            let focused = image_sample(
                seed,
                32,
                true,
                StreamFocus {
                    style: Some(focus),
                    spin: 0.0,
                },
            )
            .unwrap();
            // The same scene (objects, and so split), only its style redrawn.
            let kinds = |s: &ImageSample| -> Vec<_> { s.spec.objects.iter().map(|o| (o.shape, o.colour)).collect() };
            assert_eq!(kinds(&plain), kinds(&focused), "seed {seed}");
            assert_eq!(plain.spec.background, focused.spec.background, "seed {seed}");
            plain_pixel_art += usize::from(plain.spec.style == Style::PixelArt);
            focused_pixel_art += usize::from(focused.spec.style == Style::PixelArt);
        }
        // Half redrawn, and a fifth of the rest drawn in it by the sampler.
        let (plain_share, focused_share) = (plain_pixel_art as f64 / n as f64, focused_pixel_art as f64 / n as f64);
        let expected = focus.share + (1.0 - focus.share) * plain_share;
        assert!(plain_share < 0.35, "plain stream {plain_share}");
        assert!(
            (focused_share - expected).abs() < 0.08,
            "{focused_share}, expected {expected}"
        );
        // All or nothing at the ends of the range.
        let all = StyleShare { share: 1.0, ..focus };
        assert!((0..20).all(|seed| image_sample(
            seed,
            32,
            false,
            StreamFocus {
                style: Some(all),
                spin: 0.0
            }
        )
        .unwrap()
        .spec
        .style
            == Style::PixelArt));
        let none = StyleShare { share: 0.0, ..focus };
        for seed in 0..20 {
            let (a, b) = (
                image_sample(
                    seed,
                    32,
                    false,
                    StreamFocus {
                        style: Some(none),
                        spin: 0.0,
                    },
                )
                .unwrap(),
                image_sample(seed, 32, false, StreamFocus::default()).unwrap(),
            );
            assert_eq!(a.spec.style, b.spec.style);
        }
    }

    #[test]
    fn a_spin_share_turns_objects_of_augmented_scenes_to_odd_angles() {
        let focus = StreamFocus { style: None, spin: 0.5 };
        let (mut objects, mut turned, mut on_their_side) = (0, 0, 0);
        for seed in 0..300 {
            let plain = image_sample(seed, 32, true, StreamFocus::default()).unwrap();
            let focused = image_sample(seed, 32, true, focus).unwrap();
            // The same objects, only some of them set spinning.
            let kinds =
                |s: &ImageSample| -> Vec<_> { s.spec.objects.iter().map(|o| (o.shape, o.colour, o.size)).collect() };
            assert_eq!(kinds(&plain), kinds(&focused), "seed {seed}");
            assert_eq!(plain.spec.style, focused.spec.style, "seed {seed}");
            for ((a, b), pose) in plain.spec.objects.iter().zip(&focused.spec.objects).zip(&focused.poses) {
                objects += 1;
                // (The streams may mirror a scene differently: left and right swap.)
                let mirrored = matches!(
                    (a.motion, b.motion),
                    (Motion::MoveLeft, Motion::MoveRight) | (Motion::MoveRight, Motion::MoveLeft)
                );
                if a.motion != b.motion && !mirrored {
                    assert_eq!(b.motion, Motion::Spin, "seed {seed}");
                    turned += 1;
                    // A cross or a square at about 45 degrees, a triangle on its side.
                    on_their_side += usize::from((2.0 * pose.angle).sin().abs() > 0.5);
                }
            }
        }
        // Half the scenes turned, half their objects set spinning (an eighth spin anyway).
        let share = turned as f64 / objects as f64;
        assert!((share - 0.25 * 7.0 / 8.0).abs() < 0.06, "{turned} of {objects} turned");
        // Uniform frame times show two thirds of them at an odd angle (a still sample
        // is the clip's middle half the time, where a spin is upright or upside down).
        assert!(on_their_side * 2 > turned, "{on_their_side} of {turned} on their side");
        // Measurement samples (not augmented) are never turned.
        for seed in 0..20 {
            let (a, b) = (
                image_sample(seed, 32, false, focus).unwrap(),
                image_sample(seed, 32, false, StreamFocus::default()).unwrap(),
            );
            assert_eq!(a.spec, b.spec);
        }
    }

    #[test]
    fn shape_batches_put_objects_first_and_their_scales_undo_the_crop() {
        let config = ShapeProbeConfig::tiny();
        let dev = Device::Cpu;
        let batch = shape_batch(&config, 6, 5, 0, StreamFocus::default(), &dev).unwrap();
        let crops = batch.crops.dim(0).unwrap();
        assert_eq!(batch.shapes.dim(0).unwrap(), batch.objects);
        assert!(
            crops > batch.objects && crops <= batch.objects + 6 * BACKGROUND_CROPS,
            "{crops}"
        );
        let scales: Vec<f32> = batch.log_scales.to_vec1().unwrap();
        let (low, high) = (-SCALE_RANGE.1.ln() - 1e-5, -SCALE_RANGE.0.ln() + 1e-5);
        assert!(scales.iter().all(|s| (low..=high).contains(s)), "{scales:?}");
        assert!(
            scales.iter().any(|s| s.abs() > 1.1f32.ln()),
            "some crops are rescaled: {scales:?}"
        );
        // Without a box head: object crops only, scaled by at most 10%.
        let plain = ShapeProbeConfig {
            box_head: false,
            ..config
        };
        let batch = shape_batch(&plain, 6, 5, 0, StreamFocus::default(), &dev).unwrap();
        assert_eq!(batch.crops.dim(0).unwrap(), batch.objects);
        let scales: Vec<f32> = batch.log_scales.to_vec1().unwrap();
        assert!(scales.iter().all(|s| s.abs() <= 1.1f32.ln() + 1e-5), "{scales:?}");
        // Background boxes stay off every object.
        let mut rng = rng_for(1, Purpose::Augment);
        let poses = [Pose {
            cx: 0.5,
            cy: 0.5,
            radius: 0.2,
            angle: 0.0,
        }];
        for _ in 0..100 {
            if let Some(b) = background_box(&poses, &mut rng) {
                assert!((b.cx - 0.5).hypot(b.cy - 0.5) > 0.2 + 0.5 * b.radius, "{b:?}");
            }
        }
    }
}
