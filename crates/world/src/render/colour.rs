//! Colour names as ranges of shades, so that "red" is learned as a region and not as
//! one RGB triple (the colour jitter of the design), and the ranges are disjoint so
//! that a pixel's name is well defined ([`classify`]).

use rand::Rng;

use crate::spec::Colour;

/// Linear-ish RGB in [0, 1].
pub type Rgb = [f32; 3];

/// A colour name's region in HSV: hue centre and half width (degrees), saturation and
/// value intervals.
#[derive(Clone, Copy, Debug)]
pub struct ShadeRange {
    /// Hue centre, degrees.
    pub hue: f32,
    /// Allowed distance from the hue centre, degrees.
    pub hue_width: f32,
    /// Saturation interval.
    pub sat: (f32, f32),
    /// Value interval.
    pub val: (f32, f32),
}

/// The region of shades a name covers.
pub fn shade_range(colour: Colour) -> ShadeRange {
    let r = |hue, hue_width, sat, val| ShadeRange {
        hue,
        hue_width,
        sat,
        val,
    };
    match colour {
        Colour::Red => r(0.0, 8.0, (0.75, 0.95), (0.80, 0.95)),
        Colour::Orange => r(28.0, 6.0, (0.85, 1.0), (0.92, 1.0)),
        Colour::Yellow => r(54.0, 5.0, (0.75, 0.95), (0.92, 1.0)),
        Colour::Green => r(120.0, 15.0, (0.65, 0.90), (0.60, 0.85)),
        Colour::Blue => r(222.0, 10.0, (0.75, 0.95), (0.80, 1.0)),
        Colour::Purple => r(280.0, 10.0, (0.55, 0.80), (0.60, 0.85)),
        Colour::Pink => r(330.0, 10.0, (0.35, 0.55), (0.95, 1.0)),
        Colour::White => r(0.0, 180.0, (0.0, 0.05), (0.94, 1.0)),
    }
}

/// HSV (degrees, [0,1], [0,1]) to RGB.
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> Rgb {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

/// RGB to HSV (degrees, [0,1], [0,1]).
pub fn rgb_to_hsv(rgb: Rgb) -> (f32, f32, f32) {
    let [r, g, b] = rgb;
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= 1e-6 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    let s = if max <= 1e-6 { 0.0 } else { d / max };
    (h, s, max)
}

fn hue_distance(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// The canonical shade of a name: the centre of its range.
pub fn canonical(colour: Colour) -> Rgb {
    let r = shade_range(colour);
    hsv_to_rgb(r.hue, (r.sat.0 + r.sat.1) / 2.0, (r.val.0 + r.val.1) / 2.0)
}

/// A random shade inside the name's range.
pub fn sample_shade(colour: Colour, rng: &mut impl Rng) -> Rgb {
    let r = shade_range(colour);
    let hue = if colour == Colour::White {
        rng.random_range(0.0..360.0)
    } else {
        r.hue + rng.random_range(-r.hue_width..=r.hue_width)
    };
    hsv_to_rgb(
        hue,
        rng.random_range(r.sat.0..=r.sat.1),
        rng.random_range(r.val.0..=r.val.1),
    )
}

/// The name whose range holds `rgb`, if any.
pub fn classify(rgb: Rgb) -> Option<Colour> {
    let (h, s, v) = rgb_to_hsv(rgb);
    // Slack for 8-bit storage: rounding moves saturation and value by up to ~0.008
    // and the hue of a pale colour by about a degree. The ranges stay disjoint.
    let (eps_sv, eps_hue) = (0.01, 2.0);
    Colour::ALL.iter().copied().find(|&c| {
        let r = shade_range(c);
        hue_distance(h, r.hue) <= r.hue_width + eps_hue
            && (r.sat.0 - eps_sv..=r.sat.1 + eps_sv).contains(&s)
            && (r.val.0 - eps_sv..=r.val.1 + eps_sv).contains(&v)
    })
}

/// `a` and `b` mixed: `t = 0` gives `a`.
pub fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// `a` scaled by `k`.
pub fn scale(a: Rgb, k: f32) -> Rgb {
    [a[0] * k, a[1] * k, a[2] * k]
}

/// Rec. 601 luma.
pub fn luma(a: Rgb) -> f32 {
    0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{rng_for, Purpose};

    #[test]
    fn shades_stay_in_their_name() {
        let mut rng = rng_for(0, Purpose::Shade);
        for &colour in Colour::ALL {
            assert_eq!(classify(canonical(colour)), Some(colour));
            for _ in 0..500 {
                let shade = sample_shade(colour, &mut rng);
                assert_eq!(classify(shade), Some(colour), "{colour}: {shade:?}");
                // Still the same name once stored as 8-bit.
                let stored = shade.map(|c| (c * 255.0).round() / 255.0);
                assert_eq!(classify(stored), Some(colour), "{colour}: {stored:?}");
            }
        }
    }

    #[test]
    fn hsv_round_trip() {
        for (h, s, v) in [(10.0, 0.5, 0.7), (200.0, 0.9, 0.3), (330.0, 0.2, 1.0)] {
            let (h2, s2, v2) = rgb_to_hsv(hsv_to_rgb(h, s, v));
            assert!((h - h2).abs() < 1e-3 && (s - s2).abs() < 1e-4 && (v - v2).abs() < 1e-5);
        }
    }
}
