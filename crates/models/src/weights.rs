//! Weight files: safetensors stored in f16 (half the size of f32, plenty for
//! inference) and loaded back as f32; and the model folders that hold them
//! (`config.json`, `tokenizer.json`, `model.safetensors`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::error::{ModelError, Result};
use crate::tokenizer::TextTokenizer;

/// Reads `config.json` of a model folder as a `what` config ("hybrid image", ...).
pub fn read_folder_config<C: serde::de::DeserializeOwned>(dir: &Path, what: &str) -> Result<C> {
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| ModelError::file(&path, e))?;
    parse_config(&bytes, &path, what)
}

fn parse_config<C: serde::de::DeserializeOwned>(bytes: &[u8], path: &Path, what: &str) -> Result<C> {
    serde_json::from_slice(bytes).map_err(|e| ModelError::file(path, format!("not a {what} config: {e}")))
}

/// The files of a model folder, read once: the model is built from these bytes, and
/// whoever records what was loaded (the pipeline's digests) hashes the same bytes.
pub struct FolderFiles {
    /// The folder.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: Vec<u8>,
    /// `tokenizer.json`, for the models that read text.
    pub tokenizer: Option<Vec<u8>>,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
}

impl FolderFiles {
    /// The file names, in the order of [`Self::parts`].
    pub const NAMES: [&'static str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

    /// Reads the folder's files (`tokenizer.json` may be absent).
    pub fn read(dir: &Path) -> Result<FolderFiles> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    ModelError::file(&path, "missing (see models/README.md for how it is trained)")
                }
                _ => ModelError::file(&path, e),
            })
        };
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = match std::fs::read(&tokenizer_path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ModelError::file(&tokenizer_path, e)),
        };
        Ok(FolderFiles {
            dir: dir.to_path_buf(),
            config: read("config.json")?,
            tokenizer,
            weights: read("model.safetensors")?,
        })
    }

    /// Each file's name and bytes (None for an absent tokenizer), in [`Self::NAMES`] order.
    pub fn parts(&self) -> [(&'static str, Option<&[u8]>); 3] {
        [
            (Self::NAMES[0], Some(&self.config)),
            (Self::NAMES[1], self.tokenizer.as_deref()),
            (Self::NAMES[2], Some(&self.weights)),
        ]
    }

    /// `config.json` as a `what` config.
    pub fn config<C: serde::de::DeserializeOwned>(&self, what: &str) -> Result<C> {
        parse_config(&self.config, &self.dir.join("config.json"), what)
    }

    /// `tokenizer.json`.
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        let path = self.dir.join("tokenizer.json");
        match &self.tokenizer {
            Some(bytes) => TextTokenizer::from_json(bytes, &path),
            None => Err(ModelError::file(&path, "missing: this model reads text")),
        }
    }

    /// The weights as f32 on `device`.
    pub fn tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        let path = self.dir.join("model.safetensors");
        to_f32(
            candle_core::safetensors::load_buffer(&self.weights, device)
                .map_err(|e| ModelError::file(&path, format!("unreadable weights (not a safetensors file?): {e}")))?,
        )
    }
}

/// Writes `value` to `path` as pretty JSON (a folder's config.json or metrics.json).
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ModelError::Invalid(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| ModelError::file(path, e))
}

/// Builds a model from its folder's files: its `what` config, its tokenizer and its
/// weights, handed to `build`; weights that do not fit the config are reported
/// against the weights file.
pub fn load_folder<C: serde::de::DeserializeOwned, M>(
    files: &FolderFiles,
    device: &Device,
    what: &str,
    build: impl FnOnce(&C, TextTokenizer, VarBuilder<'static>) -> Result<M>,
) -> Result<M> {
    let tokenizer = files.tokenizer()?;
    load_weights_folder(files, device, what, |config, vb| build(config, tokenizer, vb))
}

/// Builds a model without a tokenizer from its folder's files: its `what` config and
/// its weights, handed to `build`; weights that do not fit the config are reported
/// against the weights file.
pub fn load_weights_folder<C: serde::de::DeserializeOwned, M>(
    files: &FolderFiles,
    device: &Device,
    what: &str,
    build: impl FnOnce(&C, VarBuilder<'static>) -> Result<M>,
) -> Result<M> {
    let config = files.config(what)?;
    let vb = VarBuilder::from_tensors(files.tensors(device)?, DType::F32, device);
    build(&config, vb).map_err(|e| match e {
        ModelError::Candle(c) => ModelError::file(
            &files.dir.join("model.safetensors"),
            format!("does not fit config.json: {c}"),
        ),
        other => other,
    })
}

/// Writes every variable of `varmap` (or `overrides` for the names it holds, e.g. EMA
/// weights) to `path` in f16.
pub fn save_f16(varmap: &VarMap, overrides: Option<&HashMap<String, Tensor>>, path: &Path) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Invalid("variable map poisoned".into()))?;
    let mut tensors = HashMap::new();
    for (name, var) in data.iter() {
        let t = overrides.and_then(|o| o.get(name)).unwrap_or(var.as_tensor());
        tensors.insert(name.clone(), t.to_dtype(DType::F16)?);
    }
    candle_core::safetensors::save(&tensors, path).map_err(|e| ModelError::file(path, format!("cannot write: {e}")))
}

/// Reads a safetensors file as f32 tensors on `device`.
pub fn load_f32(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(ModelError::file(
            path,
            "missing (see models/README.md for how it is trained)",
        ));
    }
    let tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| ModelError::file(path, format!("unreadable weights (not a safetensors file?): {e}")))?;
    to_f32(tensors)
}

fn to_f32(tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect()
}

/// A VarBuilder over a safetensors file, as f32 on `device`.
pub fn var_builder(path: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    Ok(VarBuilder::from_tensors(load_f32(path, device)?, DType::F32, device))
}

/// Sets the variables of `varmap` whose names start with `prefix` from `tensors`
/// (names there without the prefix); every such variable must be found.
pub fn set_prefixed(varmap: &VarMap, prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Invalid("variable map poisoned".into()))?;
    for (name, var) in data.iter() {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let t = tensors
            .get(rest)
            .ok_or_else(|| ModelError::Invalid(format!("no weights for {name} (looked for {rest})")))?;
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// Sets every variable of `varmap` from `tensors` (same names) except those for which
/// `is_new` holds, which keep their initialisation (layers added to a trained model).
/// Every variable not new must be found, and every tensor must be used.
pub fn set_inflated(varmap: &VarMap, tensors: &HashMap<String, Tensor>, is_new: impl Fn(&str) -> bool) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Invalid("variable map poisoned".into()))?;
    let mut used = 0;
    for (name, var) in data.iter() {
        match tensors.get(name) {
            Some(t) => {
                var.set(&t.to_dtype(var.dtype())?)?;
                used += 1;
            }
            None if is_new(name) => {}
            None => return Err(ModelError::Invalid(format!("no weights for {name}"))),
        }
    }
    if used != tensors.len() {
        let unused: Vec<&String> = tensors.keys().filter(|k| !data.contains_key(*k)).take(3).collect();
        return Err(ModelError::Invalid(format!(
            "{} weights have no place in the model (e.g. {unused:?})",
            tensors.len() - used
        )));
    }
    Ok(())
}
