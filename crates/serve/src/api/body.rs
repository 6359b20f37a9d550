//! A JSON body whose errors name the field: 400 with the path serde stopped at
//! (`steps`, `modalities[1]`), 413 past the body limit, 415 without a JSON type.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The request body as `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim() == "application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON, with the header 'Content-Type: application/json'",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut deserializer)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                // serde names an unknown or missing field in its message, at the root.
                let named = inner.to_string();
                let field = if path != "." {
                    Some(path)
                } else {
                    named.split('`').nth(1).map(str::to_string)
                };
                ApiError {
                    message: match &field {
                        Some(f) => format!("{f}: {named}"),
                        None => format!("the body is not valid JSON for this route: {named}"),
                    },
                    field,
                    ..ApiError::new(StatusCode::BAD_REQUEST, "")
                }
            })
    }
}
