//! The synthesiser's oscillators and noise bands, sample by sample: what
//! [`super::Synth::synthesise`] does with tensors for training, without a tensor of
//! every harmonic at every sample (the inference path; about 20x less work).

/// Harmonics handled together: one SIMD register of f32 lanes on most machines.
const LANES: usize = 8;

/// The harmonic oscillators of one note: `amplitudes` (K, F) and `omega` (F, radians
/// per sample of the fundamental) to (F - 1) `hop` samples. As in the tensor path,
/// each frame starts at the phase its predecessors reached and runs at its own
/// frequency, with amplitudes linear between frames.
pub(super) fn oscillators(amplitudes: &[Vec<f32>], omega: &[f32], hop: usize) -> Vec<f32> {
    let frames = omega.len();
    let steps = frames.saturating_sub(1);
    let mut out = vec![0f32; steps * hop];
    let k = amplitudes.len();
    let groups = k.div_ceil(LANES);
    // The fundamental's phase at the frame start, in f64 so long notes stay in tune.
    let mut phase = 0f64;
    for f in 0..steps {
        let w = omega[f] as f64;
        let frame = &mut out[f * hop..(f + 1) * hop];
        for g in 0..groups {
            // Each lane's phasor (re, im), its per-sample rotation, amplitude and slope.
            let mut re = [0f32; LANES];
            let mut im = [0f32; LANES];
            let mut rot_re = [1f32; LANES];
            let mut rot_im = [0f32; LANES];
            let mut amp = [0f32; LANES];
            let mut slope = [0f32; LANES];
            let mut silent = true;
            for lane in 0..LANES {
                let h = g * LANES + lane;
                if h >= k {
                    break;
                }
                let (a0, a1) = (amplitudes[h][f], amplitudes[h][f + 1]);
                if a0 == 0.0 && a1 == 0.0 {
                    continue;
                }
                silent = false;
                let order = (h + 1) as f64;
                let start = (order * phase).rem_euclid(std::f64::consts::TAU);
                (re[lane], im[lane]) = (start.cos() as f32, start.sin() as f32);
                (rot_re[lane], rot_im[lane]) = ((order * w).cos() as f32, (order * w).sin() as f32);
                amp[lane] = a0;
                slope[lane] = (a1 - a0) / hop as f32;
            }
            if silent {
                continue;
            }
            for sample in frame.iter_mut() {
                let mut sum = [0f32; LANES];
                for lane in 0..LANES {
                    sum[lane] = amp[lane] * im[lane];
                    let next_re = re[lane] * rot_re[lane] - im[lane] * rot_im[lane];
                    im[lane] = re[lane] * rot_im[lane] + im[lane] * rot_re[lane];
                    re[lane] = next_re;
                    amp[lane] += slope[lane];
                }
                *sample += sum.iter().sum::<f32>();
            }
        }
        phase += w * hop as f64;
    }
    out
}

/// Adds the noise bands to `out`: `gains` (bands, F) linear between frames, times
/// `noise(band, sample)`.
pub(super) fn add_noise(out: &mut [f32], gains: &[Vec<f32>], hop: usize, noise: impl Fn(usize, usize) -> f32) {
    for (band, gain) in gains.iter().enumerate() {
        for (f, frame) in out.chunks_mut(hop).enumerate() {
            let (g0, g1) = (gain[f], gain[f + 1]);
            let slope = (g1 - g0) / hop as f32;
            for (i, sample) in frame.iter_mut().enumerate() {
                *sample += (g0 + slope * i as f32) * noise(band, f * hop + i);
            }
        }
    }
}
