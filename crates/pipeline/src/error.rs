//! The crate's error type.

use std::path::Path;

/// What can go wrong making a package.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A bad request: says which part, what was wrong, what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// The request needs a model that is not shipped.
    #[error("{0}")]
    NotShipped(String),
    /// A file or folder that could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A model failed (or refused its settings).
    #[error(transparent)]
    Model(#[from] mmgen_models::ModelError),
    /// A media file could not be written.
    #[error(transparent)]
    Media(#[from] mmgen_media::MediaError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl PipelineError {
    /// An error about `path`.
    pub fn file(path: &Path, message: impl std::fmt::Display) -> PipelineError {
        PipelineError::File {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }

    /// Whether the request stopped because it was cancelled
    /// (`mmgen_diffusion::cancel`), not because something failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            PipelineError::Model(mmgen_models::ModelError::Diffusion(
                mmgen_diffusion::DiffusionError::Cancelled
            ))
        )
    }
}

/// Result with [`PipelineError`].
pub type Result<T> = std::result::Result<T, PipelineError>;
