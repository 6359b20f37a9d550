//! What the workers run: the [`Generate`] trait, and [`PipelineGenerator`], the
//! pipeline with the shipped models behind it. The trait lets the API tests drive the
//! server with a scripted generator; `mmgen serve` and the browser test use the real one.

use std::path::Path;

use mmgen_models::grounded::editor::{Edited, Editor};
use mmgen_models::grounded::ScenePlan;
use mmgen_pipeline::{Modality, OutputPolicy, Pipeline, Request};

use crate::jobs::JobSpec;

/// The names a job may pin, from the loaded models (empty without the grounded model).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Vocab {
    /// Style names.
    pub styles: Vec<String>,
    /// Background names.
    pub backgrounds: Vec<String>,
}

/// What a finished job made.
#[derive(Clone, Debug, Default)]
pub struct Made {
    /// File names in the output folder.
    pub files: Vec<String>,
    /// The package's meta.json.
    pub meta: serde_json::Value,
}

/// Why a job did not finish.
#[derive(Debug)]
pub enum GenerateError {
    /// Cancelled between two steps.
    Cancelled,
    /// Failed, with a sentence saying why.
    Failed(String),
}

/// Makes one job's files. Runs on a worker thread inside
/// [`mmgen_diffusion::cancel::cancellable`], so that a sampler loop stops between steps
/// when the job is cancelled.
pub trait Generate: Send + Sync {
    /// The names a job may pin.
    fn vocab(&self) -> Vocab;

    /// Makes `job` into the empty folder `out`, calling `progress(stage, done, total)`.
    fn generate(
        &self,
        job: &JobSpec,
        out: &Path,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Made, GenerateError>;
}

/// The pipeline over the shipped models (with its exact-request cache), and the scene
/// editor of sessions' edit turns.
pub struct PipelineGenerator {
    pipeline: Pipeline,
    editor: Option<Editor>,
}

impl PipelineGenerator {
    /// Serves `pipeline`; without an editor, edit turns are drawn as prompts.
    pub fn new(pipeline: Pipeline, editor: Option<Editor>) -> PipelineGenerator {
        PipelineGenerator { pipeline, editor }
    }

    /// The plan an edit turn draws: the editor's change of the previous plan.
    fn edited(&self, job: &JobSpec) -> Result<Option<Edited>, String> {
        let (Some(edit), Some(editor)) = (&job.edit, &self.editor) else {
            return Ok(None);
        };
        let plan: ScenePlan = serde_json::from_value(edit.plan.clone())
            .map_err(|e| format!("the previous turn's scene plan cannot be read: {e}"))?;
        let mut edited = editor
            .edit(&[(&plan, edit.instruction.as_str(), job.seed)])
            .map_err(|e| e.to_string())?;
        Ok(edited.pop())
    }

    fn request(&self, job: &JobSpec, edited: Option<&Edited>) -> Result<Request, mmgen_pipeline::PipelineError> {
        let mut request = Request::new(&job.prompt, job.seed).with_sampling(
            job.steps.map(|s| s as usize),
            job.guidance,
            &job.sampler,
            &job.negative,
        );
        if let Some(names) = &job.modalities {
            request.modalities = Some(Modality::parse_list(&names.join(","))?);
        }
        if let Some(frames) = job.frames {
            request.frames = frames as usize;
        }
        if let Some(seconds) = job.seconds {
            request.seconds = seconds;
        }
        // An edit turn draws the edited plan. Without an editor, its instruction is
        // drawn as a prompt.
        if let Some(edited) = edited {
            request.scene_plan = Some(edited.plan.clone());
        } else if let Some(edit) = &job.edit {
            request.prompt = edit.instruction.clone();
        }
        // A pinned style or background replaces the planner's choice in its plan;
        // everything else the planner decided stays.
        if job.style.is_some() || job.background.is_some() {
            let planned = match request.scene_plan.take() {
                Some(plan) => Some(plan),
                None => self.pipeline.plan_scene(&request.prompt, job.seed)?,
            };
            if let Some(mut plan) = planned {
                if let Some(style) = &job.style {
                    plan.style = style.clone();
                }
                if let Some(background) = &job.background {
                    plan.background = background.clone();
                }
                request.scene_plan = Some(plan);
            }
        }
        Ok(request)
    }
}

impl Generate for PipelineGenerator {
    fn vocab(&self) -> Vocab {
        match self.pipeline.plan_vocab() {
            Some(v) => Vocab {
                styles: v.styles.clone(),
                backgrounds: v.backgrounds.clone(),
            },
            None => Vocab::default(),
        }
    }

    fn generate(
        &self,
        job: &JobSpec,
        out: &Path,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Made, GenerateError> {
        let edited = self.edited(job).map_err(GenerateError::Failed)?;
        let outcome = self.request(job, edited.as_ref()).and_then(|request| {
            self.pipeline
                .generate_into(&request, out, OutputPolicy::Refuse, progress)
        });
        match outcome {
            Ok(package) => {
                let mut meta = package.meta;
                if let (Some(edited), Some(map)) = (&edited, meta.as_object_mut()) {
                    map.insert("edit".into(), serde_json::json!(edited.edit));
                }
                Ok(Made {
                    files: package.files,
                    meta,
                })
            }
            Err(e) if e.is_cancelled() => Err(GenerateError::Cancelled),
            Err(e) => Err(GenerateError::Failed(e.to_string())),
        }
    }
}
