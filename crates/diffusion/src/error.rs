//! The crate's error type.

/// What can go wrong in diffusion.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// A bad argument: says which, what was wrong, what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// The run was cancelled between two steps ([`crate::cancel`]).
    #[error("cancelled")]
    Cancelled,
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with [`DiffusionError`].
pub type Result<T> = std::result::Result<T, DiffusionError>;
