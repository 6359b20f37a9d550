//! Probe training, resuming and calibration.

use super::*;

#[test]
fn probes_train_resume_and_fail_clearly() {
    let dir = temp_dir("probe");
    let out = dir.join("video");
    let o = out.to_str().unwrap();
    let run = mmgen(&[
        "train",
        "probe-video",
        "--tiny",
        "--steps",
        "3",
        "--batch",
        "4",
        "--eval-samples",
        "2",
        "--out",
        o,
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["probe"], "video");
    assert!(metrics["accuracy"]["heldout"]["motion"]["total"].as_u64().unwrap() > 0);
    assert!(out.join("model.safetensors").exists() && out.join("config.json").exists());

    let again = dir.join("again");
    let resumed = mmgen(&[
        "train",
        "probe-video",
        "--tiny",
        "--steps",
        "2",
        "--batch",
        "4",
        "--eval-samples",
        "1",
        "--out",
        again.to_str().unwrap(),
        "--resume",
        o,
    ]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let mismatched = mmgen(&[
        "train",
        "probe-video",
        "--steps",
        "2",
        "--batch",
        "4",
        "--out",
        again.to_str().unwrap(),
        "--resume",
        o,
    ]);
    assert!(stderr(&mismatched).contains("cannot resume"), "{}", stderr(&mismatched));

    // eval-probe measures the video and audio probes too, on fresh clips of both splits.
    let measured = mmgen(&["eval-probe", "--task", "video", "--probe", o, "--n", "2"]);
    assert!(measured.status.success(), "{}", stderr(&measured));
    let measured: serde_json::Value = serde_json::from_slice(&measured.stdout).unwrap();
    assert_eq!(measured["task"], "video");
    for split in ["train", "heldout"] {
        assert!(measured[split]["motion"]["total"].as_u64().unwrap() > 0, "{split}");
    }
    let image_only = mmgen(&["eval-probe", "--task", "video", "--probe", o, "--clips", "1"]);
    assert!(
        !image_only.status.success() && stderr(&image_only).contains("--clips is a setting of --task image"),
        "{}",
        stderr(&image_only)
    );
    let audio = dir.join("audio");
    let a = audio.to_str().unwrap();
    let trained = mmgen(&[
        "train",
        "probe-audio",
        "--tiny",
        "--steps",
        "1",
        "--batch",
        "2",
        "--eval-samples",
        "1",
        "--out",
        a,
    ]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let heard = mmgen(&["eval-probe", "--task", "audio", "--probe", a, "--n", "2"]);
    assert!(heard.status.success(), "{}", stderr(&heard));
    let heard: serde_json::Value = serde_json::from_slice(&heard.stdout).unwrap();
    for attribute in ["instrument", "mood", "tempo_class", "tempo_within_10pct"] {
        assert_eq!(heard["heldout"][attribute]["total"], 2, "{attribute}");
    }
    let wrong_kind = mmgen(&["eval-probe", "--task", "audio", "--probe", o]);
    assert!(
        !wrong_kind.status.success()
            && stderr(&wrong_kind).contains(&format!("--probe {o}"))
            && stderr(&wrong_kind).contains("holds the video probe"),
        "{}",
        stderr(&wrong_kind)
    );

    let bad_lr = mmgen(&[
        "train",
        "probe-audio",
        "--tiny",
        "--steps",
        "2",
        "--lr",
        "5",
        "--out",
        o,
    ]);
    assert!(
        !bad_lr.status.success() && stderr(&bad_lr).contains("--lr 5 is out of range"),
        "{}",
        stderr(&bad_lr)
    );

    // A style share names a style and a share in [0, 1], for the image probes only.
    for (share, expected) in [
        ("pixel", "expected STYLE=SHARE"),
        (
            "pixel=0.5",
            "unknown style `pixel`; allowed: flat, watercolour, pixel_art",
        ),
        ("pixel_art=1.5", "SHARE 1.5 is out of range; allowed 0 to 1"),
    ] {
        let bad = mmgen(&["train", "probe-shape", "--tiny", "--out", o, "--style-share", share]);
        assert!(
            !bad.status.success() && stderr(&bad).contains(expected),
            "{share}: {}",
            stderr(&bad)
        );
    }
    let elsewhere = mmgen(&[
        "train",
        "probe-audio",
        "--tiny",
        "--out",
        o,
        "--style-share",
        "pixel_art=0.5",
    ]);
    assert!(
        !elsewhere.status.success()
            && stderr(&elsewhere).contains("applies to `train probe-image` and `train probe-shape` only"),
        "{}",
        stderr(&elsewhere)
    );
    // So does a spin share, a number in [0, 1].
    for share in ["1.5", "2", "half"] {
        let bad = mmgen(&["train", "probe-image", "--tiny", "--out", o, "--spin-share", share]);
        assert!(
            !bad.status.success() && stderr(&bad).contains("--spin-share") && stderr(&bad).contains("allowed 0 to 1"),
            "{share}: {}",
            stderr(&bad)
        );
    }
    let elsewhere = mmgen(&["train", "probe-video", "--tiny", "--out", o, "--spin-share", "0.5"]);
    assert!(
        !elsewhere.status.success() && stderr(&elsewhere).contains("--spin-share applies to `train probe-image`"),
        "{}",
        stderr(&elsewhere)
    );

    let no_probes = mmgen(&[
        "eval",
        "--task",
        "image",
        "--n",
        "2",
        "--probes",
        dir.join("nothing").to_str().unwrap(),
    ]);
    assert!(!no_probes.status.success());
    assert!(
        stderr(&no_probes).contains("cannot load the probes"),
        "{}",
        stderr(&no_probes)
    );
    let bad_source = mmgen(&["eval", "--source", "nope", "--n", "2"]);
    assert!(
        stderr(&bad_source).contains("invalid value 'nope' for '--source <SOURCE>'")
            && stderr(&bad_source).contains("oracle, random, morph, hybrid, grounded, grounded-layout"),
        "{}",
        stderr(&bad_source)
    );
    let still_morph = mmgen(&["eval", "--source", "morph", "--task", "image", "--n", "2"]);
    assert!(
        stderr(&still_morph).contains("--source morph is a control for --task video") && !still_morph.status.success(),
        "{}",
        stderr(&still_morph)
    );

    // Every prompt's result, one JSON object per line, adds up to the report (with the
    // shipped probes).
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let models = models.to_str().unwrap();
    let lines = dir.join("per-prompt.jsonl");
    let run = mmgen(&[
        "eval",
        "--task",
        "audio",
        "--n",
        "3",
        "--probes",
        models,
        "--json",
        "--per-prompt",
        lines.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let results: Vec<serde_json::Value> = std::fs::read_to_string(&lines)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    let passed = results.iter().filter(|r| r["checks"]["instrument"] == true).count();
    assert_eq!(
        passed as u64,
        report["categories"]["instrument"]["passed"].as_u64().unwrap()
    );
    assert!(results
        .iter()
        .all(|r| r["reading"]["instrument"].is_string() && r["prompt"].is_string()));
    // A video's per-prompt result says what was read where an object was not seen:
    // here the pink cross bounces over the lower half of the shrinking diamond, whose
    // visible part the shipped probes read as another shape in some frames.
    let prompts = dir.join("occluded.txt");
    std::fs::write(
        &prompts,
        "Generate a short video of a big bright red rhombus at the top getting smaller and a big pink cross in the middle bouncing up and down set against desert dunes in a flat style\n",
    )
    .unwrap();
    let run = mmgen(&[
        "eval",
        "--task",
        "video",
        "--prompts",
        prompts.to_str().unwrap(),
        "--seed",
        "3",
        "--probes",
        models,
        "--per-prompt",
        lines.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let result: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&lines).unwrap().trim()).unwrap();
    let diamond = &result["reading"]["objects"][0];
    let dots: Vec<u64> = diamond["frames"]
        .as_str()
        .unwrap()
        .char_indices()
        .filter(|&(_, c)| c == '.')
        .map(|(f, _)| f as u64)
        .collect();
    let misread = diamond["misread"].as_array().unwrap();
    assert!(!dots.is_empty(), "{diamond}");
    assert_eq!(
        misread.iter().map(|m| m["frame"].as_u64().unwrap()).collect::<Vec<_>>(),
        dots
    );
    assert!(
        misread
            .iter()
            .any(|m| m["shape"].is_string() && m["shape"] != "diamond" && m["p_shape"].as_f64().unwrap() < 0.25),
        "{diamond}"
    );

    // A file that cannot be written fails before the evaluation, naming the flag.
    let nowhere = dir.join("no").join("such").join("file.jsonl");
    let bad = mmgen(&[
        "eval",
        "--n",
        "1",
        "--probes",
        models,
        "--per-prompt",
        nowhere.to_str().unwrap(),
    ]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("--per-prompt: cannot create"),
        "{}",
        stderr(&bad)
    );
}

/// The image probe chooses its detection threshold after training (on train-split
/// renders), records the choice, still resumes from a calibrated folder, and
/// `calibrate-probe` recalibrates a folder in place.
#[test]
fn image_probe_calibrates_its_detection_threshold() {
    let dir = temp_dir("probe-image-calibration");
    let out = dir.join("image");
    let o = out.to_str().unwrap();
    let train = |extra: &[&str], out: &str| {
        let mut args = vec![
            "train",
            "probe-image",
            "--tiny",
            "--steps",
            "2",
            "--batch",
            "4",
            "--eval-samples",
            "3",
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        mmgen(&args)
    };
    let run = train(&[], o);
    assert!(run.status.success(), "{}", stderr(&run));
    let read = |path: PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let metrics = read(out.join("metrics.json"));
    let config = read(out.join("config.json"));
    let chosen = metrics["calibration"]["threshold"].as_f64().unwrap();
    assert_eq!(config["detection_threshold"].as_f64().unwrap(), chosen);
    assert_eq!(metrics["calibration"]["split"], "train");
    let tried = metrics["calibration"]["count_accuracy"].as_array().unwrap();
    assert!(tried.len() > 3 && tried.iter().any(|t| t[0].as_f64() == Some(chosen)));

    // A calibrated folder resumes although its threshold may differ from a fresh config's.
    let resumed = train(&["--resume", o], dir.join("again").to_str().unwrap());
    assert!(resumed.status.success(), "{}", stderr(&resumed));

    let recalibrated = mmgen(&[
        "calibrate-probe",
        "--probe",
        o,
        "--n",
        "4",
        "--clips",
        "2",
        "--seed",
        "3",
    ]);
    assert!(recalibrated.status.success(), "{}", stderr(&recalibrated));
    let metrics = read(out.join("metrics.json"));
    // Every frame of 2 clips of 24 per split.
    assert_eq!(metrics["clip_frames"]["heldout"]["style"]["total"], 48);
    assert_eq!(metrics["clips_per_split"], 2);
    assert_eq!(metrics["calibration"]["n"], 4);
    assert_eq!(metrics["eval_samples_per_split"], 4);
    assert!(metrics["calibrated_by"].as_str().unwrap().contains("calibrate-probe"));
    assert_eq!(metrics["probe"], "image", "the training record is kept");
    assert!(metrics["accuracy"]["heldout"]["count"]["total"].as_u64().unwrap() == 4);

    let missing = mmgen(&["calibrate-probe", "--probe", dir.join("nothing").to_str().unwrap()]);
    assert!(!missing.status.success());
    let err = stderr(&missing);
    assert!(err.contains("--probe") && err.contains("nothing"), "{err}");

    // The shape probe (second stage) trains on crops and is found beside the image probe.
    let shapes = dir.join("probe-shape");
    let run = mmgen(&[
        "train",
        "probe-shape",
        "--tiny",
        "--steps",
        "2",
        "--batch",
        "4",
        "--eval-samples",
        "3",
        "--out",
        shapes.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let metrics = read(shapes.join("metrics.json"));
    assert_eq!(metrics["probe"], "shape");
    assert!(metrics["accuracy"]["heldout"]["shape"]["total"].as_u64().unwrap() >= 3);
    for box_reading in ["object kept", "radius within 10%", "background rejected"] {
        assert!(
            metrics["accuracy"]["heldout"][box_reading]["total"].as_u64().unwrap() >= 1,
            "{box_reading}"
        );
    }
    let eval_probe = |extra: &[&str]| {
        let mut args = vec!["eval-probe", "--probe", o, "--n", "2", "--frames", "3"];
        args.extend_from_slice(extra);
        let out = mmgen(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let measured = eval_probe(&["--clips", "2"]);
    assert_eq!(measured["shape_probe"], shapes.to_str().unwrap());
    // Every frame of each clip: 2 clips x 3 frames per split.
    assert_eq!(measured["clip_frames"]["heldout"]["style"]["total"], 6);
    assert_eq!(measured["clip_frames"]["train"]["background"]["total"], 6);
    let stills_only = eval_probe(&["--no-shape-probe", "--clips", "0"]);
    assert_eq!(stills_only["shape_probe"], serde_json::Value::Null);
    assert!(stills_only.get("clip_frames").is_none());
    let no_frames = mmgen(&["eval-probe", "--probe", o, "--frames", "0"]);
    assert!(!no_frames.status.success());
    assert!(stderr(&no_frames).contains("--frames"), "{}", stderr(&no_frames));
    let wrong = mmgen(&[
        "eval-probe",
        "--probe",
        o,
        "--shape-probe",
        dir.join("nothing").to_str().unwrap(),
    ]);
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("--shape-probe"), "{}", stderr(&wrong));
}
