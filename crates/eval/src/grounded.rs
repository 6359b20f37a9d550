//! The grounded family's later stages alone (`mmgen eval --source grounded-layout`):
//! the renderer drawing the parsed prompt's true layout, posed over time by the
//! trajectory model in a clip, as `mmgen generate` poses the planner's. An
//! evaluation-only path, like the oracle: the whole model (`--source grounded`) is
//! scored through the pipeline ([`crate::shipped`]).

use mmgen_models::grounded::{
    ClipPlan, ClipSettings, GroundedRenderer, PlanPose, PlannedObject, ScenePlan, TrajectoryNet,
};
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_world::render::Scene;
use mmgen_world::SceneSpec;

use crate::error::{EvalError, Result};
use crate::generator::{parsed_spec, Generated, GenerationSettings, Generator};

/// The plan of a world spec with its still's poses: what the renderer was trained on.
pub fn spec_plan(spec: &SceneSpec, seed: u64) -> ScenePlan {
    spec_plan_at(spec, seed, mmgen_models::grounded::STILL_TIME)
}

/// The plan of a world spec with its poses at clip time `t`.
pub fn spec_plan_at(spec: &SceneSpec, seed: u64, t: f32) -> ScenePlan {
    let poses = Scene::new(spec, seed).poses_at(t);
    ScenePlan {
        background: spec.background.name().into(),
        style: spec.style.name().into(),
        lighting: spec.lighting.name().into(),
        objects: spec
            .objects
            .iter()
            .zip(poses)
            .map(|(o, p)| PlannedObject {
                shape: o.shape.name().into(),
                colour: o.colour.name().into(),
                size: o.size.name().into(),
                motion: Some(o.motion.name().into()),
                pose: PlanPose {
                    cx: p.cx,
                    cy: p.cy,
                    radius: p.radius,
                    angle: p.angle,
                },
            })
            .collect(),
    }
}

/// The true layout of the parsed prompt, drawn as a still or, with a trajectory
/// model, as a clip.
pub struct TrueLayoutGenerator {
    renderer: GroundedRenderer,
    trajectory: Option<TrajectoryNet>,
    settings: ImageSettings,
}

impl TrueLayoutGenerator {
    /// Draws true layouts with `renderer` under `settings`; clips need a `trajectory`
    /// model.
    pub fn new(
        renderer: GroundedRenderer,
        trajectory: Option<TrajectoryNet>,
        settings: ImageSettings,
    ) -> TrueLayoutGenerator {
        TrueLayoutGenerator {
            renderer,
            trajectory,
            settings,
        }
    }
}

impl Generator for TrueLayoutGenerator {
    fn name(&self) -> String {
        "grounded-layout".into()
    }

    fn generate(&mut self, prompt: &str, seed: u64, settings: &GenerationSettings) -> Result<Generated> {
        let size = self.renderer.config().image_size as u32;
        let clip = settings.frames > 0;
        if settings.size != size || settings.seconds > 0.0 || (clip && self.trajectory.is_none()) {
            let stills = if self.trajectory.is_none() {
                ", and stills only without a trajectory model"
            } else {
                ""
            };
            return Err(EvalError::Invalid(format!(
                "the grounded renderer draws {size}x{size} images without sound{stills}; {0}x{0} with {1} frames and {2} s were asked",
                settings.size, settings.frames, settings.seconds
            )));
        }
        let plan = spec_plan(&parsed_spec(prompt, seed)?, seed);
        if let (true, Some(trajectory)) = (clip, &self.trajectory) {
            let frames = settings.frames as usize;
            let clip = ClipPlan::new(&plan, &self.renderer, trajectory, frames)?;
            let clip_settings = ClipSettings {
                image: self.settings.clone(),
                ..ClipSettings::new(frames)
            };
            let video = self.renderer.render_clip(&clip, seed, &clip_settings, |_, _| {})?;
            // The key frame, as the pipeline picks it: the middle one.
            return Ok(Generated {
                image: video.get(video.len() / 2).cloned(),
                video: Some(video),
                audio: None,
            });
        }
        let ids = self.renderer.plan_ids(&plan)?;
        let mut images = self.renderer.render(&[(ids, seed)], &self.settings, |_, _| {})?;
        Ok(Generated {
            image: images.pop(),
            video: None,
            audio: None,
        })
    }
}
