//! Tests of `music`.

use super::*;

fn run(out: &std::path::Path) -> RunInfo<'_> {
    RunInfo {
        out,
        command: "test".into(),
        eval_samples: 32,
        checkpoint_every: 0,
        resume: None,
    }
}

#[test]
fn world_scores_round_trip_through_tokens() {
    let vocab = world_score_vocab();
    for instrument in [Instrument::Piano, Instrument::Drums] {
        let music = MusicSpec {
            instrument,
            mood: Mood::Sad,
            tempo_bpm: 100,
        };
        let s = score_from_world(&music, &score(&music, 6.0, 3));
        let back = Score::from_tokens(&s.tokens(&vocab).unwrap(), &vocab);
        assert_eq!(back.notes.len(), s.notes.len());
        for (a, b) in back.notes.iter().zip(&s.notes) {
            assert_eq!((a.beat, &a.voice, a.pitch), (b.beat, &b.voice, b.pitch));
        }
    }
}

#[test]
fn a_tiny_note_model_learns_and_round_trips() {
    let root = std::env::temp_dir().join(format!("mmgen-notes-{}", std::process::id()));
    let config = NoteModelConfig::tiny(world_score_vocab());
    let fit = FitOptions {
        log_every: 50,
        ..FitOptions::new(150, 16, 3e-3, 1)
    };
    let record = train_notes(&config, &fit, &run(&root), &Device::Cpu, |_| {}).unwrap();
    let loss = &record["validation_loss"];
    assert!(
        loss["final"].as_f64().unwrap() < 0.6 * loss["initial"].as_f64().unwrap(),
        "{loss}"
    );
    let loaded = NoteModel::load(&root, &Device::Cpu).unwrap();
    let a = loaded.generate("piano", "happy", 3, 5, 1.0).unwrap();
    assert_eq!(a, loaded.generate("piano", "happy", 3, 5, 1.0).unwrap());
    assert!(!a.notes.is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_tiny_synthesiser_learns_and_round_trips() {
    let root = std::env::temp_dir().join(format!("mmgen-synth-{}", std::process::id()));
    let config = SynthConfig::tiny(world_timbres());
    let fit = FitOptions {
        log_every: 20,
        ..FitOptions::new(40, 4, 3e-3, 2)
    };
    // A first run without the ambiences, then a resumed one that adds them.
    let first = root.join("first");
    let mut fewer = config.clone();
    fewer.timbres.truncate(config.timbres.len() - 3);
    train_synth(&fewer, &fit, &run(&first), &Device::Cpu, |_| {}).unwrap();
    let resumed = RunInfo {
        resume: Some(&first),
        ..run(&root)
    };
    let record = train_synth(&config, &fit, &resumed, &Device::Cpu, |_| {}).unwrap();
    let table =
        |dir: &std::path::Path| load_f32(&dir.join("model.safetensors"), &Device::Cpu).unwrap()[TIMBRE_TABLE].clone();
    assert_eq!(table(&root).dims()[0], config.timbres.len());
    assert_eq!(
        Synth::load(&root, &Device::Cpu).unwrap().config().timbres,
        config.timbres
    );
    let mean = |which: &str| {
        let m = record["stft_loss"][which].as_object().unwrap();
        let v: Vec<f64> = m.values().filter_map(|v| v.as_f64()).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean("final") < mean("initial"), "{}", record["stft_loss"]);
    let loaded = Synth::load(&root, &Device::Cpu).unwrap();
    let note = SynthNote {
        onset: 0.0,
        duration: 0.4,
        timbre: 0,
        pitch: Some(69.0),
        velocity: 0.9,
    };
    let samples = loaded.note_samples(0.4);
    let a = loaded.render_batch(&[note], &[1], samples).unwrap();
    assert_eq!(a, loaded.render_batch(&[note], &[1], samples).unwrap());
    let _ = std::fs::remove_dir_all(&root);
}
