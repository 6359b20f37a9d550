//! The scene editor alone (`mmgen eval-editor`): world edit pairs (a scene, an
//! instruction, the scene after) read by the editor, and its new plan judged on two
//! questions the studio's users ask: was the edit applied, and did everything else
//! stay as it was.

use std::collections::BTreeMap;

use mmgen_models::grounded::editor::{apply, EditChoice, EditOp, Editor};
use mmgen_models::grounded::ScenePlan;
use mmgen_world::caption::Lang;
use mmgen_world::edit::{edit_for_seed, EditKind, SceneEdit};
use mmgen_world::rng::mix64;
use mmgen_world::{Placement, Split};
use serde::Serialize;

use crate::align::in_region;
use crate::error::Result;
use crate::grounded::spec_plan;

/// The editor's op for the world's edit kind (the same names).
pub fn edit_op(kind: EditKind) -> EditOp {
    EditOp::ALL
        .into_iter()
        .find(|op| op.name() == kind.name())
        .unwrap_or(EditOp::Recolour)
}

/// An edit pair as plans: the plan of the scene before (its still's layout under
/// `seed`), and the true choice: the object, the new values from the scene after and
/// the moved or added object's centre from its layout.
pub fn edit_truth(edit: &SceneEdit, seed: u64) -> (ScenePlan, EditChoice) {
    let before = spec_plan(&edit.before, seed);
    let after = spec_plan(&edit.after, seed);
    let op = edit_op(edit.kind);
    let target = edit.target.unwrap_or(0);
    let changed = match op {
        EditOp::Add => after.objects.last(),
        _ => after.objects.get(target).or(before.objects.get(target)),
    };
    let fallback = &before.objects[0];
    let object = changed.unwrap_or(fallback);
    let choice = EditChoice {
        op,
        target,
        shape: object.shape.clone(),
        colour: object.colour.clone(),
        size: object.size.clone(),
        motion: object.motion.clone().unwrap_or_default(),
        style: after.style.clone(),
        background: after.background.clone(),
        centre: (object.pose.cx, object.pose.cy),
        radius: object.pose.radius,
    };
    (before, choice)
}

/// Whether `new` (the editor's plan of `before`) applies `edit` (whose true plan
/// after is `truth`), and whether it leaves everything else as it was. A move or an
/// add to a named position is applied when the centre lies in that position's region
/// (`align::in_region`, as the image categories judge it); an add anywhere only needs
/// the object.
pub fn judge(before: &ScenePlan, new: &ScenePlan, truth: &ScenePlan, edit: &SceneEdit) -> (bool, bool) {
    let globals =
        |a: &ScenePlan, b: &ScenePlan| (&a.background, &a.style, &a.lighting) == (&b.background, &b.style, &b.lighting);
    let t = edit.target.unwrap_or(0);
    let others_kept = |skip: usize| {
        new.objects.len() == before.objects.len()
            && new
                .objects
                .iter()
                .zip(&before.objects)
                .enumerate()
                .all(|(k, (n, b))| k == skip || n == b)
    };
    match edit_op(edit.kind) {
        op @ (EditOp::Recolour | EditOp::Reshape | EditOp::Move) => {
            let unchanged_rest = globals(new, before) && others_kept(t);
            let (Some(n), Some(b)) = (new.objects.get(t), before.objects.get(t)) else {
                return (false, false);
            };
            let mut kept = n.clone();
            let applied = match op {
                EditOp::Recolour => {
                    kept.colour = b.colour.clone();
                    n.colour == truth.objects[t].colour
                }
                EditOp::Reshape => {
                    kept.shape = b.shape.clone();
                    n.shape == truth.objects[t].shape
                }
                _ => {
                    kept.pose = b.pose;
                    match edit.after.objects[t].placement {
                        Placement::At(position) => in_region(position, n.pose.cx, n.pose.cy),
                        _ => false,
                    }
                }
            };
            (applied, unchanged_rest && kept == *b)
        }
        EditOp::Add => {
            let unchanged = globals(new, before)
                && new.objects.len() == before.objects.len() + 1
                && new.objects[..before.objects.len()] == before.objects[..];
            let (Some(n), Some(want)) = (new.objects.last(), truth.objects.last()) else {
                return (false, unchanged);
            };
            let placed = match edit.after.objects.last().map(|o| o.placement) {
                Some(Placement::At(position)) => in_region(position, n.pose.cx, n.pose.cy),
                _ => true,
            };
            let applied =
                unchanged && n.shape == want.shape && n.colour == want.colour && n.size == want.size && placed;
            (applied, unchanged)
        }
        EditOp::Remove => {
            let applied = new.objects == truth.objects;
            (applied, applied && globals(new, before))
        }
        EditOp::Restyle => (
            new.style == truth.style,
            new.objects == before.objects && (&new.background, &new.lighting) == (&before.background, &before.lighting),
        ),
        EditOp::Background => (
            new.background == truth.background,
            new.objects == before.objects && (&new.style, &new.lighting) == (&before.style, &before.lighting),
        ),
    }
}

/// Shares of edits applied and of edits that left the rest unchanged.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct EditScore {
    /// Edits judged.
    pub edits: usize,
    /// The edit applied.
    pub applied: f64,
    /// Everything the instruction does not touch unchanged.
    pub unchanged: f64,
    /// Both.
    pub both: f64,
    /// The same per kind of edit: (edits, applied, unchanged).
    pub by_kind: BTreeMap<String, (usize, f64, f64)>,
}

/// The editor on `n` edit pairs of `split` in `lang` (pair `i` is the world's edit of
/// seed `mix64(seed ^ i)`, its centres sampled with that seed); an instruction the
/// editor cannot apply counts as failed on both questions.
pub fn evaluate_editor(editor: &Editor, split: Split, lang: Lang, n: usize, seed: u64) -> Result<EditScore> {
    let mut counts: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    let (mut applied, mut unchanged, mut both) = (0usize, 0usize, 0usize);
    for start in (0..n).step_by(64) {
        let chunk: Vec<(SceneEdit, u64)> = (start..n.min(start + 64))
            .map(|i| {
                let s = mix64(seed ^ i as u64);
                (edit_for_seed(split, lang, s), s)
            })
            .collect();
        let truths: Vec<(ScenePlan, ScenePlan)> = chunk
            .iter()
            .map(|(edit, s)| {
                let (before, choice) = edit_truth(edit, *s);
                let truth = apply(&before, &choice, &edit.instruction)
                    .map(|e| e.plan)
                    .unwrap_or_else(|_| before.clone());
                (before, truth)
            })
            .collect();
        for ((edit, s), (before, truth)) in chunk.iter().zip(&truths) {
            // One at a time: an edit that cannot apply fails alone.
            let read = editor.edit(&[(before, edit.instruction.as_str(), *s)]);
            let (a, u) = match read {
                Ok(mut edited) => judge(before, &edited.remove(0).plan, truth, edit),
                Err(_) => (false, false),
            };
            let c = counts.entry(edit.kind.name().to_string()).or_default();
            c[0] += 1;
            c[1] += a as usize;
            c[2] += u as usize;
            applied += a as usize;
            unchanged += u as usize;
            both += (a && u) as usize;
        }
    }
    let share = |k: usize, of: usize| k as f64 / of.max(1) as f64;
    Ok(EditScore {
        edits: n,
        applied: share(applied, n),
        unchanged: share(unchanged, n),
        both: share(both, n),
        by_kind: counts
            .into_iter()
            .map(|(k, [m, a, u])| (k, (m, share(a, m), share(u, m))))
            .collect(),
    })
}
