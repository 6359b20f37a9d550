//! The hybrid text-to-image pipeline (the seed's "UniModal-X"): a Transformer text
//! encoder, a diffusion transformer over VAE latents, and the VAE decoder.
//!
//! A model folder holds `config.json` ([`HybridImageConfig`]), `tokenizer.json` and
//! `model.safetensors` (parameters under `text.`, `dit.` and `vae.`, f16).
//! [`HybridImage::generate`] reads as the numbered steps of a diffusers pipeline.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use image::{imageops, GrayImage, RgbImage};
use mmgen_diffusion::{denoise, sampler_by_name, BetaSchedule, DenoiseRequest, Inpaint, NoiseSchedule, Prediction};
use serde::{Deserialize, Serialize};

use crate::dit::{Dit, DitConfig};
use crate::error::{ModelError, Result};
use crate::sampling::{check_prompts, encode_guided, guided_model, SamplingSettings};
pub use crate::text_encoder::TextStates;
use crate::text_encoder::{TextEncoder, TextEncoderConfig};
use crate::tokenizer::TextTokenizer;
use crate::vae::{Vae, VaeConfig};
use crate::weights::{load_folder, read_folder_config, FolderFiles};

/// Everything that shapes a hybrid text-to-image model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HybridImageConfig {
    /// The text encoder.
    pub text: TextEncoderConfig,
    /// The autoencoder.
    pub vae: VaeConfig,
    /// The diffusion transformer.
    pub dit: DitConfig,
    /// The training noise schedule.
    pub schedule: BetaSchedule,
    /// Training timesteps.
    pub train_steps: usize,
    /// What the DiT predicts.
    pub prediction: Prediction,
    /// VAE latent means are multiplied by this before diffusion (1 / their standard
    /// deviation over training images, Rombach et al. 2022 sec. G).
    pub latent_scale: f64,
}

impl HybridImageConfig {
    /// The shipped shape for a `vocab_size` tokenizer.
    pub fn base(vocab_size: usize) -> HybridImageConfig {
        let text = TextEncoderConfig::base(vocab_size);
        HybridImageConfig {
            dit: DitConfig::base(text.dim),
            text,
            vae: VaeConfig::base(),
            schedule: BetaSchedule::stable_diffusion(),
            train_steps: 1000,
            prediction: Prediction::V,
            latent_scale: 1.0,
        }
    }

    /// A tiny model for tests (16x16 images).
    pub fn tiny(vocab_size: usize) -> HybridImageConfig {
        let text = TextEncoderConfig::tiny(vocab_size);
        HybridImageConfig {
            dit: DitConfig::tiny(text.dim),
            text,
            vae: VaeConfig::tiny(),
            schedule: BetaSchedule::stable_diffusion(),
            train_steps: 1000,
            prediction: Prediction::V,
            latent_scale: 1.0,
        }
    }

    /// Checks that the parts fit together.
    pub fn check(&self) -> Result<()> {
        let (v, d) = (&self.vae, &self.dit);
        if v.latent_size() != d.latent_size || v.latent_channels != d.latent_channels || d.text_dim != self.text.dim {
            return Err(ModelError::Invalid(format!(
                "the parts do not fit: VAE latents {}x{}x{}, DiT takes {}x{}x{} with text width {} (encoder {})",
                v.latent_size(),
                v.latent_size(),
                v.latent_channels,
                d.latent_size,
                d.latent_size,
                d.latent_channels,
                d.text_dim,
                self.text.dim
            )));
        }
        if !(self.latent_scale.is_finite() && self.latent_scale > 0.0) {
            return Err(ModelError::Invalid(format!(
                "latent_scale {} must be positive",
                self.latent_scale
            )));
        }
        Ok(())
    }
}

/// One image to make.
pub type ImageRequest = crate::sampling::SeededPrompt;

/// How to make them (shared by a batch).
#[derive(Clone, Debug, Default)]
pub struct ImageSettings {
    /// Steps, guidance, negative prompt, sampler.
    pub sampling: SamplingSettings,
    /// img2img: the starting image (resized to the model's size) and the strength.
    pub init: Option<(RgbImage, f64)>,
    /// Inpainting: white (> 127) where to generate, black where to keep `init`.
    pub mask: Option<GrayImage>,
}

impl ImageSettings {
    /// Rejects settings that cannot run, saying which and what is allowed.
    pub fn check(&self) -> Result<()> {
        self.sampling.check()?;
        if let Some((_, strength)) = &self.init {
            if !(*strength > 0.0 && *strength <= 1.0) {
                return Err(ModelError::Invalid(format!(
                    "strength is {strength}; allowed more than 0, at most 1"
                )));
            }
        }
        if self.mask.is_some() && self.init.is_none() {
            return Err(ModelError::Invalid(
                "a mask needs an init image (the part to keep)".into(),
            ));
        }
        Ok(())
    }
}

/// A loaded hybrid text-to-image model.
pub struct HybridImage {
    tokenizer: TextTokenizer,
    text: TextEncoder,
    vae: Vae,
    dit: Dit,
    schedule: NoiseSchedule,
    config: HybridImageConfig,
    device: Device,
}

impl HybridImage {
    /// Builds the model on `vb` (parameters under `text.`, `vae.`, `dit.`).
    pub fn new(
        config: &HybridImageConfig,
        tokenizer: TextTokenizer,
        vb: VarBuilder,
        device: &Device,
    ) -> Result<HybridImage> {
        config.check()?;
        config.text.check_tokenizer(&tokenizer)?;
        Ok(HybridImage {
            tokenizer,
            text: TextEncoder::new(&config.text, vb.pp("text"))?,
            vae: Vae::new(&config.vae, vb.pp("vae"))?,
            dit: Dit::new(&config.dit, vb.pp("dit"))?,
            schedule: NoiseSchedule::new(config.schedule, config.train_steps)?,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Loads a model folder (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn load(dir: &Path, device: &Device) -> Result<HybridImage> {
        HybridImage::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<HybridImage> {
        load_folder(files, device, "hybrid image", |config, tokenizer, vb| {
            HybridImage::new(config, tokenizer, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HybridImageConfig {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The autoencoder.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// The noise schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// The text encoder.
    pub fn text_encoder(&self) -> &TextEncoder {
        &self.text
    }

    /// The diffusion transformer.
    pub fn dit(&self) -> &Dit {
        &self.dit
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Encodes prompts (padded to a common length).
    pub fn encode_text(&self, prompts: &[&str]) -> Result<TextStates> {
        self.text.encode_prompts(&self.tokenizer, prompts, &self.device)
    }

    /// Encodes token ids (b, L) with their mask (b, L).
    pub fn encode_ids(&self, ids: &Tensor, mask: &Tensor) -> Result<TextStates> {
        self.text.encode_ids(ids, mask)
    }

    /// The DiT's prediction for noisy scaled latents `xs` (b, s, s, c) at `timesteps` (b,).
    pub fn predict(&self, xs: &Tensor, timesteps: &Tensor, text: &TextStates) -> Result<Tensor> {
        self.dit.forward(xs, timesteps, &text.states, &text.mask, &text.pooled)
    }

    /// Scaled latents (b, s, s, c) of images (b, 3, S, S) in [-1, 1] (posterior means).
    pub fn image_latents(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.vae.encode(images)?.mean.affine(self.config.latent_scale, 0.0)?)
    }

    /// Images (b, 3, S, S) in [-1, 1] from scaled latents.
    pub fn decode_latents(&self, latents: &Tensor) -> Result<Tensor> {
        self.vae.decode(&latents.affine(1.0 / self.config.latent_scale, 0.0)?)
    }

    /// Makes one image per request. `progress(done, total)` is called after every
    /// sampler step.
    pub fn generate(
        &self,
        requests: &[ImageRequest],
        settings: &ImageSettings,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<RgbImage>> {
        // 1. Validate.
        settings.check()?;
        check_prompts(requests.iter().map(|r| r.prompt.as_str()), "to draw")?;
        let b = requests.len();
        let size = self.config.vae.image_size as u32;
        // 2. Encode the prompts and, for guidance, the negative prompt.
        let guide = settings.sampling.guidance != 1.0;
        let prompts: Vec<&str> = requests.iter().map(|r| r.prompt.as_str()).collect();
        let text = encode_guided(
            &self.text,
            &self.tokenizer,
            &prompts,
            &settings.sampling.negative,
            guide,
            &self.device,
        )?;
        let text = self.dit.prepare_text(&text.states, &text.mask, &text.pooled)?;
        // 3. The sampler and its noise levels.
        let mut sampler = sampler_by_name(&settings.sampling.sampler, &self.schedule)?;
        // 4. img2img / inpainting latents.
        let init = match &settings.init {
            Some((image, strength)) => {
                let image = imageops::resize(image, size, size, imageops::FilterType::Triangle);
                let xs = images_to_tensor(&vec![image; b], &self.device)?;
                Some((self.image_latents(&xs)?, *strength))
            }
            None => None,
        };
        let mask = match &settings.mask {
            Some(mask) => Some(latent_mask(mask, self.config.vae.latent_size(), b, &self.device)?),
            None => None,
        };
        // 5. Denoise with classifier-free guidance.
        let ls = self.config.dit.latent_size;
        let shape = [b, ls, ls, self.config.dit.latent_channels];
        let seeds: Vec<u64> = requests.iter().map(|r| r.seed).collect();
        let request = DenoiseRequest {
            steps: settings.sampling.steps,
            seeds: &seeds,
            prediction: self.config.prediction,
            init: init.as_ref().map(|(x, s)| (x, *s)),
            inpaint: match (&mask, &init) {
                (Some(mask), Some((known, _))) => Some(Inpaint { known, mask }),
                _ => None,
            },
        };
        let model = guided_model(b, settings.sampling.guidance, &self.device, |xs, t| {
            self.dit.forward_prepared(xs, t, &text)
        });
        let latents = denoise(sampler.as_mut(), &shape, &self.device, &request, model, progress)?;
        // 6. Decode.
        tensor_to_images(&self.decode_latents(&latents)?)
    }
}

/// Reads `config.json` of a model folder.
pub fn read_config(dir: &Path) -> Result<HybridImageConfig> {
    read_folder_config(dir, "hybrid image")
}

/// Images as (b, 3, h, w) in [-1, 1].
pub fn images_to_tensor(images: &[RgbImage], device: &Device) -> Result<Tensor> {
    let (w, h) = images.first().map(|i| i.dimensions()).unwrap_or((0, 0));
    let mut data = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for image in images {
        if image.dimensions() != (w, h) {
            return Err(ModelError::Invalid("images of different sizes in one batch".into()));
        }
        for c in 0..3 {
            data.extend(image.pixels().map(|p| p.0[c] as f32 / 127.5 - 1.0));
        }
    }
    Ok(Tensor::from_vec(
        data,
        (images.len(), 3, h as usize, w as usize),
        device,
    )?)
}

/// (b, 3, h, w) in [-1, 1] -> images (clamped).
pub fn tensor_to_images(xs: &Tensor) -> Result<Vec<RgbImage>> {
    let (b, _, h, w) = xs.dims4()?;
    let data: Vec<f32> = xs.to_dtype(DType::F32)?.clamp(-1.0, 1.0)?.flatten_all()?.to_vec1()?;
    let plane = h * w;
    Ok((0..b)
        .map(|i| {
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let at = |c: usize| data[(i * 3 + c) * plane + y as usize * w + x as usize];
                image::Rgb([0, 1, 2].map(|c| ((at(c) + 1.0) * 127.5).round() as u8))
            })
        })
        .collect())
}

/// A white-means-generate mask at latent resolution, (b, s, s, 1): a latent cell is
/// regenerated when more than half of its pixels are white.
fn latent_mask(mask: &GrayImage, latent_size: usize, b: usize, device: &Device) -> Result<Tensor> {
    let s = latent_size as u32;
    let small = imageops::resize(mask, s, s, imageops::FilterType::Triangle);
    let values: Vec<f32> = small.pixels().map(|p| (p.0[0] > 127) as u8 as f32).collect();
    let one = Tensor::from_vec(values, (1, latent_size, latent_size, 1), device)?;
    Ok(one.repeat((b, 1, 1, 1))?)
}
