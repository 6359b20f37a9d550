//! A trained probe's folder on disk: `config.json` (its shape) and
//! `model.safetensors` (weights in f16, loaded back as f32). The train crate writes
//! them.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use crate::error::{EvalError, Result};
use mmgen_models::weights::var_builder;

/// Reads `config.json` of a probe folder.
pub fn load_config<C: DeserializeOwned>(dir: &Path) -> Result<C> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| EvalError::file(&path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::file(&path, format!("not a probe config: {e}")))
}

/// A VarBuilder over `model.safetensors` of a probe folder, as f32 on `device`.
pub fn load_weights(dir: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let path = dir.join("model.safetensors");
    if !path.exists() {
        return Err(EvalError::file(
            &path,
            "missing; train the probe first (see models/README.md)",
        ));
    }
    Ok(var_builder(&path, device)?)
}
