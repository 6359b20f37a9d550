//! The image probe: a small fully-convolutional detector in the manner of CenterNet
//! (Zhou et al. 2019, "Objects as Points") that reads a world image back into
//! attributes: for every object its centre, radius, shape, colour and size (so count,
//! position and relations follow), and for the whole image its background and style.
//!
//! Output grid: one cell per 4x4 pixels. Per cell: a centre heat logit, shape (8),
//! colour (8) and size (2) logits, a sub-cell offset (2) and a radius (1). The global
//! head reads background (7) and style (5) from pooled features, which also serve as
//! the feature space of the world-FD.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

use super::shape::{ObjectBox, ShapeProbe, MIN_RADIUS};
use super::{argmax, sigmoid, softmax};
use image::RgbImage;
use mmgen_nn::{per_cell, space_to_depth, CellGrid, Conv3x3};
use mmgen_world::layout::Pose;
use mmgen_world::{Background, Colour, Shape, Size, Style};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Pixels per output cell.
pub const STRIDE: usize = 4;
const N_SHAPE: usize = 8;
const N_COLOUR: usize = 8;
const N_SIZE: usize = 2;
const HEAT: usize = 0;
const SHAPE: usize = 1;
const COLOUR: usize = SHAPE + N_SHAPE;
const SIZE: usize = COLOUR + N_COLOUR;
const OFFSET: usize = SIZE + N_SIZE;
const RADIUS: usize = OFFSET + 2;
/// Channels of the dense output.
pub const DENSE: usize = RADIUS + 1;
/// Stem stages that halve the resolution down to [`STRIDE`]-pixel cells.
const STEM_STAGES: usize = STRIDE.trailing_zeros() as usize;
const N_BACKGROUND: usize = 7;
const N_STYLE: usize = 5;
/// Radius targets are scaled by this so they are of order one.
const RADIUS_SCALE: f32 = 10.0;
/// Heat above which a cell that is a local maximum is an object, for probes saved
/// before the threshold was calibrated (CenterNet's usual value).
pub const DEFAULT_DETECTION_THRESHOLD: f64 = 0.3;

fn default_detection_threshold() -> f64 {
    DEFAULT_DETECTION_THRESHOLD
}

/// Shape of an image probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageProbeConfig {
    /// Side of the (square) input images, a multiple of [`STRIDE`].
    pub image_size: usize,
    /// Channels of the cell features.
    pub width: usize,
    /// Residual 3x3 convolutions over the cell grid.
    pub depth: usize,
    /// Channels of the full-resolution stem: empty, or one 3x3 convolution per halving
    /// of the resolution (two, for the 4x4-pixel cells) before the cell embedding.
    /// Empty means the cell embedding reads raw 4x4 patches (the first shipped probe).
    #[serde(default)]
    pub stem: Vec<usize>,
    /// Centre heat (0 to 1) above which a local maximum counts as an object. Not learnt
    /// by gradient: chosen after training on fresh train-split renders
    /// ([`super::image_data::calibrate_detection_threshold`]).
    #[serde(default = "default_detection_threshold")]
    pub detection_threshold: f64,
}

fn check_detection_threshold(threshold: f64) -> Result<()> {
    if threshold > 0.0 && threshold < 1.0 {
        Ok(())
    } else {
        Err(EvalError::Invalid(format!(
            "detection_threshold {threshold} must lie strictly between 0 and 1"
        )))
    }
}

/// Config keys that calibration sets after training: a resumed run may differ in them.
pub const CALIBRATED_KEYS: &[&str] = &["detection_threshold"];

impl ImageProbeConfig {
    /// The shipped probe for 64x64 images.
    pub fn base() -> ImageProbeConfig {
        ImageProbeConfig {
            image_size: 64,
            width: 64,
            depth: 4,
            stem: vec![16, 32],
            detection_threshold: DEFAULT_DETECTION_THRESHOLD,
        }
    }

    /// A tiny probe for tests.
    pub fn tiny() -> ImageProbeConfig {
        ImageProbeConfig {
            image_size: 32,
            width: 8,
            depth: 1,
            stem: vec![4, 4],
            detection_threshold: DEFAULT_DETECTION_THRESHOLD,
        }
    }

    /// Output cells per side.
    pub fn grid(&self) -> usize {
        self.image_size / STRIDE
    }

    /// Width of the pooled feature vector.
    pub fn feature_dim(&self) -> usize {
        self.width
    }
}

/// The image probe network.
#[derive(Debug, Clone)]
pub struct ImageProbe {
    stem: Vec<Conv3x3>,
    embed: Linear,
    convs: Vec<Conv3x3>,
    dense: Linear,
    global: Linear,
    config: ImageProbeConfig,
    /// The second stage that reads shapes from object crops, when one is attached.
    shapes: Option<ShapeProbe>,
}

/// One object read from an image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Centre, canvas fraction, x to the right.
    pub cx: f32,
    /// Centre, canvas fraction, y down.
    pub cy: f32,
    /// Bounding-circle radius, canvas fraction.
    pub radius: f32,
    /// Most likely shape.
    pub shape: Shape,
    /// Most likely colour.
    pub colour: Colour,
    /// Most likely size class.
    pub size: Size,
    /// Centre heat, 0 to 1.
    pub score: f32,
    /// Each shape's probability, in [`Shape::ALL`] order (from the shape probe when
    /// one is attached, else from the dense head).
    #[serde(skip)]
    pub shape_probabilities: [f32; N_SHAPE],
    /// Each colour's probability, in [`Colour::ALL`] order.
    #[serde(skip)]
    pub colour_probabilities: [f32; N_COLOUR],
}

impl Detection {
    /// As a layout pose (for relation checks).
    pub fn pose(&self) -> Pose {
        Pose {
            cx: self.cx,
            cy: self.cy,
            radius: self.radius,
            angle: 0.0,
        }
    }

    /// Whether the reading leaves `shape` and `colour` possible: each is the most
    /// likely one or has at least `min_probability`.
    pub fn may_be(&self, shape: Shape, colour: Colour, min_probability: f32) -> bool {
        (self.shape == shape || self.shape_probabilities[shape.index()] >= min_probability)
            && (self.colour == colour || self.colour_probabilities[colour.index()] >= min_probability)
    }
}

/// Everything the probe reads from one image.
#[derive(Clone, Debug, Serialize)]
pub struct ImageReading {
    /// Objects, highest score first.
    pub objects: Vec<Detection>,
    /// Most likely background.
    pub background: Background,
    /// Most likely style.
    pub style: Style,
    /// Pooled features (for the world-FD).
    pub features: Vec<f32>,
}

impl ImageProbe {
    /// Builds the network; parameter names are `stem{i}`, `embed`, `conv{i}`, `dense`,
    /// `global`.
    pub fn new(config: &ImageProbeConfig, vb: VarBuilder) -> Result<ImageProbe> {
        if config.image_size == 0 || !config.image_size.is_multiple_of(STRIDE) || config.width == 0 {
            return Err(EvalError::Invalid(format!(
                "image_size {} must be a positive multiple of {STRIDE} and width {} positive",
                config.image_size, config.width
            )));
        }
        check_detection_threshold(config.detection_threshold)?;
        if !(config.stem.is_empty() || config.stem.len() == STEM_STAGES) || config.stem.contains(&0) {
            return Err(EvalError::Invalid(format!(
                "stem {:?} must be empty or {STEM_STAGES} positive channel counts (one per halving to {STRIDE}x{STRIDE}-pixel cells)",
                config.stem
            )));
        }
        // Each stem stage sees the previous stage's 2x2 blocks stacked as channels.
        let mut stem = Vec::with_capacity(config.stem.len());
        let mut c_in = 3;
        for (i, &c) in config.stem.iter().enumerate() {
            stem.push(Conv3x3::new(c_in, c, vb.pp(format!("stem{i}")))?);
            c_in = 4 * c;
        }
        let embed_in = if config.stem.is_empty() {
            3 * STRIDE * STRIDE
        } else {
            c_in
        };
        let embed = linear(embed_in, config.width, vb.pp("embed"))?;
        let convs = (0..config.depth)
            .map(|i| Conv3x3::new(config.width, config.width, vb.pp(format!("conv{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let dense = linear(config.width, DENSE, vb.pp("dense"))?;
        let global = linear(config.width, N_BACKGROUND + N_STYLE, vb.pp("global"))?;
        Ok(ImageProbe {
            stem,
            embed,
            convs,
            dense,
            global,
            config: config.clone(),
            shapes: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ImageProbeConfig {
        &self.config
    }

    /// Reads each detected object's shape with `shapes` from a crop of the pixels around
    /// it (see [`super::shape`]) instead of with the dense shape head.
    pub fn with_shape_probe(mut self, shapes: ShapeProbe) -> Result<ImageProbe> {
        if shapes.config().image_size != self.config.image_size {
            return Err(EvalError::Invalid(format!(
                "the shape probe reads {0}x{0} images, the image probe {1}x{1}",
                shapes.config().image_size,
                self.config.image_size
            )));
        }
        self.shapes = Some(shapes);
        Ok(self)
    }

    /// Sets the detection threshold (see [`ImageProbeConfig::detection_threshold`]).
    pub fn set_detection_threshold(&mut self, threshold: f64) -> Result<()> {
        check_detection_threshold(threshold)?;
        self.config.detection_threshold = threshold;
        Ok(())
    }

    /// xs: (b, 3, s, s) in [-1, 1] -> (dense (b, DENSE, g, g), global logits (b, 12),
    /// pooled features (b, width)).
    ///
    /// The stem's 3x3 convolutions run at full and half resolution, each followed by
    /// a 2x2 space-to-depth, so that thin outlines (a star's points, a small hexagon's
    /// corners) are seen before they are averaged away; without a stem each 4x4 patch
    /// is embedded directly, as a ViT's patch embedding. Residual 3x3 convolutions then
    /// mix neighbouring cells: 4 layers see 9x9 cells (36 pixels), more than the largest
    /// object.
    pub fn forward(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let cells = if self.stem.is_empty() {
            // Patch channels ordered (colour, dy, dx), as the first shipped probe learnt them.
            let (b, c, h, w) = xs.dims4()?;
            let (gh, gw) = (h / STRIDE, w / STRIDE);
            xs.reshape((b, c, gh, STRIDE, gw, STRIDE))?
                .permute((0, 2, 4, 1, 3, 5))?
                .reshape((b, gh, gw, c * STRIDE * STRIDE))?
        } else {
            let mut x = xs.permute((0, 2, 3, 1))?.contiguous()?;
            for conv in &self.stem {
                let y = conv.forward(&CellGrid::from_nhwc(&x)?)?.to_nhwc()?.relu()?;
                x = space_to_depth(&y, 2)?;
            }
            x
        };
        let mut h = CellGrid::from_nhwc(&self.embed.forward(&cells)?.relu()?)?;
        for conv in &self.convs {
            let update = conv.forward(&h)?.xs.relu()?;
            h = CellGrid {
                xs: (&h.xs + update)?,
                ..h
            };
        }
        let dense = per_cell(&self.dense, &h)?
            .to_nhwc()?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        let pooled = h.mean()?;
        let global = self.global.forward(&pooled)?;
        Ok((dense, global, pooled))
    }

    /// Reads a batch of images (b, 3, s, s) in [-1, 1].
    pub fn read(&self, xs: &Tensor) -> Result<Vec<ImageReading>> {
        self.read_above(xs, self.config.detection_threshold)
    }

    /// Reads a batch, keeping every object whose centre heat is at least `threshold`:
    /// [`ImageProbe::detect_above`], then, with a shape probe attached, each object's
    /// shape read by it from a crop around the object. A shape probe with a box head
    /// also drops detections whose crop holds no object (objectness below 0.5) and
    /// corrects each radius.
    pub fn read_above(&self, xs: &Tensor, threshold: f64) -> Result<Vec<ImageReading>> {
        let mut readings = self.detect_above(xs, threshold)?;
        if let Some(shapes) = &self.shapes {
            let boxes: Vec<Vec<ObjectBox>> = readings
                .iter()
                .map(|r| r.objects.iter().map(|d| ObjectBox::from(d.pose())).collect())
                .collect();
            for (reading, read) in readings.iter_mut().zip(shapes.read(xs, &boxes)?) {
                let detected = std::mem::take(&mut reading.objects);
                reading.objects = detected
                    .into_iter()
                    .zip(read)
                    .filter(|(_, crop)| crop.objectness >= 0.5)
                    .map(|(object, crop)| Detection {
                        shape: crop.shape,
                        shape_probabilities: crop.shape_probabilities,
                        radius: object.radius.max(MIN_RADIUS) * crop.scale,
                        ..object
                    })
                    .collect();
            }
        }
        Ok(readings)
    }

    /// The first stage alone: objects (with the dense head's shapes), background and
    /// style, keeping every object whose centre heat is at least `threshold`.
    ///
    /// The probe reads each image and its mirror image and averages their heat and
    /// attribute logits (test-time augmentation; every attribute is mirror-invariant,
    /// and the probe was trained on mirrored images): on held-out renders this removes
    /// a third of the count errors and a tenth of the shape errors of one reading.
    /// Offsets, radii and the pooled features come from the unmirrored reading.
    pub fn detect_above(&self, xs: &Tensor, threshold: f64) -> Result<Vec<ImageReading>> {
        let (dense, global, pooled) = self.forward(xs)?;
        let (mirrored_dense, mirrored_global, _) = self.forward(&flip_width(xs)?)?;
        let mirrored_dense = flip_width(&mirrored_dense)?;
        let classes = ((dense.narrow(1, 0, OFFSET)? + mirrored_dense.narrow(1, 0, OFFSET)?)? * 0.5)?;
        let dense = Tensor::cat(&[classes, dense.narrow(1, OFFSET, DENSE - OFFSET)?], 1)?;
        let global = ((global + mirrored_global)? * 0.5)?;
        self.decode(&dense, &global, &pooled, threshold)
    }

    fn decode(&self, dense: &Tensor, global: &Tensor, pooled: &Tensor, threshold: f64) -> Result<Vec<ImageReading>> {
        let b = dense.dim(0)?;
        let g = self.config.grid();
        let dense: Vec<f32> = dense.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let global: Vec<Vec<f32>> = global.to_dtype(DType::F32)?.to_vec2()?;
        let pooled: Vec<Vec<f32>> = pooled.to_dtype(DType::F32)?.to_vec2()?;
        let at = |i: usize, c: usize, y: usize, x: usize| dense[((i * DENSE + c) * g + y) * g + x];
        let colour_at = |i: usize, y: usize, x: usize| argmax((0..N_COLOUR).map(|k| at(i, COLOUR + k, y, x)));
        let mut out = Vec::with_capacity(b);
        for i in 0..b {
            let mut objects = Vec::new();
            for y in 0..g {
                for x in 0..g {
                    let heat = at(i, HEAT, y, x);
                    if (sigmoid(heat) as f64) < threshold {
                        continue;
                    }
                    let colour = colour_at(i, y, x);
                    // A peak: no neighbour of the same colour is hotter (3x3 non-maximum
                    // suppression per colour, as CenterNet's is per class): two objects
                    // of different colours touching, one cell apart, are both kept.
                    let peak = (y.saturating_sub(1)..(y + 2).min(g))
                        .flat_map(|yy| (x.saturating_sub(1)..(x + 2).min(g)).map(move |xx| (yy, xx)))
                        .all(|(yy, xx)| {
                            (yy, xx) == (y, x) || at(i, HEAT, yy, xx) <= heat || colour_at(i, yy, xx) != colour
                        });
                    if !peak {
                        continue;
                    }
                    let shape_logits = (0..N_SHAPE).map(|k| at(i, SHAPE + k, y, x));
                    let size = argmax((0..N_SIZE).map(|k| at(i, SIZE + k, y, x)));
                    objects.push(Detection {
                        cx: (x as f32 + sigmoid(at(i, OFFSET, y, x))) / g as f32,
                        cy: (y as f32 + sigmoid(at(i, OFFSET + 1, y, x))) / g as f32,
                        radius: at(i, RADIUS, y, x).max(0.0) / RADIUS_SCALE,
                        shape: Shape::ALL[argmax(shape_logits.clone())],
                        shape_probabilities: softmax(shape_logits),
                        colour_probabilities: softmax((0..N_COLOUR).map(|k| at(i, COLOUR + k, y, x))),
                        colour: Colour::ALL[colour],
                        size: Size::ALL[size],
                        score: sigmoid(heat),
                    });
                }
            }
            objects.sort_by(|a, b| b.score.total_cmp(&a.score));
            let bg = argmax(global[i][..N_BACKGROUND].iter().copied());
            let style = argmax(global[i][N_BACKGROUND..].iter().copied());
            out.push(ImageReading {
                objects,
                background: Background::ALL[bg],
                style: Style::ALL[style],
                features: pooled[i].clone(),
            });
        }
        Ok(out)
    }

    /// Training loss of a batch against its targets: CenterNet focal loss on the heat
    /// map, cross-entropy on attributes at object centres, L1 on offsets and radii,
    /// cross-entropy on background and style. Returns (total, parts by name).
    pub fn loss(&self, xs: &Tensor, targets: &ImageTargets) -> Result<(Tensor, Vec<(&'static str, Tensor)>)> {
        let (dense, global, _) = self.forward(xs)?;
        let (b, _, g, _) = dense.dims4()?;
        let dev = dense.device();
        let heat_logits = dense.narrow(1, HEAT, 1)?;
        let p = candle_nn::ops::sigmoid(&heat_logits)?.clamp(1e-4, 1.0 - 1e-4)?;
        let y = &targets.heat;
        let pos = &targets.centres_mask;
        let neg = pos.affine(-1.0, 1.0)?;
        // Focal loss (CenterNet eq. 1, alpha = 2, beta = 4).
        let pos_loss = ((p.affine(-1.0, 1.0)?.sqr()? * p.log()?)? * pos)?;
        let neg_weight = y.affine(-1.0, 1.0)?.powf(4.0)?;
        let neg_loss = ((neg_weight * p.sqr()?)? * p.affine(-1.0, 1.0)?.log()?)?;
        let neg_loss = (neg_loss * neg)?;
        let n_obj = targets.shape_ids.dim(0)?.max(1) as f64;
        let focal = ((pos_loss + neg_loss)?.sum_all()? / -n_obj)?;

        let cells = dense.permute((0, 2, 3, 1))?.reshape((b * g * g, DENSE))?;
        let picked = cells.index_select(&targets.centre_index, 0)?;
        let ce = candle_nn::loss::cross_entropy;
        let shape = ce(&picked.narrow(1, SHAPE, N_SHAPE)?, &targets.shape_ids)?;
        let colour = ce(&picked.narrow(1, COLOUR, N_COLOUR)?, &targets.colour_ids)?;
        let size = ce(&picked.narrow(1, SIZE, N_SIZE)?, &targets.size_ids)?;
        let offset = (candle_nn::ops::sigmoid(&picked.narrow(1, OFFSET, 2)?)? - &targets.offsets)?
            .abs()?
            .mean_all()?;
        let radius = (picked.narrow(1, RADIUS, 1)? - &targets.radii)?.abs()?.mean_all()?;
        let background = ce(&global.narrow(1, 0, N_BACKGROUND)?, &targets.background_ids)?;
        let style = ce(&global.narrow(1, N_BACKGROUND, N_STYLE)?, &targets.style_ids)?;
        let parts = vec![
            ("heat", focal),
            ("shape", shape),
            ("colour", colour),
            ("size", size),
            ("offset", offset),
            ("radius", radius),
            ("background", background),
            ("style", style),
        ];
        let mut total = Tensor::zeros((), DType::F32, dev)?;
        for (_, part) in &parts {
            total = (total + part)?;
        }
        Ok((total, parts))
    }
}

/// `xs` (b, c, h, w) mirrored left to right. A cell grid mirrors onto itself cell for
/// cell when the image side is a multiple of the cell side, so a dense map of the
/// mirrored image, mirrored back, lines up with the original's.
fn flip_width(xs: &Tensor) -> Result<Tensor> {
    let w = xs.dim(3)?;
    let reversed = Tensor::from_vec((0..w as u32).rev().collect::<Vec<_>>(), w, xs.device())?;
    Ok(xs.index_select(&reversed, 3)?)
}

/// Images as a (b, 3, h, w) tensor in [-1, 1] (the models' own conversion).
pub fn images_to_tensor(images: &[RgbImage], device: &Device) -> Result<Tensor> {
    Ok(mmgen_models::hybrid_image::images_to_tensor(images, device)?)
}

mod targets;
#[cfg(test)]
mod tests;

pub use targets::ImageTargets;
