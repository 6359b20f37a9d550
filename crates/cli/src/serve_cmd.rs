//! `mmgen serve`: the content studio (HTTP API, job queue, sessions, the web page) over
//! the same models as `mmgen generate`, loaded once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mmgen_models::grounded::editor::Editor;
use mmgen_serve::{Config, PipelineGenerator};

use crate::model_args::ModelArgs;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Folder of the studio's database and of every job's files (created if missing).
    #[arg(long, default_value = "out/studio")]
    data: PathBuf,
    /// Clients must send 'Authorization: Bearer TOKEN' to /v1 [default: $MMGEN_TOKEN,
    /// else no token].
    #[arg(long, env = "MMGEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Worker threads: jobs made at once (each uses every core it can get).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    workers: u64,
    /// Jobs that may wait for a worker; beyond it requests are answered 429 with
    /// Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    queue: u64,
    /// The scene editor folder (plan + instruction -> edit) of sessions' edit turns
    /// [default: models/grounded-editor when it exists; without one, an edit turn is
    /// drawn as a prompt].
    #[arg(long)]
    editor: Option<PathBuf>,
    #[command(flatten)]
    models: ModelArgs,
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        bail!("--token is empty; give a token, or leave the flag out to serve without one");
    }
    let pipeline = args.models.pipeline()?;
    let default_editor = PathBuf::from("models/grounded-editor");
    let editor = match &args.editor {
        Some(dir) => Some(dir.clone()),
        None => default_editor.is_dir().then_some(default_editor),
    };
    let editor = match editor {
        Some(dir) => Some(
            Editor::load(&dir, &args.models.device()?)
                .with_context(|| format!("--editor {}: cannot load the scene editor", dir.display()))?,
        ),
        None => {
            eprintln!("mmgen serve: no scene editor (--editor): a session's later turns are drawn as prompts");
            None
        }
    };
    let config = Config {
        token: args.token,
        workers: args.workers as usize,
        queue_bound: args.queue as usize,
        ..Config::new(&args.data)
    };
    eprintln!(
        "mmgen serve: models loaded; data in {}, {} worker(s), queue of {}",
        args.data.display(),
        config.workers,
        config.queue_bound
    );
    mmgen_serve::serve(args.addr, config, Arc::new(PipelineGenerator::new(pipeline, editor))).map_err(|e| anyhow!(e))
}
