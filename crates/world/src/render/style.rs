//! How each style draws: a style changes the background wash and turns an object's
//! signed distance into colour and coverage.

use super::colour::{luma, mix, scale, Rgb};
use crate::rng::{fbm, value_noise};
use crate::spec::Style;

/// Paper tone under watercolour and sketch.
const PAPER: Rgb = [0.97, 0.95, 0.9];

/// The style's treatment of a background colour at (u, v).
pub fn wash(style: Style, bg: Rgb, u: f32, v: f32, seed: u64) -> Rgb {
    match style {
        Style::Flat | Style::PixelArt => bg,
        Style::Watercolour => {
            let grain = fbm(seed ^ 0x77, u * 50.0, v * 50.0) - 0.5;
            scale(mix(bg, PAPER, 0.35), 1.0 + 0.08 * grain)
        }
        Style::Sketch => {
            let grey = luma(bg);
            mix([grey, grey, grey], PAPER, 0.75)
        }
        Style::Neon => {
            let dark = scale(bg, 0.22);
            [dark[0] * 0.8, dark[1] * 0.85, dark[2] + 0.03]
        }
    }
}

/// An object's (colour, alpha) at a point at signed distance `d` (canvas units,
/// negative inside) from its outline. `px` is one pixel; `u, v` the canvas point.
pub fn ink(style: Style, colour: Rgb, d: f32, px: f32, u: f32, v: f32, seed: u64) -> (Rgb, f32) {
    let smooth = |e0: f32, e1: f32, x: f32| {
        let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
        t * t * (3.0 - 2.0 * t)
    };
    match style {
        Style::Flat | Style::PixelArt => {
            // For pixel art `px` is one block, so a block's ink is its share inside the
            // outline, not a yes/no at its centre: centre sampling drew small circles
            // and hexagons with the very same blocks (a hexagon's flats lie a third of
            // a block inside its circle at 5 blocks across).
            let alpha = (0.5 - d / px).clamp(0.0, 1.0);
            // A darker rim keeps an object apart from a background of its own colour;
            // pixel art's keeps a fixed width rather than one and a half blocks.
            let rim_width = if style == Style::PixelArt {
                0.015
            } else {
                px.max(0.01) * 1.5
            };
            let rim = 1.0 - smooth(0.0, rim_width, -d);
            (mix(colour, scale(colour, 0.55), rim * 0.8), alpha)
        }
        Style::Watercolour => {
            let wobble = (fbm(seed ^ 0x33, u * 12.0, v * 12.0) - 0.5) * 0.035;
            let dw = d + wobble;
            let alpha = 0.9 * (0.5 - dw / (1.5 * px)).clamp(0.0, 1.0);
            // Pigment pools at the edge of a wash: darker just inside the outline.
            let pool = (dw / 0.02).min(0.0).exp();
            (scale(mix(colour, [1.0, 1.0, 1.0], 0.12), 1.0 - 0.22 * pool), alpha)
        }
        Style::Sketch => {
            let jitter = (value_noise(seed ^ 0x55, u * 30.0, v * 30.0) - 0.5) * 0.008;
            let line = 1.0 - smooth(0.6 * px, 1.6 * px, (d + jitter).abs());
            let hatch_period = (4.0 * px).max(0.02);
            let hatch = (((u + v) / hatch_period).fract() < 0.5) as u8 as f32;
            let inside = (0.5 - d / px).clamp(0.0, 1.0);
            let fill = inside * (0.35 + 0.45 * hatch);
            if line >= fill {
                (scale(colour, 0.6), line)
            } else {
                (colour, fill)
            }
        }
        Style::Neon => {
            let tube = 1.0 - smooth(0.0, 1.2 * px.max(0.008), d.abs());
            let glow = 0.85 * (-d.abs() / 0.03).exp();
            let inside = 0.3 * (0.5 - d / px).clamp(0.0, 1.0);
            let alpha = tube.max(glow).max(inside);
            (mix(colour, [1.0, 1.0, 1.0], tube * 0.35), alpha)
        }
    }
}
