//! End-to-end checks of the `mmgen` commands, run on the built binary: one test binary,
//! a module per concern.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mmgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmgen"))
        .args(args)
        .output()
        .expect("mmgen runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmgen-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn sample(dir: &Path, seed: &str) -> Output {
    mmgen(&[
        "world",
        "sample",
        "--n",
        "3",
        "--out",
        dir.to_str().unwrap(),
        "--seed",
        seed,
        "--frames",
        "4",
        "--audio",
        "--seconds",
        "1",
        "--size",
        "32",
    ])
}

mod arguments;
mod editor;
mod grounded;
mod hybrid;
mod probes;
mod training;
mod world;
