//! The hybrid text-to-video model: the image model's text encoder, VAE and DiT, the
//! DiT inflated with temporal attention after every block (factorised space-time, as
//! in Video LDM, Blattmann et al. 2023; its gates start at zero, so training starts
//! from the image model drawing every frame). Optionally conditioned on a first frame
//! (text + image -> video) by keeping that frame's latent while denoising the rest.
//!
//! The DiT is trained on windows of `dit.frames` frames; a clip of any length is
//! denoised as windows overlapping by half, every window of a step in one batch
//! (chunks in parallel), their predictions averaged where they overlap
//! ([`crate::windows`]) so that chunk borders stay continuous.
//!
//! A model folder holds `config.json` ([`HybridVideoConfig`]: the image model's
//! fields plus `fps`), `tokenizer.json` and `model.safetensors` (f16).

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use image::{imageops, RgbImage};
use mmgen_diffusion::{denoise, sampler_by_name, DenoiseRequest, Inpaint};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::hybrid_image::{images_to_tensor, tensor_to_images, HybridImage, HybridImageConfig};
use crate::sampling::{check_prompts, encode_guided, guided_model, SamplingSettings};
use crate::tokenizer::TextTokenizer;
use crate::weights::{load_folder, FolderFiles};
use crate::windows::windowed_dit;

/// Everything that shapes a hybrid text-to-video model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HybridVideoConfig {
    /// The image model it extends; `model.dit.frames` is the training window.
    #[serde(flatten)]
    pub model: HybridImageConfig,
    /// Frames per second of its clips (the world's clip rate).
    pub fps: u32,
}

impl HybridVideoConfig {
    /// An image model inflated to windows of `frames` frames.
    pub fn from_image(image: &HybridImageConfig, frames: usize, fps: u32) -> HybridVideoConfig {
        HybridVideoConfig {
            model: HybridImageConfig {
                dit: image.dit.with_frames(frames),
                ..image.clone()
            },
            fps,
        }
    }

    /// Checks that the parts fit together and there is a temporal window.
    pub fn check(&self) -> Result<()> {
        self.model.check()?;
        if self.model.dit.frames < 2 || self.fps == 0 {
            return Err(ModelError::Invalid(format!(
                "a video model needs windows of at least 2 frames and fps >= 1; got {} frames at {} fps",
                self.model.dit.frames, self.fps
            )));
        }
        Ok(())
    }
}

/// The longest clip one request may ask for (10 minutes at 24 fps).
pub const MAX_FRAMES: usize = 14_400;

/// One clip to make.
pub type VideoRequest = crate::sampling::SeededPrompt;

/// How to make them (shared by a batch).
#[derive(Clone, Debug)]
pub struct VideoSettings {
    /// Steps, guidance, negative prompt, sampler.
    pub sampling: SamplingSettings,
    /// Frames per clip.
    pub frames: usize,
    /// Text + image -> video: the first frame to start from (resized).
    pub first_frame: Option<RgbImage>,
}

impl Default for VideoSettings {
    fn default() -> VideoSettings {
        VideoSettings {
            sampling: SamplingSettings::default(),
            frames: 24,
            first_frame: None,
        }
    }
}

impl VideoSettings {
    /// Rejects settings that cannot run, saying which and what is allowed.
    pub fn check(&self) -> Result<()> {
        self.sampling.check()?;
        if self.frames == 0 || self.frames > MAX_FRAMES {
            return Err(ModelError::Invalid(format!(
                "frames is {}; allowed 1 to {MAX_FRAMES}",
                self.frames
            )));
        }
        Ok(())
    }
}

/// A loaded hybrid text-to-video model.
pub struct HybridVideo {
    model: HybridImage,
    config: HybridVideoConfig,
}

impl HybridVideo {
    /// Builds the model on `vb` (parameters under `text.`, `vae.`, `dit.`).
    pub fn new(
        config: &HybridVideoConfig,
        tokenizer: TextTokenizer,
        vb: VarBuilder,
        device: &Device,
    ) -> Result<HybridVideo> {
        config.check()?;
        Ok(HybridVideo {
            model: HybridImage::new(&config.model, tokenizer, vb, device)?,
            config: config.clone(),
        })
    }

    /// Loads a model folder (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn load(dir: &Path, device: &Device) -> Result<HybridVideo> {
        HybridVideo::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<HybridVideo> {
        load_folder(files, device, "hybrid video", |config, tokenizer, vb| {
            HybridVideo::new(config, tokenizer, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HybridVideoConfig {
        &self.config
    }

    /// The image model it extends (text encoder, VAE, inflated DiT): training and
    /// latents go through it.
    pub fn inner(&self) -> &HybridImage {
        &self.model
    }

    /// Makes one clip per request. `progress(done, total)` is called after every
    /// sampler step.
    pub fn generate(
        &self,
        requests: &[VideoRequest],
        settings: &VideoSettings,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Vec<RgbImage>>> {
        // 1. Validate.
        settings.check()?;
        check_prompts(requests.iter().map(|r| r.prompt.as_str()), "to show")?;
        let m = &self.model;
        let cfg = &self.config.model;
        let device = m.device();
        let (b, frames) = (requests.len(), settings.frames);
        let (ls, lc) = (cfg.dit.latent_size, cfg.dit.latent_channels);
        // 2. Text, once for all steps.
        let guide = settings.sampling.guidance != 1.0;
        let prompts: Vec<&str> = requests.iter().map(|r| r.prompt.as_str()).collect();
        let text = encode_guided(
            m.text_encoder(),
            m.tokenizer(),
            &prompts,
            &settings.sampling.negative,
            guide,
            device,
        )?;
        let text = m.dit().prepare_text(&text.states, &text.mask, &text.pooled)?;
        // 3. A given first frame is kept (inpainting along time).
        let first = match &settings.first_frame {
            Some(image) => {
                let size = cfg.vae.image_size as u32;
                let image = imageops::resize(image, size, size, imageops::FilterType::Triangle);
                let latent = m
                    .image_latents(&images_to_tensor(&vec![image; b], device)?)?
                    .unsqueeze(1)?;
                let rest = Tensor::zeros((b, frames - 1, ls, ls, lc), latent.dtype(), device)?;
                let known = Tensor::cat(&[latent, rest], 1)?;
                let mut keep = vec![1f32; frames];
                keep[0] = 0.0;
                let mask = Tensor::from_vec(keep, (1, frames, 1, 1, 1), device)?;
                Some((known, mask))
            }
            None => None,
        };
        // 4. Denoise every window of every step in one batch.
        let window = cfg.dit.frames;
        let overlap = window / 2;
        let mut sampler = sampler_by_name(&settings.sampling.sampler, m.schedule())?;
        let seeds: Vec<u64> = requests.iter().map(|r| r.seed).collect();
        let request = DenoiseRequest {
            steps: settings.sampling.steps,
            seeds: &seeds,
            prediction: cfg.prediction,
            init: None,
            inpaint: first.as_ref().map(|(known, mask)| Inpaint { known, mask }),
        };
        let dit = m.dit();
        let network = windowed_dit(|xs, t, text| dit.forward_prepared(xs, t, text), &text, window, overlap);
        let model = guided_model(b, settings.sampling.guidance, device, network);
        let shape = [b, frames, ls, ls, lc];
        let latents = denoise(sampler.as_mut(), &shape, device, &request, model, progress)?;
        // 5. Decode every frame, a bounded batch at a time: memory stays flat in the
        // clip's length.
        let flat = latents.reshape((b * frames, ls, ls, lc))?;
        let mut images = Vec::with_capacity(b * frames);
        for start in (0..b * frames).step_by(DECODE_FRAMES) {
            let n = DECODE_FRAMES.min(b * frames - start);
            images.extend(tensor_to_images(&m.decode_latents(&flat.narrow(0, start, n)?)?)?);
        }
        Ok(images.chunks(frames).map(|clip| clip.to_vec()).collect())
    }
}

/// Frames the autoencoder decodes per call.
const DECODE_FRAMES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid_image::HybridImageConfig;
    use candle_core::DType;
    use candle_nn::VarMap;

    fn tiny_model() -> HybridVideo {
        let texts = ["a red circle moving left", "一个红色的圆"];
        let tok = TextTokenizer::train(texts.iter().cycle().take(20), 300).unwrap();
        let config = HybridVideoConfig::from_image(&HybridImageConfig::tiny(tok.vocab_size()), 4, 8);
        let varmap = VarMap::new();
        let vb = mmgen_nn::seeded_var_builder(&varmap, 5, DType::F32, &Device::Cpu);
        HybridVideo::new(&config, tok, vb, &Device::Cpu).unwrap()
    }

    /// Long clips come out whole and reproducible; a first frame is kept exactly (as
    /// the VAE reconstructs it); bad settings fail clearly.
    #[test]
    fn clips_first_frames_and_errors() {
        let model = tiny_model();
        let request = VideoRequest {
            prompt: "a red circle moving left".into(),
            seed: 4,
        };
        let settings = VideoSettings {
            sampling: SamplingSettings {
                steps: 3,
                ..SamplingSettings::default()
            },
            frames: 9,
            ..VideoSettings::default()
        };
        let clip = model
            .generate(std::slice::from_ref(&request), &settings, |_, _| {})
            .unwrap();
        assert_eq!((clip.len(), clip[0].len()), (1, 9));
        assert_eq!(
            clip,
            model
                .generate(std::slice::from_ref(&request), &settings, |_, _| {})
                .unwrap()
        );
        let first = RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 90]));
        let with_first = VideoSettings {
            first_frame: Some(first.clone()),
            ..settings.clone()
        };
        let clip = model
            .generate(std::slice::from_ref(&request), &with_first, |_, _| {})
            .unwrap();
        let inner = model.inner();
        let device = Device::Cpu;
        let rebuilt = tensor_to_images(
            &inner
                .decode_latents(
                    &inner
                        .image_latents(&images_to_tensor(&[first], &device).unwrap())
                        .unwrap(),
                )
                .unwrap(),
        )
        .unwrap();
        assert_eq!(clip[0][0], rebuilt[0], "the first frame is kept");
        for (bad, says) in [
            (
                VideoSettings {
                    frames: 0,
                    ..settings.clone()
                },
                "frames is 0",
            ),
            (
                VideoSettings {
                    sampling: SamplingSettings {
                        steps: 0,
                        ..settings.sampling.clone()
                    },
                    ..settings.clone()
                },
                "steps is 0",
            ),
        ] {
            let err = model
                .generate(std::slice::from_ref(&request), &bad, |_, _| {})
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
        let empty = VideoRequest {
            prompt: " ".into(),
            seed: 1,
        };
        assert!(model.generate(&[empty], &settings, |_, _| {}).is_err());
    }
}
