//! Where each object of a spec stands, and how it moves over a clip.
//!
//! Coordinates are fractions of the canvas: x to the right, y downwards, both in
//! [0, 1], so one layout serves every render size. A layout is the analytic ground
//! truth of position: tests (and probes' labels) read centroids from here.

use rand::Rng;

use crate::rng::{rng_for, Purpose};
use crate::spec::{Motion, Placement, Position, Relation, SceneSpec, Size};

/// An object's centre, radius and rotation, in canvas fractions and radians.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// Centre, x to the right.
    pub cx: f32,
    /// Centre, y downwards.
    pub cy: f32,
    /// Radius of the shape's bounding circle.
    pub radius: f32,
    /// Rotation, radians.
    pub angle: f32,
}

/// Horizontal travel of a moving object over one clip.
pub const MOVE_SPAN: f32 = 0.24;
/// Height of a bounce.
pub const BOUNCE_HEIGHT: f32 = 0.14;
/// Scale at the start of `grow` (and end of `shrink`); the end is `2 - this`.
pub const GROW_FROM: f32 = 0.6;

/// Radius of a size class.
pub fn radius(size: Size) -> f32 {
    match size {
        Size::Small => 0.085,
        Size::Large => 0.15,
    }
}

/// Nominal centre of a named position.
pub fn position_centre(position: Position) -> (f32, f32) {
    match position {
        Position::Left => (0.25, 0.55),
        Position::Right => (0.75, 0.55),
        Position::Top => (0.5, 0.26),
        Position::Bottom => (0.5, 0.76),
        Position::Centre => (0.5, 0.52),
    }
}

/// Unit vector from an anchor towards an object standing in `relation` to it.
fn direction(relation: Relation) -> (f32, f32) {
    match relation {
        Relation::LeftOf => (-1.0, 0.0),
        Relation::RightOf => (1.0, 0.0),
        Relation::Above => (0.0, -1.0),
        Relation::Below => (0.0, 1.0),
    }
}

/// Room an object needs around its centre: (left, right, up, down).
fn reach(radius: f32, motion: Motion) -> (f32, f32, f32, f32) {
    let half = MOVE_SPAN / 2.0;
    let grown = radius * (2.0 - GROW_FROM);
    match motion {
        Motion::MoveLeft | Motion::MoveRight => (radius + half, radius + half, radius, radius),
        Motion::MoveUp | Motion::MoveDown => (radius, radius, radius + half, radius + half),
        Motion::Bounce => (radius, radius, radius + BOUNCE_HEIGHT, radius),
        Motion::Grow | Motion::Shrink => (grown, grown, grown, grown),
        Motion::Still | Motion::Spin => (radius, radius, radius, radius),
    }
}

/// The resting pose of every object (what a still image shows), from (spec, seed).
pub fn layout(spec: &SceneSpec, seed: u64) -> Vec<Pose> {
    let mut rng = rng_for(seed, Purpose::Layout);
    let margin = 0.02;
    let mut poses: Vec<Pose> = Vec::with_capacity(spec.objects.len());
    for (i, object) in spec.objects.iter().enumerate() {
        let r = radius(object.size);
        // This object at rest, upright, centred at (cx, cy).
        let resting = |cx: f32, cy: f32| Pose {
            cx,
            cy,
            radius: r,
            angle: 0.0,
        };
        let (left, right, up, down) = reach(r, object.motion);
        let (mut xmin, mut xmax) = (left + margin, 1.0 - right - margin);
        let (mut ymin, mut ymax) = (up + margin, 1.0 - down - margin);
        // An anchor leaves room on the side where its dependants will stand.
        for later in &spec.objects[i + 1..] {
            if let Placement::Relative { relation, of } = later.placement {
                if of == i {
                    match relation {
                        Relation::LeftOf => xmin = xmin.max(0.55),
                        Relation::RightOf => xmax = xmax.min(0.45),
                        Relation::Above => ymin = ymin.max(0.55),
                        Relation::Below => ymax = ymax.min(0.45),
                    }
                }
            }
        }
        let clamp = |x: f32, lo: f32, hi: f32| if lo > hi { (lo + hi) / 2.0 } else { x.clamp(lo, hi) };
        let (cx, cy) = match object.placement {
            Placement::At(position) => {
                let (x, y) = position_centre(position);
                let (jx, jy) = (rng.random_range(-0.03..0.03), rng.random_range(-0.03..0.03));
                (clamp(x + jx, xmin, xmax), clamp(y + jy, ymin, ymax))
            }
            Placement::Relative { relation, of } => {
                let anchor = poses.get(of).copied().unwrap_or(resting(0.5, 0.5));
                let anchor_motion = spec.objects.get(of).map_or(Motion::Still, |o| o.motion);
                let (dx, dy) = direction(relation);
                let gap = anchor.radius + r + rng.random_range(0.05..0.10);
                let side = rng.random_range(-0.03..0.03);
                let at = |gap: f32| {
                    (
                        clamp(anchor.cx + dx * gap + dy.abs() * side, xmin, xmax),
                        clamp(anchor.cy + dy * gap + dx.abs() * side, ymin, ymax),
                    )
                };
                // Moving or scaling objects may meet during the clip though they stand
                // apart at rest (a shrinking object below one moving down starts over
                // it): the gap widens, along the relation, until they stay clear.
                let clear = |(x, y): (f32, f32)| {
                    clip_clearance(resting(x, y), object.motion, anchor, anchor_motion) >= RELATION_CLEARANCE
                };
                (0..=RELATION_WIDENINGS)
                    .map(|k| at(gap + RELATION_WIDENING * k as f32))
                    .find(|&place| clear(place))
                    .unwrap_or_else(|| at(gap))
            }
            Placement::Free => {
                let mut best = (0.5, 0.5);
                let mut best_clearance = f32::NEG_INFINITY;
                for _ in 0..48 {
                    let x = if xmin < xmax {
                        rng.random_range(xmin..xmax)
                    } else {
                        (xmin + xmax) / 2.0
                    };
                    let y = if ymin < ymax {
                        rng.random_range(ymin..ymax)
                    } else {
                        (ymin + ymax) / 2.0
                    };
                    let candidate = resting(x, y);
                    let clearance = poses
                        .iter()
                        .zip(&spec.objects)
                        .map(|(p, other)| clip_clearance(candidate, object.motion, *p, other.motion))
                        .fold(f32::INFINITY, f32::min);
                    if clearance > 0.03 {
                        best = (x, y);
                        break;
                    }
                    if clearance > best_clearance {
                        best_clearance = clearance;
                        best = (x, y);
                    }
                }
                best
            }
        };
        poses.push(resting(cx, cy));
    }
    poses
}

/// Gap a related object keeps from its anchor over the whole clip, where the canvas
/// leaves room for it.
const RELATION_CLEARANCE: f32 = 0.02;
/// Steps by which a related object's distance from its anchor may widen, and their
/// number (up to 0.15 beyond the rest gap).
const RELATION_WIDENING: f32 = 0.01;
const RELATION_WIDENINGS: usize = 15;

/// Times at which two moving objects' clearance is checked (every half-frame of a
/// 24-frame clip is closer to one of them than a moving object travels in a frame).
const CLEARANCE_TIMES: usize = 49;

/// The smallest gap between two objects' bounding circles over a clip, from their
/// resting poses and motions (negative where they overlap). A free object is placed
/// where this is largest among a few tries, and one placed beside another is moved
/// along the relation until this is at least [`RELATION_CLEARANCE`], so that moving
/// objects seldom pass over each other: a covered object cannot be read in those
/// frames, and a clip whose objects cross says less about each of them. Still objects
/// keep their rest gap.
fn clip_clearance(a: Pose, a_motion: Motion, b: Pose, b_motion: Motion) -> f32 {
    let gap = |t: f32| {
        let (p, q) = (pose_at(a, a_motion, t), pose_at(b, b_motion, t));
        (p.cx - q.cx).hypot(p.cy - q.cy) - p.radius - q.radius
    };
    if a_motion == Motion::Still && b_motion == Motion::Still {
        return gap(0.5);
    }
    (0..CLEARANCE_TIMES)
        .map(|i| gap(i as f32 / (CLEARANCE_TIMES - 1) as f32))
        .fold(f32::INFINITY, f32::min)
}

/// The pose at normalised clip time `t` in [0, 1]; `t = 0.5` is the resting pose
/// for moves and scaling, so a still image shows the middle of the motion.
pub fn pose_at(rest: Pose, motion: Motion, t: f32) -> Pose {
    let mut pose = rest;
    let s = t - 0.5;
    match motion {
        Motion::Still => {}
        Motion::MoveLeft => pose.cx -= MOVE_SPAN * s,
        Motion::MoveRight => pose.cx += MOVE_SPAN * s,
        Motion::MoveUp => pose.cy -= MOVE_SPAN * s,
        Motion::MoveDown => pose.cy += MOVE_SPAN * s,
        // Two bounces per clip, resting on the floor at t = 0, 0.5 and 1.
        Motion::Bounce => pose.cy -= BOUNCE_HEIGHT * (std::f32::consts::TAU * t).sin().abs(),
        Motion::Spin => pose.angle = std::f32::consts::TAU * t,
        Motion::Grow => pose.radius *= GROW_FROM + 2.0 * (1.0 - GROW_FROM) * t,
        Motion::Shrink => pose.radius *= 2.0 - GROW_FROM - 2.0 * (1.0 - GROW_FROM) * t,
    }
    pose
}

/// Whether `a` stands in `relation` to `b`: displaced mostly along that direction, and
/// by more than half their radii.
pub fn relation_holds(a: Pose, b: Pose, relation: Relation) -> bool {
    let (dx, dy) = (a.cx - b.cx, a.cy - b.cy);
    let (ux, uy) = direction(relation);
    let along = dx * ux + dy * uy;
    let across = (dx * uy - dy * ux).abs();
    along > 0.5 * (a.radius + b.radius) && along > across
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{SpecSampler, Split};
    use crate::spec::ObjectSpec;

    #[test]
    fn sampled_relations_hold_and_objects_stay_on_canvas() {
        let sampler = SpecSampler::default();
        for seed in 0..400 {
            let spec = sampler.sample(Split::Train, seed);
            let poses = layout(&spec, seed);
            for (object, pose) in spec.objects.iter().zip(&poses) {
                for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
                    let p = pose_at(*pose, object.motion, t);
                    assert!(
                        p.cx - p.radius > -0.01 && p.cx + p.radius < 1.01,
                        "seed {seed}: {spec:?}"
                    );
                    assert!(
                        p.cy - p.radius > -0.01 && p.cy + p.radius < 1.01,
                        "seed {seed}: {spec:?}"
                    );
                }
                if let Placement::Relative { relation, of } = object.placement {
                    assert!(relation_holds(*pose, poses[of], relation), "seed {seed}: {spec:?}");
                }
            }
        }
    }

    /// Over `specs` sampled specs: (pairs, pairs whose bounding circles overlap at
    /// some time of the clip) among pairs of objects, one of them moving, that `kind`
    /// picks.
    fn crossing_pairs(specs: u64, kind: impl Fn(&ObjectSpec, &ObjectSpec, usize) -> bool) -> (usize, usize) {
        let sampler = SpecSampler::default();
        let (mut pairs, mut crossing) = (0, 0);
        for seed in 0..specs {
            let spec = sampler.sample(Split::Train, seed);
            let poses = layout(&spec, seed);
            for (i, (a, pa)) in spec.objects.iter().zip(&poses).enumerate() {
                for (j, (b, pb)) in spec.objects.iter().zip(&poses).enumerate().take(i) {
                    if kind(a, b, j) && (a.motion != Motion::Still || b.motion != Motion::Still) {
                        pairs += 1;
                        crossing += (clip_clearance(*pa, a.motion, *pb, b.motion) < 0.0) as usize;
                    }
                }
            }
        }
        (pairs, crossing)
    }

    #[test]
    fn moving_objects_seldom_cross_in_a_clip() {
        // Placed by their clearance at rest alone, 12 of these 358 pairs of free
        // objects crossed; by their clearance over the clip, none does.
        let (pairs, crossing) = crossing_pairs(400, |a, b, _| {
            a.placement == Placement::Free && b.placement == Placement::Free
        });
        assert!(pairs > 100, "{pairs} pairs");
        assert!(crossing * 100 <= pairs, "{crossing} of {pairs} free pairs cross");
        // An object and the anchor it is placed beside (one spec in twenty has such a
        // pair with a motion): with the rest gap alone 54 of these 146 pairs met during
        // the clip, with the widened gap 18 do, where the canvas leaves no more room.
        let (pairs, crossing) = crossing_pairs(
            3000,
            |a, _, j| matches!(a.placement, Placement::Relative { of, .. } if of == j),
        );
        assert!(pairs > 100, "{pairs} pairs");
        assert!(crossing * 5 <= pairs, "{crossing} of {pairs} related pairs cross");
    }

    #[test]
    fn motion_moves_the_right_way() {
        let rest = Pose {
            cx: 0.5,
            cy: 0.5,
            radius: 0.1,
            angle: 0.0,
        };
        assert!(pose_at(rest, Motion::MoveLeft, 1.0).cx < pose_at(rest, Motion::MoveLeft, 0.0).cx);
        assert!(pose_at(rest, Motion::MoveUp, 1.0).cy < pose_at(rest, Motion::MoveUp, 0.0).cy);
        assert!(pose_at(rest, Motion::Grow, 1.0).radius > pose_at(rest, Motion::Grow, 0.0).radius);
        assert_eq!(pose_at(rest, Motion::Grow, 0.5), rest);
        assert!(pose_at(rest, Motion::Bounce, 0.25).cy < rest.cy);
    }
}
