//! Training the hybrid text-to-image model: the text encoder and the DiT learn
//! jointly from world captions and images (training split only: held-out
//! compositions are never seen), on latents of a frozen, separately trained VAE.
//!
//! Workers render, encode with the VAE on the CPU and tokenize ahead of the loop
//! ([`crate::denoiser`] is the loop).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::fit::RunInfo;
use crate::fit::{FitOptions, StepReport};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mmgen_diffusion::NoiseSchedule;
use mmgen_models::hybrid_image::{HybridImage, HybridImageConfig};
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::vae::{Vae, VaeConfig};
use mmgen_models::weights::{load_f32, set_prefixed};
use mmgen_nn::seeded_var_builder;
use mmgen_world::stream::render_batch;
use mmgen_world::{Split, StreamConfig};
use serde_json::json;

use crate::denoiser::{fit_denoiser, CleanBatch, Denoiser, DenoiserOptions, DenoiserRun, ModelFolder};
use crate::error::{Result, TrainError};
use crate::vae::image_stream;

/// Choices of a text-to-image run beyond the loop's (caption dropout, EMA).
pub type TextImageOptions = DenoiserOptions;

/// The VAE of a trained folder: config, weights and latent scale.
pub struct TrainedVae {
    /// Its shape.
    pub config: VaeConfig,
    /// Weights by name (f32, CPU).
    pub tensors: HashMap<String, Tensor>,
    /// 1 / std of its latent means.
    pub latent_scale: f64,
}

impl TrainedVae {
    /// Reads a folder written by [`crate::vae::train_vae`].
    pub fn load(dir: &Path) -> Result<TrainedVae> {
        let read = |name: &str| -> Result<serde_json::Value> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
            serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))
        };
        let config: VaeConfig = serde_json::from_value(read("config.json")?)
            .map_err(|e| TrainError::file(&dir.join("config.json"), format!("not a VAE config: {e}")))?;
        let latent_scale = read("metrics.json")?["latent_scale"].as_f64().ok_or_else(|| {
            TrainError::file(
                &dir.join("metrics.json"),
                "has no latent_scale (a finished `mmgen train vae` run writes it)",
            )
        })?;
        Ok(TrainedVae {
            config,
            tensors: load_f32(&dir.join("model.safetensors"), &Device::Cpu)?,
            latent_scale,
        })
    }

    /// Its weights on `device`.
    pub fn on_device(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        self.tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_device(device)?)))
            .collect()
    }
}

impl Denoiser for HybridImage {
    fn predict_ids(
        &self,
        xs: &Tensor,
        timesteps: &Tensor,
        ids: &Tensor,
        mask: &Tensor,
    ) -> mmgen_models::Result<Tensor> {
        self.predict(xs, timesteps, &self.encode_ids(ids, mask)?)
    }
}

/// Trains the text encoder and DiT of `config` (its VAE part must match `vae`) and
/// writes the model folder to `run.out`. Returns the metrics.
#[allow(clippy::too_many_arguments)]
pub fn train_text_image(
    config: &HybridImageConfig,
    tokenizer: &TextTokenizer,
    vae: &TrainedVae,
    extra: &TextImageOptions,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    if config.vae != vae.config {
        return Err(TrainError::Invalid(format!(
            "the VAE folder holds {:?}; the model expects {:?}",
            vae.config, config.vae
        )));
    }
    extra.check()?;
    let config = HybridImageConfig {
        latent_scale: vae.latent_scale,
        ..config.clone()
    };
    // 1. The model on a VarMap; the VAE part set from its folder and kept frozen.
    let varmap = VarMap::new();
    let model = HybridImage::new(
        &config,
        tokenizer.clone(),
        seeded_var_builder(&varmap, options.seed, DType::F32, device),
        device,
    )?;
    let vae_weights = vae.on_device(device)?;
    set_prefixed(&varmap, "vae.", &vae_weights)?;
    let frozen: HashMap<String, Tensor> = vae_weights.into_iter().map(|(k, v)| (format!("vae.{k}"), v)).collect();
    // 2. Data: workers render and encode with the VAE on the CPU.
    let clean = latent_images(&config, tokenizer, vae, options.batch, options.seed)?;
    // 3. The loop.
    fit_denoiser(
        DenoiserRun {
            model: &model,
            varmap: &varmap,
            frozen: &frozen,
            build: &|vb| HybridImage::new(&config, tokenizer.clone(), vb, device),
            schedule: NoiseSchedule::new(config.schedule, config.train_steps)?,
            prediction: config.prediction,
            options: extra.clone(),
        },
        clean,
        ModelFolder {
            dir: run.out,
            config: &config,
            tokenizer,
        },
        json!({"model": "hybrid-image"}),
        options,
        run,
        device,
        progress,
    )
}

/// Clean batches of the image stream: VAE latents (scaled posterior means) of
/// training-split renders and their tokenized captions.
fn latent_images(
    config: &HybridImageConfig,
    tokenizer: &TextTokenizer,
    vae: &TrainedVae,
    batch: usize,
    seed: u64,
) -> Result<impl Fn(u64) -> Result<CleanBatch> + Send + Sync + 'static> {
    let cpu_vae = Vae::new(
        &vae.config,
        VarBuilder::from_tensors(vae.tensors.clone(), DType::F32, &Device::Cpu),
    )?;
    let max_len = config.text.max_len;
    let tok = tokenizer.clone();
    let stream = StreamConfig {
        max_tokens: max_len,
        tokenize: Arc::new(move |text: &str| tok.encode(text, max_len).unwrap_or_default()),
        ..image_stream(config.vae.image_size, batch, seed, Split::Train)
    };
    let scale = config.latent_scale;
    Ok(move |index| {
        let batch = render_batch(&stream, index)?;
        let images = batch
            .images
            .ok_or_else(|| TrainError::Invalid("image stream without images".into()))?;
        Ok(CleanBatch {
            data: cpu_vae.encode(&images)?.mean.affine(scale, 0.0)?,
            tokens: batch.tokens,
            token_mask: batch.token_mask,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::train_tokenizer;
    use crate::vae::train_vae;
    use mmgen_models::hybrid_image::{ImageRequest, ImageSettings};
    use mmgen_models::sampling::SamplingSettings;

    /// The tiny configuration trains in seconds, measurably lowers the loss, and the
    /// folder it writes loads and generates.
    #[test]
    fn tiny_text_image_training_lowers_the_loss() {
        let root = std::env::temp_dir().join(format!("mmgen-t2i-{}", std::process::id()));
        let quick = |steps| FitOptions {
            log_every: 1,
            ..FitOptions::new(steps, 8, 3e-3, 1)
        };
        let run = |out: &'static str| RunInfo {
            out: Box::leak(root.join(out).into_boxed_path()),
            command: "test".into(),
            eval_samples: 8,
            checkpoint_every: 0,
            resume: None,
        };
        train_vae(&VaeConfig::tiny(), 1e-5, &quick(10), &run("vae"), &Device::Cpu, |_| {}).unwrap();
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        let vae = TrainedVae::load(&root.join("vae")).unwrap();
        assert!(vae.latent_scale > 0.0);
        let config = HybridImageConfig::tiny(tokenizer.vocab_size());
        let metrics = train_text_image(
            &config,
            &tokenizer,
            &vae,
            &TextImageOptions::default(),
            &quick(150),
            &run("model"),
            &Device::Cpu,
            |_| {},
        )
        .unwrap();
        let validation = &metrics["validation_loss"];
        let (first, last) = (
            validation["initial"].as_f64().unwrap(),
            validation["final"].as_f64().unwrap(),
        );
        assert!(last < 0.85 * first, "validation loss {first} -> {last}");
        let model = HybridImage::load(&root.join("model"), &Device::Cpu).unwrap();
        let settings = ImageSettings {
            sampling: SamplingSettings {
                steps: 3,
                ..SamplingSettings::default()
            },
            ..ImageSettings::default()
        };
        let images = model
            .generate(
                &[ImageRequest {
                    prompt: "a red circle".into(),
                    seed: 1,
                }],
                &settings,
                |_, _| {},
            )
            .unwrap();
        assert_eq!(images[0].dimensions(), (16, 16));
        // A VAE of another shape is refused.
        let other = HybridImageConfig {
            vae: VaeConfig::base(),
            ..config
        };
        let err = train_text_image(
            &other,
            &tokenizer,
            &vae,
            &TextImageOptions::default(),
            &quick(1),
            &run("other"),
            &Device::Cpu,
            |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("the VAE folder holds"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
