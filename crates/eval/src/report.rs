//! What an evaluation reports: per-category scores, per-prompt results, the table.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run::Task;

/// One row of the report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CategoryScore {
    /// Prompts that passed.
    pub passed: usize,
    /// Prompts that asked for this category.
    pub total: usize,
    /// passed / total.
    pub score: f64,
    /// Whether it counts towards the overall score.
    pub in_overall: bool,
}

/// The result of one evaluation; its JSON form is documented in docs/evaluation.md.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Task evaluated.
    pub task: Task,
    /// Generator name.
    pub source: String,
    /// Prompts evaluated.
    pub prompts: usize,
    /// Seed of prompts and generation.
    pub seed: u64,
    /// Per-category scores, by category name.
    pub categories: BTreeMap<&'static str, CategoryScore>,
    /// Mean score of the overall categories that had prompts.
    pub overall: f64,
    /// Frechet distance between probe features of the outputs and of fresh renders of
    /// the same prompts (world-FD); lower is closer.
    pub world_fd: f64,
    /// The probes' own per-attribute accuracy on held-out renders (their metrics.json).
    pub probe_accuracy: serde_json::Value,
}

/// One prompt's result: which categories it passed, and what the probes read, so that
/// a failure can be looked into (which object, which frames). [`evaluate`] hands each
/// to its progress callback as it is scored (`mmgen eval --per-prompt FILE` writes
/// them); its JSON form is documented in docs/evaluation.md.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PromptResult {
    /// The prompt.
    pub prompt: String,
    /// The seed it was generated with.
    pub seed: u64,
    /// Pass or fail per category it asks for.
    pub checks: BTreeMap<&'static str, bool>,
    /// What was read. Image: `objects` (shape, colour, size, centre), `background`,
    /// `style`. Video: per asked object, `frames` (one character per frame: `#` seen
    /// with its shape and colour, `.` not seen so, `-` not judged: too small or
    /// covered; null if it was never found) and its `motion` as read (null if not
    /// asked, or if an asked object was never found: motions are read together), and
    /// the middle frame's `style`. Audio: `instrument`, `mood`,
    /// `tempo_bpm`.
    pub reading: serde_json::Value,
}

impl EvalReport {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:?} alignment of `{}` on {} prompts (seed {})\n",
            self.task, self.source, self.prompts, self.seed
        )
        .to_lowercase();
        out.push_str(&format!(
            "{:<22} {:>8} {:>7} {:>7}\n",
            "category", "score", "passed", "total"
        ));
        for (name, row) in &self.categories {
            let mark = if row.in_overall { "" } else { "  (not in overall)" };
            out.push_str(&format!(
                "{name:<22} {:>8.3} {:>7} {:>7}{mark}\n",
                row.score, row.passed, row.total
            ));
        }
        if self.overall.is_nan() {
            out.push_str(&format!(
                "{:<22} {:>8}  (no prompt asks for a category of this task)\n",
                "overall", "n/a"
            ));
        } else {
            out.push_str(&format!("{:<22} {:>8.3}\n", "overall", self.overall));
        }
        out.push_str(&format!("{:<22} {:>8.3}\n", "world-FD", self.world_fd));
        let readings = probe_attributes(&self.probe_accuracy);
        if !readings.is_empty() {
            out.push_str("probe accuracy on held-out renders (metrics.json):\n");
            for (name, accuracy) in readings {
                out.push_str(&format!("  {name:<20} {accuracy:>8.3}\n"));
            }
        }
        out
    }
}

/// The attributes of a `probe_accuracy` record with their accuracy, one nested record
/// deep (`frames.shape`), without the diagnostic breakdowns (`shape | pixel_art`).
pub(crate) fn probe_attributes(record: &serde_json::Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (name, value) in attribute_entries(record) {
        match value["accuracy"].as_f64() {
            Some(accuracy) => out.push((name.clone(), accuracy)),
            None => out.extend(
                attribute_entries(value)
                    .filter_map(|(inner, v)| Some((format!("{name}.{inner}"), v["accuracy"].as_f64()?))),
            ),
        }
    }
    out
}

/// The entries of a JSON object (none for anything else), without the diagnostic
/// breakdowns.
pub(crate) fn attribute_entries(value: &serde_json::Value) -> impl Iterator<Item = (&String, &serde_json::Value)> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !name.contains(" | "))
}
