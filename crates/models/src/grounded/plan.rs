//! The scene plan: what the planner reads out of a prompt and what the grounded
//! renderer draws. A small serde type, readable and editable as JSON (`--plan FILE`).
//!
//! Labels are strings checked against a [`PlanVocab`] that the trainer writes into
//! each model's config.json: the inference crates hold no list of the world's words.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Most objects a plan holds (the renderer's and planner's slot count).
pub const MAX_OBJECTS: usize = 4;

/// The class names a model was trained with, in class-id order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanVocab {
    /// Background names.
    pub backgrounds: Vec<String>,
    /// Style names.
    pub styles: Vec<String>,
    /// Lighting names.
    pub lightings: Vec<String>,
    /// Object shape names.
    pub shapes: Vec<String>,
    /// Object colour names.
    pub colours: Vec<String>,
    /// Object size names.
    pub sizes: Vec<String>,
    /// Object motion names.
    pub motions: Vec<String>,
}

impl PlanVocab {
    /// A small made-up vocabulary for tests (`c0..`, `s0..`): any model takes any names.
    pub fn tiny() -> PlanVocab {
        let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect();
        PlanVocab {
            backgrounds: names("bg", 3),
            styles: names("style", 2),
            lightings: names("light", 2),
            shapes: names("shape", 3),
            colours: names("colour", 3),
            sizes: names("size", 2),
            motions: names("motion", 2),
        }
    }

    pub(crate) fn id(names: &[String], name: &str, field: &str) -> Result<u32> {
        names.iter().position(|n| n == name).map(|i| i as u32).ok_or_else(|| {
            ModelError::Invalid(format!(
                "{field}: unknown value {name:?}; allowed: {}",
                names.join(", ")
            ))
        })
    }
}

/// Where an object stands: centre (x right, y down) and bounding-circle radius as
/// fractions of the canvas height, rotation in radians.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanPose {
    /// Centre, x to the right, 0 to 1.
    pub cx: f32,
    /// Centre, y downwards, 0 to 1.
    pub cy: f32,
    /// Radius of the shape's bounding circle, 0.01 to 0.5.
    pub radius: f32,
    /// Rotation, radians.
    #[serde(default)]
    pub angle: f32,
}

/// One planned object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlannedObject {
    /// Shape name.
    pub shape: String,
    /// Colour name.
    pub colour: String,
    /// Size name.
    pub size: String,
    /// Motion name (video); absent for stills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<String>,
    /// Its pose in a still (the middle of a clip).
    pub pose: PlanPose,
}

/// What to draw: the globals and up to [`MAX_OBJECTS`] objects, back to front.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenePlan {
    /// Background name.
    pub background: String,
    /// Style name.
    pub style: String,
    /// Lighting name.
    pub lighting: String,
    /// The objects, drawn in this order (later ones in front).
    pub objects: Vec<PlannedObject>,
}

impl ScenePlan {
    /// Parses a plan from JSON, naming the first bad field (unknown fields refused).
    pub fn from_json(text: &str) -> Result<ScenePlan> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        serde_json::from_str(text).map_err(|e| ModelError::Invalid(format!("not a scene plan: {e}")))
    }

    /// Checks every label against `vocab` and every pose for range, naming the field.
    pub fn check(&self, vocab: &PlanVocab) -> Result<()> {
        self.ids(vocab).map(|_| ())
    }

    /// The class ids of the plan under `vocab`.
    fn ids(&self, vocab: &PlanVocab) -> Result<PlanIds> {
        if self.objects.len() > MAX_OBJECTS {
            return Err(ModelError::Invalid(format!(
                "objects: {} objects; a plan holds at most {MAX_OBJECTS}",
                self.objects.len()
            )));
        }
        let mut objects = Vec::with_capacity(self.objects.len());
        for (i, o) in self.objects.iter().enumerate() {
            let field = |name: &str| format!("objects[{i}].{name}");
            let p = o.pose;
            for (name, value, lo, hi) in [
                ("cx", p.cx, -0.5, 1.5),
                ("cy", p.cy, -0.5, 1.5),
                ("radius", p.radius, 0.01, 0.5),
                ("angle", p.angle, -100.0, 100.0),
            ] {
                if !(value.is_finite() && value >= lo && value <= hi) {
                    return Err(ModelError::Invalid(format!(
                        "{}: {value} is out of range; allowed {lo} to {hi}",
                        field(&format!("pose.{name}"))
                    )));
                }
            }
            if let Some(motion) = &o.motion {
                PlanVocab::id(&vocab.motions, motion, &field("motion"))?;
            }
            objects.push(ObjectIds {
                shape: PlanVocab::id(&vocab.shapes, &o.shape, &field("shape"))?,
                colour: PlanVocab::id(&vocab.colours, &o.colour, &field("colour"))?,
                size: PlanVocab::id(&vocab.sizes, &o.size, &field("size"))?,
                pose: [p.cx, p.cy, p.radius, p.angle],
            });
        }
        Ok(PlanIds {
            background: PlanVocab::id(&vocab.backgrounds, &self.background, "background")?,
            style: PlanVocab::id(&vocab.styles, &self.style, "style")?,
            lighting: PlanVocab::id(&vocab.lightings, &self.lighting, "lighting")?,
            objects,
            clip_time: STILL_TIME,
        })
    }
}

/// One object as class ids and a pose `[cx, cy, radius, angle]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectIds {
    /// Shape id.
    pub shape: u32,
    /// Colour id.
    pub colour: u32,
    /// Size id.
    pub size: u32,
    /// `[cx, cy, radius, angle]`.
    pub pose: [f32; 4],
}

/// A plan as class ids: what the renderer's conditioning is built from. `None` plans
/// (the dropped condition of classifier-free guidance) use the extra "null" id of
/// each global and no objects.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanIds {
    /// Background id.
    pub background: u32,
    /// Style id.
    pub style: u32,
    /// Lighting id.
    pub lighting: u32,
    /// Objects, back to front.
    pub objects: Vec<ObjectIds>,
    /// Clip time in [0, 1] of the frame drawn (the light changes over a clip);
    /// [`STILL_TIME`] for a still.
    pub clip_time: f32,
}

/// The clip time a still shows: the middle of its clip, as the world draws stills.
pub const STILL_TIME: f32 = 0.5;

impl PlanIds {
    /// The ids of `plan` under `vocab`.
    pub fn of(plan: &ScenePlan, vocab: &PlanVocab) -> Result<PlanIds> {
        plan.ids(vocab)
    }
}

/// A batch of plans as tensors: what [`crate::grounded::GroundedRenderer`] reads.
#[derive(Clone, Debug)]
pub struct PlanBatch {
    /// (b, 3) u32: background, style, lighting ids (the null id = class count).
    pub globals: Tensor,
    /// (b, K, 3) u32: shape, colour, size ids (0 for empty slots).
    pub object_ids: Tensor,
    /// (b, K) f32: 1 for a planned object, 0 for an empty slot.
    pub present: Tensor,
    /// (b, K, 4) f32: `[cx, cy, radius, angle]` (radius 1 for empty slots).
    pub poses: Tensor,
    /// (b, 1) f32: each plan's clip time ([`STILL_TIME`] for null plans).
    pub times: Tensor,
}

impl PlanBatch {
    /// Stacks plans (`None`: the null plan) into tensors on `device`. `nulls` are the
    /// null ids of the three globals.
    pub fn new(plans: &[Option<&PlanIds>], nulls: [u32; 3], device: &Device) -> Result<PlanBatch> {
        let b = plans.len();
        let mut globals = Vec::with_capacity(b * 3);
        let mut ids = vec![0u32; b * MAX_OBJECTS * 3];
        let mut present = vec![0f32; b * MAX_OBJECTS];
        let mut poses = vec![0f32; b * MAX_OBJECTS * 4];
        let times: Vec<f32> = plans.iter().map(|p| p.map_or(STILL_TIME, |p| p.clip_time)).collect();
        for (i, plan) in plans.iter().enumerate() {
            for k in 0..MAX_OBJECTS {
                poses[(i * MAX_OBJECTS + k) * 4 + 2] = 1.0;
            }
            let Some(plan) = plan else {
                globals.extend(nulls);
                continue;
            };
            if plan.objects.len() > MAX_OBJECTS {
                return Err(ModelError::Invalid(format!(
                    "a plan of {} objects; at most {MAX_OBJECTS}",
                    plan.objects.len()
                )));
            }
            globals.extend([plan.background, plan.style, plan.lighting]);
            for (k, o) in plan.objects.iter().enumerate() {
                let slot = i * MAX_OBJECTS + k;
                ids[slot * 3..slot * 3 + 3].copy_from_slice(&[o.shape, o.colour, o.size]);
                present[slot] = 1.0;
                poses[slot * 4..slot * 4 + 4].copy_from_slice(&o.pose);
            }
        }
        Ok(PlanBatch {
            globals: Tensor::from_vec(globals, (b, 3), device)?,
            object_ids: Tensor::from_vec(ids, (b, MAX_OBJECTS, 3), device)?,
            present: Tensor::from_vec(present, (b, MAX_OBJECTS), device)?,
            poses: Tensor::from_vec(poses, (b, MAX_OBJECTS, 4), device)?,
            times: Tensor::from_vec(times, (b, 1), device)?,
        })
    }

    /// Batch size.
    pub fn len(&self) -> usize {
        self.present.dims()[0]
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its first `n` plans.
    pub fn narrow(&self, n: usize) -> Result<PlanBatch> {
        let first = |t: &Tensor| t.narrow(0, 0, n);
        Ok(PlanBatch {
            globals: first(&self.globals)?,
            object_ids: first(&self.object_ids)?,
            present: first(&self.present)?,
            poses: first(&self.poses)?,
            times: first(&self.times)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ScenePlan {
        ScenePlan {
            background: "bg1".into(),
            style: "style0".into(),
            lighting: "light1".into(),
            objects: vec![PlannedObject {
                shape: "shape2".into(),
                colour: "colour0".into(),
                size: "size1".into(),
                motion: None,
                pose: PlanPose {
                    cx: 0.3,
                    cy: 0.6,
                    radius: 0.15,
                    angle: 0.0,
                },
            }],
        }
    }

    #[test]
    fn a_plan_round_trips_and_gives_its_ids() {
        let text = serde_json::to_string(&plan()).unwrap();
        assert_eq!(ScenePlan::from_json(&text).unwrap(), plan());
        let ids = PlanIds::of(&plan(), &PlanVocab::tiny()).unwrap();
        assert_eq!((ids.background, ids.style, ids.lighting), (1, 0, 1));
        assert_eq!(ids.objects[0].shape, 2);
        let batch = PlanBatch::new(&[Some(&ids), None], [3, 2, 2], &Device::Cpu).unwrap();
        assert_eq!(
            batch.globals.to_vec2::<u32>().unwrap(),
            vec![vec![1, 0, 1], vec![3, 2, 2]]
        );
        assert_eq!(batch.present.to_vec2::<f32>().unwrap()[0], vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_plans_name_the_field() {
        let vocab = PlanVocab::tiny();
        let mut bad = plan();
        bad.objects[0].shape = "blob".into();
        let err = bad.check(&vocab).unwrap_err().to_string();
        assert!(err.contains("objects[0].shape") && err.contains("shape0"), "{err}");
        let mut bad = plan();
        bad.objects[0].pose.radius = f32::NAN;
        let err = bad.check(&vocab).unwrap_err().to_string();
        assert!(err.contains("objects[0].pose.radius"), "{err}");
        let mut bad = plan();
        bad.objects = vec![plan().objects[0].clone(); 9];
        assert!(bad.check(&vocab).unwrap_err().to_string().contains("at most 4"));
        let err = ScenePlan::from_json(r#"{"background": "bg0", "stlye": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("stlye"), "{err}");
        assert!(ScenePlan::from_json("{").is_err());
    }
}
