//! Tests of `synth`.

use super::*;
use candle_nn::VarMap;
use mmgen_nn::seeded_var_builder;

fn tiny() -> Synth {
    tiny_with(|_| {})
}

/// A tiny synthesiser whose variables `edit` may change.
fn tiny_with(edit: impl FnOnce(&VarMap)) -> Synth {
    let varmap = VarMap::new();
    let config = SynthConfig::tiny(vec!["lead".into(), "drum".into()]);
    let synth = Synth::new(
        &config,
        seeded_var_builder(&varmap, 1, DType::F32, &Device::Cpu),
        &Device::Cpu,
    )
    .unwrap();
    edit(&varmap);
    synth
}

/// The strongest frequency of `audio`'s first 4096 samples, Hz (zero-padded FFT).
fn peak_hz(audio: &[f32]) -> f32 {
    let n = 16_384;
    let mut frame: Vec<f32> = audio[..4096].to_vec();
    frame.resize(n, 0.0);
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(n);
    let mut spectrum = fft.make_output_vec();
    fft.process(&mut frame, &mut spectrum).unwrap();
    let peak = (1..spectrum.len())
        .max_by(|&a, &b| spectrum[a].norm().total_cmp(&spectrum[b].norm()))
        .unwrap();
    peak as f32 * 16_000.0 / n as f32
}

fn note(onset: f32, pitch: Option<f32>) -> SynthNote {
    SynthNote {
        onset,
        duration: 0.3,
        timbre: pitch.is_none() as u32,
        pitch,
        velocity: 0.8,
    }
}

#[test]
fn the_harmonics_land_at_the_notes_pitch() {
    // The strongest harmonic peaks at a multiple of 440 Hz within 1%, also when the
    // pitch head pushes as far as it can: a pitched note cannot leave its pitch.
    let pushed = tiny_with(|vars| {
        let data = vars.data().lock().unwrap();
        data["pitch.bias"]
            .set(&Tensor::new(&[50f32], &Device::Cpu).unwrap())
            .unwrap();
    });
    for synth in [tiny(), pushed] {
        let samples = synth.note_samples(0.3);
        let audio = &synth.render_batch(&[note(0.0, Some(69.0))], &[0], samples).unwrap()[0];
        let hz = peak_hz(audio);
        let harmonic = (hz / 440.0).round().max(1.0);
        assert!(((hz / harmonic) - 440.0).abs() / 440.0 < 0.011, "peak at {hz} Hz");
    }
}

#[test]
fn streaming_in_blocks_equals_one_long_render() {
    let synth = tiny();
    let notes = [
        note(0.0, Some(60.0)),
        note(0.1, None),
        note(0.25, Some(64.0)),
        note(0.9, Some(67.0)),
    ];
    let mix = |block| MixSettings {
        samples: 24_000,
        block,
        gain: 1.0,
    };
    let render = |block| {
        let mut out = Vec::new();
        let n = render_stream(&synth, &notes, 5, &mix(block), |b| {
            assert!(b.len() <= block);
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 24_000);
        out
    };
    let whole = render(24_000);
    assert_eq!(whole.len(), 24_000);
    for block in [1, 777, 4096] {
        let blocks = render(block);
        let worst = whole
            .iter()
            .zip(&blocks)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-5, "block {block}: {worst}");
    }
    assert!(whole.iter().any(|x| x.abs() > 1e-4), "notes are heard");
    assert!(whole.iter().all(|x| x.abs() < 1.0), "soft-clipped");
}

#[test]
fn the_stft_loss_is_zero_on_itself_and_grows_with_a_difference() {
    let device = Device::Cpu;
    let xs = Tensor::randn(0f32, 1.0, (2, 2048), &device).unwrap();
    let same = stft_loss(&xs, &xs, &[256, 512]).unwrap().to_scalar::<f32>().unwrap();
    let other = (&xs * 0.5).unwrap();
    let diff = stft_loss(&xs, &other, &[256, 512]).unwrap().to_scalar::<f32>().unwrap();
    assert!(same < 1e-6 && diff > 0.1, "{same} {diff}");
    assert!(stft_loss(&xs, &xs, &[4096]).is_err());
}

#[test]
fn bad_notes_and_blocks_are_refused() {
    let synth = tiny();
    let mut bad = note(0.0, Some(60.0));
    bad.timbre = 9;
    assert!(synth
        .controls(&[bad], 0.0, 1280)
        .unwrap_err()
        .to_string()
        .contains("timbre id 9"));
    let mix = MixSettings {
        samples: 100,
        block: 0,
        gain: 1.0,
    };
    assert!(render_stream(&synth, &[], 0, &mix, |_| Ok(())).is_err());
    let unsorted = [note(0.5, Some(60.0)), note(0.1, Some(60.0))];
    let mix = MixSettings { block: 10, ..mix };
    assert!(render_stream(&synth, &unsorted, 0, &mix, |_| Ok(()))
        .unwrap_err()
        .to_string()
        .contains("sorted"));
}

#[test]
fn the_sample_by_sample_path_equals_the_tensor_path() {
    // The same noise in both: the inference path draws what training fits.
    let synth = tiny();
    let notes = [note(0.0, Some(57.0)), note(0.0, None)];
    let samples = synth.note_samples(0.3);
    let controls = synth.controls(&notes, 0.0, samples).unwrap();
    let bands = synth.config().noise_bands;
    let noise: Vec<f32> = [3u64, 4]
        .iter()
        .flat_map(|&seed| synth.noise_bands(seed, samples).unwrap())
        .collect();
    let noise_tensor = Tensor::from_vec(noise.clone(), (2, bands, samples), &Device::Cpu).unwrap();
    let tensor: Vec<Vec<f32>> = synth.synthesise(&controls, &noise_tensor).unwrap().to_vec2().unwrap();
    let fast = synth
        .synthesise_frames(&controls, |n, band, at| noise[(n * bands + band) * samples + at])
        .unwrap();
    for (a, b) in tensor.iter().zip(&fast) {
        assert_eq!(a.len(), b.len());
        let peak = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(peak > 1e-3 && diff < 1e-3 * peak, "difference {diff}, peak {peak}");
    }
}
