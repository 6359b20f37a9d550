//! The image probe's training targets: a centre heat map and, per object centre, its
//! classes, sub-cell offset and radius.

use candle_core::{Device, Tensor};
use mmgen_world::layout::{self, Pose};
use mmgen_world::{Motion, ObjectSpec, SceneSpec, Size};

use super::RADIUS_SCALE;
use crate::error::Result;

/// Training targets of a batch (see [`ImageTargets::build`]).
#[derive(Debug)]
pub struct ImageTargets {
    pub(super) heat: Tensor,
    pub(super) centres_mask: Tensor,
    pub(super) centre_index: Tensor,
    pub(super) shape_ids: Tensor,
    pub(super) colour_ids: Tensor,
    pub(super) size_ids: Tensor,
    pub(super) offsets: Tensor,
    pub(super) radii: Tensor,
    pub(super) background_ids: Tensor,
    pub(super) style_ids: Tensor,
}

impl ImageTargets {
    /// Targets for specs whose objects stand at `poses` (canvas fractions), on a grid of
    /// `grid` cells per side.
    pub fn build(samples: &[(&SceneSpec, &[Pose])], grid: usize, device: &Device) -> Result<ImageTargets> {
        let b = samples.len();
        let mut heat = vec![0f32; b * grid * grid];
        let mut mask = vec![0f32; b * grid * grid];
        let (mut index, mut shapes, mut colours, mut sizes, mut offsets, mut radii) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let sigma = 0.8f32;
        for (i, (spec, poses)) in samples.iter().enumerate() {
            for (object, pose) in spec.objects.iter().zip(poses.iter()) {
                let (gx, gy) = (pose.cx * grid as f32, pose.cy * grid as f32);
                let (cx, cy) = (
                    gx.floor().clamp(0.0, grid as f32 - 1.0) as usize,
                    gy.floor().clamp(0.0, grid as f32 - 1.0) as usize,
                );
                for y in 0..grid {
                    for x in 0..grid {
                        let d2 = (x as f32 - cx as f32).powi(2) + (y as f32 - cy as f32).powi(2);
                        let v = (-d2 / (2.0 * sigma * sigma)).exp();
                        let cell = &mut heat[(i * grid + y) * grid + x];
                        *cell = cell.max(v);
                    }
                }
                let flat = (i * grid + cy) * grid + cx;
                if mask[flat] == 1.0 {
                    continue; // two centres in one cell: keep the first
                }
                mask[flat] = 1.0;
                index.push(flat as u32);
                shapes.push(object.shape.index() as u32);
                colours.push(object.colour.index() as u32);
                sizes.push(shown_size(object, pose).index() as u32);
                offsets.extend([(gx - cx as f32).clamp(0.0, 1.0), (gy - cy as f32).clamp(0.0, 1.0)]);
                radii.push(pose.radius * RADIUS_SCALE);
            }
        }
        let n = index.len();
        let t = |v: Vec<u32>| Tensor::from_vec(v, n, device);
        Ok(ImageTargets {
            heat: Tensor::from_vec(heat, (b, 1, grid, grid), device)?,
            centres_mask: Tensor::from_vec(mask, (b, 1, grid, grid), device)?,
            centre_index: t(index)?,
            shape_ids: t(shapes)?,
            colour_ids: t(colours)?,
            size_ids: t(sizes)?,
            offsets: Tensor::from_vec(offsets, (n, 2), device)?,
            radii: Tensor::from_vec(radii, (n, 1), device)?,
            background_ids: Tensor::from_vec(
                samples.iter().map(|(s, _)| s.background.index() as u32).collect(),
                b,
                device,
            )?,
            style_ids: Tensor::from_vec(samples.iter().map(|(s, _)| s.style.index() as u32).collect(), b, device)?,
        })
    }
}

/// The size class an object shows in a frame: its own, or for a growing or shrinking
/// object the class whose resting radius is nearest (by ratio) to its radius there. A
/// large object at the start of its growth is as small as a small one at rest: taught
/// its spec's class, the probe would learn a size the pixels do not show.
pub(super) fn shown_size(object: &ObjectSpec, pose: &Pose) -> Size {
    if !matches!(object.motion, Motion::Grow | Motion::Shrink) {
        return object.size;
    }
    let off = |size: &Size| (pose.radius / layout::radius(*size)).ln().abs();
    Size::ALL
        .iter()
        .min_by(|a, b| off(a).total_cmp(&off(b)))
        .copied()
        .unwrap_or(object.size)
}
