//! What the workers run: the [`Generate`] trait, and [`PipelineGenerator`], the
//! pipeline with the shipped models behind it. The trait lets the API tests drive the
//! server with a scripted generator; `mmgen serve` and the browser test use the real one.

use std::path::Path;

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

/// The pipeline over the shipped models (with its exact-request cache).
pub struct PipelineGenerator {
    pipeline: Pipeline,
}

impl PipelineGenerator {
    /// Serves `pipeline`.
    pub fn new(pipeline: Pipeline) -> PipelineGenerator {
        PipelineGenerator { pipeline }
    }

    fn request(&self, job: &JobSpec) -> Result<Request, mmgen_pipeline::PipelineError> {
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
        // A pinned style or background replaces the planner's choice in its plan;
        // everything else the planner decided stays.
        if job.style.is_some() || job.background.is_some() {
            if let Some(mut plan) = self.pipeline.plan_scene(&job.prompt, job.seed)? {
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
        let outcome = self.request(job).and_then(|request| {
            self.pipeline
                .generate_into(&request, out, OutputPolicy::Refuse, progress)
        });
        match outcome {
            Ok(package) => Ok(Made {
                files: package.files,
                meta: package.meta,
            }),
            Err(e) if e.is_cancelled() => Err(GenerateError::Cancelled),
            Err(e) => Err(GenerateError::Failed(e.to_string())),
        }
    }
}
