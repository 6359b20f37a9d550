//! Analytic measurements of sound, used to check renders against their spec and, in
//! evaluation, to read a tempo from any audio: an onset-based tempo estimator
//! (spectral flux + autocorrelation, as in Ellis 2007 and librosa's beat tracker's
//! front end) and a YIN pitch estimator (de Cheveigne & Kawahara 2002).

use realfft::RealFftPlanner;

/// Onset strength per frame (half-wave rectified spectral flux of log magnitudes, less
/// its local mean), and the frame rate in Hz.
pub fn onset_envelope(samples: &[f32], sample_rate: u32) -> (Vec<f32>, f32) {
    let hop = ((sample_rate as f32) * 0.008).round().max(1.0) as usize;
    let frame = (4 * hop).next_power_of_two();
    let fps = sample_rate as f32 / hop as f32;
    if samples.len() < frame {
        return (Vec::new(), fps);
    }
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(frame);
    let window: Vec<f32> = (0..frame)
        .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / frame as f32).cos())
        .collect();
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut prev: Vec<f32> = vec![0.0; spectrum.len()];
    let mut flux = Vec::new();
    let mut start = 0;
    while start + frame <= samples.len() {
        for (i, x) in input.iter_mut().enumerate() {
            *x = samples[start + i] * window[i];
        }
        if fft.process(&mut input, &mut spectrum).is_err() {
            break;
        }
        let mut sum = 0.0;
        for (bin, c) in spectrum.iter().enumerate() {
            let mag = (1.0 + 100.0 * c.norm()).ln();
            sum += (mag - prev[bin]).max(0.0);
            prev[bin] = mag;
        }
        flux.push(sum);
        start += hop;
    }
    if let Some(first) = flux.first_mut() {
        *first = 0.0;
    }
    // Subtract a 0.5 s moving mean so that steady noise (rain, waves) does not count.
    let half = (0.25 * fps) as usize;
    let mut prefix = vec![0.0f32; flux.len() + 1];
    for (i, f) in flux.iter().enumerate() {
        prefix[i + 1] = prefix[i] + f;
    }
    let envelope = (0..flux.len())
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(flux.len()));
            (flux[i] - (prefix[hi] - prefix[lo]) / (hi - lo) as f32).max(0.0)
        })
        .collect();
    (envelope, fps)
}

/// Tempo in beats per minute within [min_bpm, max_bpm], or `None` for audio too short
/// or too flat to have one. Picks the shortest beat period whose onset autocorrelation
/// is within 75% of the best, since every multiple of the true period scores as high.
pub fn estimate_tempo(samples: &[f32], sample_rate: u32, min_bpm: f32, max_bpm: f32) -> Option<f32> {
    let (env, fps) = onset_envelope(samples, sample_rate);
    let lag_min = (60.0 * fps / max_bpm).floor().max(1.0) as usize;
    let lag_max = (60.0 * fps / min_bpm).ceil() as usize;
    if env.len() < lag_max + 2 {
        return None;
    }
    let ac: Vec<f32> = (0..=lag_max + 1)
        .map(|lag| {
            let n = env.len() - lag;
            env[..n].iter().zip(&env[lag..]).map(|(a, b)| a * b).sum::<f32>() / n as f32
        })
        .collect();
    let peaks: Vec<usize> = (lag_min.max(1)..=lag_max)
        .filter(|&l| ac[l] >= ac[l - 1] && ac[l] >= ac[l + 1])
        .collect();
    let best = peaks.iter().map(|&l| ac[l]).fold(0.0f32, f32::max);
    if best <= 0.0 {
        return None;
    }
    let lag = *peaks.iter().find(|&&l| ac[l] >= 0.75 * best)?;
    let (a, b, c) = (ac[lag - 1], ac[lag], ac[lag + 1]);
    let denom = a - 2.0 * b + c;
    let offset = if denom.abs() > 1e-12 {
        (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    Some(60.0 * fps / (lag as f32 + offset))
}

/// Fundamental frequency (Hz) of a steady stretch of `samples` by YIN, searched in
/// [fmin, fmax]; `None` when nothing periodic is found.
pub fn estimate_pitch(samples: &[f32], sample_rate: u32, fmin: f32, fmax: f32) -> Option<f32> {
    let sr = sample_rate as f32;
    let tau_min = (sr / fmax).floor().max(2.0) as usize;
    let tau_max = (sr / fmin).ceil() as usize;
    let window = (2 * tau_max).max(1024);
    if samples.len() < window + tau_max + 2 {
        return None;
    }
    let xs = &samples[..window + tau_max + 2];
    let diff: Vec<f32> = (0..=tau_max + 1)
        .map(|tau| (0..window).map(|i| (xs[i] - xs[i + tau]).powi(2)).sum())
        .collect();
    // Cumulative-mean-normalised difference (YIN step 3).
    let mut cmnd = vec![1.0f32; diff.len()];
    let mut running = 0.0;
    for tau in 1..diff.len() {
        running += diff[tau];
        cmnd[tau] = if running > 0.0 {
            diff[tau] * tau as f32 / running
        } else {
            1.0
        };
    }
    let mut tau = (tau_min..=tau_max).find(|&t| cmnd[t] < 0.15)?;
    while tau < tau_max && cmnd[tau + 1] < cmnd[tau] {
        tau += 1;
    }
    let (a, b, c) = (cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]);
    let denom = a - 2.0 * b + c;
    let offset = if denom.abs() > 1e-12 {
        (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    Some(sr / (tau as f32 + offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_track_tempo() {
        let sr = 16_000;
        for bpm in [60.0f32, 97.0, 128.0, 160.0] {
            let mut xs = vec![0.0f32; sr as usize * 6];
            let period = 60.0 / bpm * sr as f32;
            let mut t = 800.0;
            while (t as usize) + 200 < xs.len() {
                for j in 0..200 {
                    xs[t as usize + j] += (-(j as f32) / 40.0).exp() * ((j * 7919 % 13) as f32 / 6.0 - 1.0);
                }
                t += period;
            }
            let est = estimate_tempo(&xs, sr, 60.0, 160.0).unwrap();
            assert!((est - bpm).abs() / bpm < 0.02, "{bpm}: {est}");
        }
    }

    #[test]
    fn sine_pitch() {
        let sr = 16_000;
        for f in [110.0f32, 261.6, 440.0, 987.8] {
            let xs: Vec<f32> = (0..8000)
                .map(|i| (std::f32::consts::TAU * f * i as f32 / sr as f32).sin())
                .collect();
            let est = estimate_pitch(&xs, sr, 60.0, 1500.0).unwrap();
            assert!((est - f).abs() / f < 0.003, "{f}: {est}");
        }
        assert!(estimate_pitch(&[0.0; 100], sr, 60.0, 1500.0).is_none());
    }
}
