//! The design's one rule, as a test over `cargo metadata`: the world is data and
//! ground truth, never output, so no crate on the inference path may depend on the
//! world crate, directly or through another crate. Only training, evaluation and the
//! command-line front end (which drives them) may.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crates allowed to reach the world.
const ALLOWED: &[&str] = &["mmgen-world", "mmgen-train", "mmgen-eval", "mmgen-cli"];

/// Each workspace crate and the workspace crates it depends on (normal and build
/// dependencies: a crate's own tests may use the world). Only workspace crates can
/// depend on the world, so the workspace graph is the whole story.
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|n| names.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, target: &str) -> bool {
    let mut stack = vec![from.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if name == target {
            return true;
        }
        if seen.insert(name.clone()) {
            stack.extend(graph.get(&name).cloned().unwrap_or_default());
        }
    }
    false
}

#[test]
fn inference_crates_do_not_depend_on_the_world() {
    let graph = workspace_graph();
    assert!(
        graph.contains_key("mmgen-world") && graph.contains_key("mmgen-media"),
        "{graph:?}"
    );
    let offenders: Vec<&String> = graph
        .keys()
        .filter(|name| !ALLOWED.contains(&name.as_str()))
        .filter(|name| reaches(&graph, name, "mmgen-world"))
        .collect();
    assert!(
        offenders.is_empty(),
        "these crates reach mmgen-world but must not: {offenders:?}"
    );
}

#[test]
fn the_check_would_catch_a_violation() {
    let mut graph = workspace_graph();
    graph
        .entry("mmgen-pipeline".into())
        .or_default()
        .insert("mmgen-train".into());
    graph
        .entry("mmgen-train".into())
        .or_default()
        .insert("mmgen-world".into());
    assert!(reaches(&graph, "mmgen-pipeline", "mmgen-world"));
    assert!(!reaches(&graph, "mmgen-media", "mmgen-world"));
}

/// The crates `mmgen generate` and `mmgen serve` run on.
const INFERENCE: &[&str] = &[
    "mmgen-serve",
    "mmgen-pipeline",
    "mmgen-models",
    "mmgen-media",
    "mmgen-nn",
    "mmgen-diffusion",
];

#[test]
fn inference_crates_do_not_depend_on_evaluation_or_training() {
    let graph = workspace_graph();
    for name in INFERENCE {
        assert!(graph.contains_key(*name), "{name} is no workspace crate: {graph:?}");
        for judge in ["mmgen-eval", "mmgen-train"] {
            assert!(!reaches(&graph, name, judge), "{name} reaches {judge}");
        }
    }
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

#[test]
fn evaluation_holds_no_optimiser() {
    // Training loops live in the train crate; eval only reads, aligns and reports.
    let eval = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/src");
    let files = sources(&eval);
    assert!(files.len() > 5, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for word in ["AdamW", "Optimizer", "backward_step"] {
            assert!(!text.contains(word), "{} uses {word}", path.display());
        }
    }
}
