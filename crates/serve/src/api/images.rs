//! `POST /v1/images/generations`: the OpenAI images API over the studio's queue. The
//! call waits for its images and answers them as base64 or as URLs.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::jobs::queued;
use super::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{JobRequest, JobState};
use crate::store::now;
use crate::studio::AppState;

/// Most images one call makes.
const MAX_IMAGES: u32 = 4;

/// An OpenAI-style image request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageGeneration {
    /// What to draw.
    pub prompt: String,
    /// How many images, 1 to 4 (seeds `seed`, `seed + 1`, ...).
    #[serde(default)]
    pub n: Option<u32>,
    /// Seed of the first image (0 when absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// "url" (default) or "b64_json".
    #[serde(default)]
    pub response_format: Option<String>,
}

/// One image.
#[derive(Serialize, ToSchema)]
pub struct ImageData {
    /// The PNG, base64 (response_format b64_json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b64_json: Option<String>,
    /// Where to fetch the PNG (response_format url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The images made.
#[derive(Serialize, ToSchema)]
pub struct ImagesResponse {
    /// Unix seconds.
    pub created: i64,
    /// One entry per image.
    pub data: Vec<ImageData>,
}

/// Makes `n` images of `prompt` and answers them when all are done.
#[utoipa::path(post, path = "/v1/images/generations", operation_id = "generate_images", request_body = ImageGeneration, responses(
    (status = 200, body = ImagesResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody),
    (status = 500, body = ErrorBody)))]
pub async fn generations(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ImageGeneration>,
) -> Result<Json<ImagesResponse>, ApiError> {
    let n = request.n.unwrap_or(1);
    if !(1..=MAX_IMAGES).contains(&n) {
        return Err(ApiError::field(
            "n",
            format!("{n} is out of range; allowed 1 to {MAX_IMAGES}"),
        ));
    }
    let as_base64 = match request.response_format.as_deref() {
        None | Some("url") => false,
        Some("b64_json") => true,
        Some(other) => {
            return Err(ApiError::field(
                "response_format",
                format!("unknown value {other:?}; allowed: url, b64_json"),
            ))
        }
    };
    let seed = request.seed.unwrap_or(0);
    let mut ids: Vec<String> = Vec::with_capacity(n as usize);
    for i in 0..n as u64 {
        let spec = JobRequest {
            prompt: request.prompt.clone(),
            seed: Some(seed.wrapping_add(i)),
            modalities: Some(vec!["image".into()]),
            steps: None,
            guidance: None,
            sampler: None,
            negative: None,
            frames: None,
            seconds: None,
            style: None,
            background: None,
        }
        .check(&state.vocab, state.config.max_prompt_chars)?;
        let job = queued(&spec, None)?;
        if let Err(e) = state.submit(&job, || state.store.insert_job(&job)) {
            // All or nothing: the images already queued are not made.
            for id in &ids {
                let _ = state.cancel(id);
            }
            return Err(e);
        }
        ids.push(job.id);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let mut data = Vec::with_capacity(ids.len());
    for id in &ids {
        let view = state.wait(id).await?;
        if view.state != JobState::Completed {
            return Err(ApiError::internal(format!(
                "image {} of {n} {}: {}",
                data.len() + 1,
                view.state.name(),
                view.error.unwrap_or_default()
            )));
        }
        let name = "image.png";
        data.push(if as_base64 {
            let bytes = tokio::fs::read(state.job_dir(id).join(name))
                .await
                .map_err(|e| ApiError::internal(format!("{name}: {e}")))?;
            ImageData {
                b64_json: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                url: None,
            }
        } else {
            ImageData {
                b64_json: None,
                url: Some(format!("http://{host}/v1/jobs/{id}/files/{name}")),
            }
        });
    }
    Ok(Json(ImagesResponse { created: now(), data }))
}
