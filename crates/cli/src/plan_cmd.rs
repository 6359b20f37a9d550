//! `mmgen plan`: the scene plan the grounded planner reads out of a prompt, as JSON
//! (edit it and draw it with `mmgen generate --plan FILE`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use mmgen_eval::plan_eval::evaluate_planner;
use mmgen_eval::run::Prompts;
use mmgen_models::grounded::planner::Planner;
use mmgen_world::{Lang, Medium, Split};

use crate::device::DeviceArg;

#[derive(Args)]
pub struct PlanArgs {
    /// The request, in English or Chinese.
    prompt: String,
    /// Seed of the sampled placements (other seeds, other layouts where the prompt leaves them free).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The planner folder.
    #[arg(long, default_value = "models/grounded-planner")]
    planner: PathBuf,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(args: PlanArgs) -> Result<()> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty; say what to plan, e.g. mmgen plan \"a red star above a blue circle\"");
    }
    let device = args.device.open()?;
    let planner = Planner::load(&args.planner, &device)
        .with_context(|| format!("--planner {}: cannot load the planner", args.planner.display()))?;
    let plan = planner
        .plan(&[(args.prompt.as_str(), args.seed)])?
        .pop()
        .context("the planner returned no plan")?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(())
}

#[derive(Args)]
pub struct EvalPlannerArgs {
    /// The planner folder.
    #[arg(long, default_value = "models/grounded-planner")]
    planner: PathBuf,
    /// Prompts: full image captions of world scenes.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    n: u64,
    /// Which side of the compositional split the prompts come from.
    #[arg(long, value_enum, default_value_t = SplitArg::Heldout)]
    split: SplitArg,
    /// Prompt language.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    lang: LangArg,
    /// Seed of prompts and plans.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SplitArg {
    Train,
    Heldout,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LangArg {
    En,
    Zh,
}

/// `mmgen eval-planner`: the planner's plans against the parsed prompts.
pub fn run_eval(args: EvalPlannerArgs) -> Result<()> {
    let device = args.device.open()?;
    let planner = Planner::load(&args.planner, &device)
        .with_context(|| format!("--planner {}: cannot load the planner", args.planner.display()))?;
    let prompts = Prompts::World {
        n: args.n as usize,
        split: match args.split {
            SplitArg::Train => Split::Train,
            SplitArg::Heldout => Split::Heldout,
        },
        lang: match args.lang {
            LangArg::En => Lang::En,
            LangArg::Zh => Lang::Zh,
        },
    }
    .texts(Medium::Image, args.seed);
    let bar = indicatif::ProgressBar::new(prompts.len() as u64);
    let report = evaluate_planner(&planner, &prompts, args.seed, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
