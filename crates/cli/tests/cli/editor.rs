//! The scene editor: train a tiny one, edit a plan, measure it, and fail clearly.

use super::*;

#[test]
fn editor_trains_edits_a_plan_and_fails_clearly() {
    let dir = temp_dir("editor");
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
        "editor",
        "--tiny",
        "--steps",
        "3",
        "--batch",
        "8",
        "--eval-samples",
        "4",
        "--tokenizer",
        &path("tokenizer.json"),
        "--out",
        &path("editor"),
    ]);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("editor/metrics.json")).unwrap()).unwrap();
    assert!(
        metrics["runs"][0]["accuracy"]["final"]["heldout_en"]["applied"].is_number(),
        "{metrics}"
    );
    let plan = serde_json::json!({
        "background": "grass_field", "style": "flat", "lighting": "steady",
        "objects": [
            {"shape": "star", "colour": "red", "size": "small", "pose": {"cx": 0.3, "cy": 0.5, "radius": 0.1}},
            {"shape": "circle", "colour": "blue", "size": "large", "pose": {"cx": 0.7, "cy": 0.5, "radius": 0.2}}
        ]
    });
    std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
    let edit = |instruction: &str, plan: &str, seed: &str| {
        mmgen(&[
            "edit",
            instruction,
            "--plan",
            plan,
            "--editor",
            &path("editor"),
            "--seed",
            seed,
        ])
    };
    let first = edit("make the star blue", &path("plan.json"), "4");
    assert!(first.status.success(), "{}", stderr(&first));
    let edited: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(
        edited["objects"].is_array() && edited["background"].is_string(),
        "{edited}"
    );
    assert!(stderr(&first).contains("read as:"), "{}", stderr(&first));
    assert_eq!(
        first.stdout,
        edit("make the star blue", &path("plan.json"), "4").stdout,
        "same plan, instruction and seed: same edit"
    );
    let measured = ok(&["eval-editor", "--editor", &path("editor"), "--n", "6", "--lang", "zh"]);
    let score: serde_json::Value = serde_json::from_slice(&measured.stdout).unwrap();
    assert_eq!(score["edits"], 6);
    assert!((0.0..=1.0).contains(&score["applied"].as_f64().unwrap()), "{score}");

    std::fs::write(
        dir.join("bad-colour.json"),
        plan.to_string().replace("\"red\"", "\"chartreuse\""),
    )
    .unwrap();
    std::fs::write(dir.join("not-a-plan.json"), "{\"background\": 3}").unwrap();
    for (args, says) in [
        (vec![" ", "--plan", "plan.json"], "instruction is empty"),
        (vec!["make it blue", "--plan", "missing.json"], "--plan"),
        (vec!["make it blue", "--plan", "not-a-plan.json"], "not a scene plan"),
        (vec!["make it blue", "--plan", "bad-colour.json"], "objects[0].colour"),
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| if a.ends_with(".json") { path(a) } else { a.to_string() })
            .collect();
        let mut full: Vec<&str> = vec!["edit"];
        full.extend(args.iter().map(String::as_str));
        let editor = path("editor");
        full.extend(["--editor", editor.as_str()]);
        let out = mmgen(&full);
        assert!(!out.status.success(), "{full:?} should fail");
        assert!(stderr(&out).contains(says), "{full:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let out = mmgen(&[
        "edit",
        "make it blue",
        "--plan",
        &path("plan.json"),
        "--editor",
        &path("nowhere"),
    ]);
    assert!(stderr(&out).contains("--editor"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
