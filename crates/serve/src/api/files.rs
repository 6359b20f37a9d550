//! `/v1/jobs/{id}/files/{name}`: a file a job made. Only names the job recorded are
//! served, so no path reaches outside its folder.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorBody};
use crate::studio::AppState;

/// The content type of a package file, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "png" => "image/png",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "wav" => "audio/wav",
        "mid" => "audio/midi",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A file of a completed job.
#[utoipa::path(get, path = "/v1/jobs/{id}/files/{name}", operation_id = "download_file", params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the file"), (status = 404, body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = state
        .store
        .job(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    if !job.files.iter().any(|f| f == &name) {
        return Err(ApiError::not_found(format!(
            "job {id} has no file {name:?}; its files: {}",
            if job.files.is_empty() {
                "none yet".to_string()
            } else {
                job.files.join(", ")
            }
        )));
    }
    let path = state.job_dir(&id).join(&name);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::internal(format!("{name}: cannot read it: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&name)),
            (header::CACHE_CONTROL, "private, max-age=31536000, immutable"),
        ],
        Body::from(bytes),
    )
        .into_response())
}
