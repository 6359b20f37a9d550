//! The video probe's features of world clips, and its accuracy on fresh ones (its
//! training stream is in the train crate).
//!
//! Training tracks come from the world's layout (true centres and radii) with noise
//! like the image probe's localisation error, so that the probe reads the image
//! probe's tracks in evaluation.

use std::collections::BTreeMap;

use candle_core::Device;
use image::{imageops, RgbImage};
use mmgen_world::render::{frame_time, Scene};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{Motion, Shape, SpecSampler, Split};
use rand::Rng;

use super::image_data::Tally;
use super::video::{cue_frames, middle_frame, motion_features, track_frame_indices, TrackPoint, VideoProbe};
use crate::error::Result;

/// Side of the frames.
const FRAME_SIZE: u32 = 64;

/// Motion features and labels of every object of scene `seed`, of `split` (None:
/// either, a quarter held-out); with `augment`, as the training stream shows them
/// (shorter clips, mirrored, noisy tracks).
pub fn scene_features(seed: u64, split: Option<Split>, augment: bool) -> Result<Vec<(Vec<f32>, Motion)>> {
    let mut rng = rng_for(seed, Purpose::Augment);
    let split = split.unwrap_or(if rng.random_bool(0.25) {
        Split::Heldout
    } else {
        Split::Train
    });
    let spec = SpecSampler::default().sample(split, seed);
    let scene = Scene::new(&spec, seed);
    let clip = if augment {
        [8usize, 12, 16, 24][rng.random_range(0..4)]
    } else {
        24
    };
    let track_at = track_frame_indices(clip);
    let (cues, mid) = (cue_frames(clip), middle_frame(clip));
    let flip = augment && rng.random_bool(0.5);
    // Render only the frames the features read.
    let mut frames: Vec<RgbImage> = Vec::with_capacity(clip);
    for i in 0..clip {
        let needed = cues.contains(&i);
        let frame = if needed {
            scene.frame(FRAME_SIZE, FRAME_SIZE, frame_time(i as u32, clip as u32))?
        } else {
            RgbImage::new(FRAME_SIZE, FRAME_SIZE)
        };
        frames.push(if flip && needed {
            imageops::flip_horizontal(&frame)
        } else {
            frame
        });
    }
    let mut noise = |scale: f32| {
        if augment {
            scale * (rng.random::<f32>() + rng.random::<f32>() - 1.0) * 2.0
        } else {
            0.0
        }
    };
    let mut out = Vec::new();
    for (k, object) in spec.objects.iter().enumerate() {
        if object.shape == Shape::Circle && object.motion == Motion::Spin {
            continue; // invisible
        }
        let point = |i: usize, noise: &mut dyn FnMut(f32) -> f32| {
            let p = scene.poses_at(frame_time(i as u32, clip as u32))[k];
            let cx = if flip { 1.0 - p.cx } else { p.cx };
            TrackPoint {
                cx: cx + noise(0.01),
                cy: p.cy + noise(0.01),
                radius: p.radius * (1.0 + noise(0.06)),
            }
        };
        let track: Vec<TrackPoint> = track_at.iter().map(|&i| point(i, &mut noise)).collect();
        let middle = point(mid, &mut noise);
        let motion = if flip { object.motion.mirrored() } else { object.motion };
        out.push((motion_features(&frames, &track, middle)?, motion));
    }
    Ok(out)
}

/// Motion accuracy on the objects of `n` fresh 24-frame clips of `split`, from true
/// tracks (the probe's own accuracy; evaluation adds the image probe's tracking).
pub fn video_probe_accuracy(
    probe: &VideoProbe,
    n: usize,
    seed: u64,
    split: Split,
    device: &Device,
) -> Result<BTreeMap<&'static str, Tally>> {
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for i in 0..n {
        let objects = scene_features(mix64(seed ^ 0x71DE_0000 ^ mix64(i as u64)), Some(split), false)?;
        let (features, truth): (Vec<Vec<f32>>, Vec<Motion>) = objects.into_iter().unzip();
        for (read, want) in probe.read(&features, device)?.into_iter().zip(truth) {
            tallies.entry("motion").or_default().add(read == want);
        }
    }
    Ok(tallies)
}
