//! Training the hybrid text-to-audio model: a text encoder (optionally started from
//! the image model's, so that one encoder's habits carry over) and the mel DiT learn
//! jointly from world music clips and their audio captions (training split only).

use std::collections::HashMap;
use std::path::Path;

use crate::fit::RunInfo;
use crate::fit::{FitOptions, StepReport};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mmgen_diffusion::NoiseSchedule;
use mmgen_models::hybrid_audio::{window_frames_of, HybridAudio, HybridAudioConfig};
use mmgen_models::mel::MelSpectrogram;
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::weights::{load_f32, set_prefixed};
use mmgen_nn::seeded_var_builder;
use mmgen_world::stream::{render_batch, Modality};
use mmgen_world::{SpecSampler, Split, StreamConfig};
use serde_json::json;

use crate::denoiser::{fit_denoiser, CleanBatch, Denoiser, DenoiserOptions, DenoiserRun, ModelFolder};
use crate::error::{Result, TrainError};

impl Denoiser for HybridAudio {
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

/// Clips used to measure the log-mel mean and standard deviation.
const STAT_CLIPS: usize = 64;

/// A world stream of training-split music clips one window long, with audio captions
/// and no augmentation (the model learns to make clean audio).
fn audio_stream(config: &HybridAudioConfig, tokenizer: &TextTokenizer, batch: usize, seed: u64) -> StreamConfig {
    let max_len = config.text.max_len;
    let tok = tokenizer.clone();
    StreamConfig {
        modality: Modality::Audio {
            seconds: config.window_seconds() as f32,
        },
        sample_rate: config.mel.sample_rate,
        augment: None,
        workers: 1,
        max_tokens: max_len,
        tokenize: std::sync::Arc::new(move |text: &str| tok.encode(text, max_len).unwrap_or_default()),
        sampler: SpecSampler {
            p_music: 1.0,
            ..SpecSampler::default()
        },
        split: Split::Train,
        ..StreamConfig::images(batch, seed)
    }
}

/// Trains the text encoder and mel DiT of `config` and writes the model folder to
/// `run.out`. `text_from` is a hybrid model folder (same tokenizer) whose text
/// encoder (`text.*`) starts the run. Returns the metrics.
#[allow(clippy::too_many_arguments)]
pub fn train_text_audio(
    config: &HybridAudioConfig,
    tokenizer: &TextTokenizer,
    text_from: Option<&Path>,
    extra: &DenoiserOptions,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    extra.check()?;
    config.check()?;
    // 1. Standardise the log-mel by its statistics over fresh training clips.
    let mel = MelSpectrogram::new(&config.mel)?;
    let (mel_mean, mel_std) = mel_statistics(config, tokenizer, &mel, options.seed)?;
    let config = HybridAudioConfig {
        mel_mean,
        mel_std,
        ..config.clone()
    };
    // 2. The model; its text encoder from `text_from` when given.
    let varmap = VarMap::new();
    let model = HybridAudio::new(
        &config,
        tokenizer.clone(),
        seeded_var_builder(&varmap, options.seed, DType::F32, device),
        device,
    )?;
    if let Some(dir) = text_from {
        let text: HashMap<String, Tensor> = load_f32(&dir.join("model.safetensors"), device)?
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("text.").map(|k| (k.to_string(), v)))
            .collect();
        if text.is_empty() {
            return Err(TrainError::file(
                &dir.join("model.safetensors"),
                "holds no text encoder (text.*)",
            ));
        }
        set_prefixed(&varmap, "text.", &text)?;
    }
    // 3. Data: workers render the clips and take their log-mel.
    let stream = audio_stream(&config, tokenizer, options.batch, options.seed);
    let worker_config = config.clone();
    let clean = move |index: u64| -> Result<CleanBatch> {
        let batch = render_batch(&stream, index)?;
        let audio = batch
            .audio
            .ok_or_else(|| TrainError::Invalid("audio stream without audio".into()))?;
        let (b, _) = audio.dims2()?;
        let mut data = Vec::new();
        for row in 0..b {
            let clip: Vec<f32> = audio.get(row)?.to_vec1()?;
            data.extend(window_frames_of(&mel, &worker_config, &clip)?);
        }
        Ok(CleanBatch {
            data: Tensor::from_vec(
                data,
                (b, worker_config.window_frames(), worker_config.mel.n_mels),
                &Device::Cpu,
            )?,
            tokens: batch.tokens,
            token_mask: batch.token_mask,
        })
    };
    // 4. The loop.
    fit_denoiser(
        DenoiserRun {
            model: &model,
            varmap: &varmap,
            frozen: &HashMap::new(),
            build: &|vb| HybridAudio::new(&config, tokenizer.clone(), vb, device),
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
        json!({
            "model": "hybrid-audio",
            "text_from": text_from.map(|p| p.display().to_string()),
            "mel_statistics": {"mean": mel_mean, "std": mel_std, "clips": STAT_CLIPS},
        }),
        options,
        run,
        device,
        progress,
    )
}

/// Mean and standard deviation of log-mel values over [`STAT_CLIPS`] training clips
/// (a stream seed apart from the training batches').
fn mel_statistics(
    config: &HybridAudioConfig,
    tokenizer: &TextTokenizer,
    mel: &MelSpectrogram,
    seed: u64,
) -> Result<(f64, f64)> {
    let stream = audio_stream(config, tokenizer, STAT_CLIPS, seed ^ 0x5747_5354);
    let audio = render_batch(&stream, 0)?
        .audio
        .ok_or_else(|| TrainError::Invalid("audio stream without audio".into()))?;
    let (mut sum, mut sum_sq, mut n) = (0f64, 0f64, 0f64);
    for row in 0..audio.dim(0)? {
        let clip: Vec<f32> = audio.get(row)?.to_vec1()?;
        for &v in &mel.log_mel(&clip).values {
            sum += v as f64;
            sum_sq += (v as f64).powi(2);
            n += 1.0;
        }
    }
    let mean = sum / n;
    let std = (sum_sq / n - mean * mean).max(1e-8).sqrt();
    Ok((mean, std))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::train_tokenizer;
    use mmgen_models::hybrid_audio::{AudioRequest, AudioSettings};
    use mmgen_models::sampling::SamplingSettings;

    /// The tiny configuration trains in seconds, measurably lowers the validation
    /// loss, and the folder it writes loads and generates audio of the asked length.
    #[test]
    fn tiny_text_audio_training_lowers_the_loss() {
        let root = std::env::temp_dir().join(format!("mmgen-t2a-{}", std::process::id()));
        let run = RunInfo {
            out: &root,
            command: "test".into(),
            eval_samples: 8,
            checkpoint_every: 0,
            resume: None,
        };
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        let config = HybridAudioConfig::tiny(tokenizer.vocab_size());
        let options = FitOptions {
            log_every: 1,
            ..FitOptions::new(120, 8, 3e-3, 1)
        };
        let metrics = train_text_audio(
            &config,
            &tokenizer,
            None,
            &DenoiserOptions::default(),
            &options,
            &run,
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
        assert!(metrics["mel_statistics"]["std"].as_f64().unwrap() > 0.5);
        let model = HybridAudio::load(&root, &Device::Cpu).unwrap();
        let settings = AudioSettings {
            sampling: SamplingSettings {
                steps: 3,
                ..SamplingSettings::default()
            },
            seconds: 0.7,
            vocoder_iters: 4,
        };
        let request = AudioRequest {
            prompt: "calm piano music".into(),
            seed: 2,
        };
        let clips = model
            .generate(std::slice::from_ref(&request), &settings, |_, _| {})
            .unwrap();
        // 0.7 s is longer than the tiny window (0.256 s): generated as overlapping windows.
        assert_eq!(clips[0].len(), 11_200);
        assert!(clips[0].iter().all(|v| v.is_finite()));
        let again = model.generate(&[request], &settings, |_, _| {}).unwrap();
        assert_eq!(clips, again, "same seed, same audio");
        let _ = std::fs::remove_dir_all(&root);
    }
}
