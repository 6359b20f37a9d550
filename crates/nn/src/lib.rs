//! Layers shared by every mmgen model (probes, text encoders, autoencoders, diffusion
//! transformers).
//!
//! Training and inference take different kernels: candle's fused layer-norm and
//! last-dimension softmax have no backward pass, so the layers here use them only when
//! no gradient is tracked ([`candle_core::Tensor::track_op`]) and fall back to
//! differentiable compositions while training.

#![warn(missing_docs)]

pub mod activation;
pub mod attention;
pub mod conv;
pub mod dense;
pub mod embed;
pub mod init;
pub mod norm;

pub use activation::gelu;
pub use attention::{Attention, AttentionContext, FeedForward};
pub use conv::{depth_to_space, per_cell, space_to_depth, CellGrid, Conv3x3};
pub use dense::{add_bias, expand_rows, Dense};
pub use embed::timestep_embedding;
pub use init::seeded_var_builder;
pub use norm::{softmax_last_dim, LayerNorm};
