//! What an edit is ([`EditOp`]), what the editor chose ([`EditChoice`]) and read
//! ([`PlanEdit`]), and [`apply`]: the old plan with exactly that change.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::grounded::plan::{PlanPose, PlannedObject, ScenePlan, MAX_OBJECTS};

/// What an edit changes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EditOp {
    /// An object's colour.
    Recolour,
    /// An object's shape.
    Reshape,
    /// An object's place.
    Move,
    /// A new object.
    Add,
    /// An object taken away.
    Remove,
    /// The drawing style.
    Restyle,
    /// The background.
    Background,
}

impl EditOp {
    /// Every edit, in class-id order.
    pub const ALL: [EditOp; 7] = [
        EditOp::Recolour,
        EditOp::Reshape,
        EditOp::Move,
        EditOp::Add,
        EditOp::Remove,
        EditOp::Restyle,
        EditOp::Background,
    ];

    /// Its class id.
    pub fn index(self) -> usize {
        EditOp::ALL.iter().position(|&k| k == self).unwrap_or(0)
    }

    /// Its name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            EditOp::Recolour => "recolour",
            EditOp::Reshape => "reshape",
            EditOp::Move => "move",
            EditOp::Add => "add",
            EditOp::Remove => "remove",
            EditOp::Restyle => "restyle",
            EditOp::Background => "background",
        }
    }

    /// Whether it changes one of the plan's objects (the pointer is read).
    pub fn has_target(self) -> bool {
        matches!(self, EditOp::Recolour | EditOp::Reshape | EditOp::Move | EditOp::Remove)
    }
}

/// What the editor read from an instruction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlanEdit {
    /// The kind of edit.
    pub op: EditOp,
    /// The object changed: its index in the old plan (recolour, reshape, move, remove)
    /// or in the new one (add).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<usize>,
    /// The new value: a colour, shape, style or background name, a place
    /// `"cx,cy"` (move), or the added object's `"size colour shape"`.
    pub value: String,
}

/// An edited plan and the edit that made it.
#[derive(Clone, Debug, PartialEq)]
pub struct Edited {
    /// The new plan.
    pub plan: ScenePlan,
    /// What changed.
    pub edit: PlanEdit,
}

/// What the editor chose: the edit, the object, and a value for every head (only
/// those of the edit are used).
#[derive(Clone, Debug, PartialEq)]
pub struct EditChoice {
    /// The kind of edit.
    pub op: EditOp,
    /// The object's index in the plan.
    pub target: usize,
    /// The new or added shape.
    pub shape: String,
    /// The new or added colour.
    pub colour: String,
    /// The added object's size.
    pub size: String,
    /// The added object's motion (for plans of clips).
    pub motion: String,
    /// The new style.
    pub style: String,
    /// The new background.
    pub background: String,
    /// A moved or added object's centre.
    pub centre: (f32, f32),
    /// An added object's radius.
    pub radius: f32,
}

/// `plan` with the one change `choice` names; an edit that cannot apply (an object
/// changed in a plan without one, an object added to a full plan) is an error that
/// quotes `instruction`.
pub fn apply(plan: &ScenePlan, choice: &EditChoice, instruction: &str) -> Result<Edited> {
    let op = choice.op;
    let t = choice.target;
    let mut new = plan.clone();
    let edit = |value: String, target: Option<usize>| PlanEdit { op, target, value };
    let edit = match op {
        EditOp::Recolour | EditOp::Reshape | EditOp::Move | EditOp::Remove if t >= plan.objects.len() => {
            return Err(ModelError::Invalid(format!(
                "the instruction {instruction:?} was read as a {} of object {t}, and the plan holds {} objects",
                op.name(),
                plan.objects.len()
            )))
        }
        EditOp::Recolour => {
            new.objects[t].colour = choice.colour.clone();
            edit(choice.colour.clone(), Some(t))
        }
        EditOp::Reshape => {
            new.objects[t].shape = choice.shape.clone();
            edit(choice.shape.clone(), Some(t))
        }
        EditOp::Move => {
            let (cx, cy) = choice.centre;
            (new.objects[t].pose.cx, new.objects[t].pose.cy) = (cx, cy);
            edit(format!("{cx:.3},{cy:.3}"), Some(t))
        }
        EditOp::Remove => {
            let gone = new.objects.remove(t);
            edit(format!("{} {} {}", gone.size, gone.colour, gone.shape), Some(t))
        }
        EditOp::Add if plan.objects.len() >= MAX_OBJECTS => {
            return Err(ModelError::Invalid(format!(
                "the instruction {instruction:?} adds an object, and the plan already holds {MAX_OBJECTS}, the most it can; remove one first"
            )))
        }
        EditOp::Add => {
            let object = PlannedObject {
                shape: choice.shape.clone(),
                colour: choice.colour.clone(),
                size: choice.size.clone(),
                // A still's plan stays still; a clip's plan gives its new object a motion.
                motion: plan.objects.iter().any(|o| o.motion.is_some()).then(|| choice.motion.clone()),
                pose: PlanPose {
                    cx: choice.centre.0,
                    cy: choice.centre.1,
                    radius: choice.radius,
                    angle: 0.0,
                },
            };
            let value = format!("{} {} {}", object.size, object.colour, object.shape);
            new.objects.push(object);
            edit(value, Some(new.objects.len() - 1))
        }
        EditOp::Restyle => {
            new.style = choice.style.clone();
            edit(choice.style.clone(), None)
        }
        EditOp::Background => {
            new.background = choice.background.clone();
            edit(choice.background.clone(), None)
        }
    };
    Ok(Edited { plan: new, edit })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn plan() -> ScenePlan {
        let object = |shape: &str, colour: &str, cx: f32| PlannedObject {
            shape: shape.into(),
            colour: colour.into(),
            size: "size0".into(),
            motion: None,
            pose: PlanPose {
                cx,
                cy: 0.5,
                radius: 0.1,
                angle: 0.0,
            },
        };
        ScenePlan {
            background: "bg0".into(),
            style: "style0".into(),
            lighting: "light0".into(),
            objects: vec![object("shape0", "colour0", 0.3), object("shape1", "colour1", 0.7)],
        }
    }

    fn choice(op: EditOp, target: usize) -> EditChoice {
        EditChoice {
            op,
            target,
            shape: "shape2".into(),
            colour: "colour2".into(),
            size: "size1".into(),
            motion: "motion1".into(),
            style: "style1".into(),
            background: "bg2".into(),
            centre: (0.1, 0.2),
            radius: 0.15,
        }
    }

    #[test]
    fn an_edit_changes_its_one_field_and_nothing_else() {
        let before = plan();
        for op in EditOp::ALL {
            let edited = apply(&before, &choice(op, 1), "x").unwrap();
            let mut expected = before.clone();
            match op {
                EditOp::Recolour => expected.objects[1].colour = "colour2".into(),
                EditOp::Reshape => expected.objects[1].shape = "shape2".into(),
                EditOp::Move => (expected.objects[1].pose.cx, expected.objects[1].pose.cy) = (0.1, 0.2),
                EditOp::Remove => {
                    expected.objects.remove(1);
                }
                EditOp::Add => expected.objects.push(PlannedObject {
                    shape: "shape2".into(),
                    colour: "colour2".into(),
                    size: "size1".into(),
                    motion: None,
                    pose: PlanPose {
                        cx: 0.1,
                        cy: 0.2,
                        radius: 0.15,
                        angle: 0.0,
                    },
                }),
                EditOp::Restyle => expected.style = "style1".into(),
                EditOp::Background => expected.background = "bg2".into(),
            }
            assert_eq!(edited.plan, expected, "{op:?}");
            assert_eq!(edited.edit.op, op);
            assert_eq!(
                edited.edit.target.is_some(),
                op.has_target() || op == EditOp::Add,
                "{op:?}"
            );
        }
    }

    #[test]
    fn an_edit_that_cannot_apply_says_why() {
        let before = plan();
        let err = apply(&before, &choice(EditOp::Recolour, 3), "make it blue")
            .unwrap_err()
            .to_string();
        assert!(err.contains("make it blue") && err.contains("2 objects"), "{err}");
        let mut full = before.clone();
        full.objects.extend(before.objects.clone());
        let err = apply(&full, &choice(EditOp::Add, 0), "add a star")
            .unwrap_err()
            .to_string();
        assert!(err.contains("remove one first"), "{err}");
    }
}
