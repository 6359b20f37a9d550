//! `/v1/jobs`: submit any modality, read a job, cancel it, follow its progress.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};

use super::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{JobRecord, JobRequest, JobSpec, JobState, JobView};
use crate::store::now;
use crate::studio::{new_id, AppState, JobEvent};

/// A queued job for `spec`.
pub fn queued(spec: &JobSpec, session: Option<(&str, u32)>) -> Result<JobRecord, ApiError> {
    Ok(JobRecord {
        id: new_id(),
        created_at: now(),
        state: JobState::Queued,
        request: serde_json::to_value(spec).map_err(ApiError::internal)?,
        session_id: session.map(|(id, _)| id.to_string()),
        turn: session.map(|(_, turn)| turn),
        files: vec![],
        meta: None,
        error: None,
        started_at: None,
        finished_at: None,
        seconds: None,
    })
}

/// Queues a job: 202 with its view, 400 naming a bad field, 429 when the queue is full.
#[utoipa::path(post, path = "/v1/jobs", operation_id = "create_job", request_body = JobRequest, responses(
    (status = 202, body = JobView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<JobRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let spec = request.check(&state.vocab, state.config.max_prompt_chars)?;
    let job = queued(&spec, None)?;
    state.submit(&job, || state.store.insert_job(&job))?;
    let view = state
        .view(&job.id)?
        .ok_or_else(|| ApiError::internal("the job vanished"))?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A job: its state, progress and files.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "show_job", params(("id" = String, Path)), responses(
    (status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    state
        .view(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// Cancels a job: a queued one at once (200, cancelled), a running one between two
/// sampler steps (202, still running; its events end with the cancellation).
#[utoipa::path(delete, path = "/v1/jobs/{id}", operation_id = "cancel_job", params(("id" = String, Path)), responses(
    (status = 200, body = JobView), (status = 202, body = JobView), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let view = state.cancel(&id)?;
    let status = if view.state.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view)))
}

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// Server-sent events of a job: `state` (running), a `progress` event per sampler
/// step (`{stage, done, total}`), then one `done` with the job's view, after which
/// the stream ends. A job that has ended answers its `done` at once.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", operation_id = "job_events", params(("id" = String, Path)), responses(
    (status = 200, content_type = "text/event-stream", description = "state, progress ..., done"),
    (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (view, receiver) = state
        .subscribe(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let first = match receiver {
        None => vec![event("done", &view)],
        Some(_) => vec![event("state", &serde_json::json!({"state": view.state}))],
    };
    let follow = stream::unfold(receiver, |receiver| async move {
        let mut receiver = receiver?;
        loop {
            match receiver.recv().await {
                Ok(JobEvent::Progress(p)) => return Some((event("progress", &p), Some(receiver))),
                Ok(JobEvent::State(s)) => {
                    return Some((event("state", &serde_json::json!({"state": s})), Some(receiver)))
                }
                Ok(JobEvent::Done(view)) => return Some((event("done", &view), None)),
                // A slow reader missed progress events; the next one says where it is.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::StreamExt::map(
        futures_util::StreamExt::chain(stream::iter(first), follow),
        Ok::<Event, Infallible>,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
