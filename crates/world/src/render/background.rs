//! The backgrounds, as functions of canvas point (u, v), light and a texture seed.

use super::colour::{mix, scale, Rgb};
use crate::rng::{fbm, hash01};
use crate::spec::{Background, Lighting};

/// The light at one moment of a clip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Light {
    /// Sun height: 1 is high, 0 on the horizon, below 0 set.
    pub sun: f32,
    /// Multiplier on every colour.
    pub brightness: f32,
    /// How far colours lean to a warm dusk tint, 0 to 1.
    pub warmth: f32,
}

/// Sun height of a background under steady light.
fn natural_sun(background: Background) -> f32 {
    match background {
        Background::SunsetSea => 0.35,
        _ => 0.85,
    }
}

/// The light at normalised clip time `t` (a still image is `t = 0.5`).
pub fn light_at(background: Background, lighting: Lighting, t: f32) -> Light {
    let sun = natural_sun(background);
    // A sunset runs from sun + 0.3 to sun - 0.6 (below the horizon for the sea).
    let dusk = |s: f32| Light {
        sun: sun + 0.3 - 0.9 * s,
        brightness: 1.0 - 0.3 * s,
        warmth: if background == Background::SunsetSea {
            0.2 * s
        } else {
            0.45 * s
        },
    };
    match lighting {
        Lighting::Steady => Light {
            sun,
            brightness: 1.0,
            warmth: 0.0,
        },
        Lighting::SunGoingDown => dusk(t),
        Lighting::SunComingUp => dusk(1.0 - t),
    }
}

fn gradient(top: Rgb, bottom: Rgb, v: f32, v0: f32, v1: f32) -> Rgb {
    mix(top, bottom, ((v - v0) / (v1 - v0)).clamp(0.0, 1.0))
}

/// Anti-aliased disc coverage at distance `d` from a centre, radius `r`, pixel `px`.
fn disc(d: f32, r: f32, px: f32) -> f32 {
    (0.5 - (d - r) / px).clamp(0.0, 1.0)
}

struct Sun {
    x: f32,
    horizon: f32,
    core: Rgb,
}

/// A sun at height `sun` over a horizon, drawn over `sky` (with its glow): a small
/// pale core in a wide glow, unlike any object (crisp dark rim, saturated colour).
fn with_sun(sky: Rgb, u: f32, v: f32, s: Sun, sun: f32, px: f32, aspect: f32) -> Rgb {
    let sy = s.horizon - 0.5 * s.horizon * sun;
    let d = (((u - s.x) * aspect).powi(2) + (v - sy).powi(2)).sqrt();
    let glow = 0.55 * (-d / 0.1).exp();
    let lit = mix(sky, [1.0, 0.8, 0.5], glow);
    let core = if v < s.horizon { disc(d, 0.055, px) } else { 0.0 };
    mix(lit, s.core, core)
}

const WHITE_SUN: Rgb = [1.0, 0.98, 0.9];

/// Sparse dots on a lattice of `cells` per unit: stars, snowflakes, bubbles.
fn sprinkle(seed: u64, u: f32, v: f32, cells: f32, density: f32, r: f32, px: f32) -> f32 {
    let (cu, cv) = ((u * cells).floor(), (v * cells).floor());
    let (ix, iy) = (cu as i64, cv as i64);
    if hash01(seed, ix, iy) >= density {
        return 0.0;
    }
    let jx = (cu + 0.2 + 0.6 * hash01(seed ^ 1, ix, iy)) / cells;
    let jy = (cv + 0.2 + 0.6 * hash01(seed ^ 2, ix, iy)) / cells;
    let d = ((u - jx).powi(2) + (v - jy).powi(2)).sqrt();
    (1.0 - (d - r).max(0.0) / px.max(1e-4)).clamp(0.0, 1.0)
}

/// The background colour at (u, v).
/// `px` is one pixel in canvas units; `aspect` is width / height.
pub fn shade(background: Background, u: f32, v: f32, light: Light, px: f32, aspect: f32, seed: u64) -> Rgb {
    let dusk_sky = |top: Rgb, low: Rgb, horizon: f32| {
        let sky = gradient(top, low, v, 0.0, horizon);
        mix(
            sky,
            mix([0.95, 0.55, 0.35], [0.35, 0.2, 0.4], (-light.sun).max(0.0)),
            light.warmth * 1.2,
        )
    };
    let colour = match background {
        Background::SunsetSea => {
            let horizon = 0.58;
            if v < horizon {
                let sky = gradient([0.28, 0.16, 0.45], [1.0, 0.55, 0.25], v, 0.0, horizon);
                let sky = mix(sky, [0.15, 0.1, 0.3], (-light.sun).clamp(0.0, 1.0) * 0.6);
                with_sun(
                    sky,
                    u,
                    v,
                    Sun {
                        x: 0.5,
                        horizon,
                        core: [1.0, 0.82, 0.5],
                    },
                    light.sun,
                    px,
                    aspect,
                )
            } else {
                let depth = (v - horizon) / (1.0 - horizon);
                let sea = gradient([0.42, 0.25, 0.38], [0.1, 0.1, 0.28], depth, 0.0, 1.0);
                let wave = (v * 140.0 + 6.0 * fbm(seed, u * 10.0, v * 40.0)).sin();
                let sea = scale(sea, 1.0 + 0.12 * wave);
                let column = 0.05 + 0.35 * depth;
                let glint = ((u - 0.5).abs() < column && wave > 0.2) as u8 as f32;
                let strength = 0.7 * (1.0 - depth) * light.sun.clamp(0.0, 1.0).sqrt();
                mix(sea, [1.0, 0.65, 0.3], glint * strength)
            }
        }
        Background::NightSky => {
            let sky = gradient([0.02, 0.03, 0.12], [0.08, 0.1, 0.3], v, 0.0, 1.0);
            let star = sprinkle(seed, u, v, 40.0, 0.14, 0.002, px * 0.8);
            let sky = mix(sky, [0.95, 0.95, 0.85], star);
            let moon = disc((((u - 0.82) * aspect).powi(2) + (v - 0.17).powi(2)).sqrt(), 0.07, px);
            let bite = disc((((u - 0.85) * aspect).powi(2) + (v - 0.15).powi(2)).sqrt(), 0.06, px);
            mix(sky, [0.95, 0.93, 0.78], moon * (1.0 - bite))
        }
        Background::DaySky => {
            let sky = dusk_sky([0.22, 0.48, 0.9], [0.7, 0.85, 1.0], 1.0);
            let cloud = fbm(seed, u * 4.0, v * 7.0);
            let sky = mix(sky, [1.0, 1.0, 1.0], ((cloud - 0.55) / 0.15).clamp(0.0, 1.0) * 0.85);
            with_sun(
                sky,
                u,
                v,
                Sun {
                    x: 0.82,
                    horizon: 0.9,
                    core: WHITE_SUN,
                },
                light.sun,
                px,
                aspect,
            )
        }
        Background::GrassField | Background::Desert | Background::Snow => {
            let horizon = 0.6 + 0.02 * (u * 6.0 + seed as f32 % 7.0).sin();
            if v < horizon {
                let (top, low) = match background {
                    Background::GrassField => ([0.3, 0.55, 0.92], [0.75, 0.88, 1.0]),
                    Background::Desert => ([0.45, 0.62, 0.92], [0.96, 0.86, 0.7]),
                    _ => ([0.66, 0.74, 0.86], [0.9, 0.92, 0.96]),
                };
                let sun = Sun {
                    x: 0.8,
                    horizon,
                    core: WHITE_SUN,
                };
                let sky = with_sun(dusk_sky(top, low, horizon), u, v, sun, light.sun, px, aspect);
                if background == Background::Snow {
                    let flake = sprinkle(seed, u, v, 30.0, 0.2, 0.003, px);
                    mix(sky, [1.0, 1.0, 1.0], flake)
                } else {
                    sky
                }
            } else {
                let depth = (v - horizon) / (1.0 - horizon);
                let grain = fbm(seed, u * 24.0, v * 48.0) - 0.5;
                match background {
                    Background::GrassField => {
                        let grass = gradient([0.3, 0.62, 0.2], [0.12, 0.4, 0.1], depth, 0.0, 1.0);
                        scale(grass, 1.0 + 0.35 * grain)
                    }
                    Background::Desert => {
                        let ripple = ((v - 0.05 * (u * 7.0).sin()) * 45.0).sin();
                        scale([0.92, 0.74, 0.46], 0.9 + 0.08 * ripple + 0.1 * grain)
                    }
                    _ => {
                        let mound = fbm(seed ^ 9, u * 3.0, v * 6.0);
                        scale([0.93, 0.95, 1.0], 0.86 + 0.14 * mound)
                    }
                }
            }
        }
        Background::Underwater => {
            let water = gradient([0.1, 0.55, 0.68], [0.02, 0.15, 0.36], v, 0.0, 1.0);
            let ray = (u * 18.0 + v * 6.0).sin().max(0.0).powi(8) * (1.0 - v) * 0.3;
            let water = mix(water, [0.8, 1.0, 1.0], ray);
            let bubble = sprinkle(seed, u, v, 22.0, 0.1, 0.006, px);
            let water = mix(water, [0.75, 0.95, 1.0], bubble * 0.7);
            let floor = 0.9 + 0.025 * (u * 9.0).sin();
            if v > floor {
                scale([0.76, 0.68, 0.48], 0.9 + 0.2 * (fbm(seed, u * 30.0, v * 30.0) - 0.5))
            } else {
                water
            }
        }
    };
    apply_light(colour, light)
}

/// Dims and warms a colour by the light of the moment.
pub fn apply_light(colour: Rgb, light: Light) -> Rgb {
    let warm = [1.0, 0.82, 0.62];
    let tinted = mix(
        colour,
        [colour[0] * warm[0], colour[1] * warm[1], colour[2] * warm[2]],
        light.warmth,
    );
    scale(tinted, light.brightness)
}
