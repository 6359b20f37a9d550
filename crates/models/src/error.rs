//! The crate's error type.

use std::path::Path;

/// What can go wrong building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A bad argument or configuration: says which, what was wrong, what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// A file that is missing, unreadable or malformed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A diffusion step failed.
    #[error(transparent)]
    Diffusion(#[from] mmgen_diffusion::DiffusionError),
}

impl ModelError {
    /// An error about `path`.
    pub fn file(path: &Path, message: impl std::fmt::Display) -> ModelError {
        ModelError::File {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Result with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
