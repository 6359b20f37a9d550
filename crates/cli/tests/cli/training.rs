//! What every training command shares: the device flag and the time budget.

use super::*;

/// `--device` on every train, eval and bench command: a clear sentence for CUDA in a
/// build without it, the allowed names for a wrong one.
#[test]
fn device_flags_fail_clearly() {
    let dir = temp_dir("device");
    let d = dir.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["train", "probe-video", "--tiny", "--steps", "1", "--out", d],
        &["eval", "--n", "1"],
        &["eval-probe", "--n", "1"],
        &["bench", "train", "--iters", "1"],
    ];
    for args in commands {
        let wrong = mmgen(&[args, &["--device", "tpu"][..]].concat());
        assert!(!wrong.status.success());
        assert!(
            stderr(&wrong).contains("unknown device 'tpu'; allowed: cpu, cuda, cuda:N"),
            "{args:?}: {}",
            stderr(&wrong)
        );
        if !cfg!(feature = "cuda") {
            let cuda = mmgen(&[args, &["--device", "cuda"][..]].concat());
            assert!(!cuda.status.success());
            let err = stderr(&cuda);
            assert!(
                err.contains("built without CUDA") && err.contains("--features cuda"),
                "{args:?}: {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        }
    }
    let unknown = mmgen(&["bench", "train", "--models", "probe-image,nope"]);
    assert!(
        stderr(&unknown).contains("unknown model 'nope'"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn training_stops_at_its_time_budget_and_records_it() {
    let dir = temp_dir("budget");
    let out = dir.join("video");
    let run = mmgen(&[
        "train",
        "probe-video",
        "--tiny",
        "--steps",
        "10000000",
        "--batch",
        "4",
        "--max-minutes",
        "0.01",
        "--eval-samples",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["stopped_by_time"], true);
    let steps = metrics["steps_done"].as_u64().unwrap();
    assert!((1..10_000_000).contains(&steps));
    // The curve has a point per log and ends at the last step.
    let curve = metrics["loss_curve"].as_array().unwrap();
    assert_eq!(curve.last().unwrap()[0].as_u64().unwrap(), steps);
    let bad = mmgen(&[
        "train",
        "probe-video",
        "--max-minutes",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        stderr(&bad).contains("--max-minutes 0 is out of range"),
        "{}",
        stderr(&bad)
    );
}
