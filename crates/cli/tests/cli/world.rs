//! `mmgen world`: samples, renders from spec JSON, and bad arguments.

use super::*;

#[test]
fn sample_writes_every_file_and_is_reproducible() {
    let (a, b) = (temp_dir("a"), temp_dir("b"));
    assert!(sample(&a, "5").status.success(), "{}", stderr(&sample(&a, "5")));
    assert!(sample(&b, "5").status.success());
    for i in 0..3 {
        for ext in ["png", "gif", "mp4", "wav", "json"] {
            let name = format!("{i:06}.{ext}");
            let (x, y) = (
                std::fs::read(a.join(&name)).unwrap(),
                std::fs::read(b.join(&name)).unwrap(),
            );
            assert_eq!(x, y, "{name} differs between two runs with one seed");
        }
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.join(format!("{i:06}.json"))).unwrap()).unwrap();
        assert!(!record["caption"].as_str().unwrap().is_empty());
        assert!(!record["captions"]["zh"].as_str().unwrap().is_empty());
        assert!(record["spec"]["music"].is_object(), "--audio gives every sample music");
    }
    let c = temp_dir("c");
    assert!(sample(&c, "6").status.success());
    assert_ne!(
        std::fs::read(a.join("000000.png")).unwrap(),
        std::fs::read(c.join("000000.png")).unwrap()
    );
}

#[test]
fn render_reproduces_a_sample_from_its_json() {
    let dir = temp_dir("r");
    let out = mmgen(&[
        "world",
        "sample",
        "--n",
        "1",
        "--out",
        dir.to_str().unwrap(),
        "--seed",
        "9",
        "--size",
        "48",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("000000.json")).unwrap()).unwrap();
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, record["spec"].to_string()).unwrap();
    let seed = record["seed"].as_u64().unwrap().to_string();
    let again = dir.join("again");
    let out = mmgen(&[
        "world",
        "render",
        spec_path.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--seed",
        &seed,
        "--size",
        "48",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a = image::open(dir.join("000000.png")).unwrap().into_rgb8();
    let b = image::open(again.join("scene.png")).unwrap().into_rgb8();
    assert_eq!(a, b);
    assert!(again.join("caption.txt").exists());
}

#[test]
fn bad_arguments_fail_with_one_clear_line() {
    let dir = temp_dir("bad");
    let d = dir.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["world", "sample", "--n", "0", "--out", d], "--n"),
        (
            &["world", "sample", "--n", "2", "--out", d, "--lang", "fr"],
            "[possible values: en, zh]",
        ),
        (
            &["world", "sample", "--n", "2", "--out", d, "--frames", "0"],
            "--frames",
        ),
        (
            &["world", "sample", "--n", "2", "--out", d, "--seconds", "1e9"],
            "out of range",
        ),
        (
            &["world", "sample", "--n", "2", "--out", d, "--split", "test"],
            "[possible values: train, heldout]",
        ),
        (
            &["world", "render", "/nonexistent/spec.json", "--out", d],
            "cannot read spec file /nonexistent/spec.json",
        ),
    ];
    for (args, expected) in cases {
        let out = mmgen(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }

    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    for (text, expected) in [
        ("{\"version\": 1, \"background\": \"moon\", \"objects\": []}", "unknown variant `moon`"),
        ("{\"version\": 2, \"background\": \"desert\", \"objects\": [{\"shape\": \"star\", \"colour\": \"red\", \"size\": \"small\"}]}", "version is 2"),
        ("not json", "malformed scene spec"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = mmgen(&["world", "render", bad.to_str().unwrap(), "--out", d]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(expected), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}
