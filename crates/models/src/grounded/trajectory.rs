//! The trajectory model: where a planned object is at each moment of a clip.
//!
//! A small MLP maps (resting pose, motion embedding, clip time) to the pose's change
//! from rest: centre offset, log radius ratio and rotation. It is trained on the
//! world's poses over time (`mmgen train trajectory`), not written from its formulas.
//! The shape is not an input, so a shape seen with a motion only at evaluation moves
//! as every other shape with that motion does.
//!
//! A trajectory folder holds `config.json` ([`TrajectoryConfig`]) and
//! `model.safetensors` (f16).

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use candle_nn::{embedding, Embedding, VarBuilder};
use mmgen_nn::Dense;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::grounded::field::fourier;
use crate::weights::{load_weights_folder, FolderFiles};

/// Scale of the rotation output: the network's unit is half a turn.
const ANGLE_UNIT: f64 = std::f64::consts::PI;

/// Shape of a trajectory model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrajectoryConfig {
    /// Motion names, in id order.
    pub motions: Vec<String>,
    /// Width of the motion embedding.
    pub motion_dim: usize,
    /// Hidden units of each of the two hidden layers.
    pub hidden: usize,
    /// Fourier octaves of the clip time.
    pub octaves: usize,
}

impl TrajectoryConfig {
    /// The shipped shape.
    pub fn base(motions: Vec<String>) -> TrajectoryConfig {
        TrajectoryConfig {
            motions,
            motion_dim: 16,
            hidden: 96,
            octaves: 5,
        }
    }

    /// A tiny shape for tests.
    pub fn tiny(motions: Vec<String>) -> TrajectoryConfig {
        TrajectoryConfig {
            motion_dim: 4,
            hidden: 16,
            octaves: 2,
            ..TrajectoryConfig::base(motions)
        }
    }

    /// The id of motion `name` (errors name the allowed values).
    pub fn motion_id(&self, name: &str) -> Result<u32> {
        self.motions
            .iter()
            .position(|m| m == name)
            .map(|i| i as u32)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "motion: unknown value {name:?}; allowed: {}",
                    self.motions.join(", ")
                ))
            })
    }
}

/// The trajectory network. Parameters `motions`, `hidden1`, `hidden2`, `out`.
pub struct TrajectoryNet {
    motions: Embedding,
    hidden1: Dense,
    hidden2: Dense,
    out: Dense,
    config: TrajectoryConfig,
    device: Device,
}

/// Inputs per pose: cx, cy, ln radius, sin and cos of the angle.
const POSE_INPUTS: usize = 5;

impl TrajectoryNet {
    /// Builds the network from `config` and `vb`.
    pub fn new(config: &TrajectoryConfig, vb: VarBuilder, device: &Device) -> Result<TrajectoryNet> {
        if config.motions.is_empty() || config.hidden == 0 || config.motion_dim == 0 {
            return Err(ModelError::Invalid(format!(
                "trajectory config needs motions, hidden and motion_dim; got {} motions, hidden {}, motion_dim {}",
                config.motions.len(),
                config.hidden,
                config.motion_dim
            )));
        }
        let inputs = POSE_INPUTS + config.motion_dim + 1 + 2 * config.octaves;
        Ok(TrajectoryNet {
            motions: embedding(config.motions.len(), config.motion_dim, vb.pp("motions"))?,
            hidden1: Dense::new(inputs, config.hidden, vb.pp("hidden1"))?,
            hidden2: Dense::new(config.hidden, config.hidden, vb.pp("hidden2"))?,
            // Starts at rest: every pose unchanged.
            out: Dense::zeros(config.hidden, 4, vb.pp("out"))?,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Reads a trajectory folder (`config.json`, `model.safetensors`).
    pub fn load(dir: &Path, device: &Device) -> Result<TrajectoryNet> {
        TrajectoryNet::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<TrajectoryNet> {
        load_weights_folder(files, device, "trajectory model", |c: &TrajectoryConfig, vb| {
            TrajectoryNet::new(c, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrajectoryConfig {
        &self.config
    }

    /// The poses `[cx, cy, radius, angle]` (n, 4) at `times` (n,) of objects resting at
    /// `rest` (n, 4) with motion ids `motions` (n,).
    pub fn forward(&self, rest: &Tensor, motions: &Tensor, times: &Tensor) -> Result<Tensor> {
        let n = rest.dim(0)?;
        let part = |i: usize| rest.narrow(1, i, 1);
        let (centre, radius, angle) = (rest.narrow(1, 0, 2)?, part(2)?, part(3)?);
        let pose = Tensor::cat(&[&centre, &radius.log()?, &angle.sin()?, &angle.cos()?], 1)?;
        let time = fourier(&times.reshape((n, 1))?.affine(1.0, -0.5)?, self.config.octaves)?;
        let inputs = Tensor::cat(&[&pose, &self.motions.forward(motions)?, &time], 1)?;
        let h = self.hidden1.forward(&inputs)?.silu()?;
        let h = self.hidden2.forward(&h)?.silu()?;
        let change = self.out.forward(&h)?;
        let at = |i: usize| change.narrow(1, i, 1);
        let centre = (centre + change.narrow(1, 0, 2)?)?;
        let radius = (radius * at(2)?.exp()?)?;
        let angle = (angle + at(3)?.affine(ANGLE_UNIT, 0.0)?)?;
        Ok(Tensor::cat(&[&centre, &radius, &angle], 1)?)
    }

    /// The pose of each object at each of `times`: `[object][time]`.
    pub fn trajectories(&self, objects: &[([f32; 4], u32)], times: &[f32]) -> Result<Vec<Vec<[f32; 4]>>> {
        if objects.is_empty() || times.is_empty() {
            return Ok(vec![Vec::new(); objects.len()]);
        }
        let (k, f) = (objects.len(), times.len());
        let mut rest: Vec<f32> = Vec::with_capacity(k * f * 4);
        let mut motions = Vec::with_capacity(k * f);
        let mut at = Vec::with_capacity(k * f);
        for (pose, motion) in objects {
            if *motion as usize >= self.config.motions.len() {
                return Err(ModelError::Invalid(format!(
                    "motion id {motion}; this trajectory model knows {} motions",
                    self.config.motions.len()
                )));
            }
            for &t in times {
                rest.extend(pose);
                motions.push(*motion);
                at.push(t);
            }
        }
        let d = &self.device;
        let poses = self.forward(
            &Tensor::from_vec(rest, (k * f, 4), d)?,
            &Tensor::from_vec(motions, k * f, d)?,
            &Tensor::from_vec(at, k * f, d)?,
        )?;
        let flat: Vec<f32> = poses.flatten_all()?.to_vec1()?;
        Ok(flat
            .chunks(4 * f)
            .map(|object| object.chunks(4).map(|p| [p[0], p[1], p[2], p[3]]).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarMap;

    fn net(seed_values: bool) -> TrajectoryNet {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let motions = vec!["still".to_string(), "spin".to_string()];
        let net = TrajectoryNet::new(&TrajectoryConfig::tiny(motions), vb, &Device::Cpu).unwrap();
        if seed_values {
            for (name, var) in varmap.data().lock().unwrap().iter() {
                if name.starts_with("out") {
                    let values = Tensor::full(0.1f32, var.shape(), &Device::Cpu).unwrap();
                    var.set(&values).unwrap();
                }
            }
        }
        net
    }

    #[test]
    fn an_untrained_model_keeps_every_object_at_rest() {
        let rest = [0.3, 0.6, 0.15, 0.2];
        let poses = net(false).trajectories(&[(rest, 1)], &[0.0, 0.5, 1.0]).unwrap();
        for pose in &poses[0] {
            for (a, b) in pose.iter().zip(rest) {
                assert!((a - b).abs() < 1e-6, "{pose:?}");
            }
        }
    }

    #[test]
    fn poses_come_per_object_and_time_and_depend_on_both() {
        let net = net(true);
        let objects = [([0.3, 0.6, 0.15, 0.0], 0), ([0.7, 0.2, 0.1, 1.0], 1)];
        let poses = net.trajectories(&objects, &[0.0, 1.0]).unwrap();
        assert_eq!((poses.len(), poses[0].len()), (2, 2));
        assert_ne!(poses[0][0], poses[0][1]);
        assert_ne!(poses[0][0], poses[1][0]);
        assert!(poses
            .iter()
            .flatten()
            .all(|p| p.iter().all(|v| v.is_finite()) && p[2] > 0.0));
        let again = net.trajectories(&objects, &[0.0, 1.0]).unwrap();
        assert_eq!(poses, again);
        let err = net.trajectories(&[([0.5, 0.5, 0.1, 0.0], 7)], &[0.0]).unwrap_err();
        assert!(err.to_string().contains("2 motions"), "{err}");
    }
}
