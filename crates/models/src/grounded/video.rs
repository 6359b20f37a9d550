//! Clips from a plan: the trajectory model poses every planned object at every frame,
//! and the grounded renderer draws frame t from frame t's grounding.
//!
//! Every frame starts from the same noise (shared noise across frames) and the
//! default sampler is deterministic, so a frame is a function of its grounding alone:
//! where the plan holds still, the frames are identical, and an object keeps its
//! look as it moves. Frames are independent given that noise, so a clip of any length
//! is drawn in batches of [`ClipSettings::batch`] frames, in memory that does not grow
//! with its length, and batches meet without seams.

use image::RgbImage;

use crate::error::{ModelError, Result};
use crate::grounded::plan::{PlanIds, ScenePlan};
use crate::grounded::renderer::GroundedRenderer;
use crate::grounded::trajectory::TrajectoryNet;
use crate::hybrid_image::ImageSettings;

/// Frames per second of a grounded clip: a clip spans clip time 0 to 1 whatever its
/// length, as the world's clips do, so this sets only how long it plays.
pub const CLIP_FPS: u32 = 8;

/// Most frames a clip holds.
pub const MAX_CLIP_FRAMES: usize = 100_000;

/// How a clip is drawn.
#[derive(Clone, Debug)]
pub struct ClipSettings {
    /// Frames of the clip.
    pub frames: usize,
    /// The renderer's sampling (steps, sampler, guidance); its `init` is unused.
    pub image: ImageSettings,
    /// Text + image -> video: the look to start every frame from (img2img at
    /// [`ClipSettings::first_frame_strength`]).
    pub first_frame: Option<RgbImage>,
    /// How much of the first frame's look is replaced by the plan (0 to 1).
    pub first_frame_strength: f64,
    /// Frames denoised as one batch.
    pub batch: usize,
}

impl ClipSettings {
    /// The grounded renderer's defaults for a clip of `frames` frames.
    pub fn new(frames: usize) -> ClipSettings {
        ClipSettings {
            frames,
            image: crate::grounded::image::default_settings(),
            first_frame: None,
            first_frame_strength: 0.75,
            batch: 24,
        }
    }

    /// Rejects settings that cannot run, naming the setting and what is allowed.
    pub fn check(&self) -> Result<()> {
        if self.frames == 0 || self.frames > MAX_CLIP_FRAMES {
            return Err(ModelError::Invalid(format!(
                "frames is {}; allowed 1 to {MAX_CLIP_FRAMES}",
                self.frames
            )));
        }
        if self.batch == 0 {
            return Err(ModelError::Invalid("clip batch is 0; allowed 1 or more".into()));
        }
        if !(self.first_frame_strength > 0.0 && self.first_frame_strength <= 1.0) {
            return Err(ModelError::Invalid(format!(
                "first-frame strength {}; allowed more than 0, at most 1",
                self.first_frame_strength
            )));
        }
        self.image.check()
    }
}

/// Clip time of frame `i` of `frames`, evenly from 0 to 1; a single frame is the
/// middle of its clip, where a plan's resting poses are.
pub fn clip_time(i: usize, frames: usize) -> f32 {
    if frames <= 1 {
        crate::grounded::plan::STILL_TIME
    } else {
        i as f32 / (frames - 1) as f32
    }
}

/// A plan laid out over a clip: each frame's plan ids and each object's poses.
#[derive(Clone, Debug)]
pub struct ClipPlan {
    /// One plan per frame (poses and clip time of that frame).
    pub frames: Vec<PlanIds>,
    /// `[object][frame]` poses `[cx, cy, radius, angle]`.
    pub trajectories: Vec<Vec<[f32; 4]>>,
}

impl ClipPlan {
    /// Poses every object of `plan` at each of `frames` frames with `trajectory`; an
    /// object with no motion rests.
    pub fn new(
        plan: &ScenePlan,
        renderer: &GroundedRenderer,
        trajectory: &TrajectoryNet,
        frames: usize,
    ) -> Result<Self> {
        let still = renderer.plan_ids(plan)?;
        let times: Vec<f32> = (0..frames).map(|i| clip_time(i, frames)).collect();
        let mut trajectories = Vec::with_capacity(plan.objects.len());
        for (object, ids) in plan.objects.iter().zip(&still.objects) {
            trajectories.push(match &object.motion {
                Some(motion) => {
                    let id = trajectory.config().motion_id(motion)?;
                    trajectory.trajectories(&[(ids.pose, id)], &times)?.remove(0)
                }
                None => vec![ids.pose; frames],
            });
        }
        let frames = times
            .iter()
            .enumerate()
            .map(|(f, &t)| {
                let mut ids = still.clone();
                for (object, poses) in ids.objects.iter_mut().zip(&trajectories) {
                    object.pose = poses[f];
                }
                ids.clip_time = t;
                ids
            })
            .collect();
        Ok(ClipPlan { frames, trajectories })
    }
}

impl GroundedRenderer {
    /// Draws a clip of `clip`'s frames from `seed` (the same noise for every frame);
    /// `progress(done, total)` counts sampler steps over all batches.
    pub fn render_clip(
        &self,
        clip: &ClipPlan,
        seed: u64,
        settings: &ClipSettings,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<RgbImage>> {
        settings.check()?;
        if clip.frames.len() != settings.frames {
            return Err(ModelError::Invalid(format!(
                "a clip plan of {} frames for {} frames",
                clip.frames.len(),
                settings.frames
            )));
        }
        let mut image = settings.image.clone();
        if let Some(first) = &settings.first_frame {
            image.init = Some((first.clone(), settings.first_frame_strength));
        }
        let batches = clip.frames.len().div_ceil(settings.batch);
        let per_batch = image.sampling.steps;
        let mut frames = Vec::with_capacity(clip.frames.len());
        for (i, chunk) in clip.frames.chunks(settings.batch).enumerate() {
            let requests: Vec<(PlanIds, u64)> = chunk.iter().map(|ids| (ids.clone(), seed)).collect();
            frames.extend(self.render(&requests, &image, |done, _| {
                progress(i * per_batch + done, batches * per_batch)
            })?);
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grounded::plan::{PlanPose, PlanVocab, PlannedObject};
    use crate::grounded::renderer::GroundedRendererConfig;
    use crate::grounded::trajectory::TrajectoryConfig;
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use rand::{Rng, SeedableRng};

    /// A tiny renderer (reading clip time or not) and trajectory model with every
    /// weight set from `seed`.
    fn models(seed: u64, clip_time: bool) -> (GroundedRenderer, TrajectoryNet) {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let vocab = PlanVocab::tiny();
        // Without the pixel head: these weights were chosen with the trunk alone, whose
        // output the clip's machinery (poses, light, batches) must reach; the head has
        // tests of its own with the renderer.
        let config = GroundedRendererConfig {
            clip_time,
            pixel_head: false,
            ..GroundedRendererConfig::tiny(vocab.clone())
        };
        let renderer = GroundedRenderer::new(&config, vb.pp("r"), &device).unwrap();
        let trajectory = TrajectoryNet::new(&TrajectoryConfig::tiny(vocab.motions), vb.pp("t"), &device).unwrap();
        // Zero-initialised layers get values too, so every part reaches the output.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.random_range(-0.15..0.15)).collect();
            var.set(&Tensor::from_vec(values, var.shape(), &device).unwrap())
                .unwrap();
        }
        drop(data);
        (renderer, trajectory)
    }

    fn plan(motion: Option<&str>) -> ScenePlan {
        ScenePlan {
            background: "bg1".into(),
            style: "style0".into(),
            lighting: "light0".into(),
            objects: vec![PlannedObject {
                shape: "shape2".into(),
                colour: "colour0".into(),
                size: "size1".into(),
                motion: motion.map(String::from),
                pose: PlanPose {
                    cx: 0.4,
                    cy: 0.5,
                    radius: 0.2,
                    angle: 0.0,
                },
            }],
        }
    }

    fn settings(frames: usize, batch: usize) -> ClipSettings {
        let mut settings = ClipSettings::new(frames);
        settings.image.sampling.steps = 3;
        settings.batch = batch;
        settings
    }

    /// The largest difference of one channel of one pixel between two frames.
    fn max_difference(a: &RgbImage, b: &RgbImage) -> u8 {
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_still_plan_gives_the_same_frame_throughout() {
        // Without clip time the light does not change, so only the poses could.
        let (renderer, trajectory) = models(0, false);
        let clip = ClipPlan::new(&plan(None), &renderer, &trajectory, 4).unwrap();
        let frames = renderer.render_clip(&clip, 5, &settings(4, 3), |_, _| {}).unwrap();
        assert!(frames.windows(2).all(|w| max_difference(&w[0], &w[1]) <= 1));
        // With clip time the random light changes them.
        let (renderer, _) = models(0, true);
        let frames = renderer.render_clip(&clip, 5, &settings(4, 3), |_, _| {}).unwrap();
        assert!(max_difference(&frames[0], &frames[3]) > 1);
    }

    #[test]
    fn moving_objects_change_the_frames_and_batches_leave_no_seams() {
        let (renderer, trajectory) = models(1, false);
        let clip = ClipPlan::new(&plan(Some("motion1")), &renderer, &trajectory, 5).unwrap();
        assert_eq!(clip.trajectories[0].len(), 5);
        assert_ne!(clip.trajectories[0][0], clip.trajectories[0][4]);
        let whole = renderer.render_clip(&clip, 7, &settings(5, 5), |_, _| {}).unwrap();
        assert_ne!(whole[0], whole[4]);
        let mut seen = Vec::new();
        let batched = renderer
            .render_clip(&clip, 7, &settings(5, 2), |done, total| seen.push((done, total)))
            .unwrap();
        // Batches of other sizes may round differently in the last bit, not more.
        assert!(whole.iter().zip(&batched).all(|(a, b)| max_difference(a, b) <= 1));
        assert_eq!(seen.last(), Some(&(9, 9)));
        let again = renderer.render_clip(&clip, 7, &settings(5, 2), |_, _| {}).unwrap();
        assert_eq!(batched, again);
    }

    #[test]
    fn bad_clip_settings_name_the_setting() {
        let (renderer, trajectory) = models(2, false);
        let clip = ClipPlan::new(&plan(None), &renderer, &trajectory, 2).unwrap();
        let err = renderer.render_clip(&clip, 0, &settings(0, 2), |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("frames is 0"), "{err}");
        let err = renderer.render_clip(&clip, 0, &settings(3, 2), |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("2 frames for 3"), "{err}");
        let err = ClipPlan::new(&plan(Some("fly")), &renderer, &trajectory, 2).unwrap_err();
        assert!(err.to_string().contains("motion0"), "{err}");
    }
}
