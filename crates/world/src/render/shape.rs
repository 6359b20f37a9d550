//! Signed distance functions of the shapes, after Inigo Quilez's 2D distance
//! functions (iquilezles.org/articles/distfunctions2d). Distances are negative inside;
//! every shape fits the unit circle, and `p` is in the object's frame with y up.

use crate::spec::Shape;

fn length(x: f32, y: f32) -> f32 {
    (x * x + y * y).sqrt()
}

fn sd_box(x: f32, y: f32, bx: f32, by: f32) -> f32 {
    let (dx, dy) = (x.abs() - bx, y.abs() - by);
    length(dx.max(0.0), dy.max(0.0)) + dx.max(dy).min(0.0)
}

/// Equilateral triangle of half side `r`, apex up, centred on its centroid.
fn sd_triangle(x: f32, y: f32, r: f32) -> f32 {
    let k = 3f32.sqrt();
    let (mut px, mut py) = (x.abs() - r, y + r / k);
    if px + k * py > 0.0 {
        (px, py) = ((px - k * py) / 2.0, (-k * px - py) / 2.0);
    }
    px -= px.clamp(-2.0 * r, 0.0);
    -length(px, py) * py.signum()
}

/// Five-pointed star of outer radius `r`; `rf` sets the inner radius.
fn sd_star5(x: f32, y: f32, r: f32, rf: f32) -> f32 {
    let k1 = (0.809_017_f32, -0.587_785_f32);
    let k2 = (-k1.0, k1.1);
    let (mut px, mut py) = (x.abs(), y);
    let d1 = (k1.0 * px + k1.1 * py).max(0.0);
    px -= 2.0 * d1 * k1.0;
    py -= 2.0 * d1 * k1.1;
    let d2 = (k2.0 * px + k2.1 * py).max(0.0);
    px -= 2.0 * d2 * k2.0;
    py -= 2.0 * d2 * k2.1;
    px = px.abs();
    py -= r;
    let (bx, by) = (rf * -k1.1, rf * k1.0 - 1.0);
    let h = ((px * bx + py * by) / (bx * bx + by * by)).clamp(0.0, r);
    length(px - bx * h, py - by * h) * (py * bx - px * by).signum()
}

/// Heart with its tip at the origin, about 1.1 tall.
fn sd_heart(x: f32, y: f32) -> f32 {
    let px = x.abs();
    if y + px > 1.0 {
        return length(px - 0.25, y - 0.75) - std::f32::consts::SQRT_2 / 4.0;
    }
    let a = length(px, y - 1.0);
    let m = 0.5 * (px + y).max(0.0);
    let b = length(px - m, y - m);
    a.min(b) * (px - y).signum()
}

/// Rhombus with half diagonals (bx, by).
fn sd_rhombus(x: f32, y: f32, bx: f32, by: f32) -> f32 {
    let (px, py) = (x.abs(), y.abs());
    let ndot = (bx - 2.0 * px) * bx - (by - 2.0 * py) * by;
    let h = (ndot / (bx * bx + by * by)).clamp(-1.0, 1.0);
    let d = length(px - 0.5 * bx * (1.0 - h), py - 0.5 * by * (1.0 + h));
    d * (px * by + py * bx - bx * by).signum()
}

/// Regular hexagon of inradius `r`, flat top and bottom.
fn sd_hexagon(x: f32, y: f32, r: f32) -> f32 {
    let k = (-0.866_025_4_f32, 0.5_f32, 0.577_350_26_f32);
    let (mut px, mut py) = (x.abs(), y.abs());
    let d = (k.0 * px + k.1 * py).min(0.0);
    px -= 2.0 * d * k.0;
    py -= 2.0 * d * k.1;
    px -= px.clamp(-k.2 * r, k.2 * r);
    py -= r;
    length(px, py) * py.signum()
}

/// Distance to `shape` at local point (x, y), y up, in units of the object radius.
pub fn signed_distance(shape: Shape, x: f32, y: f32) -> f32 {
    match shape {
        Shape::Circle => length(x, y) - 0.85,
        Shape::Square => sd_box(x, y, 0.72, 0.72),
        Shape::Triangle => sd_triangle(x, y, 0.85),
        Shape::Star => sd_star5(x, y, 1.0, 0.45),
        Shape::Heart => {
            let s = 1.5;
            sd_heart(x / s, y / s + 0.66) * s
        }
        Shape::Diamond => sd_rhombus(x, y, 0.68, 0.98),
        Shape::Hexagon => sd_hexagon(x, y, 0.82),
        Shape::Cross => sd_box(x, y, 0.92, 0.3).min(sd_box(x, y, 0.3, 0.92)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Area inside, centroid, and how far the shape reaches, by sampling a grid.
    fn moments(shape: Shape) -> (f32, f32, f32, f32) {
        let n = 200;
        let (mut area, mut sx, mut sy, mut reach) = (0.0, 0.0, 0.0, 0.0f32);
        for i in 0..n {
            for j in 0..n {
                let x = -1.2 + 2.4 * (i as f32 + 0.5) / n as f32;
                let y = -1.2 + 2.4 * (j as f32 + 0.5) / n as f32;
                if signed_distance(shape, x, y) < 0.0 {
                    area += 1.0;
                    sx += x;
                    sy += y;
                    reach = reach.max(length(x, y));
                }
            }
        }
        let cell = (2.4 / n as f32).powi(2);
        (area * cell, sx / area, sy / area, reach)
    }

    #[test]
    fn shapes_fit_the_unit_circle_and_are_centred() {
        for &shape in Shape::ALL {
            let (area, cx, cy, reach) = moments(shape);
            assert!(reach <= 1.02, "{shape} reaches {reach}");
            assert!(area > 0.9 && area < 2.6, "{shape} area {area}");
            assert!(cx.abs() < 0.02 && cy.abs() < 0.16, "{shape} centroid ({cx}, {cy})");
        }
    }

    #[test]
    fn distances_are_signed_and_metric() {
        for &shape in Shape::ALL {
            assert!(signed_distance(shape, 0.0, 0.0) < 0.0, "{shape} centre not inside");
            assert!(signed_distance(shape, 1.5, 1.5) > 0.0);
        }
        assert!((signed_distance(Shape::Circle, 2.0, 0.0) - 1.15).abs() < 1e-6);
        assert!((signed_distance(Shape::Square, 1.0, 0.0) - 0.28).abs() < 1e-6);
    }
}
