//! The fixed choices of the CLI's flags, as clap value enums: clap lists them in
//! `--help` and refuses anything else, naming the flag and the choices.

use clap::ValueEnum;
use mmgen_eval::run::Task;
use mmgen_world::{Lang, Medium, Split};

/// What an evaluation or a caption is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MediumArg {
    /// Still images.
    Image,
    /// Clips.
    Video,
    /// Sound.
    Audio,
}

impl MediumArg {
    /// The name as typed.
    pub fn name(self) -> &'static str {
        match self {
            MediumArg::Image => "image",
            MediumArg::Video => "video",
            MediumArg::Audio => "audio",
        }
    }

    /// The evaluation task.
    pub fn task(self) -> Task {
        match self {
            MediumArg::Image => Task::Image,
            MediumArg::Video => Task::Video,
            MediumArg::Audio => Task::Audio,
        }
    }

    /// What a world caption asks for.
    pub fn medium(self) -> Medium {
        match self {
            MediumArg::Image => Medium::Image,
            MediumArg::Video => Medium::Video,
            MediumArg::Audio => Medium::Audio,
        }
    }
}

impl std::fmt::Display for MediumArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The generator an evaluation scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Renders the parsed prompt with the world: the upper bound.
    Oracle,
    /// Ignores the prompt: chance.
    Random,
    /// --task video: the oracle's clips with one object changing identity halfway, a
    /// control that temporal consistency must fail.
    Morph,
    /// The end-to-end model of the task, from --model.
    Hybrid,
    /// The grounded family: the planner's plan drawn by the grounded renderer (posed
    /// over time by the trajectory model in a clip); for --task audio, the music
    /// planner's plan composed by the note model and played by the synthesiser.
    Grounded,
    /// The grounded family's later stages alone on the parsed prompt's truth: the
    /// renderer (and trajectory model) drawing its true layout, or, for --task audio,
    /// the note model and synthesiser playing its true music.
    GroundedLayout,
}

/// A side of the compositional split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// Specs with no held-out pair.
    Train,
    /// Specs with at least one held-out pair.
    Heldout,
}

impl From<SplitArg> for Split {
    fn from(split: SplitArg) -> Split {
        match split {
            SplitArg::Train => Split::Train,
            SplitArg::Heldout => Split::Heldout,
        }
    }
}

/// A caption language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl From<LangArg> for Lang {
    fn from(lang: LangArg) -> Lang {
        match lang {
            LangArg::En => Lang::En,
            LangArg::Zh => Lang::Zh,
        }
    }
}
