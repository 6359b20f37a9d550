//! The crate's error type.

/// What can go wrong in training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad argument: says which, what was wrong, what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// From the world.
    #[error(transparent)]
    World(#[from] mmgen_world::WorldError),
    /// From a model.
    #[error(transparent)]
    Model(#[from] mmgen_models::ModelError),
    /// From evaluation (a probe's accuracy, a parsed prompt).
    #[error(transparent)]
    Eval(#[from] mmgen_eval::EvalError),
    /// From diffusion.
    #[error(transparent)]
    Diffusion(#[from] mmgen_diffusion::DiffusionError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be written or read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl TrainError {
    /// An error about `path`.
    pub fn file(path: &std::path::Path, message: impl std::fmt::Display) -> TrainError {
        TrainError::File {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
