//! The HTTP API: [`router`] over the studio's state. Every error is JSON naming the
//! field it is about; every /v1 route takes the bearer token when one is set.

mod body;
mod feedback;
mod files;
mod images;
mod jobs;
mod page;
mod sessions;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::error::ApiError;
use crate::studio::{digest, same_digest, AppState};

pub use body::JsonBody;

/// The studio's routes over `state`: the page at `/`, `/healthz`, `/openapi.json`,
/// and the API under `/v1`.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/vocab", get(vocab))
        .route("/v1/images/generations", post(images::generations))
        .route("/v1/jobs", post(jobs::create))
        .route("/v1/jobs/{id}", get(jobs::show).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/jobs/{id}/files/{name}", get(files::download))
        .route("/v1/jobs/{id}/feedback", post(feedback::create))
        .route("/v1/feedback.jsonl", get(feedback::export))
        .route("/v1/sessions", post(sessions::create))
        .route("/v1/sessions/{id}", get(sessions::show).patch(sessions::pin))
        .route("/v1/sessions/{id}/turns", post(sessions::turn))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .merge(v1)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// 401 unless the request carries the token (when the server has one).
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.token_digest {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|token| same_digest(&digest(token), expected)) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs a token: send the header 'Authorization: Bearer TOKEN'",
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}; the API is listed at /openapi.json",
        request.method(),
        request.uri().path()
    ))
}

/// The server is up.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// "ok".
    pub status: &'static str,
    /// Worker threads.
    pub workers: usize,
    /// Jobs that may wait.
    pub queue_bound: usize,
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        workers: state.config.workers,
        queue_bound: state.config.queue_bound,
    })
}

/// The styles and backgrounds a job or session may pin (from the loaded models).
#[utoipa::path(get, path = "/v1/vocab", responses((status = 200, body = crate::generator::Vocab)))]
async fn vocab(State(state): State<AppState>) -> Json<crate::generator::Vocab> {
    Json(state.vocab.clone())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mmgen studio",
        description = "Text to image, video and music: jobs, progress events, sessions of edits, feedback."
    ),
    paths(
        healthz,
        vocab,
        images::generations,
        jobs::create,
        jobs::show,
        jobs::cancel,
        jobs::events,
        files::download,
        feedback::create,
        feedback::export,
        sessions::create,
        sessions::show,
        sessions::pin,
        sessions::turn,
    )
)]
struct ApiDoc;

/// The OpenAPI document of this API.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}
