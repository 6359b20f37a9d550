//! Augmentation, next to the data: mirror flips that relabel left and right, small
//! label-preserving crops, and gain and noise on audio. (Colour jitter within a name's
//! range is part of rendering, see `render::colour`; synonym replacement is part of
//! caption drawing, see `caption`.)

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::Rng;

use crate::spec::{Placement, SceneSpec};

/// How strongly to augment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Chance of a mirror flip.
    pub p_flip: f64,
    /// Smallest crop side, as a fraction of the image (1 = no crop). Crops of at least
    /// 0.88 move a centre by at most 6% of the side: every position label stays true.
    pub min_crop: f32,
    /// Audio gain range.
    pub gain: (f32, f32),
    /// Standard deviation of added white noise on audio.
    pub noise: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            p_flip: 0.5,
            min_crop: 0.9,
            gain: (0.6, 1.0),
            noise: 0.003,
        }
    }
}

/// The spec of the mirror image: left and right swap in positions, relations and motions.
pub fn mirror_spec(spec: &SceneSpec) -> SceneSpec {
    let mut out = spec.clone();
    for object in &mut out.objects {
        object.placement = match object.placement {
            Placement::At(p) => Placement::At(p.mirrored()),
            Placement::Relative { relation, of } => Placement::Relative {
                relation: relation.mirrored(),
                of,
            },
            Placement::Free => Placement::Free,
        };
        object.motion = object.motion.mirrored();
    }
    out
}

/// A crop window (x, y, side fraction) drawn once and applied to every frame.
#[derive(Clone, Copy, Debug)]
struct Crop {
    x: f32,
    y: f32,
    scale: f32,
}

impl Crop {
    fn draw(min: f32, rng: &mut impl Rng) -> Crop {
        let scale = if min < 1.0 {
            rng.random_range(min.max(0.5)..=1.0)
        } else {
            1.0
        };
        Crop {
            x: rng.random_range(0.0..=1.0 - scale),
            y: rng.random_range(0.0..=1.0 - scale),
            scale,
        }
    }

    fn apply(&self, image: &RgbImage) -> RgbImage {
        if self.scale >= 1.0 {
            return image.clone();
        }
        let (w, h) = image.dimensions();
        let (cw, ch) = (
            ((w as f32) * self.scale).round().max(1.0) as u32,
            ((h as f32) * self.scale).round().max(1.0) as u32,
        );
        let (x, y) = ((self.x * w as f32) as u32, (self.y * h as f32) as u32);
        let view = imageops::crop_imm(image, x.min(w - cw), y.min(h - ch), cw, ch).to_image();
        imageops::resize(&view, w, h, FilterType::Triangle)
    }
}

/// Augments a still image and relabels its spec.
pub fn augment_image(
    spec: &SceneSpec,
    image: &RgbImage,
    config: &AugmentConfig,
    rng: &mut impl Rng,
) -> (SceneSpec, RgbImage) {
    let (spec, mut frames) = augment_video(spec, std::slice::from_ref(image), config, rng);
    (spec, frames.pop().unwrap_or_default())
}

/// Augments every frame of a clip the same way and relabels its spec.
pub fn augment_video(
    spec: &SceneSpec,
    frames: &[RgbImage],
    config: &AugmentConfig,
    rng: &mut impl Rng,
) -> (SceneSpec, Vec<RgbImage>) {
    let flip = rng.random_bool(config.p_flip);
    let crop = Crop::draw(config.min_crop, rng);
    let frames = frames
        .iter()
        .map(|f| {
            let cropped = crop.apply(f);
            if flip {
                imageops::flip_horizontal(&cropped)
            } else {
                cropped
            }
        })
        .collect();
    (if flip { mirror_spec(spec) } else { spec.clone() }, frames)
}

/// Random gain and a little white noise.
pub fn augment_audio(samples: &mut [f32], config: &AugmentConfig, rng: &mut impl Rng) {
    let gain = rng.random_range(config.gain.0..=config.gain.1);
    for s in samples.iter_mut() {
        // Sum of two uniforms: cheap, zero-mean, bounded noise.
        let n: f32 = rng.random_range(-1.0..1.0) + rng.random_range(-1.0..1.0);
        *s = *s * gain + config.noise * n * 1.2247;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::layout;
    use crate::render::render_image;
    use crate::rng::{rng_for, Purpose};
    use crate::spec::*;

    fn spec_left_right() -> SceneSpec {
        SceneSpec {
            version: SPEC_VERSION,
            background: Background::GrassField,
            objects: vec![
                ObjectSpec {
                    shape: Shape::Square,
                    colour: Colour::Red,
                    size: Size::Large,
                    placement: Placement::At(Position::Left),
                    motion: Motion::MoveRight,
                },
                ObjectSpec {
                    shape: Shape::Circle,
                    colour: Colour::Blue,
                    size: Size::Small,
                    placement: Placement::Relative {
                        relation: Relation::RightOf,
                        of: 0,
                    },
                    motion: Motion::Still,
                },
            ],
            lighting: Lighting::Steady,
            style: Style::Flat,
            music: None,
            ambience: None,
        }
    }

    /// Mean x (0..1) of pixels whose colour classifies as `colour`.
    fn centroid_x(image: &RgbImage, colour: Colour) -> f32 {
        let (mut sum, mut n) = (0.0, 0.0);
        for (x, _, p) in image.enumerate_pixels() {
            let rgb = p.0.map(|c| c as f32 / 255.0);
            if crate::render::colour::classify(rgb) == Some(colour) {
                sum += x as f32;
                n += 1.0;
            }
        }
        sum / n / image.width() as f32
    }

    #[test]
    fn flips_relabel_left_and_right() {
        let spec = spec_left_right();
        let image = render_image(&spec, 4, 96, 96).unwrap();
        let config = AugmentConfig {
            p_flip: 1.0,
            min_crop: 1.0,
            ..Default::default()
        };
        let (flipped_spec, flipped) = augment_image(&spec, &image, &config, &mut rng_for(0, Purpose::Augment));
        assert_eq!(flipped_spec.objects[0].placement, Placement::At(Position::Right));
        assert_eq!(flipped_spec.objects[0].motion, Motion::MoveLeft);
        assert_eq!(
            flipped_spec.objects[1].placement,
            Placement::Relative {
                relation: Relation::LeftOf,
                of: 0
            }
        );
        // The pixels agree with the new labels.
        assert!(centroid_x(&image, Colour::Red) < 0.4 && centroid_x(&flipped, Colour::Red) > 0.6);
        assert!(centroid_x(&flipped, Colour::Blue) < centroid_x(&flipped, Colour::Red));
        assert_eq!(mirror_spec(&mirror_spec(&spec)), spec);
    }

    #[test]
    fn crops_keep_positions_true() {
        let spec = spec_left_right();
        let config = AugmentConfig {
            p_flip: 0.0,
            min_crop: 0.9,
            ..Default::default()
        };
        let rest = layout(&spec, 4)[0];
        let image = render_image(&spec, 4, 96, 96).unwrap();
        for seed in 0..20 {
            let (_, cropped) = augment_image(&spec, &image, &config, &mut rng_for(seed, Purpose::Augment));
            assert_eq!(cropped.dimensions(), (96, 96));
            let x = centroid_x(&cropped, Colour::Red);
            assert!(
                (x - rest.cx).abs() < 0.08 && x < 0.4,
                "crop moved the left object to {x}"
            );
        }
    }

    #[test]
    fn audio_gain_stays_bounded() {
        let mut xs = vec![0.5f32; 1000];
        augment_audio(&mut xs, &AugmentConfig::default(), &mut rng_for(0, Purpose::Augment));
        assert!(xs.iter().all(|x| (0.25..0.52).contains(x)));
    }
}
