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
//! object of every training image. In the same 3 CPU minutes it read held-out shapes
//! at 85%, where the dense head had reached 80% after 15 minutes.

use candle_core::{Device, Module, Tensor, D};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, VarBuilder};
use mmgen_world::layout::Pose;
use mmgen_world::Shape;
use serde::{Deserialize, Serialize};

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
}

impl ShapeProbeConfig {
    /// The shipped shape probe for 64x64 images.
    pub fn base() -> ShapeProbeConfig {
        ShapeProbeConfig {
            image_size: 64,
            crop: 24,
            span: 2.6,
            widths: vec![32, 64, 128],
        }
    }

    /// A tiny shape probe for tests.
    pub fn tiny() -> ShapeProbeConfig {
        ShapeProbeConfig {
            image_size: 32,
            crop: 8,
            span: 2.6,
            widths: vec![4, 4, 4],
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
const MIN_RADIUS: f32 = 0.04;

/// The shape probe network: stages of 3x3 convolutions with ReLU and 2x2 max-pooling,
/// then a linear layer over the flattened last stage. Parameters `conv{i}`, `head`.
#[derive(Debug, Clone)]
pub struct ShapeProbe {
    convs: Vec<Conv2d>,
    head: Linear,
    config: ShapeProbeConfig,
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
        Ok(ShapeProbe {
            convs,
            head,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ShapeProbeConfig {
        &self.config
    }

    /// crops (n, 3, crop, crop) in [-1, 1] -> shape logits (n, 8).
    pub fn forward(&self, crops: &Tensor) -> Result<Tensor> {
        let mut x = crops.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward(&x)?.relu()?;
            // Pool after each stage: convolutions 1, 3 and 4 end one.
            if i == 1 || i == 3 || i == 4 {
                x = x.max_pool2d(2)?;
            }
        }
        Ok(self.head.forward(&x.flatten_from(1)?)?)
    }

    /// Shape logits of the objects at `boxes[i]` in image `i` of `xs` (b, 3, h, w) in
    /// [-1, 1], averaged with those of the mirrored crops (every shape is
    /// mirror-invariant): one row per object, images in order.
    pub fn logits(&self, xs: &Tensor, boxes: &[Vec<ObjectBox>]) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        if boxes.len() != b || c != 3 {
            return Err(EvalError::Invalid(format!(
                "shape probe: {} box lists for {b} images of {c} channels (need one list per RGB image)",
                boxes.len()
            )));
        }
        let n: usize = boxes.iter().map(Vec::len).sum();
        let device = xs.device();
        if n == 0 {
            return Ok(Tensor::zeros((0, N_SHAPE), candle_core::DType::F32, device)?);
        }
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
        Ok(((self.forward(&crops)? + self.forward(&mirrored)?)? * 0.5)?)
    }

    /// The most likely shape of each object (see [`ShapeProbe::logits`]).
    pub fn read(&self, xs: &Tensor, boxes: &[Vec<ObjectBox>]) -> Result<Vec<Vec<Shape>>> {
        let logits = self.logits(xs, boxes)?;
        let best: Vec<u32> = if logits.dim(0)? == 0 {
            Vec::new()
        } else {
            logits.argmax(D::Minus1)?.to_vec1()?
        };
        let mut best = best.into_iter();
        Ok(boxes
            .iter()
            .map(|image_boxes| {
                image_boxes
                    .iter()
                    .map(|_| Shape::ALL[best.next().unwrap_or(0) as usize])
                    .collect()
            })
            .collect())
    }

    /// Cross-entropy of the crops' logits against their shapes.
    pub fn loss(&self, crops: &Tensor, shapes: &Tensor) -> Result<(Tensor, Vec<(&'static str, Tensor)>)> {
        let loss = candle_nn::loss::cross_entropy(&self.forward(crops)?, shapes)?;
        Ok((loss.clone(), vec![("shape", loss)]))
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

    #[test]
    fn crops_follow_the_object_and_the_network_reads_them() {
        // A 16x16 image, black but for a white 2x2 block at pixels (4..6, 10..12).
        let (h, w) = (16, 16);
        let mut image = vec![-1.0f32; 3 * h * w];
        for c in 0..3 {
            for y in 10..12 {
                for x in 4..6 {
                    image[(c * h + y) * w + x] = 1.0;
                }
            }
        }
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
        assert!(probe.read(&xs, &[vec![object]]).is_err(), "one box list per image");
    }

    #[test]
    fn turned_crops_turn_the_object() {
        // A horizontal bar, 3 pixels thick, through the centre of a 16x16 image.
        let (h, w) = (16, 16);
        let mut image = vec![-1.0f32; 3 * h * w];
        for c in 0..3 {
            for y in 7..10 {
                for x in 1..15 {
                    image[(c * h + y) * w + x] = 1.0;
                }
            }
        }
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
