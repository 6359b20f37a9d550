//! The grounded hybrid family: a learned planner reads the prompt into a scene plan,
//! and a layout-grounded diffusion renderer draws it (LMD, Lian et al. 2023; GLIGEN,
//! Li et al. 2023; LayoutDiffusion, Zheng et al. 2023).

mod draw;
pub mod editor;
pub mod field;
pub mod image;
pub mod music;
pub mod plan;
pub mod planner;
pub mod renderer;
pub mod trajectory;
pub mod video;

pub use draw::MIN_P;
pub use plan::{ObjectIds, PlanBatch, PlanIds, PlanPose, PlanVocab, PlannedObject, ScenePlan, MAX_OBJECTS, STILL_TIME};
pub use renderer::{GroundedRenderer, GroundedRendererConfig, Grounding, Preconditioning};
pub use trajectory::{TrajectoryConfig, TrajectoryNet};
pub use video::{ClipPlan, ClipSettings};
