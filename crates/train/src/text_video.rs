//! Training the hybrid text-to-video model: a trained image model's DiT is inflated
//! with temporal attention (gates at zero: training starts from the image model
//! drawing every frame) and trained on windows of world clips with their video
//! captions (training split only). The VAE stays frozen.
//!
//! The world spreads a clip's frames over the whole clip time, so the windows are cut
//! from clips of `clip_frames` frames (the length generation defaults to) at a random
//! offset: a window then moves as much per frame as a generated clip does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::fit::RunInfo;
use crate::fit::{FitOptions, StepReport};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mmgen_diffusion::NoiseSchedule;
use mmgen_models::hybrid_image::read_config;
use mmgen_models::hybrid_video::{HybridVideo, HybridVideoConfig};
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::vae::Vae;
use mmgen_models::weights::{load_f32, set_inflated};
use mmgen_nn::seeded_var_builder;
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::stream::{render_batch, Modality};
use mmgen_world::{Split, StreamConfig};
use rand::Rng;
use serde_json::json;

use crate::denoiser::{fit_denoiser, CleanBatch, Denoiser, DenoiserOptions, DenoiserRun, ModelFolder};
use crate::error::{Result, TrainError};

impl Denoiser for HybridVideo {
    fn predict_ids(
        &self,
        xs: &Tensor,
        timesteps: &Tensor,
        ids: &Tensor,
        mask: &Tensor,
    ) -> mmgen_models::Result<Tensor> {
        let model = self.inner();
        model.predict(xs, timesteps, &model.encode_ids(ids, mask)?)
    }
}

/// What shapes a text-to-video run besides the loop.
#[derive(Clone, Debug)]
pub struct TextVideoOptions {
    /// Caption dropout and EMA.
    pub denoiser: DenoiserOptions,
    /// Frames per training window (the temporal attention's span).
    pub window: usize,
    /// Frames of the clips windows are cut from.
    pub clip_frames: usize,
    /// Frames per second recorded in the model.
    pub fps: u32,
}

/// Trains a video model inflated from the image model folder `image_dir` (its text
/// encoder, VAE and DiT; same tokenizer) and writes it to `run.out`. Returns the
/// metrics.
pub fn train_text_video(
    image_dir: &Path,
    extra: &TextVideoOptions,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    extra.denoiser.check()?;
    if extra.window < 2 || extra.clip_frames < extra.window {
        return Err(TrainError::Invalid(format!(
            "window {} and clip_frames {}: need 2 <= window <= clip_frames",
            extra.window, extra.clip_frames
        )));
    }
    let image_config = read_config(image_dir)?;
    let tokenizer = TextTokenizer::load(&image_dir.join("tokenizer.json"))?;
    let config = HybridVideoConfig::from_image(&image_config, extra.window, extra.fps);
    // 1. The inflated model: every image parameter from the image model, temporal
    //    layers fresh (zero-gated).
    let varmap = VarMap::new();
    let model = HybridVideo::new(
        &config,
        tokenizer.clone(),
        seeded_var_builder(&varmap, options.seed, DType::F32, device),
        device,
    )?;
    let image_weights = load_f32(&image_dir.join("model.safetensors"), device)?;
    set_inflated(&varmap, &image_weights, |name| {
        name.starts_with("dit.temporal.") || name == "dit.frame_positions"
    })?;
    let frozen: HashMap<String, Tensor> = image_weights
        .iter()
        .filter(|(k, _)| k.starts_with("vae."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // 2. Data: workers render clips, cut a window and encode its frames.
    let clean = latent_clips(&config, &tokenizer, &frozen, extra, options.batch, options.seed)?;
    // 3. The loop, the VAE frozen.
    fit_denoiser(
        DenoiserRun {
            model: &model,
            varmap: &varmap,
            frozen: &frozen,
            build: &|vb| HybridVideo::new(&config, tokenizer.clone(), vb, device),
            schedule: NoiseSchedule::new(image_config.schedule, image_config.train_steps)?,
            prediction: image_config.prediction,
            options: extra.denoiser.clone(),
        },
        clean,
        ModelFolder {
            dir: run.out,
            config: &config,
            tokenizer: &tokenizer,
        },
        json!({
            "model": "hybrid-video",
            "inflated_from": image_dir.display().to_string(),
            "window": extra.window,
            "clip_frames": extra.clip_frames,
        }),
        options,
        run,
        device,
        progress,
    )
}

/// Clean batches of windows: (b, window, s, s, c) scaled VAE latents of `window`
/// consecutive frames of training-split clips, at a random offset.
fn latent_clips(
    config: &HybridVideoConfig,
    tokenizer: &TextTokenizer,
    vae_weights: &HashMap<String, Tensor>,
    extra: &TextVideoOptions,
    batch: usize,
    seed: u64,
) -> Result<impl Fn(u64) -> Result<CleanBatch> + Send + Sync + 'static> {
    let m = &config.model;
    let vae_cpu: HashMap<String, Tensor> = vae_weights
        .iter()
        .map(|(k, v)| Ok((k.trim_start_matches("vae.").to_string(), v.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let vae = Vae::new(&m.vae, VarBuilder::from_tensors(vae_cpu, DType::F32, &Device::Cpu))?;
    let max_len = m.text.max_len;
    let tok = tokenizer.clone();
    let stream = StreamConfig {
        modality: Modality::Video {
            frames: extra.clip_frames as u32,
        },
        size: m.vae.image_size as u32,
        workers: 1,
        max_tokens: max_len,
        tokenize: Arc::new(move |text: &str| tok.encode(text, max_len).unwrap_or_default()),
        split: Split::Train,
        ..StreamConfig::images(batch, seed)
    };
    let (scale, window, clip_frames) = (m.latent_scale, extra.window, extra.clip_frames);
    let (ls, lc) = (m.dit.latent_size, m.dit.latent_channels);
    Ok(move |index: u64| -> Result<CleanBatch> {
        let batch = render_batch(&stream, index)?;
        let videos = batch
            .videos
            .ok_or_else(|| TrainError::Invalid("video stream without videos".into()))?;
        let (b, _, ch, h, w) = videos.dims5()?;
        let mut rng = rng_for(mix64(seed ^ mix64(index) ^ 0x57494E44), Purpose::Augment);
        let windows = (0..b)
            .map(|row| {
                let offset = rng.random_range(0..=clip_frames - window);
                videos.get(row)?.narrow(0, offset, window)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let frames = Tensor::stack(&windows, 0)?.reshape((b * window, ch, h, w))?;
        let latents = vae.encode(&frames)?.mean.affine(scale, 0.0)?;
        Ok(CleanBatch {
            data: latents.reshape((b, window, ls, ls, lc))?,
            tokens: batch.tokens,
            token_mask: batch.token_mask,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::train_tokenizer;
    use crate::text_image::{train_text_image, TextImageOptions, TrainedVae};
    use crate::vae::train_vae;
    use mmgen_models::hybrid_image::HybridImageConfig;
    use mmgen_models::hybrid_video::{VideoRequest, VideoSettings};
    use mmgen_models::sampling::SamplingSettings;
    use mmgen_models::vae::VaeConfig;

    /// A tiny image model inflates, trains, lowers the loss, and the folder loads and
    /// generates clips longer than its window.
    #[test]
    fn tiny_text_video_training_lowers_the_loss() {
        let root = std::env::temp_dir().join(format!("mmgen-t2v-{}", std::process::id()));
        let quick = |steps| FitOptions {
            log_every: 1,
            ..FitOptions::new(steps, 4, 3e-3, 1)
        };
        let run = |out: &str| RunInfo {
            out: Box::leak(root.join(out).into_boxed_path()),
            command: "test".into(),
            eval_samples: 4,
            checkpoint_every: 0,
            resume: None,
        };
        train_vae(&VaeConfig::tiny(), 1e-5, &quick(5), &run("vae"), &Device::Cpu, |_| {}).unwrap();
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        let vae = TrainedVae::load(&root.join("vae")).unwrap();
        let config = HybridImageConfig::tiny(tokenizer.vocab_size());
        train_text_image(
            &config,
            &tokenizer,
            &vae,
            &TextImageOptions::default(),
            &quick(5),
            &run("image"),
            &Device::Cpu,
            |_| {},
        )
        .unwrap();
        let extra = TextVideoOptions {
            denoiser: DenoiserOptions::default(),
            window: 4,
            clip_frames: 8,
            fps: 8,
        };
        let metrics = train_text_video(
            &root.join("image"),
            &extra,
            &quick(60),
            &run("video"),
            &Device::Cpu,
            |_| {},
        )
        .unwrap();
        let validation = &metrics["validation_loss"];
        let (first, last) = (
            validation["initial"].as_f64().unwrap(),
            validation["final"].as_f64().unwrap(),
        );
        assert!(last < 0.9 * first, "validation loss {first} -> {last}");
        let model = HybridVideo::load(&root.join("video"), &Device::Cpu).unwrap();
        let settings = VideoSettings {
            sampling: SamplingSettings {
                steps: 2,
                ..SamplingSettings::default()
            },
            frames: 7,
            ..VideoSettings::default()
        };
        let clips = model
            .generate(
                &[VideoRequest {
                    prompt: "a red circle moving left".into(),
                    seed: 1,
                }],
                &settings,
                |_, _| {},
            )
            .unwrap();
        assert_eq!(clips[0].len(), 7);
        assert_eq!(clips[0][0].dimensions(), (16, 16));
        let bad = train_text_video(
            &root.join("image"),
            &TextVideoOptions { window: 9, ..extra },
            &quick(1),
            &run("bad"),
            &Device::Cpu,
            |_| {},
        )
        .unwrap_err();
        assert!(bad.to_string().contains("window"), "{bad}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
