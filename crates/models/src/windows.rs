//! Sequences longer than a model's window (long videos, long audio), denoised as
//! overlapping windows whose predictions are averaged where they overlap
//! (MultiDiffusion, Bar-Tal et al. 2023). The windows of a step go through the
//! network in batches of at most [`WINDOWS_PER_BATCH`], so chunks are processed in
//! parallel while memory stays flat in the sequence's length, and the overlaps tie
//! neighbouring chunks together at every step, so the result has no seams.

use candle_core::Tensor;

use crate::dit::DitText;
use crate::error::{ModelError, Result};

/// The most windows one network call sees: enough rows for efficient GEMMs, few
/// enough that a clip of any length needs no more memory than a few windows.
pub const WINDOWS_PER_BATCH: usize = 8;

/// Start positions of windows of `window` covering `len` positions, neighbours
/// overlapping by at least `overlap`: evenly spread, first at 0 and last at
/// `len - window`. One window when `len <= window`.
pub fn window_starts(len: usize, window: usize, overlap: usize) -> Result<Vec<usize>> {
    if window == 0 || overlap >= window {
        return Err(ModelError::Invalid(format!(
            "windows of {window} overlapping by {overlap}: the overlap must be smaller than the window"
        )));
    }
    if len <= window {
        return Ok(vec![0]);
    }
    let stride = window - overlap;
    let count = (len - window).div_ceil(stride) + 1;
    // Spread the windows evenly between 0 and len - window (overlaps >= `overlap`).
    Ok((0..count).map(|i| i * (len - window) / (count - 1)).collect())
}

/// Applies `model` to every window of `xs` along dimension 1 (length `len`, windows
/// of `window`, `overlap` positions shared by neighbours), in batches of at most
/// [`WINDOWS_PER_BATCH`] windows, and averages the outputs where windows overlap.
/// `model` maps (k * b, window, ...) to the same shape, windows stacked window-major
/// (a batch's first window's b elements first). When
/// `len < window` the sequence is padded by repeating its last position, and the
/// padding's output is dropped.
pub fn windowed(
    xs: &Tensor,
    window: usize,
    overlap: usize,
    mut model: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let len = xs.dim(1)?;
    if len == 0 {
        return Err(ModelError::Invalid("an empty sequence has no windows".into()));
    }
    if len < window {
        let last = xs.narrow(1, len - 1, 1)?;
        let mut repeat = vec![1usize; xs.rank()];
        repeat[1] = window - len;
        let padded = Tensor::cat(&[xs, &last.repeat(repeat)?], 1)?;
        return Ok(model(&padded)?.narrow(1, 0, len)?);
    }
    let starts = window_starts(len, window, overlap)?;
    if starts.len() == 1 {
        return model(xs);
    }
    let b = xs.dim(0)?;
    // The output is made segment by segment between window edges, each segment the
    // mean of the windows covering it, as soon as no later window reaches it: time and
    // memory stay linear in the length (adding every window into a whole-length sum
    // made both quadratic).
    let mut edges: Vec<usize> = starts.iter().flat_map(|&s| [s, s + window]).collect();
    edges.sort_unstable();
    edges.dedup();
    let mut computed: Vec<(usize, Tensor)> = Vec::new();
    let mut segments = Vec::with_capacity(edges.len());
    let mut edge = 0;
    for (g, group) in starts.chunks(WINDOWS_PER_BATCH).enumerate() {
        let pieces = group
            .iter()
            .map(|&s| xs.narrow(1, s, window))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let out = model(&Tensor::cat(&pieces, 0)?)?;
        for (k, &s) in group.iter().enumerate() {
            computed.push((s, out.narrow(0, k * b, b)?));
        }
        // Later windows start at or after the next group's first start.
        let frontier = starts.get((g + 1) * WINDOWS_PER_BATCH).copied().unwrap_or(len);
        while edge + 1 < edges.len() && edges[edge + 1] <= frontier {
            let (from, to) = (edges[edge], edges[edge + 1]);
            let mut sum: Option<Tensor> = None;
            let mut count = 0usize;
            for (s, out) in computed.iter().filter(|(s, _)| *s <= from && s + window >= to) {
                let part = out.narrow(1, from - s, to - from)?;
                sum = Some(match sum {
                    None => part,
                    Some(total) => (total + part)?,
                });
                count += 1;
            }
            let sum = sum.ok_or_else(|| ModelError::Invalid(format!("no window covers positions {from}..{to}")))?;
            let weight = Tensor::new(1.0 / count as f32, xs.device())?.to_dtype(xs.dtype())?;
            segments.push(sum.broadcast_mul(&weight)?);
            edge += 1;
        }
        let next = edges[edge];
        computed.retain(|(s, _)| s + window > next);
    }
    Ok(Tensor::cat(&segments, 1)?)
}

/// The denoising network of a long sequence: a DiT's `forward` (noisy latents,
/// timesteps, text) over overlapping windows of the latents (b, frames, ...), each
/// window with the step's timesteps and the text states of its batch element (both
/// repeated once per window).
pub fn windowed_dit<'a>(
    forward: impl Fn(&Tensor, &Tensor, &DitText) -> Result<Tensor> + 'a,
    text: &'a DitText,
    window: usize,
    overlap: usize,
) -> impl Fn(&Tensor, &Tensor) -> Result<Tensor> + 'a {
    move |xs: &Tensor, t: &Tensor| {
        let n = xs.dim(0)?;
        windowed(xs, window, overlap, |windows| {
            let k = windows.dim(0)? / n;
            forward(windows, &t.repeat(k)?, &text.repeat(k)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn starts_cover_the_sequence_with_the_overlap() {
        assert_eq!(window_starts(8, 8, 4).unwrap(), vec![0]);
        assert_eq!(window_starts(5, 8, 4).unwrap(), vec![0]);
        assert_eq!(window_starts(24, 8, 4).unwrap(), vec![0, 4, 8, 12, 16]);
        for (len, window, overlap) in [(25, 8, 4), (100, 30, 10), (9, 8, 1)] {
            let starts = window_starts(len, window, overlap).unwrap();
            assert_eq!(starts[0], 0);
            assert_eq!(*starts.last().unwrap(), len - window);
            for pair in starts.windows(2) {
                assert!(pair[0] + window >= pair[1] + overlap, "{starts:?}");
            }
        }
        assert!(window_starts(10, 4, 4).is_err());
        assert!(window_starts(10, 0, 0).is_err());
    }

    /// A model that acts per position gives, windowed, what it gives on the whole;
    /// a short sequence is padded and cropped.
    #[test]
    fn per_position_models_are_unchanged_by_windows() {
        let dev = Device::Cpu;
        let xs = mmgen_diffusion::gaussian((2, 23, 3), 1, &dev).unwrap();
        let f = |x: &Tensor| Ok((x * 2.0)?.sin()?);
        let max_diff =
            |a: Tensor, b: Tensor| -> f32 { (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
        let diff = max_diff(f(&xs).unwrap(), windowed(&xs, 8, 3, f).unwrap());
        assert!(diff < 1e-6, "{diff}");
        // A long sequence: the same per-position result, in batches of bounded size.
        let long = mmgen_diffusion::gaussian((2, 200, 3), 2, &dev).unwrap();
        let mut largest = 0;
        let out = windowed(&long, 8, 3, |x: &Tensor| {
            largest = largest.max(x.dim(0)?);
            f(x)
        })
        .unwrap();
        assert_eq!(largest, 2 * WINDOWS_PER_BATCH, "40 windows, 8 per call");
        let diff = max_diff(f(&long).unwrap(), out);
        assert!(diff < 1e-6, "{diff}");
        let short = xs.narrow(1, 0, 5).unwrap();
        let mut seen = 0;
        let out = windowed(&short, 8, 3, |x: &Tensor| {
            seen = x.dim(1)?;
            Ok(x.clone())
        })
        .unwrap();
        assert_eq!(seen, 8);
        assert_eq!(out.dims(), &[2, 5, 3]);
    }

    /// Chunked generation is continuous at chunk borders, measured: a "model" that
    /// makes each window constant in time (the strongest chunk-local smoothing),
    /// iterated like a sampler, leaves jumps at the borders of independent chunks
    /// and none worth the name where windows overlap and are averaged.
    #[test]
    fn overlapping_windows_leave_no_seams() {
        let dev = Device::Cpu;
        let xs = mmgen_diffusion::gaussian((1, 24, 16), 2, &dev).unwrap();
        let window_mean = |x: &Tensor| Ok(x.mean_keepdim(1)?.broadcast_as(x.shape())?.contiguous()?);
        let run = |overlap: usize| -> (f32, f32) {
            let mut x = xs.clone();
            for _ in 0..30 {
                let smoothed = windowed(&x, 8, overlap, window_mean).unwrap();
                x = ((x * 0.5).unwrap() + (smoothed * 0.5).unwrap()).unwrap();
            }
            // Mean absolute change between consecutive frames, at window borders and
            // inside windows (borders of independent windows at 8 and 16).
            let frames: Vec<Vec<f32>> = x.get(0).unwrap().to_vec2().unwrap();
            let step = |t: usize| -> f32 {
                frames[t]
                    .iter()
                    .zip(&frames[t + 1])
                    .map(|(a, b)| (a - b).abs())
                    .sum::<f32>()
                    / 16.0
            };
            let border = (step(7) + step(15)) / 2.0;
            let inside: f32 = (0..23).filter(|t| *t != 7 && *t != 15).map(step).sum::<f32>() / 21.0;
            (border, inside)
        };
        let (border, inside) = run(0);
        eprintln!("independent: border {border} inside {inside}");
        assert!(
            border > 10.0 * inside,
            "independent chunks: border {border}, inside {inside}"
        );
        let (border, inside) = run(4);
        eprintln!("overlap: border {border} inside {inside}");
        let largest_jump = border.max(inside);
        assert!(
            largest_jump < 0.2,
            "overlapping chunks: border {border}, inside {inside}"
        );
    }
}
