//! Feedback on a job (thumbs or 1-5, with a comment), stored with its request and
//! exported as JSON lines: a preference data set for later fine-tuning.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::store::{now, FeedbackRecord};
use crate::studio::AppState;

/// Longest comment, in characters.
const MAX_COMMENT_CHARS: usize = 2000;

/// What a user thought of a job.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// "up" or "down".
    #[serde(default)]
    pub thumbs: Option<String>,
    /// 1 to 5.
    #[serde(default)]
    pub rating: Option<u8>,
    /// Free text, at most 2000 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Stores feedback on job `id` (at least one of thumbs and rating).
#[utoipa::path(post, path = "/v1/jobs/{id}/feedback", operation_id = "create_feedback", params(("id" = String, Path)), request_body = Feedback,
    responses((status = 201, description = "stored"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(feedback): JsonBody<Feedback>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if state.store.job(&id)?.is_none() {
        return Err(ApiError::not_found(format!("no job {id}")));
    }
    if let Some(thumbs) = &feedback.thumbs {
        if thumbs != "up" && thumbs != "down" {
            return Err(ApiError::field(
                "thumbs",
                format!("unknown value {thumbs:?}; allowed: up, down"),
            ));
        }
    }
    if let Some(rating) = feedback.rating {
        if !(1..=5).contains(&rating) {
            return Err(ApiError::field(
                "rating",
                format!("{rating} is out of range; allowed 1 to 5"),
            ));
        }
    }
    if feedback.thumbs.is_none() && feedback.rating.is_none() {
        return Err(ApiError::field("thumbs", "give thumbs (up, down) or a rating (1 to 5)"));
    }
    if let Some(comment) = &feedback.comment {
        let chars = comment.chars().count();
        if chars > MAX_COMMENT_CHARS {
            return Err(ApiError::field(
                "comment",
                format!("{chars} characters long; at most {MAX_COMMENT_CHARS} are allowed"),
            ));
        }
    }
    state.store.insert_feedback(&FeedbackRecord {
        job_id: id.clone(),
        created_at: now(),
        thumbs: feedback.thumbs,
        rating: feedback.rating,
        comment: feedback.comment,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"job_id": id, "stored": true})),
    ))
}

/// Every piece of feedback as one JSON object a line: the rating beside the request,
/// the files and the scene plan the job drew.
#[utoipa::path(get, path = "/v1/feedback.jsonl", operation_id = "export_feedback", responses(
    (status = 200, content_type = "application/x-ndjson", description = "one object a line")))]
pub async fn export(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    for (feedback, job) in state.store.feedback()? {
        let line = serde_json::json!({
            "job_id": feedback.job_id,
            "created_at": feedback.created_at,
            "thumbs": feedback.thumbs,
            "rating": feedback.rating,
            "comment": feedback.comment,
            "request": job.request,
            "session_id": job.session_id,
            "turn": job.turn,
            "files": job.files,
            "scene_plan": job.meta.as_ref().and_then(|m| m.get("scene_plan")).cloned(),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out))
}
