//! How much audio survives the log-mel representation and a vocoder, as the audio
//! probe hears it: the ceiling of any text-to-audio decoder that generates mel
//! spectrograms, and the measure by which a trained vocoder must beat Griffin-Lim.

use std::time::Instant;

use candle_core::Device;
use mmgen_models::mel::{spectral_convergence, MelConfig, MelSpectrogram};
use mmgen_world::Split;
use serde_json::json;

use crate::error::{EvalError, Result};
use crate::probe::audio::AudioProbe;
use crate::probe::audio_data::{audio_probe_accuracy, audio_probe_accuracy_through};
use crate::probe::measure::tallies_json;

/// Which clips and how many Griffin-Lim rounds.
#[derive(Clone, Copy, Debug)]
pub struct VocoderRun {
    /// Fresh world clips.
    pub clips: usize,
    /// Griffin-Lim iterations.
    pub iters: usize,
    /// Seed of the clips and the initial phases.
    pub seed: u64,
    /// Which side of the compositional split.
    pub split: Split,
}

/// The probe's accuracy on fresh world clips, as rendered and after log-mel ->
/// Griffin-Lim, with the spectral convergence of the vocoded clips and the vocoder's
/// seconds per clip. `listen(i, original, vocoded)` sees every pair (to write a few
/// for listening).
pub fn vocoder_report(
    probe: &AudioProbe,
    mel: &MelConfig,
    run: VocoderRun,
    device: &Device,
    mut listen: impl FnMut(usize, &[f32], &[f32]),
) -> Result<serde_json::Value> {
    let VocoderRun {
        clips: n,
        iters,
        seed,
        split,
    } = run;
    if n == 0 || iters == 0 {
        return Err(EvalError::Invalid(format!(
            "n ({n}) and iters ({iters}) must be at least 1"
        )));
    }
    if mel.sample_rate != probe.config().sample_rate {
        return Err(EvalError::Invalid(format!(
            "the mel spectrogram is at {} Hz but the probe hears {} Hz",
            mel.sample_rate,
            probe.config().sample_rate
        )));
    }
    let spectrogram = MelSpectrogram::new(mel)?;
    let original = audio_probe_accuracy(probe, n, seed, split, device)?;
    let (mut convergence, mut seconds, mut index) = (0.0f64, 0.0f64, 0usize);
    let vocoded = audio_probe_accuracy_through(probe, n, seed, split, device, |clip| {
        let start = Instant::now();
        let magnitudes = spectrogram.magnitudes(clip);
        let out = spectrogram.vocode(
            &spectrogram.log_mel_of(&magnitudes),
            clip.len(),
            iters,
            seed ^ index as u64,
        )?;
        seconds += start.elapsed().as_secs_f64();
        convergence += spectral_convergence(&magnitudes, &spectrogram.magnitudes(&out)) as f64;
        listen(index, clip, &out);
        index += 1;
        Ok(out)
    })?;
    Ok(json!({
        "clips": n,
        "split": split,
        "seconds_of_audio_per_clip": probe.config().seconds,
        "mel": mel,
        "vocoder": format!("Griffin-Lim (fast, momentum 0.99), {iters} iterations, mel -> magnitudes by NNLS"),
        "accuracy_original": tallies_json(&original),
        "accuracy_vocoded": tallies_json(&vocoded),
        "spectral_convergence": convergence / n as f64,
        "vocoder_seconds_per_clip": seconds / n as f64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::audio::AudioProbeConfig;
    use candle_nn::{VarBuilder, VarMap};

    #[test]
    fn reports_both_readings_and_refuses_bad_runs() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let probe = AudioProbe::new(
            &AudioProbeConfig::tiny(),
            VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &dev),
        )
        .unwrap();
        let run = VocoderRun {
            clips: 2,
            iters: 4,
            seed: 1,
            split: Split::Train,
        };
        let mut heard = 0;
        let report = vocoder_report(&probe, &MelConfig::default(), run, &dev, |_, a, b| {
            assert_eq!(a.len(), b.len());
            heard += 1;
        })
        .unwrap();
        assert_eq!(heard, 2);
        for key in ["instrument", "mood", "tempo_within_10pct"] {
            assert!(report["accuracy_original"][key]["accuracy"].is_number(), "{key}");
            assert!(report["accuracy_vocoded"][key]["accuracy"].is_number(), "{key}");
        }
        let sc = report["spectral_convergence"].as_f64().unwrap();
        assert!(sc > 0.0 && sc < 1.0, "spectral convergence {sc}");
        let none = VocoderRun { clips: 0, ..run };
        assert!(vocoder_report(&probe, &MelConfig::default(), none, &dev, |_, _, _| {}).is_err());
        let other_rate = MelConfig {
            sample_rate: 24_000,
            ..MelConfig::default()
        };
        let err = vocoder_report(&probe, &other_rate, run, &dev, |_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("24000 Hz"), "{err}");
    }
}
