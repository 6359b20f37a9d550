//! `mmgen bench memory`: peak resident memory of whole `mmgen generate` runs, one
//! child process per length, so that each peak is that request's own.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub struct MemoryBenchArgs {
    /// The video request.
    #[arg(long, default_value = "a red circle moving left video")]
    video_prompt: String,
    /// Clip lengths to measure, in frames (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [24u64, 240, 2400],
          value_parser = clap::value_parser!(u64).range(1..=14_400))]
    frames: Vec<u64>,
    /// The audio request (made with --modalities audio).
    #[arg(long, default_value = "calm piano music")]
    audio_prompt: String,
    /// Audio lengths to measure, in seconds (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [10.0, 600.0], value_parser = crate::sampling::seconds_value)]
    seconds: Vec<f64>,
    /// Sampler steps of every run (memory does not depend on them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    steps: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured request.
#[derive(serde::Serialize)]
struct Row {
    what: String,
    /// Peak resident set of the child, MB.
    peak_rss_mb: f64,
    /// Bytes of the result itself (RGB frames, or f32 samples), MB.
    result_mb: f64,
    wall_seconds: f64,
}

pub fn run(args: MemoryBenchArgs) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the mmgen executable to run")?;
    let out = std::env::temp_dir().join(format!("mmgen-bench-memory-{}", std::process::id()));
    let steps = args.steps.to_string();
    let mut rows = Vec::new();
    for &frames in &args.frames {
        let frames_arg = frames.to_string();
        // 64x64 RGB frames.
        let result_mb = (frames * 64 * 64 * 3) as f64 / 1e6;
        let what = format!("video, {frames} frames");
        let request = [args.video_prompt.as_str(), "--frames", &frames_arg, "--steps", &steps];
        rows.push(measure(&exe, &out, &request, what, result_mb)?);
    }
    for &seconds in &args.seconds {
        let seconds_arg = seconds.to_string();
        // 16 kHz f32 samples.
        let result_mb = seconds * 16_000.0 * 4.0 / 1e6;
        let what = format!("audio, {seconds} s");
        let request = [
            args.audio_prompt.as_str(),
            "--modalities",
            "audio",
            "--seconds",
            &seconds_arg,
            "--steps",
            &steps,
        ];
        rows.push(measure(&exe, &out, &request, what, result_mb)?);
    }
    let _ = std::fs::remove_dir_all(&out);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<22} {:>14} {:>12} {:>10}",
            "request (--steps ".to_string() + &steps + ")",
            "peak RSS MB",
            "result MB",
            "wall s"
        );
        for row in &rows {
            println!(
                "{:<22} {:>14.0} {:>12.1} {:>10.1}",
                row.what, row.peak_rss_mb, row.result_mb, row.wall_seconds
            );
        }
    }
    Ok(())
}

/// Runs `mmgen generate ARGS --no-cache --overwrite --out OUT` and returns its row
/// (`what` it made, `result_mb` of it, its peak RSS and wall time).
fn measure(exe: &std::path::Path, out: &PathBuf, args: &[&str], what: String, result_mb: f64) -> Result<Row> {
    let start = std::time::Instant::now();
    let child = Command::new(exe)
        .arg("generate")
        .args(args)
        .args(["--no-cache", "--overwrite", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start mmgen generate")?;
    let pid = child.id() as libc::pid_t;
    // stderr is read to its end first, so that a chatty child cannot block on a full pipe.
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: `usage` is a plain C struct that wait4 fills; `pid` is our own child,
    // reaped here once (std's Child is not waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        bail!("waiting for mmgen generate failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("mmgen generate {} failed:\n{}", args.join(" "), stderr.trim_end());
    }
    Ok(Row {
        what,
        // Linux reports ru_maxrss in kilobytes.
        peak_rss_mb: usage.ru_maxrss as f64 * 1024.0 / 1e6,
        result_mb,
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}
