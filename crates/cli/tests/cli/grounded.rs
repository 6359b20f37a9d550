//! The grounded family: train, plan, generate stills, clips and sound, and clear failures.

use super::*;

/// The grounded family end to end on tiny models: renderer, planner and trajectory
/// training, `mmgen plan`, stills and clips from the planner and from a plan file,
/// and bad plans refused with one line naming the field, before anything is written.
#[test]
fn grounded_train_plan_generate_and_fail_clearly() {
    let dir = temp_dir("grounded");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let out = mmgen(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    ok(&[
        "train",
        "tokenizer",
        "--out",
        &path("tokenizer.json"),
        "--vocab",
        "400",
        "--scenes",
        "100",
    ]);
    ok(&[
        "train",
        "renderer",
        "--tiny",
        "--steps",
        "2",
        "--batch",
        "2",
        "--clip-share",
        "0.5",
        "--out",
        &path("renderer"),
    ]);
    ok(&[
        "train",
        "trajectory",
        "--tiny",
        "--steps",
        "3",
        "--batch",
        "16",
        "--out",
        &path("trajectory"),
    ]);
    ok(&[
        "train",
        "planner",
        "--tiny",
        "--steps",
        "2",
        "--batch",
        "4",
        "--eval-samples",
        "4",
        "--tokenizer",
        &path("tokenizer.json"),
        "--out",
        &path("planner"),
    ]);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("renderer/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["runs"].as_array().unwrap().len(), 1);
    assert!(metrics["runs"][0]["command"]
        .as_str()
        .unwrap()
        .contains("train renderer"));
    let printed = ok(&[
        "plan",
        "a red star above a blue circle",
        "--planner",
        &path("planner"),
        "--seed",
        "3",
    ]);
    let plan: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert!(plan["background"].is_string() && plan["objects"].is_array(), "{plan}");
    let (planner, renderer) = (path("planner"), path("renderer"));
    let grounded = ["--planner", planner.as_str(), "--renderer", renderer.as_str()];
    let (gen, plan_file, from_plan) = (path("gen"), path("plan.json"), path("from-plan"));
    let mut args = vec!["generate", "a red star", "--steps", "2", "--no-cache", "--out", &gen];
    args.extend(grounded);
    ok(&args);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("gen/meta.json")).unwrap()).unwrap();
    assert!(meta["scene_plan"]["objects"].is_array(), "{meta}");
    assert!(meta["models"]["renderer"]["weights_sha256"].is_string(), "{meta}");
    assert_eq!(image::open(dir.join("gen/image.png")).unwrap().width(), 16);
    // Options this still has no use for are named, and a --cache at a file is said
    // under its flag; the package is still made.
    std::fs::write(dir.join("a-file"), "").unwrap();
    let (unused, cache_file) = (path("unused"), path("a-file"));
    let mut args = vec![
        "generate",
        "a red star",
        "--steps",
        "2",
        "--frames",
        "30",
        "--seconds",
        "5",
        "--cache",
        &cache_file,
        "--out",
        &unused,
    ];
    args.extend(grounded);
    let err = stderr(&ok(&args));
    assert!(
        err.contains("--frames 30 was not used: this request makes no video"),
        "{err}"
    );
    assert!(
        err.contains("--seconds 5 was not used: this request makes no audio"),
        "{err}"
    );
    assert!(
        err.contains("--cache") && err.contains("is a file, not a folder"),
        "{err}"
    );
    assert!(dir.join("unused/image.png").exists());

    let good = r#"{"background": "snow", "style": "flat", "lighting": "steady", "objects": [
        {"shape": "star", "colour": "red", "size": "large", "pose": {"cx": 0.3, "cy": 0.4, "radius": 0.15}}]}"#;
    std::fs::write(dir.join("plan.json"), good).unwrap();
    let mut args = vec![
        "generate",
        "x",
        "--plan",
        &plan_file,
        "--steps",
        "2",
        "--no-cache",
        "--out",
        &from_plan,
    ];
    args.extend(grounded);
    ok(&args);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("from-plan/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["scene_plan"]["objects"][0]["shape"], "star");

    let nine = format!(
        r#"{{"background": "snow", "style": "flat", "lighting": "steady", "objects": [{}]}}"#,
        [r#"{"shape": "star", "colour": "red", "size": "large", "pose": {"cx": 0.3, "cy": 0.4, "radius": 0.15}}"#; 9]
            .join(",")
    );
    let bad_plans: [(&str, String, &str); 5] = [
        (
            "shape",
            good.replace("\"star\"", "\"blob\""),
            "objects[0].shape: unknown value \"blob\"",
        ),
        ("nine", nine, "9 objects"),
        ("nan", good.replace("0.15", "NaN"), "not a scene plan"),
        (
            "radius",
            good.replace("0.15", "7"),
            "objects[0].pose.radius: 7 is out of range",
        ),
        ("malformed", "{\"background\": ".into(), "not a scene plan"),
    ];
    for (name, text, expected) in &bad_plans {
        let file = path(&format!("{name}.json"));
        std::fs::write(&file, text).unwrap();
        let out_dir = path(&format!("out-{name}"));
        let mut args = vec!["generate", "x", "--plan", &file, "--no-cache", "--out", &out_dir];
        args.extend(grounded);
        let out = mmgen(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{name} succeeded");
        assert!(err.contains(expected), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(!Path::new(&out_dir).exists(), "{name}: nothing written");
    }
    let out = mmgen(&["plan", "x", "--planner", &path("nothing")]);
    assert!(stderr(&out).contains("--planner"), "{}", stderr(&out));

    // A clip: the plan posed by the trajectory model, every frame drawn, the key frame
    // its middle one; text + image -> video starts every frame from the given look.
    image::RgbImage::from_pixel(16, 16, image::Rgb([200, 40, 40]))
        .save(dir.join("first.png"))
        .unwrap();
    let (trajectory, clip, first) = (path("trajectory"), path("clip"), path("first.png"));
    let (clip_plan, clip_bad) = (path("clip-plan"), path("clip-bad"));
    let mut args = vec![
        "generate",
        "a red star spinning",
        "--modalities",
        "video",
        "--frames",
        "3",
        "--steps",
        "2",
        "--first-frame",
        &first,
        "--trajectory",
        &trajectory,
        "--no-cache",
        "--out",
        &clip,
    ];
    args.extend(grounded);
    ok(&args);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("clip/meta.json")).unwrap()).unwrap();
    let objects = meta["scene_plan"]["objects"].as_array().unwrap().len();
    let trajectories = meta["trajectories"].as_array().unwrap();
    assert_eq!(trajectories.len(), objects, "{meta}");
    assert!(trajectories.iter().all(|t| t.as_array().unwrap().len() == 3), "{meta}");
    assert_eq!(meta["settings"]["video"]["first_frame"], true, "{meta}");
    assert!(meta["models"]["trajectory"]["weights_sha256"].is_string(), "{meta}");
    for file in ["video.mp4", "video.gif", "image.png"] {
        assert!(dir.join("clip").join(file).exists(), "{file}");
    }
    // A plan file draws a clip as well, and a bad trajectory folder is named.
    let mut args = vec![
        "generate",
        "x",
        "--plan",
        &plan_file,
        "--modalities",
        "video",
        "--frames",
        "2",
        "--steps",
        "1",
        "--trajectory",
        &trajectory,
        "--no-cache",
        "--out",
        &clip_plan,
    ];
    args.extend(grounded);
    ok(&args);
    let mut args = vec![
        "generate",
        "x",
        "--modalities",
        "video",
        "--trajectory",
        &renderer,
        "--no-cache",
        "--out",
        &clip_bad,
    ];
    args.extend(grounded);
    let out = mmgen(&args);
    assert!(
        !out.status.success() && stderr(&out).contains("--trajectory"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("clip-bad").exists());
    grounded_sound_trains_and_generates(&dir, &grounded, &trajectory);
    killed_runs_leave_a_whole_package_or_none(&dir, &grounded);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The grounded sound on tiny models: music planner, note model and synthesiser
/// training; an audio package with `audio.wav`, `score.mid` and the plan and score in
/// `meta.json`; a clip with its soundtrack; the three folders refused unless given
/// together.
fn grounded_sound_trains_and_generates(dir: &Path, grounded: &[&str], trajectory: &str) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let out = mmgen(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let tiny = ["--tiny", "--steps", "2", "--batch", "4", "--eval-samples", "4"];
    let (planner, notes, synth, tokenizer) = (
        path("music-planner"),
        path("notes"),
        path("synth"),
        path("tokenizer.json"),
    );
    let mut args = vec![
        "train",
        "music-planner",
        "--tokenizer",
        &tokenizer,
        "--out",
        planner.as_str(),
    ];
    args.extend(tiny);
    ok(&args);
    let mut args = vec!["train", "notes", "--out", notes.as_str()];
    args.extend(tiny);
    ok(&args);
    let mut args = vec!["train", "synth", "--out", synth.as_str()];
    args.extend(tiny);
    ok(&args);
    let sound = [
        "--music-planner",
        planner.as_str(),
        "--notes",
        notes.as_str(),
        "--synth",
        synth.as_str(),
    ];
    let song = path("song");
    let mut args = vec![
        "generate",
        "calm piano music at 80 bpm",
        "--modalities",
        "audio",
        "--seconds",
        "1.5",
        "--no-cache",
        "--out",
        &song,
    ];
    args.extend(sound);
    args.extend(grounded);
    ok(&args);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("song/meta.json")).unwrap()).unwrap();
    assert!(meta["sound_plan"]["music"]["instrument"].is_string(), "{meta}");
    assert!(meta["score"]["notes"].is_array(), "{meta}");
    assert!(meta["models"]["synth"]["weights_sha256"].is_string(), "{meta}");
    let (samples, rate) = mmgen_media::read_wav(&dir.join("song/audio.wav")).unwrap();
    assert_eq!((samples.len(), rate), (24_000, 16_000));
    assert!(std::fs::read(dir.join("song/score.mid")).unwrap().starts_with(b"MThd"));
    assert!(!dir.join("song/.sound.json").exists());
    // The world plays the same score.
    let heard = path("world.wav");
    ok(&["world", "play-score", &path("song/meta.json"), "--out", &heard]);
    assert_eq!(mmgen_media::read_wav(Path::new(&heard)).unwrap().0.len(), 24_000);
    // A clip with its soundtrack: the MP4 holds both tracks.
    let clip = path("clip-sound");
    let mut args = vec![
        "generate",
        "a red star spinning with piano music",
        "--modalities",
        "video,audio",
        "--frames",
        "4",
        "--steps",
        "1",
        "--trajectory",
        trajectory,
        "--no-cache",
        "--out",
        &clip,
    ];
    args.extend(sound);
    args.extend(grounded);
    ok(&args);
    let tracks = mmgen_media::read_mp4_tracks(&dir.join("clip-sound/video.mp4")).unwrap();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    // One folder alone: the others are named.
    let x = path("x");
    let mut args = vec![
        "generate",
        "piano music",
        "--modalities",
        "audio",
        "--notes",
        &notes,
        "--out",
        &x,
    ];
    args.extend(grounded);
    let out = mmgen(&args);
    assert!(
        !out.status.success() && stderr(&out).contains("--music-planner and --synth"),
        "{}",
        stderr(&out)
    );
}

/// `generate` killed (SIGKILL) at 20 seeded moments: each time the output folder is
/// absent or a complete package whose files all decode, and the cache never returns
/// a broken entry.
fn killed_runs_leave_a_whole_package_or_none(dir: &Path, models: &[&str]) {
    let (out, cache) = (dir.join("killed"), dir.join("killed-cache"));
    let command = |seed: u64| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mmgen"));
        c.args(["generate", "a red star", "--steps", "40", "--seed", &seed.to_string()])
            .arg("--out")
            .arg(&out)
            .arg("--cache")
            .arg(&cache)
            .args(models)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let whole = |why: &str| {
        if !out.exists() {
            return;
        }
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap())
            .unwrap_or_else(|e| panic!("{why}: meta.json: {e}"));
        for file in meta["files"].as_array().unwrap() {
            let name = file.as_str().unwrap();
            let bytes = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{why}: {name}: {e}"));
            if name.ends_with(".png") {
                image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{why}: {name}: {e}"));
            }
        }
    };
    let started = std::time::Instant::now();
    assert!(command(99).status().unwrap().success());
    let full = started.elapsed().as_micros() as u64;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..20u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = (state >> 33) % (full + full / 4);
        let mut child = command(i % 4).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_micros(delay));
        let _ = child.kill();
        let _ = child.wait();
        whole(&format!("killed after {delay} us"));
    }
    for seed in 0..4 {
        assert!(command(seed).status().unwrap().success(), "seed {seed} after the kills");
        whole(&format!("seed {seed} after the kills"));
    }
}
