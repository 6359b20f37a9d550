//! Training the trajectory model on the world's poses over time: an object's pose at
//! the middle of its clip (what a plan holds), a motion and a clip time in, the
//! world's pose at that time out. Rest poses come from the layouts of training-split
//! scenes, turned by a random angle; motions are drawn evenly, so the rare ones are
//! learnt as well as "still".

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mmgen_models::grounded::{TrajectoryConfig, TrajectoryNet};
use mmgen_nn::seeded_var_builder;
use mmgen_world::layout::{layout, pose_at};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{Motion, SpecSampler, Split};
use rand::Rng;
use serde_json::json;

use crate::error::Result;
use crate::fit::{fit, resume, save_model_runs, FitOptions, RunInfo, StepReport};
use crate::renderer::previous_runs;

/// One batch: rest poses (n, 4), motion ids (n,), times (n,), target poses (n, 4).
pub struct TrajectoryBatch {
    rest: Tensor,
    motions: Tensor,
    times: Tensor,
    target: Tensor,
    /// The motion of each row, for per-motion errors.
    motion_of: Vec<Motion>,
}

/// Batch `index` of `batch` object poses under `seed`, from scenes of `split`.
fn trajectory_batch(split: Split, batch: usize, seed: u64, index: u64, device: &Device) -> Result<TrajectoryBatch> {
    let sampler = SpecSampler::default();
    let mut rng = rng_for(mix64(seed ^ mix64(index)), Purpose::Augment);
    let (mut rest, mut target) = (Vec::with_capacity(batch * 4), Vec::with_capacity(batch * 4));
    let (mut motions, mut times, mut motion_of) = (Vec::new(), Vec::new(), Vec::new());
    while motions.len() < batch {
        let scene_seed: u64 = rng.random();
        let spec = sampler.sample(split, scene_seed);
        for pose in layout(&spec, scene_seed) {
            if motions.len() == batch {
                break;
            }
            let motion = Motion::ALL[rng.random_range(0..Motion::ALL.len())];
            let t: f32 = rng.random();
            let (mid, at) = (pose_at(pose, motion, 0.5), pose_at(pose, motion, t));
            // Any starting angle: a plan may hold one the world's clips never start
            // from (a planner's spinning object at 0 rather than half a turn), and the
            // motions turn the same way from every angle.
            let turn = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
            rest.extend([mid.cx, mid.cy, mid.radius, mid.angle + turn]);
            target.extend([at.cx, at.cy, at.radius, at.angle + turn]);
            motions.push(motion.index() as u32);
            times.push(t);
            motion_of.push(motion);
        }
    }
    Ok(TrajectoryBatch {
        rest: Tensor::from_vec(rest, (batch, 4), device)?,
        motions: Tensor::from_vec(motions, batch, device)?,
        times: Tensor::from_vec(times, batch, device)?,
        target: Tensor::from_vec(target, (batch, 4), device)?,
        motion_of,
    })
}

/// Per-row errors (n, 4): centre offsets and radius as fractions of the canvas,
/// rotation in half-turns.
fn errors(model: &TrajectoryNet, b: &TrajectoryBatch) -> Result<Tensor> {
    let predicted = model.forward(&b.rest, &b.motions, &b.times)?;
    let scale = Tensor::new(&[1f32, 1.0, 1.0, 1.0 / std::f32::consts::PI], predicted.device())?;
    Ok((predicted - &b.target)?.broadcast_mul(&scale)?)
}

/// Mean and worst absolute error, in pixels of a 64-pixel canvas (rotation in
/// degrees), per motion, on `rows` held-out poses.
fn measure(model: &TrajectoryNet, split: Split, rows: usize, seed: u64, device: &Device) -> Result<serde_json::Value> {
    let b = trajectory_batch(split, rows, seed, 1 << 40, device)?;
    let e: Vec<Vec<f32>> = errors(model, &b)?.abs()?.to_vec2()?;
    let mut by_motion = serde_json::Map::new();
    for motion in Motion::ALL {
        let rows: Vec<&Vec<f32>> = e
            .iter()
            .zip(&b.motion_of)
            .filter(|(_, m)| **m == *motion)
            .map(|(r, _)| r)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let n = rows.len() as f32;
        let position = |r: &Vec<f32>| r[0].max(r[1]) * 64.0;
        let (radius, angle) = (|r: &Vec<f32>| r[2] * 64.0, |r: &Vec<f32>| r[3] * 180.0);
        let stat = |f: &dyn Fn(&Vec<f32>) -> f32| {
            json!({"mean": rows.iter().map(|r| f(r)).sum::<f32>() / n,
                   "max": rows.iter().map(|r| f(r)).fold(0.0, f32::max)})
        };
        by_motion.insert(
            motion.name().into(),
            json!({"rows": rows.len(), "position_px": stat(&position), "radius_px": stat(&radius), "angle_deg": stat(&angle)}),
        );
    }
    Ok(serde_json::Value::Object(by_motion))
}

/// Trains a trajectory model of `config` (or continues `run.resume`) and writes its
/// folder to `run.out`. Returns this run's record.
pub fn train_trajectory(
    config: &TrajectoryConfig,
    fit_options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (config, history) = match run.resume {
        Some(dir) => (
            mmgen_models::weights::read_folder_config(dir, "trajectory model")?,
            previous_runs(dir),
        ),
        None => (config.clone(), Vec::new()),
    };
    let mut varmap = VarMap::new();
    let model = TrajectoryNet::new(
        &config,
        seeded_var_builder(&varmap, fit_options.seed, DType::F32, device),
        device,
    )?;
    if let Some(dir) = run.resume {
        resume(&mut varmap, dir, device, |_| false)?;
    }
    let before = measure(&model, Split::Heldout, 2000, fit_options.seed, device)?;
    let (batch, seed, dev) = (fit_options.batch, fit_options.seed, device.clone());
    let batches = (0u64..).map(move |i| trajectory_batch(Split::Train, batch, seed, i, &dev));
    let outcome = fit(
        &varmap,
        fit_options,
        batches,
        |b| Ok((errors(&model, b)?.sqr()?.mean_all()?, Vec::new())),
        progress,
    )?;
    let mut record = json!({
        "command": run.command,
        "device": format!("{device:?}"),
        "options": fit_options,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "error": {
            "about": "absolute error per motion on 2000 object poses of held-out scenes at random clip times: centre (larger of x and y) and radius in pixels of a 64-pixel canvas, rotation in degrees",
            "initial": before,
            "final": measure(&model, Split::Heldout, 2000, fit_options.seed, device)?,
        },
    });
    outcome.record_into(&mut record, fit_options.batch);
    save_model_runs(run.out, &config, &varmap, "grounded-trajectory", history, &record)?;
    Ok(record)
}

/// The world's motion names, in id order (the trajectory model's vocabulary).
pub fn world_motions() -> Vec<String> {
    Motion::ALL.iter().map(|m| m.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_trajectory_model_learns_the_moves_and_round_trips() {
        let root = std::env::temp_dir().join(format!("mmgen-trajectory-{}", std::process::id()));
        let config = TrajectoryConfig::tiny(world_motions());
        let fit = FitOptions {
            log_every: 50,
            ..FitOptions::new(300, 64, 1e-2, 3)
        };
        let run = RunInfo {
            out: &root,
            command: "test".into(),
            eval_samples: 0,
            checkpoint_every: 0,
            resume: None,
        };
        let record = train_trajectory(&config, &fit, &run, &Device::Cpu, |_| {}).unwrap();
        let mean = |which: &str, motion: &str| record["error"][which][motion]["position_px"]["mean"].as_f64().unwrap();
        for motion in ["move_left", "move_down"] {
            assert!(
                mean("final", motion) < 0.5 * mean("initial", motion),
                "{motion}: {} -> {}",
                mean("initial", motion),
                mean("final", motion)
            );
        }
        // The folder loads and gives the same poses, twice.
        let loaded = TrajectoryNet::load(&root, &Device::Cpu).unwrap();
        let a = loaded.trajectories(&[([0.5, 0.5, 0.1, 0.0], 1)], &[0.0, 1.0]).unwrap();
        assert_eq!(
            a,
            loaded.trajectories(&[([0.5, 0.5, 0.1, 0.0], 1)], &[0.0, 1.0]).unwrap()
        );
        assert!(a[0][0][0] > a[0][1][0], "move_left moves left: {a:?}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
