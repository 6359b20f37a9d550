//! Tests of `mel`.

use super::*;

fn tone(freqs: &[f32], seconds: f32) -> Vec<f32> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            freqs.iter().map(|f| (std::f32::consts::TAU * f * t).sin()).sum::<f32>() * 0.3
        })
        .collect()
}

#[test]
fn stft_inverts_exactly() {
    let mel = MelSpectrogram::new(&MelConfig::default()).unwrap();
    let audio = tone(&[220.0, 331.0, 1250.0], 1.0);
    let back = mel.istft(&mel.stft(&audio), audio.len());
    let err = audio.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 1e-4, "max error {err}");
}

#[test]
fn a_tone_lights_its_mel_band() {
    let mel = MelSpectrogram::new(&MelConfig::default()).unwrap();
    let spec = mel.log_mel(&tone(&[1000.0], 0.5));
    let c = MelConfig::default();
    let n = c.n_mels;
    assert_eq!((spec.frames, spec.n_mels), (mel.frames_for(8000), n));
    let frame = &spec.values[10 * n..11 * n];
    let peak = (0..n).max_by(|&a, &b| frame[a].total_cmp(&frame[b])).unwrap();
    // The band whose centre is nearest 1 kHz.
    let (lo, hi) = (hz_to_mel(c.f_min), hz_to_mel(c.f_max));
    let centre = |m: usize| mel_to_hz(lo + (hi - lo) * (m + 1) as f32 / (n + 1) as f32);
    let nearest = (0..n)
        .min_by(|&a, &b| (centre(a) - 1000.0).abs().total_cmp(&(centre(b) - 1000.0).abs()))
        .unwrap();
    assert!(peak.abs_diff(nearest) <= 1, "peak band {peak}, 1 kHz is band {nearest}");
}

#[test]
fn griffin_lim_recovers_magnitudes_and_pitch() {
    let mel = MelSpectrogram::new(&MelConfig::default()).unwrap();
    let audio = tone(&[261.6, 392.0, 523.3], 1.0);
    let target = mel.magnitudes(&audio);
    let few = mel.griffin_lim(&target, audio.len(), 2, 1).unwrap();
    let many = mel.griffin_lim(&target, audio.len(), 48, 1).unwrap();
    let (sc_few, sc_many) = (
        spectral_convergence(&target, &mel.magnitudes(&few)),
        spectral_convergence(&target, &mel.magnitudes(&many)),
    );
    assert!(
        sc_many < 0.15 && sc_many < 0.7 * sc_few,
        "spectral convergence {sc_few} -> {sc_many}"
    );
    assert_eq!(many, mel.griffin_lim(&target, audio.len(), 48, 1).unwrap(), "seeded");
    // Through the mel bottleneck, the chord's loudest partial stays where it was.
    let vocoded = mel.vocode(&mel.log_mel(&audio), audio.len(), 32, 1).unwrap();
    let spectrum = &mel.magnitudes(&vocoded)[20];
    let peak = (0..spectrum.len())
        .max_by(|&a, &b| spectrum[a].total_cmp(&spectrum[b]))
        .unwrap();
    let peak_hz = peak as f32 * 16_000.0 / mel.config().n_fft as f32;
    assert!(
        [261.6f32, 392.0, 523.3].iter().any(|f| (f - peak_hz).abs() < 40.0),
        "peak at {peak_hz} Hz"
    );
}

#[test]
fn long_clips_vocode_in_blocks_as_well_as_whole() {
    let mel = MelSpectrogram::new(&MelConfig::default()).unwrap();
    let audio = tone(&[261.6, 392.0, 523.3], 2.0);
    let log_mel = mel.log_mel(&audio);
    let target = mel.magnitudes(&audio);
    let whole = mel.vocode(&log_mel, audio.len(), 16, 1).unwrap();
    // 251 frames in blocks of 60 sharing 12: six blocks, five seams.
    let blocks = mel.vocode_in_blocks(&log_mel, audio.len(), 16, 1, 60, 12).unwrap();
    assert_eq!(blocks.len(), audio.len());
    let (sc_whole, sc_blocks) = (
        spectral_convergence(&target, &mel.magnitudes(&whole)),
        spectral_convergence(&target, &mel.magnitudes(&blocks)),
    );
    assert!(
        sc_blocks < 1.2 * sc_whole,
        "spectral convergence whole {sc_whole}, in blocks {sc_blocks}"
    );
    // No click at a seam: the largest step between samples is no larger than in the whole clip.
    let largest_step = |x: &[f32]| x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0f32, f32::max);
    assert!(largest_step(&blocks) < 1.5 * largest_step(&whole));
    assert_eq!(
        blocks,
        mel.vocode_in_blocks(&log_mel, audio.len(), 16, 1, 60, 12).unwrap(),
        "seeded"
    );
}

#[test]
fn bad_shapes_fail_clearly() {
    let bad = MelConfig {
        hop: 200,
        ..MelConfig::default()
    };
    let err = |c: &MelConfig| MelSpectrogram::new(c).err().unwrap().to_string();
    assert!(err(&bad).contains("hop at most"));
    let bad = MelConfig {
        f_max: 9_000.0,
        ..MelConfig::default()
    };
    assert!(err(&bad).contains("f_max <= 8000"), "{}", err(&bad));
    let mel = MelSpectrogram::new(&MelConfig::default()).unwrap();
    let short = LogMel {
        values: vec![0.0; 10],
        frames: 1,
        n_mels: 10,
    };
    assert!(mel.magnitudes_from_mel(&short).is_err());
    assert!(mel.griffin_lim(&[], 1000, 2, 0).is_err());
}
