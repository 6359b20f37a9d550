//! The shape probe: the second stage of image reading. The image probe finds each
//! object (centre, radius) and reads its colour and size from 4x4-pixel cells; the
//! shape probe then reads the object's outline from a crop of the full-resolution
//! pixels around it, scaled so the object always spans the same part of the crop (the
//! two-stage design of R-CNN detectors: find, then classify what was found).
//!
//! Why a second stage: a small object (radius 5 px at 64x64) is 11 pixels across, and
//! a circle, a hexagon and a square of that size differ in a handful of edge pixels.
//! A dense detector spends most of its capacity and training on the whole frame; a
//! crop classifier sees only the object, at a normalised scale, and learns from every
//! object of every training image, so it learns far faster (docs/evaluation.md).
//!
//! Like R-CNN's second stage, the probe can also carry a box head (`box_head` in its
//! config): whether the crop holds an object at all (so that a cloud or a sun the
//! detector took for an object is dropped), and how much larger or smaller the object
//! is than the detected radius (the detector's radius regresses towards the world's
//! two sizes and misses a growing or shrinking object's scale, which the video probe
//! needs).

use candle_core::{Device, Module, Tensor};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, VarBuilder};
use mmgen_world::layout::Pose;
use mmgen_world::Shape;
use serde::{Deserialize, Serialize};

use super::{argmax, sigmoid, softmax};
use crate::error::{EvalError, Result};

const N_SHAPE: usize = 8;
/// Halvings of the crop (one max-pool after each stage).
const STAGES: usize = 3;

/// Shape of a shape probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShapeProbeConfig {
    /// Side of the (square) images it is trained on and reads.
    pub image_size: usize,
    /// Side of the crop in pixels, a multiple of 8.
    pub crop: usize,
    /// Side of the crop in object radii (the crop covers the bounding circle and some
    /// background around it).
    pub span: f32,
    /// Channels of the three stages (two 3x3 convolutions each, the last one one).
    pub widths: Vec<usize>,
    /// Whether the probe also reads objectness and a radius correction (folders
    /// trained before the box head have none: they read shapes only).
    #[serde(default)]
    pub box_head: bool,
}

impl ShapeProbeConfig {
    /// The shipped shape probe for 64x64 images.
    pub fn base() -> ShapeProbeConfig {
        ShapeProbeConfig {
            image_size: 64,
            crop: 24,
            span: 2.6,
            widths: vec![32, 64, 128],
            box_head: true,
        }
    }

    /// A tiny shape probe for tests.
    pub fn tiny() -> ShapeProbeConfig {
        ShapeProbeConfig {
            image_size: 32,
            crop: 8,
            span: 2.6,
            widths: vec![4, 4, 4],
            box_head: true,
        }
    }
}

/// Where an object is, for cropping: centre and bounding-circle radius, canvas
/// fractions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectBox {
    /// Centre x, to the right.
    pub cx: f32,
    /// Centre y, down.
    pub cy: f32,
    /// Bounding-circle radius.
    pub radius: f32,
}

impl From<Pose> for ObjectBox {
    fn from(pose: Pose) -> ObjectBox {
        ObjectBox {
            cx: pose.cx,
            cy: pose.cy,
            radius: pose.radius,
        }
    }
}

/// Smallest radius a crop is scaled to (canvas fraction): a detection whose radius
/// was read as about zero still gets a crop of a small object's size.
pub const MIN_RADIUS: f32 = 0.04;

/// Layers a resumed training run may add to a shape probe: (config flag, parameter
/// prefix). The box head is built under `box` when `box_head` is set.
pub const GROWN_LAYERS: &[(&str, &str)] = &[("box_head", "box.")];

/// Largest radius correction the box head may apply, as a factor either way: a
/// detection more than this far off in scale is not the object it claims to be.
pub const MAX_SCALE_CORRECTION: f32 = 2.0;

/// What the shape probe reads from one object's crop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropReading {
    /// The most likely shape.
    pub shape: Shape,
    /// Each shape's probability, in [`Shape::ALL`] order.
    pub shape_probabilities: [f32; N_SHAPE],
    /// Probability that the crop is centred on an object (1 without a box head).
    pub objectness: f32,
    /// The object's radius over the crop's radius (1 without a box head), within
    /// [1 / MAX_SCALE_CORRECTION, MAX_SCALE_CORRECTION].
    pub scale: f32,
}

/// The shape probe network: stages of 3x3 convolutions with ReLU and 2x2 max-pooling,
/// then linear layers over the flattened last stage: `head` (shape logits) and, with
/// a box head, `box` (objectness logit, log radius ratio). Parameters `conv{i}`,
/// `head`, `box`.
#[derive(Debug, Clone)]
pub struct ShapeProbe {
    convs: Vec<Conv2d>,
    head: Linear,
    box_head: Option<Linear>,
    config: ShapeProbeConfig,
}

/// A training batch's targets beyond the shapes: the first `objects` crops hold an
/// object (their shapes and log radius ratios are given), the rest are background.
pub struct BoxTargets<'a> {
    /// Crops that hold an object (they come first).
    pub objects: usize,
    /// ln(true radius / crop radius) of each object crop (objects).
    pub log_scales: &'a Tensor,
}

impl ShapeProbe {
    /// Builds the network.
    pub fn new(config: &ShapeProbeConfig, vb: VarBuilder) -> Result<ShapeProbe> {
        if config.crop == 0 || !config.crop.is_multiple_of(1 << STAGES) {
            return Err(EvalError::Invalid(format!(
                "shape probe crop {} must be a positive multiple of {}",
                config.crop,
                1 << STAGES
            )));
        }
        if config.image_size == 0 {
            return Err(EvalError::Invalid("shape probe image_size must be positive".into()));
        }
        if config.widths.len() != STAGES || config.widths.contains(&0) {
            return Err(EvalError::Invalid(format!(
                "shape probe widths {:?} must be {STAGES} positive channel counts",
                config.widths
            )));
        }
        if !(config.span.is_finite() && config.span >= 2.0) {
            return Err(EvalError::Invalid(format!(
                "shape probe span {} must be at least 2 radii (the whole object)",
                config.span
            )));
        }
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let w = &config.widths;
        let channels = [(3, w[0]), (w[0], w[0]), (w[0], w[1]), (w[1], w[1]), (w[1], w[2])];
        let convs = channels
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| conv2d(a, b, 3, cfg, vb.pp(format!("conv{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let side = config.crop >> STAGES;
        let head = linear(w[2] * side * side, N_SHAPE, vb.pp("head"))?;
        let box_head = if config.box_head {
            Some(linear(w[2] * side * side, 2, vb.pp("box"))?)
        } else {
            None
        };
        Ok(ShapeProbe {
            convs,
            head,
            box_head,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ShapeProbeConfig {
        &self.config
    }

    /// crops (n, 3, crop, crop) in [-1, 1] -> shape logits (n, 8) and, with a box
    /// head, (n, 2): objectness logit, ln(object radius / crop radius).
    pub fn forward(&self, crops: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let mut x = crops.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward(&x)?.relu()?;
            // Pool after each stage: convolutions 1, 3 and 4 end one.
            if i == 1 || i == 3 || i == 4 {
                x = x.max_pool2d(2)?;
            }
        }
        let x = x.flatten_from(1)?;
        let boxes = self.box_head.as_ref().map(|head| head.forward(&x)).transpose()?;
        Ok((self.head.forward(&x)?, boxes))
    }

    /// What the probe reads from the objects at `boxes[i]` in image `i` of `xs`
    /// (b, 3, h, w) in [-1, 1]: one entry per box, images in order. Each crop's outputs
    /// are averaged with those of its mirror image (every shape is mirror-invariant,
    /// and so are objectness and scale).
    pub fn read(&self, xs: &Tensor, boxes: &[Vec<ObjectBox>]) -> Result<Vec<Vec<CropReading>>> {
        let (b, c, h, w) = xs.dims4()?;
        if boxes.len() != b || c != 3 {
            return Err(EvalError::Invalid(format!(
                "shape probe: {} box lists for {b} images of {c} channels (need one list per RGB image)",
                boxes.len()
            )));
        }
        let n: usize = boxes.iter().map(Vec::len).sum();
        if n == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        let device = xs.device();
        let pixels: Vec<f32> = xs.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
        let side = self.config.crop;
        let mut data = Vec::with_capacity(n * 3 * side * side);
        for (i, image_boxes) in boxes.iter().enumerate() {
            let image = &pixels[i * 3 * h * w..(i + 1) * 3 * h * w];
            for object in image_boxes {
                crop_object(image, h, w, *object, &self.config, &mut data);
            }
        }
        let crops = Tensor::from_vec(data, (n, 3, side, side), device)?;
        let reversed = Tensor::from_vec((0..side as u32).rev().collect::<Vec<_>>(), side, device)?;
        let mirrored = crops.index_select(&reversed, 3)?;
        let (shapes, box_out) = self.forward(&crops)?;
        let (mirrored_shapes, mirrored_box) = self.forward(&mirrored)?;
        let logits: Vec<Vec<f32>> = ((shapes + mirrored_shapes)? * 0.5)?.to_vec2()?;
        let box_out: Option<Vec<Vec<f32>>> = match (box_out, mirrored_box) {
            (Some(a), Some(m)) => Some(((a + m)? * 0.5)?.to_vec2()?),
            _ => None,
        };
        let limit = MAX_SCALE_CORRECTION.ln();
        let mut readings = logits.iter().enumerate().map(|(k, logits)| {
            let (objectness, scale) = box_out.as_ref().map_or((1.0, 1.0), |rows| {
                (sigmoid(rows[k][0]), rows[k][1].clamp(-limit, limit).exp())
            });
            CropReading {
                shape: Shape::ALL[argmax(logits.iter().copied())],
                shape_probabilities: softmax(logits.iter().copied()),
                objectness,
                scale,
            }
        });
        Ok(boxes
            .iter()
            .map(|image_boxes| readings.by_ref().take(image_boxes.len()).collect())
            .collect())
    }

    /// Training loss: cross-entropy of the object crops' shape logits against
    /// `shapes`; with a box head, plus the binary cross-entropy of objectness (object
    /// crops first, background after) and the L1 error of the log radius ratio on the
    /// object crops.
    pub fn loss(
        &self,
        crops: &Tensor,
        shapes: &Tensor,
        targets: &BoxTargets,
    ) -> Result<(Tensor, Vec<(&'static str, Tensor)>)> {
        let (logits, box_out) = self.forward(crops)?;
        let p = targets.objects;
        let shape = candle_nn::loss::cross_entropy(&logits.narrow(0, 0, p)?, shapes)?;
        let Some(box_out) = box_out else {
            return Ok((shape.clone(), vec![("shape", shape)]));
        };
        let n = box_out.dim(0)?;
        let present: Vec<u32> = (0..n).map(|i| (i < p) as u32).collect();
        let present = Tensor::from_vec(present, n, crops.device())?;
        // Binary cross-entropy as a two-class softmax over (0, logit): the log-softmax
        // stays finite where a sigmoid saturates.
        let logit = box_out.narrow(1, 0, 1)?;
        let objectness = candle_nn::loss::cross_entropy(&Tensor::cat(&[&logit.zeros_like()?, &logit], 1)?, &present)?;
        let scale = (box_out.narrow(0, 0, p)?.narrow(1, 1, 1)?.squeeze(1)? - targets.log_scales)?
            .abs()?
            .mean_all()?;
        let total = ((&shape + &objectness)? + (&scale * 4.0)?)?;
        Ok((
            total,
            vec![("shape", shape), ("objectness", objectness), ("scale", scale)],
        ))
    }
}

/// Appends the crop of `object` from one image (3, h, w) in [-1, 1] to `out`, channel
/// by channel: `config.crop` x `config.crop` bilinear samples over a square of
/// `config.span` radii around the centre (edges clamped).
pub fn crop_object(
    image: &[f32],
    h: usize,
    w: usize,
    object: ObjectBox,
    config: &ShapeProbeConfig,
    out: &mut Vec<f32>,
) {
    crop_rotated(image, h, w, object, 0.0, config, out)
}

/// [`crop_object`] with the sampling square turned by `angle` radians about the
/// object's centre (a training augmentation: world objects spin in videos).
pub fn crop_rotated(
    image: &[f32],
    h: usize,
    w: usize,
    object: ObjectBox,
    angle: f32,
    config: &ShapeProbeConfig,
    out: &mut Vec<f32>,
) {
    let side = config.span * object.radius.max(MIN_RADIUS);
    let (sin, cos) = angle.sin_cos();
    let n = config.crop;
    let at = |c: usize, x: f32, y: f32| {
        let xx = x.clamp(0.0, (w - 1) as f32) as usize;
        let yy = y.clamp(0.0, (h - 1) as f32) as usize;
        image[(c * h + yy) * w + xx]
    };
    for c in 0..3 {
        for j in 0..n {
            for i in 0..n {
                let dx = ((i as f32 + 0.5) / n as f32 - 0.5) * side;
                let dy = ((j as f32 + 0.5) / n as f32 - 0.5) * side;
                let u = (object.cx + cos * dx - sin * dy) * w as f32 - 0.5;
                let v = (object.cy + sin * dx + cos * dy) * h as f32 - 0.5;
                let (x0, y0) = (u.floor(), v.floor());
                let (fx, fy) = (u - x0, v - y0);
                let top = at(c, x0, y0) * (1.0 - fx) + at(c, x0 + 1.0, y0) * fx;
                let bottom = at(c, x0, y0 + 1.0) * (1.0 - fx) + at(c, x0 + 1.0, y0 + 1.0) * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
}

/// Crops as a tensor on `device` (for training batches).
pub fn crops_tensor(data: Vec<f32>, config: &ShapeProbeConfig, device: &Device) -> Result<Tensor> {
    let n = data.len() / (3 * config.crop * config.crop);
    Ok(Tensor::from_vec(data, (n, 3, config.crop, config.crop), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarMap;
    use std::ops::Range;

    /// A black (3, h, w) image in [-1, 1], white over pixel columns `xs` and rows `ys`.
    fn white_block(h: usize, w: usize, xs: Range<usize>, ys: Range<usize>) -> Vec<f32> {
        let mut image = vec![-1.0f32; 3 * h * w];
        for c in 0..3 {
            for y in ys.clone() {
                for x in xs.clone() {
                    image[(c * h + y) * w + x] = 1.0;
                }
            }
        }
        image
    }

    #[test]
    fn crops_follow_the_object_and_the_network_reads_them() {
        // A 16x16 image, black but for a white 2x2 block at pixels (4..6, 10..12).
        let (h, w) = (16, 16);
        let image = white_block(h, w, 4..6, 10..12);
        let config = ShapeProbeConfig::tiny();
        let mut crop = Vec::new();
        let object = ObjectBox {
            cx: 5.0 / 16.0,
            cy: 11.0 / 16.0,
            radius: 2.0 / 16.0,
        };
        crop_object(&image, h, w, object, &config, &mut crop);
        assert_eq!(crop.len(), 3 * 8 * 8);
        // The crop's centre is the block, its corners background.
        let red = |i: usize, j: usize| crop[j * 8 + i];
        assert!(red(3, 3) > 0.9 && red(4, 4) > 0.9, "{crop:?}");
        assert!(red(0, 0) < -0.9 && red(7, 7) < -0.9);

        let varmap = VarMap::new();
        let dev = Device::Cpu;
        let probe = ShapeProbe::new(&config, mmgen_nn::seeded_var_builder(&varmap, 1, DType::F32, &dev)).unwrap();
        let xs = Tensor::from_vec(image, (1, 3, h, w), &dev).unwrap();
        let xs = Tensor::cat(&[&xs, &xs], 0).unwrap();
        let read = probe.read(&xs, &[vec![object, object], vec![]]).unwrap();
        assert_eq!(read.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 0]);
        assert_eq!(read[0][0], read[0][1]);
        let r = read[0][0];
        assert!((0.0..=1.0).contains(&r.objectness), "{r:?}");
        assert!(
            r.scale >= 1.0 / MAX_SCALE_CORRECTION && r.scale <= MAX_SCALE_CORRECTION,
            "{r:?}"
        );
        assert!(probe.read(&xs, &[vec![object]]).is_err(), "one box list per image");
    }

    #[test]
    fn turned_crops_turn_the_object() {
        // A horizontal bar, 3 pixels thick, through the centre of a 16x16 image.
        let (h, w) = (16, 16);
        let image = white_block(h, w, 1..15, 7..10);
        let config = ShapeProbeConfig::tiny();
        let object = ObjectBox {
            cx: 0.5,
            cy: 0.5 + 0.5 / 16.0,
            radius: 5.0 / 16.0,
        };
        let (mut upright, mut turned) = (Vec::new(), Vec::new());
        crop_object(&image, h, w, object, &config, &mut upright);
        crop_rotated(&image, h, w, object, std::f32::consts::FRAC_PI_2, &config, &mut turned);
        // Mean brightness of crop row j and of crop column i (first channel).
        let row = |crop: &[f32], j: usize| (0..8).map(|i| crop[j * 8 + i]).sum::<f32>() / 8.0;
        let col = |crop: &[f32], i: usize| (0..8).map(|j| crop[j * 8 + i]).sum::<f32>() / 8.0;
        let brightest = |f: &dyn Fn(usize) -> f32| (0..8).map(f).fold(f32::MIN, f32::max);
        // Upright: one bright row; turned a quarter: one bright column instead.
        assert!(brightest(&|j| row(&upright, j)) > 0.5 && brightest(&|i| col(&upright, i)) < 0.0);
        assert!(brightest(&|i| col(&turned, i)) > 0.5 && brightest(&|j| row(&turned, j)) < 0.0);
    }

    #[test]
    fn bad_configs_fail_clearly() {
        let dev = Device::Cpu;
        for (config, word) in [
            (
                ShapeProbeConfig {
                    crop: 12,
                    ..ShapeProbeConfig::tiny()
                },
                "crop",
            ),
            (
                ShapeProbeConfig {
                    widths: vec![4, 4],
                    ..ShapeProbeConfig::tiny()
                },
                "widths",
            ),
            (
                ShapeProbeConfig {
                    span: 1.0,
                    ..ShapeProbeConfig::tiny()
                },
                "span",
            ),
        ] {
            let err = ShapeProbe::new(&config, VarBuilder::zeros(DType::F32, &dev)).unwrap_err();
            assert!(err.to_string().contains(word), "{err}");
        }
    }
}
