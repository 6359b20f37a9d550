//! The music planner: the Transformer stage of the grounded family's sound. A text
//! encoder reads the prompt; heads read out whether music is asked for, its
//! instrument, mood and tempo, and the ambience (MuseCoco's text-to-attribute stage,
//! Lu et al. 2023).
//!
//! Each head reads its own attention-pooled summary of the tokens (a learned query
//! per attribute, as in Set Transformer's pooling by multihead attention, Lee et al.
//! 2019): the instrument head finds the instrument's words whatever mood stands
//! beside them. One mean-pooled state for every head let the instrument be read off
//! the mood, so instrument x mood pairs held out of training were misread.
//!
//! With lexical heads the instrument, mood and ambience heads pool the tokens' own
//! embeddings rather than their contextual states: where to look is read in context,
//! what is there is read from the word alone, so a pair never seen together is still
//! two words each seen many times.
//!
//! A tempo is a categorical over log-spaced bins, so that "at 92 bpm" peaks at one
//! bin, "slow" spreads over the slow ones, and a prompt that names no tempo samples
//! one from the seed.
//!
//! With the digit reader, a stated number is also read digit by digit: an attention
//! query finds the token that follows the number ("bpm", "拍"), the embeddings of the
//! one, two and three tokens before it are read (units, tens, hundreds), and a small
//! network maps them to tempo logits added to the tempo head's. The tempo head alone
//! knew a number's digits but not their order: the text encoder's only sense of order
//! is learnt absolute positions, and it split "140 bpm" evenly between 140 and 104.
//! Reading at fixed offsets from one anchor gives the order exactly.
//!
//! A music-planner folder holds `config.json` ([`MusicPlannerConfig`]),
//! `tokenizer.json` and `model.safetensors`.

use std::path::Path;

use candle_core::{Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use mmgen_nn::{gelu, Dense};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::grounded::draw::{sample_index, MIN_P};
use crate::text_encoder::{TextEncoder, TextEncoderConfig};
use crate::tokenizer::TextTokenizer;
use crate::weights::{load_folder, FolderFiles};

/// The class names a music planner was trained with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MusicVocab {
    /// Instruments, in id order.
    pub instruments: Vec<String>,
    /// Moods, in id order.
    pub moods: Vec<String>,
    /// Ambiences, in id order (id `len` is "none").
    pub ambiences: Vec<String>,
    /// What a request may ask to be made (a still, a clip, sound alone), in id order;
    /// empty for planners without the medium head.
    #[serde(default)]
    pub media: Vec<String>,
}

/// Shape of a music planner.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MusicPlannerConfig {
    /// Class names it emits.
    pub vocab: MusicVocab,
    /// Its text encoder.
    pub text: TextEncoderConfig,
    /// Tempo bins, log-spaced over `tempo_range`.
    pub tempo_bins: usize,
    /// Slowest and fastest tempo, bpm.
    pub tempo_range: (f32, f32),
    /// Whether each head reads its own attention-pooled summary of the tokens
    /// (planners trained before it read the mean of the tokens).
    #[serde(default)]
    pub attention_pool: bool,
    /// Whether the instrument, mood and ambience heads pool token embeddings rather
    /// than contextual states (needs `attention_pool`; planners trained before it
    /// pool states).
    #[serde(default)]
    pub lexical_heads: bool,
    /// Whether a stated tempo is also read digit by digit (needs `attention_pool`;
    /// planners trained before it read the number from the tempo head alone).
    #[serde(default)]
    pub digit_reader: bool,
}

impl MusicPlannerConfig {
    /// The shipped shape for a `vocab_size` tokenizer.
    pub fn base(vocab: MusicVocab, vocab_size: usize, tempo_range: (f32, f32)) -> MusicPlannerConfig {
        MusicPlannerConfig {
            vocab,
            // Audio prompts that describe a scene run long: the music comes last.
            text: TextEncoderConfig {
                max_len: 128,
                dim: 96,
                depth: 3,
                ..TextEncoderConfig::base(vocab_size)
            },
            tempo_bins: 48,
            tempo_range,
            attention_pool: true,
            lexical_heads: true,
            digit_reader: true,
        }
    }

    /// A tiny planner for tests.
    pub fn tiny(vocab: MusicVocab, vocab_size: usize, tempo_range: (f32, f32)) -> MusicPlannerConfig {
        MusicPlannerConfig {
            text: TextEncoderConfig::tiny(vocab_size),
            tempo_bins: 8,
            ..MusicPlannerConfig::base(vocab, vocab_size, tempo_range)
        }
    }

    /// The bin of `bpm` (clamped to the range).
    pub fn tempo_bin(&self, bpm: f32) -> usize {
        let (lo, hi) = self.tempo_range;
        let x = (bpm.clamp(lo, hi) / lo).ln() / (hi / lo).ln();
        ((x * self.tempo_bins as f32) as usize).min(self.tempo_bins - 1)
    }

    /// The centre of bin `bin`, bpm.
    pub fn tempo_of_bin(&self, bin: usize) -> f32 {
        let (lo, hi) = self.tempo_range;
        lo * (hi / lo).powf((bin as f32 + 0.5) / self.tempo_bins as f32)
    }
}

/// The music a prompt asks for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MusicPlan {
    /// Instrument of the melody.
    pub instrument: String,
    /// Mood.
    pub mood: String,
    /// Tempo, beats per minute.
    pub tempo_bpm: f32,
}

/// What a prompt asks to hear: music, ambience, both or neither.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SoundPlan {
    /// The music, if any.
    pub music: Option<MusicPlan>,
    /// The ambience, if any.
    pub ambience: Option<String>,
}

/// What a prompt asks to be made, as the music planner reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Asked {
    /// The most likely medium (one of the vocabulary's `media`: a still, a clip,
    /// sound alone); None for a planner without the medium head.
    pub medium: Option<String>,
    /// Whether it asks for music.
    pub music: bool,
    /// The most likely ambience, if any.
    pub ambience: Option<String>,
}

/// The planner's logits for a batch.
pub struct MusicPlannerOutput {
    /// (b, 2): no music / music.
    pub music: Tensor,
    /// (b, instruments).
    pub instrument: Tensor,
    /// (b, moods).
    pub mood: Tensor,
    /// (b, tempo bins).
    pub tempo: Tensor,
    /// (b, ambiences + 1): the last is none.
    pub ambience: Tensor,
    /// (b, media): what the request asks to be made (with the medium head).
    pub medium: Option<Tensor>,
}

/// Attention pooling with one learned query per head: (b, L, d) states -> (b, heads, d).
/// Parameters `queries`, `keys`.
struct AttentionPool {
    queries: Tensor,
    keys: Dense,
}

impl AttentionPool {
    fn new(heads: usize, dim: usize, vb: VarBuilder) -> Result<AttentionPool> {
        Ok(AttentionPool {
            queries: vb.get_with_hints(
                (heads, dim),
                "queries",
                candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
            )?,
            keys: Dense::new(dim, dim, vb.pp("keys"))?,
        })
    }

    /// states (b, L, d), mask (b, L) of 1 for tokens -> each head's weights over the
    /// tokens (b, heads, L).
    fn weights(&self, states: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, _, d) = states.dims3()?;
        let keys = self.keys.forward(states)?;
        let queries = self
            .queries
            .unsqueeze(0)?
            .broadcast_as((b, self.queries.dim(0)?, d))?
            .contiguous()?;
        let scores = (queries.matmul(&keys.transpose(1, 2)?.contiguous()?)? / (d as f64).sqrt())?;
        // Padding gets no weight: -1e4 where the mask is 0.
        let padding = mask.affine(1e4, -1e4)?.unsqueeze(1)?;
        // mmgen_nn's softmax: candle's fused one has no backward, and the queries and
        // keys would never learn.
        Ok(mmgen_nn::softmax_last_dim(
            &scores.broadcast_add(&padding)?.contiguous()?,
        )?)
    }
}

/// Digits a stated tempo is read at, counted back from the token after the number:
/// units, tens, hundreds (for a two-digit number, the word before it).
const DIGIT_PLACES: usize = 3;

/// Reads a stated number digit by digit: an attention query finds the token that
/// follows the number, the embeddings of the [`DIGIT_PLACES`] tokens before it are
/// read, and a small network maps them to tempo logits. Parameters `pool.*`,
/// `hidden`, `tempo`; `tempo` starts at zero, so a planner that gains the reader
/// plans as it did before.
struct DigitReader {
    pool: AttentionPool,
    hidden: Dense,
    tempo: Dense,
}

impl DigitReader {
    fn new(dim: usize, tempo_bins: usize, vb: VarBuilder) -> Result<DigitReader> {
        Ok(DigitReader {
            pool: AttentionPool::new(1, dim, vb.pp("pool"))?,
            hidden: Dense::new(DIGIT_PLACES * dim, 2 * dim, vb.pp("hidden"))?,
            tempo: Dense::zeros(2 * dim, tempo_bins, vb.pp("tempo"))?,
        })
    }

    /// Contextual states and token embeddings (b, L, d), mask (b, L) -> tempo logits
    /// (b, bins) and the weights of the number's end over the tokens (b, L).
    fn forward(&self, states: &Tensor, embeddings: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let end = self.pool.weights(states, mask)?.squeeze(1)?;
        let hidden = gelu(&self.hidden.forward(&read_before(&end, embeddings, DIGIT_PLACES)?)?)?;
        Ok((self.tempo.forward(&hidden)?, end))
    }
}

/// Under weights `at` (b, L) over the tokens, the embeddings (b, L, d) of the token
/// one, two, ... `places` tokens earlier, side by side (b, places * d); zero before the
/// first token.
fn read_before(at: &Tensor, embeddings: &Tensor, places: usize) -> Result<Tensor> {
    let (b, len, d) = embeddings.dims3()?;
    let at = at.unsqueeze(1)?;
    let read = (1..=places)
        .map(|back| {
            let back = back.min(len);
            let zeros = Tensor::zeros((b, back, d), embeddings.dtype(), embeddings.device())?;
            let shifted = Tensor::cat(&[&zeros, &embeddings.narrow(1, 0, len - back)?], 1)?;
            Ok(at.matmul(&shifted)?.squeeze(1)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&read, 1)?)
}

/// Where a music planner's attention pooling looked.
pub struct PlannerAttention {
    /// (b, 5, L): each head's weights over the tokens, in the order music,
    /// instrument, mood, tempo, ambience.
    pub heads: Tensor,
    /// (b, L): where the digit reader finds the end of a stated number (the token
    /// after its last digit), with the digit reader.
    pub number_end: Option<Tensor>,
}

/// The heads whose summary is the tokens' own embeddings with lexical heads.
const LEXICAL: [bool; 5] = [false, true, true, false, true];

/// The music planner. Parameters `text.*`, `pool.*` (with attention pooling),
/// `hidden`, `head.{music,instrument,mood,tempo,ambience}`, `head.medium` (with
/// media in its vocabulary) and `digits.*` (with the digit reader).
pub struct MusicPlanner {
    tokenizer: TextTokenizer,
    text: TextEncoder,
    pool: Option<AttentionPool>,
    digits: Option<DigitReader>,
    hidden: Dense,
    heads: [Dense; 5],
    medium: Option<Dense>,
    config: MusicPlannerConfig,
    device: Device,
}

impl MusicPlanner {
    /// Builds the planner on `vb`.
    pub fn new(
        config: &MusicPlannerConfig,
        tokenizer: TextTokenizer,
        vb: VarBuilder,
        device: &Device,
    ) -> Result<MusicPlanner> {
        config.text.check_tokenizer(&tokenizer)?;
        let (lo, hi) = config.tempo_range;
        let v = &config.vocab;
        if config.tempo_bins < 2 || !(lo > 0.0 && hi > lo) || v.instruments.is_empty() || v.moods.is_empty() {
            return Err(ModelError::Invalid(format!(
                "music planner needs 2+ tempo bins over a rising range and some instruments and moods: {config:?}"
            )));
        }
        if (config.lexical_heads || config.digit_reader) && !config.attention_pool {
            return Err(ModelError::Invalid(
                "music planner: lexical_heads and digit_reader need attention_pool".into(),
            ));
        }
        let d = config.text.dim;
        let sizes = [
            2,
            v.instruments.len(),
            v.moods.len(),
            config.tempo_bins,
            v.ambiences.len() + 1,
        ];
        let names = ["music", "instrument", "mood", "tempo", "ambience"];
        let head = |i: usize| Dense::new(d, sizes[i], vb.pp(format!("head.{}", names[i])));
        Ok(MusicPlanner {
            text: TextEncoder::new(&config.text, vb.pp("text"))?,
            pool: config
                .attention_pool
                .then(|| AttentionPool::new(names.len(), d, vb.pp("pool")))
                .transpose()?,
            digits: config
                .digit_reader
                .then(|| DigitReader::new(d, config.tempo_bins, vb.pp("digits")))
                .transpose()?,
            hidden: Dense::new(d, d, vb.pp("hidden"))?,
            heads: [head(0)?, head(1)?, head(2)?, head(3)?, head(4)?],
            medium: (!v.media.is_empty())
                .then(|| Dense::new(d, v.media.len(), vb.pp("head.medium")))
                .transpose()?,
            tokenizer,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Reads a music-planner folder.
    pub fn load(dir: &Path, device: &Device) -> Result<MusicPlanner> {
        MusicPlanner::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<MusicPlanner> {
        load_folder(files, device, "music planner", |c: &MusicPlannerConfig, tok, vb| {
            MusicPlanner::new(c, tok, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MusicPlannerConfig {
        &self.config
    }

    /// Its tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The logits for token ids (b, L) under mask (b, L).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<MusicPlannerOutput> {
        Ok(self.forward_attending(ids, mask)?.0)
    }

    /// [`Self::forward`], with where its attention pooling looked (when it pools by
    /// attention).
    pub fn forward_attending(
        &self,
        ids: &Tensor,
        mask: &Tensor,
    ) -> Result<(MusicPlannerOutput, Option<PlannerAttention>)> {
        let (states, pooled) = self.text.forward(ids, mask)?;
        let mask = mask.to_dtype(states.dtype())?;
        let weights = match &self.pool {
            Some(pool) => Some(pool.weights(&states, &mask)?),
            None => None,
        };
        let embeddings = match self.config.lexical_heads || self.digits.is_some() {
            true => Some(self.text.token_embeddings(ids)?),
            false => None,
        };
        // Per head: (b, d), its own summary or the shared mean.
        let summaries = match &weights {
            Some(weights) => {
                let lexical = match (self.config.lexical_heads, &embeddings) {
                    (true, Some(embeddings)) => Some(weights.matmul(embeddings)?),
                    _ => None,
                };
                Some((weights.matmul(&states)?, lexical))
            }
            None => None,
        };
        let out = |i: usize| -> Result<Tensor> {
            let summary = match &summaries {
                Some((_, Some(lexical))) if LEXICAL[i] => lexical.narrow(1, i, 1)?.squeeze(1)?,
                Some((contextual, _)) => contextual.narrow(1, i, 1)?.squeeze(1)?,
                None => pooled.clone(),
            };
            Ok(self.heads[i].forward(&gelu(&self.hidden.forward(&summary)?)?)?)
        };
        // What is asked for is said by the whole prompt ("a clip of", "music:"): the mean.
        let medium = match &self.medium {
            Some(head) => Some(head.forward(&gelu(&self.hidden.forward(&pooled)?)?)?),
            None => None,
        };
        let (tempo, number_end) = match (&self.digits, &embeddings) {
            (Some(reader), Some(embeddings)) => {
                let (read, end) = reader.forward(&states, embeddings, &mask)?;
                ((out(3)? + read)?, Some(end))
            }
            _ => (out(3)?, None),
        };
        let output = MusicPlannerOutput {
            music: out(0)?,
            instrument: out(1)?,
            mood: out(2)?,
            tempo,
            ambience: out(4)?,
            medium,
        };
        let attention = weights.map(|heads| PlannerAttention { heads, number_end });
        Ok((output, attention))
    }

    /// What each prompt asks to be made: its most likely medium (with the medium
    /// head), whether it asks for music, and its most likely ambience. Deterministic:
    /// the request's modalities follow from it, whatever the seed.
    pub fn asked(&self, prompts: &[&str]) -> Result<Vec<Asked>> {
        crate::sampling::check_prompts(prompts.iter().copied(), "to read")?;
        let (ids, mask) = self
            .tokenizer
            .encode_batch(prompts, self.config.text.max_len, &self.device)?;
        let out = self.forward(&ids, &mask)?;
        let argmax = |t: &Tensor| -> Result<Vec<u32>> { Ok(t.argmax(D::Minus1)?.to_vec1()?) };
        let media = match &out.medium {
            Some(logits) => Some(argmax(logits)?),
            None => None,
        };
        let music = argmax(&out.music)?;
        let ambience = argmax(&out.ambience)?;
        let v = &self.config.vocab;
        Ok((0..prompts.len())
            .map(|i| Asked {
                medium: media.as_ref().map(|m| v.media[m[i] as usize].clone()),
                music: music[i] == 1,
                ambience: v.ambiences.get(ambience[i] as usize).cloned(),
            })
            .collect())
    }

    /// Sound plans for `(prompt, seed)` requests. Each choice is drawn from the seed
    /// among the classes at least a tenth as likely as the likeliest: what the prompt
    /// states is kept, what it leaves free varies with the seed.
    pub fn plan(&self, requests: &[(&str, u64)]) -> Result<Vec<SoundPlan>> {
        self.plan_with(requests, false)
    }

    /// [`Self::plan`] for requests that ask for sound: each plan holds music, even
    /// where the prompt names none (the likeliest instrument and mood).
    pub fn plan_music(&self, requests: &[(&str, u64)]) -> Result<Vec<SoundPlan>> {
        self.plan_with(requests, true)
    }

    fn plan_with(&self, requests: &[(&str, u64)], always_music: bool) -> Result<Vec<SoundPlan>> {
        crate::sampling::check_prompts(requests.iter().map(|r| r.0), "to plan music for")?;
        let prompts: Vec<&str> = requests.iter().map(|r| r.0).collect();
        let (ids, mask) = self
            .tokenizer
            .encode_batch(&prompts, self.config.text.max_len, &self.device)?;
        let out = self.forward(&ids, &mask)?;
        let probs = |t: &Tensor| -> Result<Vec<Vec<f32>>> { Ok(candle_nn::ops::softmax(t, D::Minus1)?.to_vec2()?) };
        let (music, instrument, mood, tempo, ambience) = (
            probs(&out.music)?,
            probs(&out.instrument)?,
            probs(&out.mood)?,
            probs(&out.tempo)?,
            probs(&out.ambience)?,
        );
        let v = &self.config.vocab;
        let mut plans = Vec::with_capacity(requests.len());
        for (i, (_, seed)) in requests.iter().enumerate() {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x4D55_5349);
            let ambience_id = sample_index(&ambience[i], rng.random(), MIN_P);
            let music_plan = (always_music || music[i][1] >= 0.5).then(|| MusicPlan {
                instrument: v.instruments[sample_index(&instrument[i], rng.random(), MIN_P)].clone(),
                mood: v.moods[sample_index(&mood[i], rng.random(), MIN_P)].clone(),
                tempo_bpm: (self.config.tempo_of_bin(sample_index(&tempo[i], rng.random(), MIN_P)) * 10.0).round()
                    / 10.0,
            });
            plans.push(SoundPlan {
                music: music_plan,
                ambience: v.ambiences.get(ambience_id).cloned(),
            });
        }
        Ok(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digits_are_read_in_order_before_the_anchor() {
        // Token t's embedding is (t + 1, 10 (t + 1)); the anchor rests on token 4, and
        // on token 1 in the second row (only one token stands before it).
        let embeddings: Vec<f32> = (0..2)
            .flat_map(|_| (1..=6).flat_map(|t| [t as f32, 10.0 * t as f32]))
            .collect();
        let embeddings = Tensor::from_vec(embeddings, (2, 6, 2), &Device::Cpu).unwrap();
        let mut at = vec![0f32; 12];
        at[4] = 1.0;
        at[6 + 1] = 1.0;
        let at = Tensor::from_vec(at, (2, 6), &Device::Cpu).unwrap();
        let read = read_before(&at, &embeddings, 3).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(read[0], [4.0, 40.0, 3.0, 30.0, 2.0, 20.0], "units, tens, hundreds");
        assert_eq!(read[1], [1.0, 10.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn tempo_bins_cover_the_range_and_invert() {
        let vocab = MusicVocab {
            instruments: vec!["a".into()],
            moods: vec!["b".into()],
            ambiences: vec![],
            media: vec![],
        };
        let c = MusicPlannerConfig::base(vocab, 100, (60.0, 160.0));
        assert_eq!(c.tempo_bin(10.0), 0);
        assert_eq!(c.tempo_bin(1000.0), 47);
        for bpm in [60.0f32, 75.0, 92.0, 128.0, 159.0] {
            let back = c.tempo_of_bin(c.tempo_bin(bpm));
            assert!((back - bpm).abs() / bpm < 0.025, "{bpm} -> {back}");
        }
    }
}
