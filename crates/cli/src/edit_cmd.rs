//! `mmgen edit`: a scene plan changed by an instruction, read by the scene editor
//! (the content studio's multi-turn edits, from the command line), and
//! `mmgen eval-editor`: the editor on the world's edit pairs.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use mmgen_eval::edit_eval::evaluate_editor;
use mmgen_models::grounded::editor::Editor;
use mmgen_models::grounded::ScenePlan;
use mmgen_world::{Lang, Split};

use crate::device::DeviceArg;
use crate::plan_cmd::{LangArg, SplitArg};

#[derive(Args)]
pub struct EditArgs {
    /// The instruction, in English or Chinese ("make the star blue", "把星星移到左边").
    instruction: String,
    /// The plan to edit: a JSON file from `mmgen plan` or a package's meta.json `scene_plan`.
    #[arg(long)]
    plan: PathBuf,
    /// Seed of a moved or added object's place.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The editor folder.
    #[arg(long, default_value = "models/grounded-editor")]
    editor: PathBuf,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

/// Prints the edited plan (stdout, JSON) and what was read (stderr).
pub fn run(args: EditArgs) -> Result<()> {
    if args.instruction.trim().is_empty() {
        bail!("the instruction is empty; say what to change, e.g. mmgen edit --plan plan.json \"make the star blue\"");
    }
    let text = std::fs::read_to_string(&args.plan)
        .with_context(|| format!("--plan {}: cannot read it", args.plan.display()))?;
    let plan = ScenePlan::from_json(&text).with_context(|| format!("--plan {}", args.plan.display()))?;
    let device = args.device.open()?;
    let editor = Editor::load(&args.editor, &device)
        .with_context(|| format!("--editor {}: cannot load the editor", args.editor.display()))?;
    plan.check(&editor.config().vocab)
        .with_context(|| format!("--plan {}: not a plan this editor reads", args.plan.display()))?;
    let edited = editor
        .edit(&[(&plan, args.instruction.as_str(), args.seed)])?
        .pop()
        .context("the editor returned no plan")?;
    eprintln!("read as: {}", serde_json::to_string(&edited.edit)?);
    println!("{}", serde_json::to_string_pretty(&edited.plan)?);
    Ok(())
}

#[derive(Args)]
pub struct EvalEditorArgs {
    /// The editor folder.
    #[arg(long, default_value = "models/grounded-editor")]
    editor: PathBuf,
    /// Edit pairs of world scenes.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    n: u64,
    /// Which side of the compositional split the scenes after the edit come from.
    #[arg(long, value_enum, default_value_t = SplitArg::Heldout)]
    split: SplitArg,
    /// Instruction language.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    lang: LangArg,
    /// Seed of the edit pairs and of sampled places.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

/// `mmgen eval-editor`: the share of edits applied and of edits that left the rest unchanged.
pub fn run_eval(args: EvalEditorArgs) -> Result<()> {
    let device = args.device.open()?;
    let editor = Editor::load(&args.editor, &device)
        .with_context(|| format!("--editor {}: cannot load the editor", args.editor.display()))?;
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Heldout => Split::Heldout,
    };
    let lang = match args.lang {
        LangArg::En => Lang::En,
        LangArg::Zh => Lang::Zh,
    };
    let score = evaluate_editor(&editor, split, lang, args.n as usize, args.seed)?;
    println!("{}", serde_json::to_string_pretty(&score)?);
    Ok(())
}
