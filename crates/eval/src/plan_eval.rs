//! The planner alone (`mmgen eval-planner`): its plans read against what the parsed
//! prompt asks for, attribute by attribute, before any pixel is drawn. Positions and
//! relations are checked on the sampled poses with the same rules as the image
//! categories (`align::in_region`, the world's `relation_holds`).

use mmgen_models::grounded::planner::Planner;
use mmgen_models::grounded::ScenePlan;
use mmgen_world::caption::parse::{parse_prompt, Request};
use mmgen_world::layout::{relation_holds, Pose};
use serde::Serialize;

use crate::align::in_region;
use crate::error::Result;

/// Which of a prompt's asked attributes a plan gets right (None: not asked).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PlanChecks {
    /// Background.
    pub background: Option<bool>,
    /// Style.
    pub style: Option<bool>,
    /// As many objects as asked (counted copies included).
    pub count: bool,
    /// Every object's shape, and its colour and size where asked, in order.
    pub objects: bool,
    /// Every named position, on the sampled centres.
    pub positions: Option<bool>,
    /// Every relation, between the sampled poses.
    pub relations: Option<bool>,
}

impl PlanChecks {
    /// Every asked attribute right.
    pub fn exact(&self) -> bool {
        self.count
            && self.objects
            && [self.background, self.style, self.positions, self.relations]
                .iter()
                .all(|c| c.unwrap_or(true))
    }
}

/// Checks `plan` against `request`.
pub fn check_plan(request: &Request, plan: &ScenePlan) -> PlanChecks {
    // Asked objects with their copies, in the order said; `first[j]` is where asked
    // object j's first copy stands.
    let mut asked: Vec<&mmgen_world::caption::parse::AskedObject> = Vec::new();
    let mut first = Vec::new();
    for o in &request.objects {
        first.push(asked.len());
        asked.extend(std::iter::repeat_n(o, o.count));
    }
    let count = plan.objects.len() == asked.len();
    let objects = count
        && asked.iter().zip(&plan.objects).all(|(a, p)| {
            p.shape == a.shape.name()
                && a.colour.is_none_or(|c| p.colour == c.name())
                && a.size.is_none_or(|s| p.size == s.name())
        });
    let pose = |i: usize| {
        plan.objects.get(i).map(|o| Pose {
            cx: o.pose.cx,
            cy: o.pose.cy,
            radius: o.pose.radius,
            angle: o.pose.angle,
        })
    };
    let mut positions = None;
    let mut relations = None;
    for (i, a) in asked.iter().enumerate() {
        if let Some(position) = a.position {
            let ok = pose(i).is_some_and(|p| in_region(position, p.cx, p.cy));
            positions = Some(positions.unwrap_or(true) && ok);
        }
        if let Some((relation, of)) = a.relation {
            let anchor = first.get(of).and_then(|&k| pose(k));
            let ok = matches!((pose(i), anchor), (Some(p), Some(q)) if relation_holds(p, q, relation));
            relations = Some(relations.unwrap_or(true) && ok);
        }
    }
    PlanChecks {
        background: request.background.map(|b| plan.background == b.name()),
        style: request.style.map(|s| plan.style == s.name()),
        count,
        objects,
        positions,
        relations,
    }
}

/// Shares of prompts whose plan gets each attribute right (of those that ask for it).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlanReport {
    /// Prompts planned.
    pub prompts: usize,
    /// Every asked attribute right.
    pub exact: f64,
    /// Per attribute: (share right, prompts asking).
    pub attributes: Vec<(String, f64, usize)>,
    /// Of the prompts with an object placed freely, the share whose plans under two
    /// seeds put it in different places.
    pub free_layouts_differ: Option<f64>,
}

/// Plans every prompt (seed = `seed` + its index) and scores the plans.
pub fn evaluate_planner(
    planner: &Planner,
    prompts: &[String],
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Result<PlanReport> {
    let mut tallies: Vec<(String, usize, usize)> =
        ["background", "style", "count", "objects", "positions", "relations"]
            .iter()
            .map(|n| (n.to_string(), 0, 0))
            .collect();
    let (mut exact, mut free, mut differ) = (0usize, 0usize, 0usize);
    for (i, prompt) in prompts.iter().enumerate() {
        let request = parse_prompt(prompt)?;
        let s = seed.wrapping_add(i as u64);
        let plan = planner.plan(&[(prompt.as_str(), s)])?.remove(0);
        let c = check_plan(&request, &plan);
        exact += c.exact() as usize;
        let results = [
            c.background,
            c.style,
            Some(c.count),
            Some(c.objects),
            c.positions,
            c.relations,
        ];
        for ((_, right, asked), result) in tallies.iter_mut().zip(results) {
            if let Some(ok) = result {
                *asked += 1;
                *right += ok as usize;
            }
        }
        let has_free = request
            .objects
            .iter()
            .any(|o| o.position.is_none() && o.relation.is_none());
        if has_free {
            free += 1;
            let other = planner.plan(&[(prompt.as_str(), s ^ 0x5EED_F5E7)])?.remove(0);
            let poses = |p: &ScenePlan| p.objects.iter().map(|o| (o.pose.cx, o.pose.cy)).collect::<Vec<_>>();
            differ += (poses(&plan) != poses(&other)) as usize;
        }
        progress(i + 1);
    }
    let n = prompts.len().max(1) as f64;
    Ok(PlanReport {
        prompts: prompts.len(),
        exact: exact as f64 / n,
        attributes: tallies
            .into_iter()
            .filter(|(_, _, asked)| *asked > 0)
            .map(|(name, right, asked)| (name, right as f64 / asked as f64, asked))
            .collect(),
        free_layouts_differ: (free > 0).then(|| differ as f64 / free as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmgen_models::grounded::{PlanPose, PlannedObject};

    fn object(shape: &str, colour: &str, cx: f32, cy: f32) -> PlannedObject {
        PlannedObject {
            shape: shape.into(),
            colour: colour.into(),
            size: "small".into(),
            motion: None,
            pose: PlanPose {
                cx,
                cy,
                radius: 0.085,
                angle: 0.0,
            },
        }
    }

    #[test]
    fn plans_are_checked_attribute_by_attribute() {
        use mmgen_world::caption::parse::AskedObject;
        use mmgen_world::{Background, Colour, Lang, Medium, Relation, Shape};
        let asked = |shape, colour, relation| AskedObject {
            shape,
            colour: Some(colour),
            size: None,
            count: 1,
            position: None,
            relation,
            motion: None,
        };
        let request = Request {
            lang: Lang::En,
            medium: Medium::Image,
            objects: vec![
                asked(Shape::Circle, Colour::Blue, None),
                asked(Shape::Star, Colour::Red, Some((Relation::Above, 0))),
            ],
            background: Some(Background::Snow),
            style: None,
            lighting: None,
            music: None,
            ambience: None,
        };
        let mut plan = ScenePlan {
            background: "snow".into(),
            style: "flat".into(),
            lighting: "steady".into(),
            objects: vec![object("circle", "blue", 0.5, 0.7), object("star", "red", 0.5, 0.3)],
        };
        let c = check_plan(&request, &plan);
        assert!(c.exact(), "{c:?}");
        assert_eq!(c.style, None, "style not asked");
        plan.objects[1].pose.cy = 0.9;
        let c = check_plan(&request, &plan);
        assert_eq!(c.relations, Some(false));
        assert!(!c.exact());
        plan.objects[1].colour = "green".into();
        assert!(!check_plan(&request, &plan).objects);
        plan.objects.pop();
        assert!(!check_plan(&request, &plan).count);
        plan.background = "desert".into();
        assert_eq!(check_plan(&request, &plan).background, Some(false));
    }
}
