//! Timing of the probes' training steps and inference on a device, for
//! `mmgen bench train`. Model families add their own entries beside these.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::probe_data::{audio_batch, image_batch, shape_batch, video_batch, StreamFocus};
use mmgen_diffusion::NoiseSchedule;
use mmgen_eval::probe::audio::{AudioProbe, AudioProbeConfig};
use mmgen_eval::probe::image::{ImageProbe, ImageProbeConfig};
use mmgen_eval::probe::shape::{ShapeProbe, ShapeProbeConfig};
use mmgen_eval::probe::video::{VideoProbe, VideoProbeConfig};
use mmgen_models::dit::{Dit, DitConfig};
use mmgen_models::grounded::{GroundedRenderer, GroundedRendererConfig};
use mmgen_models::text_encoder::{TextEncoder, TextEncoderConfig};
use mmgen_models::vae::{Vae, VaeConfig};

/// The models `mmgen bench train` knows.
pub const BENCH_MODELS: &[&str] = &[
    "probe-image",
    "probe-shape",
    "probe-video",
    "probe-audio",
    "hybrid-image",
    "grounded-renderer",
];

/// How one model trains and infers on one device.
#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    /// Model name (as in [`BENCH_MODELS`]).
    pub model: String,
    /// The device, as candle names it.
    pub device: String,
    /// Samples per training step.
    pub batch: usize,
    /// Trainable parameters.
    pub parameters: usize,
    /// Median seconds of one optimiser step (forward, backward, AdamW), device
    /// synchronised, data already on the device.
    pub step_seconds: f64,
    /// batch / step_seconds.
    pub samples_per_s: f64,
    /// Samples per second that one CPU data worker renders (world, features, upload):
    /// the device is fed when workers x this exceeds `samples_per_s`.
    pub data_samples_per_s_per_worker: f64,
    /// Median seconds of one forward pass on a single sample.
    pub infer_1_seconds: f64,
    /// Median seconds of one forward pass on a whole batch.
    pub infer_batch_seconds: f64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Median seconds of `iters` calls of `f` after `warmup` calls, each followed by a
/// device synchronisation (so that asynchronous GPU work is inside the timing).
fn time(device: &Device, warmup: usize, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

type LossFn<'a, B> = Box<dyn Fn(&B) -> Result<Tensor> + 'a>;
type ForwardFn<'a, B> = Box<dyn Fn(&B, usize) -> Result<Tensor> + 'a>;

/// What the generic timing needs of a model: a loss on a batch and a forward pass on
/// the batch's first `n` samples.
struct Bench<'a, B> {
    model: &'static str,
    varmap: VarMap,
    batch: usize,
    make_batch: Box<dyn Fn(u64) -> Result<B> + 'a>,
    loss: LossFn<'a, B>,
    forward: ForwardFn<'a, B>,
}

fn run<B>(bench: Bench<B>, iters: usize, device: &Device) -> Result<TrainBench> {
    let start = Instant::now();
    let data_batches = 2;
    let mut batches = Vec::with_capacity(data_batches);
    for i in 0..data_batches {
        batches.push((bench.make_batch)(i as u64)?);
    }
    device.synchronize()?;
    let data_rate = (data_batches * bench.batch) as f64 / start.elapsed().as_secs_f64();
    let parameters = bench.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let mut optimiser = AdamW::new(bench.varmap.all_vars(), ParamsAdamW::default())?;
    let mut i = 0;
    let step_seconds = time(device, 3, iters, || {
        let loss = (bench.loss)(&batches[i % data_batches])?;
        optimiser.backward_step(&loss)?;
        i += 1;
        Ok(())
    })?;
    let infer = |n: usize| {
        time(device, 2, iters, || {
            (bench.forward)(&batches[0], n)?;
            Ok(())
        })
    };
    let infer_1_seconds = infer(1)?;
    let infer_batch_seconds = infer(bench.batch)?;
    Ok(TrainBench {
        model: bench.model.to_string(),
        device: format!("{device:?}"),
        batch: bench.batch,
        parameters,
        step_seconds,
        samples_per_s: bench.batch as f64 / step_seconds,
        data_samples_per_s_per_worker: data_rate,
        infer_1_seconds,
        infer_batch_seconds,
    })
}

fn varmap(device: &Device) -> (VarMap, VarBuilder<'static>) {
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, 0, DType::F32, device);
    (varmap, vb)
}

/// Times `model`'s training step (shipped configuration, `batch` samples) and its
/// inference on `device`, median of `iters` runs each.
pub fn bench_training(model: &str, batch: usize, iters: usize, device: &Device) -> Result<TrainBench> {
    if batch == 0 || iters == 0 {
        return Err(TrainError::Invalid(format!(
            "batch ({batch}) and iters ({iters}) must be at least 1"
        )));
    }
    let (vars, vb) = varmap(device);
    match model {
        "probe-image" => {
            let config = ImageProbeConfig::base();
            let probe = ImageProbe::new(&config, vb)?;
            run(
                Bench {
                    model: "probe-image",
                    varmap: vars,
                    batch,
                    make_batch: Box::new(|i| {
                        image_batch(config.image_size, batch, 0, i, StreamFocus::default(), device)
                    }),
                    loss: Box::new(|b| Ok(probe.loss(&b.xs, &b.targets)?.0)),
                    forward: Box::new(|b, n| Ok(probe.forward(&b.xs.narrow(0, 0, n)?)?.0)),
                },
                iters,
                device,
            )
        }
        "probe-shape" => {
            // `batch` counts images; each gives 1-4 crops.
            let config = ShapeProbeConfig::base();
            let probe = ShapeProbe::new(&config, vb)?;
            run(
                Bench {
                    model: "probe-shape",
                    varmap: vars,
                    batch,
                    make_batch: Box::new(|i| shape_batch(&config, batch, 0, i, StreamFocus::default(), device)),
                    loss: Box::new(|b| Ok(b.loss(&probe)?.0)),
                    forward: Box::new(|b, n| Ok(probe.forward(&b.crops.narrow(0, 0, n.min(b.crops.dim(0)?))?)?.0)),
                },
                iters,
                device,
            )
        }
        "probe-video" => {
            let probe = VideoProbe::new(&VideoProbeConfig::base(), vb)?;
            run(
                Bench {
                    model: "probe-video",
                    varmap: vars,
                    batch,
                    make_batch: Box::new(|i| video_batch(batch, 0, i, device)),
                    loss: Box::new(|b| Ok(probe.loss(&b.xs, &b.motions)?.0)),
                    forward: Box::new(|b, n| Ok(probe.forward(&b.xs.narrow(0, 0, n)?)?)),
                },
                iters,
                device,
            )
        }
        "probe-audio" => {
            let config = AudioProbeConfig::base();
            let probe = AudioProbe::new(&config, vb)?;
            run(
                Bench {
                    model: "probe-audio",
                    varmap: vars,
                    batch,
                    make_batch: Box::new(|i| audio_batch(&config, batch, 0, i, device)),
                    loss: Box::new(|b| Ok(probe.loss(&b.xs, &b.instruments, &b.moods)?.0)),
                    forward: Box::new(|b, n| Ok(probe.forward(&b.xs.narrow(0, 0, n)?)?.0)),
                },
                iters,
                device,
            )
        }
        "hybrid-image" => {
            // The text encoder and DiT of the shipped shape (a 1024-token vocabulary);
            // the data rate includes rendering and encoding with a (random) VAE.
            let text_cfg = TextEncoderConfig::base(1024);
            let dit_cfg = DitConfig::base(text_cfg.dim);
            let vae_cfg = VaeConfig::base();
            let text = TextEncoder::new(&text_cfg, vb.pp("text"))?;
            let dit = Dit::new(&dit_cfg, vb.pp("dit"))?;
            let vae = Vae::new(&vae_cfg, VarBuilder::zeros(DType::F32, &Device::Cpu))?;
            let len = 32;
            run(
                Bench {
                    model: "hybrid-image",
                    varmap: vars,
                    batch,
                    make_batch: Box::new(|i| {
                        let images =
                            image_batch(vae_cfg.image_size, batch, 0, i, StreamFocus::default(), &Device::Cpu)?.xs;
                        let latents = vae.encode(&images)?.mean.to_device(device)?;
                        let noise = Tensor::randn(0f32, 1.0, latents.shape(), device)?;
                        let ids = Tensor::zeros((batch, len), DType::U32, device)?;
                        let mask = Tensor::ones((batch, len), DType::F32, device)?;
                        let t = Tensor::full(500f32, batch, device)?;
                        Ok((latents, noise, ids, mask, t))
                    }),
                    loss: Box::new(|(latents, noise, ids, mask, t)| {
                        let (states, pooled) = text.forward(ids, mask)?;
                        let xs = (latents * 0.5)?.add(&(noise * 0.866)?)?;
                        let out = dit.forward(&xs, t, &states, mask, &pooled)?;
                        Ok((out - noise)?.sqr()?.mean_all()?)
                    }),
                    forward: Box::new(|(latents, _, ids, mask, t), n| {
                        let (ids, mask, t) = (ids.narrow(0, 0, n)?, mask.narrow(0, 0, n)?, t.narrow(0, 0, n)?);
                        let (states, pooled) = text.forward(&ids, &mask)?;
                        Ok(dit.forward(&latents.narrow(0, 0, n)?, &t, &states, &mask, &pooled)?)
                    }),
                },
                iters,
                device,
            )
        }
        "grounded-renderer" => {
            // The shipped shape; its step is ground + predict + squared error to the
            // clean image (the trainer adds the occupancy term and weights), as
            // bench/grounded_renderer_torch.py --train-step times it.
            let config = GroundedRendererConfig::base(crate::renderer::world_vocab());
            let renderer = GroundedRenderer::new(&config, vb, device)?;
            let schedule = NoiseSchedule::new(config.schedule, config.train_steps)?;
            run(
                Bench {
                    model: "grounded-renderer",
                    varmap: vars,
                    batch,
                    make_batch: Box::new(|i| crate::renderer::bench_batch(&config, &schedule, batch, i, device)),
                    loss: Box::new(|b| {
                        let grounding = renderer.ground(&b.plans)?;
                        let out = renderer.predict(&b.noisy, &b.timesteps, &grounding)?;
                        Ok((out - &b.images)?.sqr()?.mean_all()?)
                    }),
                    forward: Box::new(|b, n| {
                        let grounding = renderer.ground(&b.plans.narrow(n)?)?;
                        Ok(renderer.predict(&b.noisy.narrow(0, 0, n)?, &b.timesteps.narrow(0, 0, n)?, &grounding)?)
                    }),
                },
                iters,
                device,
            )
        }
        other => Err(TrainError::Invalid(format!(
            "unknown model '{other}'; allowed: {}",
            BENCH_MODELS.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_every_model_and_rejects_unknown_ones() {
        let dev = Device::Cpu;
        let bench = bench_training("probe-video", 4, 1, &dev).unwrap();
        assert!(bench.step_seconds > 0.0 && bench.parameters > 0 && bench.samples_per_s > 0.0);
        // The grounded renderer's step is the one its PyTorch peer times.
        let renderer = bench_training("grounded-renderer", 1, 1, &dev).unwrap();
        assert!(renderer.step_seconds > 0.0 && renderer.parameters > 1_000_000);
        let err = bench_training("probe-nothing", 4, 1, &dev).unwrap_err().to_string();
        assert!(err.contains("allowed: probe-image"), "{err}");
        assert!(bench_training("probe-audio", 0, 1, &dev).is_err());
    }
}
