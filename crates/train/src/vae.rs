//! Training the autoencoder on world images: reconstruction MSE plus a weak KL term
//! (Rombach et al. 2022 use 1e-6 of a summed loss; here `kl_weight` per pixel),
//! then the latent scale (1 / std of latent means) and reconstruction PSNR on both
//! sides of the split.

use std::time::Instant;

use crate::fit::RunInfo;
use crate::fit::{fit, save_model_folder, CheckpointClock, FitOptions, StepReport};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mmgen_diffusion::gaussian;
use mmgen_models::vae::{psnr, Vae, VaeConfig};
use mmgen_models::weights::{load_f32, set_prefixed};
use mmgen_nn::seeded_var_builder;
use mmgen_world::rng::mix64;
use mmgen_world::stream::render_batch;
use mmgen_world::{OrderedWorkers, Split, StreamConfig};
use serde_json::json;

use crate::error::{Result, TrainError};

/// A world image stream for `size`-pixel images of `split`.
pub fn image_stream(size: usize, batch: usize, seed: u64, split: Split) -> StreamConfig {
    StreamConfig {
        size: size as u32,
        split,
        workers: 1,
        ..StreamConfig::images(batch, seed)
    }
}

struct VaeBatch {
    images: Tensor,
    noise: Tensor,
}

/// Trains a VAE and writes `config.json`, `model.safetensors` and `metrics.json` (with
/// `latent_scale` and PSNR) to `run.out`. Returns the metrics.
pub fn train_vae(
    config: &VaeConfig,
    kl_weight: f64,
    options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    if !(kl_weight.is_finite() && kl_weight >= 0.0) {
        return Err(TrainError::Invalid(format!(
            "kl_weight is {kl_weight}; allowed 0 or more"
        )));
    }
    let varmap = VarMap::new();
    let vae = Vae::new(config, seeded_var_builder(&varmap, options.seed, DType::F32, device))?;
    if let Some(dir) = run.resume {
        set_prefixed(&varmap, "", &load_f32(&dir.join("model.safetensors"), device)?)?;
    }
    let (size, batch, seed, lc, ls) = (
        config.image_size,
        options.batch,
        options.seed,
        config.latent_channels,
        config.latent_size(),
    );
    let stream = image_stream(size, batch, seed, Split::Train);
    let dev = device.clone();
    let batches = OrderedWorkers::new(options.workers, 2, move |i| -> Result<VaeBatch> {
        let images = render_batch(&stream, i)?
            .images
            .ok_or_else(|| TrainError::Invalid("image stream without images".into()))?;
        let noise = gaussian((batch, ls, ls, lc), mix64(seed ^ i), &Device::Cpu)?;
        Ok(VaeBatch {
            images: images.to_device(&dev)?,
            noise: noise.to_device(&dev)?,
        })
    });
    let pixels = (3 * size * size) as f64;
    let mut clock = CheckpointClock::new(run.checkpoint_every, options.steps);
    let outcome = fit(
        &varmap,
        options,
        batches,
        |b: &VaeBatch| {
            let posterior = vae.encode(&b.images)?;
            let z = posterior.sample(&b.noise)?;
            let out = vae.decode(&z)?;
            let rec = (out - &b.images)?.sqr()?.mean_all()?;
            let kl = (posterior.kl()? * (kl_weight / pixels))?;
            Ok(((&rec + &kl)?, vec![("rec", rec), ("kl", kl)]))
        },
        |report| {
            progress(report);
            if clock.due(report.step) {
                let partial = json!({"command": run.command, "partial": true, "step": report.step});
                let _ = save_model_folder(run.out, config, &varmap, &partial);
            }
        },
    )?;
    let eval_start = Instant::now();
    let latent_scale = latent_scale(&vae, size, seed, run.eval_samples, device)?;
    let psnr_train = reconstruction_psnr(&vae, size, seed, Split::Train, run.eval_samples, device)?;
    let psnr_heldout = reconstruction_psnr(&vae, size, seed, Split::Heldout, run.eval_samples, device)?;
    let mut metrics = json!({
        "model": "vae",
        "command": run.command,
        "device": format!("{device:?}"),
        "options": options,
        "kl_weight": kl_weight,
        "latent_scale": latent_scale,
        "psnr_db": {"train": psnr_train, "heldout": psnr_heldout},
        "eval_images_per_split": run.eval_samples,
        "eval_seconds": eval_start.elapsed().as_secs_f64(),
        "resumed_from": run.resume.map(|p| p.display().to_string()),
    });
    outcome.record_into(&mut metrics, options.batch);
    save_model_folder(run.out, config, &varmap, &metrics)?;
    Ok(metrics)
}

/// Fresh, unaugmented images of `split` in batches of 32.
fn eval_images(size: usize, seed: u64, split: Split, n: usize) -> impl Iterator<Item = Result<Tensor>> {
    let mut stream = image_stream(size, 32, seed ^ 0xE7A1, split);
    stream.augment = None;
    (0..n.div_ceil(32) as u64).map(move |i| {
        let images = render_batch(&stream, i)?.images.expect("image stream");
        let take = (n - i as usize * 32).min(32);
        Ok(images.narrow(0, 0, take)?)
    })
}

/// 1 / standard deviation of the latent means of `n` training images.
pub fn latent_scale(vae: &Vae, size: usize, seed: u64, n: usize, device: &Device) -> Result<f64> {
    let (mut sum, mut sum_sq, mut count) = (0f64, 0f64, 0f64);
    for images in eval_images(size, seed, Split::Train, n.max(1)) {
        let mean = vae.encode(&images?.to_device(device)?)?.mean;
        let v: Vec<f32> = mean.flatten_all()?.to_vec1()?;
        for x in v {
            sum += x as f64;
            sum_sq += (x as f64).powi(2);
            count += 1.0;
        }
    }
    let var = (sum_sq / count - (sum / count).powi(2)).max(1e-12);
    Ok(1.0 / var.sqrt())
}

/// PSNR (dB) of decode(encode mean) over `n` fresh images of `split`.
pub fn reconstruction_psnr(vae: &Vae, size: usize, seed: u64, split: Split, n: usize, device: &Device) -> Result<f64> {
    let (mut mse_sum, mut count) = (0f64, 0usize);
    for images in eval_images(size, seed, split, n.max(1)) {
        let images = images?.to_device(device)?;
        let out = vae.decode(&vae.encode(&images)?.mean)?;
        let b = images.dim(0)?;
        let mse = 4.0 / 10f64.powf(psnr(&out, &images)? / 10.0);
        mse_sum += mse * b as f64;
        count += b;
    }
    Ok(10.0 * (4.0 / (mse_sum / count as f64)).log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_vae_training_lowers_the_loss_and_saves() {
        let dir = std::env::temp_dir().join(format!("mmgen-vae-{}", std::process::id()));
        let options = FitOptions {
            log_every: 1,
            ..FitOptions::new(60, 8, 3e-3, 1)
        };
        let run = RunInfo {
            out: &dir,
            command: "test".into(),
            eval_samples: 8,
            checkpoint_every: 0,
            resume: None,
        };
        let metrics = train_vae(&VaeConfig::tiny(), 1e-5, &options, &run, &Device::Cpu, |_| {}).unwrap();
        let curve = metrics["loss_curve"].as_array().unwrap();
        let first = curve[0][1].as_f64().unwrap();
        let last: f64 = curve[curve.len() - 5..]
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .sum::<f64>()
            / 5.0;
        assert!(last < 0.7 * first, "loss {first} -> {last}");
        assert!(metrics["latent_scale"].as_f64().unwrap() > 0.0);
        assert!(metrics["psnr_db"]["heldout"].as_f64().unwrap() > 5.0);
        for file in ["config.json", "model.safetensors", "metrics.json"] {
            assert!(dir.join(file).exists(), "{file}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run is a function of its seed: initial weights, data order (across worker
    /// threads) and noise all come from it.
    #[test]
    fn same_seed_same_weights() {
        let root = std::env::temp_dir().join(format!("mmgen-vae-seed-{}", std::process::id()));
        let weights = |seed: u64, name: &str| {
            let out = root.join(name);
            let options = FitOptions {
                workers: 2,
                ..FitOptions::new(4, 4, 3e-3, seed)
            };
            let run = RunInfo {
                out: &out,
                command: "test".into(),
                eval_samples: 4,
                checkpoint_every: 0,
                resume: None,
            };
            train_vae(&VaeConfig::tiny(), 1e-5, &options, &run, &Device::Cpu, |_| {}).unwrap();
            std::fs::read(out.join("model.safetensors")).unwrap()
        };
        let (a, b, c) = (weights(3, "a"), weights(3, "b"), weights(4, "c"));
        let _ = std::fs::remove_dir_all(&root);
        assert!(a == b, "two runs with seed 3 differ");
        assert!(a != c, "seeds 3 and 4 give the same weights");
    }
}
