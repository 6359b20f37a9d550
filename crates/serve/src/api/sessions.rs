//! Sessions: turns that refine one piece of work, with one seed and an optional pinned
//! style and background. The first turn is a prompt; each later one is an edit of the
//! turn before: its instruction and that turn's scene plan go to the generator, whose
//! scene editor changes the plan, and the same seed redraws it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::jobs::queued;
use super::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{check_name, check_prompt, EditOf, JobSpec, JobState, JobView, MODALITIES};
use crate::store::{now, SessionRecord, TurnRecord};
use crate::studio::{new_id, AppState};

/// A new session.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The seed of every turn (0 when absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// A style every turn is drawn in.
    #[serde(default)]
    pub style: Option<String>,
    /// A background every turn is drawn on.
    #[serde(default)]
    pub background: Option<String>,
}

/// `Some(None)` for an explicit null, `None` for an absent field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Pins or unpins a style or background (null unpins; an absent field stays).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    /// The style, or null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub style: Option<Option<String>>,
    /// The background, or null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub background: Option<Option<String>>,
}

/// A new turn.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTurn {
    /// What to make, or what to change.
    pub instruction: String,
    /// Any of "image", "video", "audio"; by default read from the instruction.
    #[serde(default)]
    pub modalities: Option<Vec<String>>,
    /// Draw the instruction as a new prompt instead of an edit of the previous turn
    /// (the first turn always is one).
    #[serde(default)]
    pub fresh: bool,
}

/// One turn and its job.
#[derive(Serialize, ToSchema)]
pub struct TurnView {
    /// 1 for the first.
    pub turn: u32,
    /// What the user wrote.
    pub instruction: String,
    /// The job that makes it.
    pub job: JobView,
}

/// A session with its turns.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// Its id.
    pub id: String,
    /// The seed of every turn.
    pub seed: u64,
    /// The pinned style.
    pub style: Option<String>,
    /// The pinned background.
    pub background: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// The turns, first first.
    pub turns: Vec<TurnView>,
}

fn session_view(state: &AppState, id: &str) -> Result<SessionView, ApiError> {
    let session = state
        .store
        .session(id)?
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    let mut turns = Vec::new();
    for turn in state.store.turns(id)? {
        if let Some(job) = state.view(&turn.job_id)? {
            turns.push(TurnView {
                turn: turn.turn,
                instruction: turn.instruction,
                job,
            });
        }
    }
    Ok(SessionView {
        id: session.id,
        seed: session.seed,
        style: session.style,
        background: session.background,
        created_at: session.created_at,
        turns,
    })
}

fn check_pins(state: &AppState, style: Option<&str>, background: Option<&str>) -> Result<(), ApiError> {
    if let Some(style) = style {
        check_name("style", style, &state.vocab.styles)?;
    }
    if let Some(background) = background {
        check_name("background", background, &state.vocab.backgrounds)?;
    }
    Ok(())
}

/// Starts a session.
#[utoipa::path(post, path = "/v1/sessions", operation_id = "create_session", request_body = NewSession, responses(
    (status = 201, body = SessionView), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewSession>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    check_pins(&state, new.style.as_deref(), new.background.as_deref())?;
    let session = SessionRecord {
        id: new_id(),
        created_at: now(),
        seed: new.seed.unwrap_or(0),
        style: new.style,
        background: new.background,
    };
    state.store.insert_session(&session)?;
    Ok((StatusCode::CREATED, Json(session_view(&state, &session.id)?)))
}

/// A session and its turns.
#[utoipa::path(get, path = "/v1/sessions/{id}", operation_id = "show_session", params(("id" = String, Path)), responses(
    (status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(session_view(&state, &id)?))
}

/// Pins or unpins the session's style and background (for the turns that follow).
#[utoipa::path(patch, path = "/v1/sessions/{id}", operation_id = "pin_session", params(("id" = String, Path)), request_body = Pins, responses(
    (status = 200, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pin(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(pins): JsonBody<Pins>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    let style = pins.style.unwrap_or(session.style);
    let background = pins.background.unwrap_or(session.background);
    check_pins(&state, style.as_deref(), background.as_deref())?;
    state.store.pin(&id, style.as_deref(), background.as_deref())?;
    Ok(Json(session_view(&state, &id)?))
}

/// Adds a turn: queues its job (202), 429 when the queue is full.
#[utoipa::path(post, path = "/v1/sessions/{id}/turns", operation_id = "add_turn", params(("id" = String, Path)), request_body = NewTurn,
    responses((status = 202, body = TurnView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn turn(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(new): JsonBody<NewTurn>,
) -> Result<(StatusCode, Json<TurnView>), ApiError> {
    let session = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    check_prompt("instruction", &new.instruction, state.config.max_prompt_chars)?;
    if let Some(modalities) = &new.modalities {
        for (i, m) in modalities.iter().enumerate() {
            if !MODALITIES.contains(&m.as_str()) {
                return Err(ApiError::field(
                    &format!("modalities[{i}]"),
                    format!("unknown modality {m:?}; allowed: {}", MODALITIES.join(", ")),
                ));
            }
        }
    }
    let turns = state.store.turns(&id)?;
    let number = turns.len() as u32 + 1;
    // An edit changes the previous turn's scene plan and keeps its prompt (for its
    // music and modalities); a first or fresh turn is a prompt of its own.
    let previous = match turns.last() {
        Some(last) if !new.fresh => Some(
            state
                .view(&last.job_id)?
                .ok_or_else(|| ApiError::internal("the previous turn's job vanished"))?,
        ),
        _ => None,
    };
    let (prompt, edit) = match &previous {
        Some(job) => {
            if job.state != JobState::Completed {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                    "turn {} is {}: an edit changes a finished turn; wait for it, or send \"fresh\": true to start anew",
                    number - 1,
                    job.state.name()
                    ),
                ));
            }
            let prompt = job.request["prompt"].as_str().unwrap_or(&new.instruction).to_string();
            let plan = job
                .meta
                .as_ref()
                .and_then(|m| m.get("scene_plan"))
                .filter(|p| !p.is_null());
            let edit = plan.map(|plan| EditOf {
                instruction: new.instruction.clone(),
                plan: plan.clone(),
            });
            // A turn with no picture (sound alone) has no plan to change: the
            // instruction is drawn as a prompt.
            if edit.is_some() {
                (prompt, edit)
            } else {
                (new.instruction.clone(), None)
            }
        }
        None => (new.instruction.clone(), None),
    };
    let spec = JobSpec {
        prompt,
        seed: session.seed,
        modalities: new.modalities.filter(|m| !m.is_empty()),
        steps: None,
        guidance: None,
        sampler: "ddim".into(),
        negative: String::new(),
        frames: None,
        seconds: None,
        style: session.style.clone(),
        background: session.background.clone(),
        edit,
    };
    let job = queued(&spec, Some((&id, number)))?;
    let record = TurnRecord {
        turn: number,
        instruction: new.instruction.clone(),
        job_id: job.id.clone(),
        created_at: now(),
    };
    state.submit(&job, || state.store.insert_turn(&id, &record, &job))?;
    let view = state
        .view(&job.id)?
        .ok_or_else(|| ApiError::internal("the job vanished"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TurnView {
            turn: number,
            instruction: new.instruction,
            job: view,
        }),
    ))
}
