//! Ambience from filtered noise: waves (slow swells of low-passed noise with a hiss
//! at each crest), wind (band-passed noise whose centre wanders), rain (bright noise
//! with scattered drops).

use rand::Rng;

use super::filter::{difference, one_pole_lowpass, BandPass};
use crate::spec::Ambience;

const TAU: f32 = std::f32::consts::TAU;

/// `n` samples of `kind` at `sr`.
pub fn render_ambience(kind: Ambience, n: usize, sr: f32, rng: &mut impl Rng) -> Vec<f32> {
    let white = |rng: &mut dyn rand::RngCore| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    match kind {
        Ambience::Waves => {
            let mut rumble = white(rng);
            one_pole_lowpass(&mut rumble, 0.03);
            let mut hiss = white(rng);
            difference(&mut hiss);
            let period = rng.random_range(5.0..8.0);
            let phase = rng.random_range(0.0..TAU);
            (0..n)
                .map(|i| {
                    let t = i as f32 / sr;
                    let swell = (0.5 + 0.5 * (TAU * t / period + phase).sin()).powi(3);
                    (0.25 + 0.75 * swell) * 6.0 * rumble[i] + 0.15 * swell.powi(2) * hiss[i]
                })
                .collect()
        }
        Ambience::Wind => {
            let noise = white(rng);
            let mut band = BandPass::default();
            let (rate, phase) = (rng.random_range(0.1..0.2), rng.random_range(0.0..TAU));
            let mut out = Vec::with_capacity(n);
            for (i, x) in noise.into_iter().enumerate() {
                let t = i as f32 / sr;
                if i % 64 == 0 {
                    band.tune(450.0 * (1.0 + 0.5 * (TAU * rate * t + phase).sin()), 3.0, sr);
                }
                let gust = 0.6 + 0.4 * (TAU * 0.07 * t + 2.0 * phase).sin();
                out.push(3.0 * gust * band.process(x));
            }
            out
        }
        Ambience::Rain => {
            let mut out = white(rng);
            difference(&mut out);
            out.iter_mut().for_each(|s| *s *= 0.12);
            let drops = (n as f32 / sr * 25.0) as usize;
            for _ in 0..drops {
                let at = rng.random_range(0..n);
                let freq = rng.random_range(1500.0..4000.0);
                let amp = rng.random_range(0.05..0.2);
                for j in 0..(0.006 * sr) as usize {
                    if at + j >= n {
                        break;
                    }
                    let t = j as f32 / sr;
                    out[at + j] += amp * (-t * 600.0).exp() * (TAU * freq * t).sin();
                }
            }
            out
        }
    }
}
