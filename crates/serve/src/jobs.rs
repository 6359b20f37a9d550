//! Jobs: what a client asks for ([`JobRequest`], checked field by field into a
//! [`JobSpec`]), how a job stands ([`JobState`], [`JobRecord`]) and what the API shows
//! of it ([`JobView`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::generator::Vocab;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is making it.
    Running,
    /// Its files are ready.
    Completed,
    /// It stopped on an error (`error` says which).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Its name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state called `name`.
    pub fn from_name(name: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Completed,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Whether the job will not change again.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed | JobState::Cancelled)
    }
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Where it stands.
    pub state: JobState,
    /// The checked request ([`JobSpec`] as JSON).
    pub request: serde_json::Value,
    /// The session it is a turn of.
    pub session_id: Option<String>,
    /// Its turn number in that session.
    pub turn: Option<u32>,
    /// The files it made.
    pub files: Vec<String>,
    /// The package's meta.json.
    pub meta: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Unix seconds.
    pub started_at: Option<i64>,
    /// Unix seconds.
    pub finished_at: Option<i64>,
    /// Seconds the worker spent on it.
    pub seconds: Option<f64>,
}

/// What to make: the options of `mmgen generate`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// What to make, in English or Chinese.
    pub prompt: String,
    /// Seed of every random draw (0 when absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Any of "image", "video", "audio"; by default read from the prompt.
    #[serde(default)]
    pub modalities: Option<Vec<String>>,
    /// Sampler steps, 1 to 1000 (default: the model's).
    #[serde(default)]
    pub steps: Option<u32>,
    /// Classifier-free guidance, 0 to 50 (default: the model's).
    #[serde(default)]
    pub guidance: Option<f64>,
    /// Sampler name (default "ddim").
    #[serde(default)]
    pub sampler: Option<String>,
    /// What to steer away from.
    #[serde(default)]
    pub negative: Option<String>,
    /// Video frames, 1 to 14400 (default 24).
    #[serde(default)]
    pub frames: Option<u32>,
    /// Seconds of audio without a video, 0.1 to 3600 (default 4).
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Draw in this style (one of `GET /v1/vocab`'s styles) whatever the prompt says.
    #[serde(default)]
    pub style: Option<String>,
    /// Draw on this background (one of `GET /v1/vocab`'s backgrounds).
    #[serde(default)]
    pub background: Option<String>,
}

/// A checked request: every field in range, as the worker runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobSpec {
    /// What to make.
    pub prompt: String,
    /// Seed.
    pub seed: u64,
    /// The modalities asked for (None: from the prompt).
    pub modalities: Option<Vec<String>>,
    /// Sampler steps (None: the model's default).
    pub steps: Option<u32>,
    /// Guidance (None: the model's default).
    pub guidance: Option<f64>,
    /// Sampler name.
    pub sampler: String,
    /// Negative prompt.
    pub negative: String,
    /// Video frames (None: the default).
    pub frames: Option<u32>,
    /// Seconds of audio (None: the default).
    pub seconds: Option<f64>,
    /// Pinned style.
    pub style: Option<String>,
    /// Pinned background.
    pub background: Option<String>,
    /// A session's edit turn: the instruction that changes the previous turn's plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<EditOf>,
}

/// An edit turn's input: what to change, and the scene plan it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EditOf {
    /// What the user asked to change.
    pub instruction: String,
    /// The previous turn's scene plan (its meta.json `scene_plan`).
    pub plan: serde_json::Value,
}

/// The samplers a job may name (as `mmgen generate --sampler`).
pub const SAMPLERS: [&str; 5] = ["ddim", "ddpm", "euler", "euler-a", "dpmpp-2m"];

/// The modality names a job may ask for.
pub const MODALITIES: [&str; 3] = ["image", "video", "audio"];

fn in_range(field: &str, value: f64, low: f64, high: f64) -> Result<(), ApiError> {
    if value.is_finite() && (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{value} is out of range; allowed {low} to {high}"),
        ))
    }
}

/// Checks a name against the model's list for `field`.
pub fn check_name(field: &str, value: &str, allowed: &[String]) -> Result<(), ApiError> {
    if allowed.iter().any(|a| a == value) {
        Ok(())
    } else if allowed.is_empty() {
        Err(ApiError::field(
            field,
            "the loaded models draw no scene plans, so nothing can be pinned".to_string(),
        ))
    } else {
        Err(ApiError::field(
            field,
            format!("unknown value {value:?}; allowed: {}", allowed.join(", ")),
        ))
    }
}

impl JobRequest {
    /// Checks every field, naming the first bad one; `max_prompt_chars` bounds the prompt.
    pub fn check(self, vocab: &Vocab, max_prompt_chars: usize) -> Result<JobSpec, ApiError> {
        check_prompt("prompt", &self.prompt, max_prompt_chars)?;
        if let Some(modalities) = &self.modalities {
            if modalities.is_empty() {
                return Err(ApiError::field(
                    "modalities",
                    format!("empty; give any of {} or leave it out", MODALITIES.join(", ")),
                ));
            }
            for (i, m) in modalities.iter().enumerate() {
                if !MODALITIES.contains(&m.as_str()) {
                    return Err(ApiError::field(
                        &format!("modalities[{i}]"),
                        format!("unknown modality {m:?}; allowed: {}", MODALITIES.join(", ")),
                    ));
                }
            }
        }
        if let Some(steps) = self.steps {
            in_range("steps", steps as f64, 1.0, 1000.0)?;
        }
        if let Some(guidance) = self.guidance {
            in_range("guidance", guidance, 0.0, 50.0)?;
        }
        let sampler = self.sampler.unwrap_or_else(|| "ddim".into());
        if !SAMPLERS.contains(&sampler.as_str()) {
            return Err(ApiError::field(
                "sampler",
                format!("unknown sampler {sampler:?}; allowed: {}", SAMPLERS.join(", ")),
            ));
        }
        let negative = self.negative.unwrap_or_default();
        if negative.chars().count() > max_prompt_chars {
            return Err(ApiError::field(
                "negative",
                format!("longer than {max_prompt_chars} characters"),
            ));
        }
        if let Some(frames) = self.frames {
            in_range("frames", frames as f64, 1.0, 14_400.0)?;
        }
        if let Some(seconds) = self.seconds {
            in_range("seconds", seconds, 0.1, 3600.0)?;
        }
        if let Some(style) = &self.style {
            check_name("style", style, &vocab.styles)?;
        }
        if let Some(background) = &self.background {
            check_name("background", background, &vocab.backgrounds)?;
        }
        Ok(JobSpec {
            prompt: self.prompt,
            seed: self.seed.unwrap_or(0),
            modalities: self.modalities,
            steps: self.steps,
            guidance: self.guidance,
            sampler,
            negative,
            frames: self.frames,
            seconds: self.seconds,
            style: self.style,
            background: self.background,
            edit: None,
        })
    }
}

/// A prompt or instruction: not empty, not too long, no control characters.
pub fn check_prompt(field: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::field(
            field,
            "empty; say what to make, e.g. \"a red star over the sea at sunset\"",
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(ApiError::field(
            field,
            format!("{chars} characters long; at most {max_chars} are allowed"),
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && !c.is_whitespace()) {
        return Err(ApiError::field(field, format!("holds the control character {c:?}")));
    }
    Ok(())
}

/// Progress of a running job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct ProgressView {
    /// What is being made ("image", "video", "audio"); empty before the first step.
    pub stage: String,
    /// Steps done in this stage.
    pub done: usize,
    /// Steps in this stage.
    pub total: usize,
}

/// A file a job made.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FileView {
    /// Its name (`image.png`, `video.mp4`, ...).
    pub name: String,
    /// Where to fetch it.
    pub url: String,
}

/// A job as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// Where it stands.
    pub state: JobState,
    /// Progress while it runs (complete once completed).
    pub progress: ProgressView,
    /// The files it made (once completed).
    pub files: Vec<FileView>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The checked request.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    /// The session and turn it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Its turn number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// Unix seconds.
    pub created_at: i64,
    /// Seconds the worker spent on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// The package's meta.json (scene plan, sound plan, models, timings).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub meta: Option<serde_json::Value>,
}

impl JobView {
    /// The view of `job`, with `progress` for a running job.
    pub fn of(job: &JobRecord, progress: Option<ProgressView>) -> JobView {
        let progress = match (job.state, progress) {
            (JobState::Completed, _) => ProgressView {
                stage: "done".into(),
                done: 1,
                total: 1,
            },
            (_, Some(p)) => p,
            _ => ProgressView::default(),
        };
        JobView {
            id: job.id.clone(),
            state: job.state,
            progress,
            files: job
                .files
                .iter()
                .map(|name| FileView {
                    name: name.clone(),
                    url: format!("/v1/jobs/{}/files/{name}", job.id),
                })
                .collect(),
            error: job.error.clone(),
            request: job.request.clone(),
            session_id: job.session_id.clone(),
            turn: job.turn,
            created_at: job.created_at,
            seconds: job.seconds,
            meta: job.meta.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> Result<JobSpec, ApiError> {
        let vocab = Vocab {
            styles: vec!["flat".into(), "pixel_art".into()],
            backgrounds: vec!["sky".into()],
        };
        serde_json::from_value::<JobRequest>(json).unwrap().check(&vocab, 100)
    }

    #[test]
    fn each_bad_field_is_named() {
        for (json, field) in [
            (serde_json::json!({"prompt": " "}), "prompt"),
            (serde_json::json!({"prompt": "x".repeat(101)}), "prompt"),
            (serde_json::json!({"prompt": "a\u{7}b"}), "prompt"),
            (serde_json::json!({"prompt": "a", "steps": 0}), "steps"),
            (serde_json::json!({"prompt": "a", "guidance": 51.0}), "guidance"),
            (serde_json::json!({"prompt": "a", "sampler": "plms"}), "sampler"),
            (
                serde_json::json!({"prompt": "a", "modalities": ["smell"]}),
                "modalities[0]",
            ),
            (serde_json::json!({"prompt": "a", "modalities": []}), "modalities"),
            (serde_json::json!({"prompt": "a", "frames": 0}), "frames"),
            (serde_json::json!({"prompt": "a", "seconds": 0.0}), "seconds"),
            (serde_json::json!({"prompt": "a", "style": "oil"}), "style"),
            (serde_json::json!({"prompt": "a", "background": "moon"}), "background"),
        ] {
            let error = request(json.clone()).expect_err(&json.to_string());
            assert_eq!(error.field.as_deref(), Some(field), "{json}: {error:?}");
        }
    }

    #[test]
    fn a_good_request_keeps_its_fields_and_takes_defaults() {
        let spec = request(serde_json::json!({"prompt": "a red star", "style": "pixel_art", "steps": 8})).unwrap();
        assert_eq!(spec.seed, 0);
        assert_eq!(spec.sampler, "ddim");
        assert_eq!(spec.steps, Some(8));
        assert_eq!(spec.style.as_deref(), Some("pixel_art"));
    }
}
