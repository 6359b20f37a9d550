//! The evaluation crate's one error type.

/// Everything that can go wrong while training probes or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The world refused a spec or option.
    #[error(transparent)]
    World(#[from] mmgen_world::WorldError),
    /// A model (or its files) failed.
    #[error(transparent)]
    Model(#[from] mmgen_models::ModelError),
    /// The generation pipeline refused or failed a request.
    #[error(transparent)]
    Pipeline(#[from] mmgen_pipeline::PipelineError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// An option out of range or a bad input.
    #[error("{0}")]
    Invalid(String),
    /// A prompt the caption parser cannot read.
    #[error("cannot read prompt {prompt:?}: {reason}")]
    Prompt {
        /// The prompt.
        prompt: String,
        /// What was missing or ambiguous.
        reason: String,
    },
}

/// Result with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;

impl EvalError {
    /// A file error with its path.
    pub fn file(path: &std::path::Path, message: impl std::fmt::Display) -> EvalError {
        EvalError::File {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}
