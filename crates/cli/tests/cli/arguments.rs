//! Hostile arguments: every command fails clearly and touches nothing.

use super::*;

/// Hostile arguments to every command: each fails with a non-zero exit, a message
/// naming the argument at fault, and an --out left as it was (absent).
#[test]
fn hostile_arguments_fail_clearly_and_touch_nothing() {
    let dir = temp_dir("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models");
    let (planner, renderer) = (
        format!("{models}/grounded-planner"),
        format!("{models}/grounded-renderer"),
    );
    std::fs::write(p("afile"), "mine").unwrap();
    std::fs::write(p("fake.png"), "not an image").unwrap();
    std::fs::write(p("bad.json"), "{bad").unwrap();
    std::fs::write(p("stlye.json"), r#"{"version":1,"background":"desert","stlye":"neon","objects":[{"shape":"star","colour":"red","size":"small"}]}"#).unwrap();
    let small = image::RgbImage::new(8, 8);
    small.save(p("w8.png")).unwrap();
    image::RgbImage::new(16, 16).save(p("w16.png")).unwrap();
    std::fs::write(p("long.txt"), "a red star ".repeat(300)).unwrap();
    let out = p("out");
    let g = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "generate",
            "a red star",
            "--out",
            &out,
            "--no-cache",
            "--planner",
            &planner,
            "--renderer",
            &renderer,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let raw = |args: &[&str]| -> Vec<String> { args.iter().map(|s| s.to_string()).collect() };
    let control = format!("a red{} star", '\u{7}');
    let long = "a ".repeat(1001);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (raw(&["generate", "", "--out", &out]), "the prompt is empty"),
        (raw(&["generate", "   ", "--out", &out]), "the prompt is empty"),
        (g(&["--steps", "0"]), "--steps"),
        (g(&["--steps", "100000"]), "--steps"),
        (g(&["--steps", "abc"]), "--steps"),
        (g(&["--steps=-1"]), "--steps"),
        (g(&["--guidance", "nan"]), "--guidance"),
        (g(&["--guidance=-1"]), "--guidance"),
        (g(&["--guidance", "1e9"]), "--guidance"),
        (g(&["--guidance", "inf"]), "--guidance"),
        (g(&["--sampler", "foo"]), "--sampler"),
        (g(&["--seed", "1.5"]), "--seed"),
        (g(&["--seed=-3"]), "--seed"),
        (g(&["--frames", "0"]), "--frames"),
        (g(&["--frames", "100000000"]), "--frames"),
        (g(&["--seconds", "nan"]), "--seconds"),
        (g(&["--seconds=-1"]), "--seconds"),
        (g(&["--seconds", "1e12"]), "--seconds"),
        (g(&["--seconds", "0"]), "--seconds"),
        (g(&["--modalities", "smell"]), "modality 'smell'"),
        (g(&["--modalities", ""]), "no modality given"),
        (g(&["--strength", "0.5"]), "--strength"),
        (g(&["--init", &p("w8.png"), "--strength", "2"]), "--strength"),
        (g(&["--init", &p("w8.png"), "--strength", "nan"]), "--strength"),
        (g(&["--init", &p("w8.png"), "--strength", "0"]), "--strength"),
        (g(&["--init", &p("none.png")]), "--init"),
        (g(&["--init", &p("fake.png")]), "--init"),
        (g(&["--init", &p("bad.json")]), "--init"),
        (g(&["--mask", &p("w8.png")]), "--mask"),
        (g(&["--init", &p("w8.png"), "--mask", &p("w16.png")]), "--mask"),
        (g(&["--init", &p("w8.png"), "--mask", &p("fake.png")]), "--mask"),
        (g(&["--first-frame", &p("none.png")]), "--first-frame"),
        (g(&["--first-frame", &p("fake.png")]), "--first-frame"),
        (g(&["--plan", &p("none.json")]), "--plan"),
        (g(&["--plan", &p("bad.json")]), "--plan"),
        (g(&["--plan", &p("afile")]), "--plan"),
        (g(&["--planner", &p("nomodel")]), "--planner"),
        (g(&["--renderer", &p("nomodel")]), "--renderer"),
        (g(&["--model", &p("nomodel")]), "--model"),
        (g(&["--video-model", &p("nomodel")]), "--video-model"),
        (g(&["--trajectory", &p("nomodel")]), "--trajectory"),
        (
            g(&["--trajectory", &p("afile"), "--model", &p("nomodel")]),
            "--trajectory",
        ),
        (g(&["--audio-model", &p("nomodel")]), "--audio-model"),
        (g(&["--device", "tpu"]), "--device"),
        (g(&["--device", "cuda:abc"]), "--device"),
        (g(&["--cache", &p("c")]), "--cache"),
        (g(&["--bogus"]), "--bogus"),
        (
            raw(&[
                "generate",
                &control,
                "--out",
                &out,
                "--planner",
                &planner,
                "--renderer",
                &renderer,
                "--no-cache",
            ]),
            "control character",
        ),
        (
            raw(&[
                "generate",
                &long,
                "--out",
                &out,
                "--planner",
                &planner,
                "--renderer",
                &renderer,
                "--no-cache",
            ]),
            "at most 2000",
        ),
        (raw(&["plan", ""]), "the prompt is empty"),
        (raw(&["plan", "x", "--planner", &p("nomodel")]), "--planner"),
        (raw(&["plan", "x", "--seed", "abc"]), "--seed"),
        (raw(&["eval", "--task", "smell"]), "--task"),
        (raw(&["eval", "--source", "nobody"]), "--source"),
        (raw(&["eval", "--split", "test"]), "--split"),
        (raw(&["eval", "--lang", "fr"]), "--lang"),
        (raw(&["eval", "--n", "0"]), "--n"),
        (
            raw(&["eval", "--prompts", &p("none.txt"), "--source", "random"]),
            "prompts file",
        ),
        (
            raw(&["eval", "--source", "hybrid", "--model", &p("nomodel")]),
            "--model",
        ),
        (
            raw(&[
                "eval",
                "--source",
                "grounded",
                "--renderer",
                &renderer,
                "--planner",
                &p("nomodel"),
            ]),
            "--planner",
        ),
        (raw(&["eval-planner", "--n", "0"]), "--n"),
        (raw(&["eval-planner", "--planner", &p("nomodel")]), "--planner"),
        (raw(&["train", "renderer", "--steps", "0", "--out", &out]), "--steps"),
        (raw(&["train", "renderer", "--batch", "0", "--out", &out]), "--batch"),
        (raw(&["train", "renderer", "--lr", "nan", "--out", &out]), "--lr"),
        (
            raw(&["train", "renderer", "--object-weight", "1e9", "--out", &out]),
            "--object-weight",
        ),
        (
            raw(&["train", "renderer", "--prediction", "x0", "--out", &out]),
            "--prediction",
        ),
        (
            raw(&["train", "renderer", "--preconditioning", "karras", "--out", &out]),
            "--preconditioning",
        ),
        (raw(&["train", "planner", "--batch", "0", "--out", &out]), "--batch"),
        (raw(&["train", "trajectory", "--steps", "0", "--out", &out]), "--steps"),
        (
            raw(&["train", "renderer", "--clip-share", "2", "--out", &out]),
            "--clip-share",
        ),
        (raw(&["world", "sample", "--n", "0", "--out", &out]), "--n"),
        (
            raw(&["world", "render", &p("bad.json"), "--out", &out]),
            "malformed scene spec",
        ),
        (
            raw(&["world", "render", &p("stlye.json"), "--out", &out]),
            "unknown field `stlye`",
        ),
        (raw(&["bench", "grounded", "--iters", "0"]), "--iters"),
        (
            raw(&["bench", "grounded", "--planner", &planner, "--renderer", &p("nomodel")]),
            "--renderer",
        ),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for (args, expected) in &cases {
        let run = Command::new(env!("CARGO_BIN_EXE_mmgen")).args(args).output().unwrap();
        let err = stderr(&run);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(err.contains(expected), "{args:?}: expected {expected:?} in: {err}");
        assert!(!Path::new(&out).exists(), "{args:?} wrote --out");
    }
    // An --out that is a file, or holds the user's files: refused, untouched.
    for target in [p("afile"), dir.to_str().unwrap().to_string()] {
        let args = g(&[]);
        let mut args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        args[3] = &target;
        let run = mmgen(&args);
        assert!(
            !run.status.success() && stderr(&run).contains("--out"),
            "{}",
            stderr(&run)
        );
    }
    assert_eq!(std::fs::read_to_string(p("afile")).unwrap(), "mine");
    assert!(!dir.join("meta.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
