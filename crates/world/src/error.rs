//! The world's one error type.

/// Everything that can go wrong while building, reading or rendering a scene.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A name that is not one of the allowed attribute values.
    #[error("unknown {what} `{got}`; allowed: {allowed}")]
    UnknownValue {
        /// Which attribute.
        what: &'static str,
        /// What was given.
        got: String,
        /// The allowed names, comma separated.
        allowed: String,
    },
    /// JSON that does not parse as a spec.
    #[error("malformed scene spec: {0}")]
    MalformedSpec(String),
    /// A spec that parses but breaks a rule.
    #[error("invalid scene spec: {0}")]
    InvalidSpec(String),
    /// A render or stream option out of its range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A tensor could not be built.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A worker thread of a stream died.
    #[error("stream worker failed: {0}")]
    Worker(String),
}

/// Result with [`WorldError`].
pub type Result<T> = std::result::Result<T, WorldError>;
