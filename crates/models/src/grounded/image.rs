//! Drawing plans with the grounded renderer: the denoising loop in pixel space, with
//! classifier-free guidance against the null plan, img2img and inpainting.
//!
//! A renderer folder holds `config.json` ([`GroundedRendererConfig`]) and
//! `model.safetensors` (f16). [`GroundedRenderer::render`] reads as the numbered steps
//! of a diffusers pipeline.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::{imageops, RgbImage};
use mmgen_diffusion::{denoise, sampler_by_name, DenoiseRequest, Inpaint, NoiseSchedule};

use crate::error::{ModelError, Result};
use crate::grounded::plan::{PlanBatch, PlanIds, ScenePlan};
use crate::grounded::renderer::{GroundedRenderer, GroundedRendererConfig};
use crate::hybrid_image::{images_to_tensor, tensor_to_images, ImageSettings};
use crate::sampling::{guided_model, SamplingSettings};
use crate::weights::{load_weights_folder, FolderFiles};

/// The grounded renderer's default sampling: fewer steps than the end-to-end model
/// needs, since the plan already fixes what goes where.
pub fn default_settings() -> ImageSettings {
    ImageSettings {
        sampling: SamplingSettings {
            steps: 20,
            guidance: 1.0,
            ..SamplingSettings::default()
        },
        ..ImageSettings::default()
    }
}

impl GroundedRenderer {
    /// Reads a renderer folder (`config.json`, `model.safetensors`).
    pub fn load(dir: &Path, device: &Device) -> Result<GroundedRenderer> {
        GroundedRenderer::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<GroundedRenderer> {
        load_weights_folder(files, device, "grounded renderer", |c: &GroundedRendererConfig, vb| {
            GroundedRenderer::new(c, vb, device)
        })
    }

    /// The ids of `plan` under this renderer's vocabulary (errors name the field).
    pub fn plan_ids(&self, plan: &ScenePlan) -> Result<PlanIds> {
        PlanIds::of(plan, &self.config().vocab)
    }

    /// Draws each `(plan, seed)`; `progress(done, total)` after every sampler step.
    pub fn render(
        &self,
        requests: &[(PlanIds, u64)],
        settings: &ImageSettings,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<RgbImage>> {
        // 1. Validate.
        settings.check()?;
        if requests.is_empty() {
            return Err(ModelError::Invalid("no plans to render".into()));
        }
        let device = self.device().clone();
        let b = requests.len();
        let size = self.config().image_size;
        // 2. Ground the plans and, for guidance, as many null plans: once per request.
        let guide = settings.sampling.guidance != 1.0;
        let mut plans: Vec<Option<&PlanIds>> = requests.iter().map(|(p, _)| Some(p)).collect();
        if guide {
            plans.extend(std::iter::repeat_n(None, b));
        }
        let grounding = self.ground(&PlanBatch::new(&plans, self.config().null_globals(), &device)?)?;
        // 3. The sampler and its noise levels.
        let schedule = NoiseSchedule::new(self.config().schedule, self.config().train_steps)?;
        let mut sampler = sampler_by_name(&settings.sampling.sampler, &schedule)?;
        // 4. img2img / inpainting in pixel space.
        let s = size as u32;
        let init = match &settings.init {
            Some((image, strength)) => {
                let image = imageops::resize(image, s, s, imageops::FilterType::Triangle);
                Some((images_to_tensor(&vec![image; b], &device)?, *strength))
            }
            None => None,
        };
        let mask = match &settings.mask {
            Some(mask) => {
                let small = imageops::resize(mask, s, s, imageops::FilterType::Triangle);
                let values: Vec<f32> = small.pixels().map(|p| (p.0[0] > 127) as u8 as f32).collect();
                Some(Tensor::from_vec(values, (1, 1, size, size), &device)?.repeat((b, 1, 1, 1))?)
            }
            None => None,
        };
        // 5. Denoise, with guidance against the null plan.
        let seeds: Vec<u64> = requests.iter().map(|(_, seed)| *seed).collect();
        let request = DenoiseRequest {
            steps: settings.sampling.steps,
            seeds: &seeds,
            prediction: self.config().prediction,
            init: init.as_ref().map(|(x, s)| (x, *s)),
            inpaint: match (&mask, &init) {
                (Some(mask), Some((known, _))) => Some(Inpaint { known, mask }),
                _ => None,
            },
        };
        let model = guided_model(b, settings.sampling.guidance, &device, |xs, t| {
            self.predict(xs, t, &grounding)
        });
        let images = denoise(
            sampler.as_mut(),
            &[b, 3, size, size],
            &device,
            &request,
            model,
            progress,
        )?;
        // 6. To pixels.
        tensor_to_images(&images)
    }
}
