//! The note model: a small decoder-only Transformer over score tokens
//! ([`super::score`]), conditioned on the instrument and mood tokens that open every
//! sequence (MuseCoco's attribute-to-music stage, Lu et al. 2023).
//!
//! It attends over a sliding window: the two conditioning tokens and the latest
//! tokens, at positions counted from the window's start. Training crops windows at
//! random places of long scores and learns every prefix of each, so a score of any
//! length is generated in constant memory: sampling keeps the window's keys and
//! values cached and, once the window is full, restarts it from its latest half. Sampling follows the token grammar (a voice is followed by
//! its pitch, a duration by a velocity, ...): the network chooses among the tokens
//! the grammar allows.
//!
//! A note-model folder holds `config.json` ([`NoteModelConfig`]) and
//! `model.safetensors` (f16).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::kv_cache::KvCache;
use candle_nn::{embedding, Embedding, Init, VarBuilder};
use mmgen_nn::{Attention, Dense, FeedForward, LayerNorm};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::score::{Score, ScoreVocab, Token, TokenLayout, BEATS_PER_BAR};
use crate::error::{ModelError, Result};
use crate::grounded::draw::MIN_P;
use crate::weights::{load_weights_folder, FolderFiles};

/// Shape of a note model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoteModelConfig {
    /// Names of its instruments, moods and percussion.
    pub vocab: ScoreVocab,
    /// Width of token states.
    pub dim: usize,
    /// Transformer layers.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Tokens it attends over, the two conditioning tokens included.
    pub window: usize,
}

impl NoteModelConfig {
    /// The shipped shape.
    pub fn base(vocab: ScoreVocab) -> NoteModelConfig {
        NoteModelConfig {
            vocab,
            dim: 96,
            depth: 3,
            heads: 4,
            window: 128,
        }
    }

    /// A tiny shape for tests.
    pub fn tiny(vocab: ScoreVocab) -> NoteModelConfig {
        NoteModelConfig {
            dim: 16,
            depth: 1,
            heads: 2,
            window: 48,
            ..NoteModelConfig::base(vocab)
        }
    }
}

struct Block {
    norm1: LayerNorm,
    attention: Attention,
    norm2: LayerNorm,
    mlp: FeedForward,
}

impl Block {
    fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Block> {
        Ok(Block {
            norm1: LayerNorm::new(dim, true, vb.pp("norm1"))?,
            attention: Attention::new(dim, dim, heads, vb.pp("attention"))?,
            norm2: LayerNorm::new(dim, true, vb.pp("norm2"))?,
            mlp: FeedForward::new(dim, 4 * dim, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let n = xs.dim(1)?;
        let h = self.norm1.forward(xs)?;
        let context = self.attention.context(&h, None)?.causal(n)?;
        let xs = (xs + self.attention.forward_context(&h, &context)?)?;
        Ok((&xs + self.mlp.forward(&self.norm2.forward(&xs)?)?)?)
    }

    /// [`Self::forward`] of new tokens after those in `cache`.
    fn forward_cached(&self, xs: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let xs = (xs + self.attention.forward_cached(&self.norm1.forward(xs)?, cache)?)?;
        Ok((&xs + self.mlp.forward(&self.norm2.forward(&xs)?)?)?)
    }
}

/// The note model. Parameters `tokens`, `positions`, `blocks.{i}`, `norm`, `out`.
pub struct NoteModel {
    tokens: Embedding,
    positions: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    out: Dense,
    layout: TokenLayout,
    config: NoteModelConfig,
    device: Device,
}

impl NoteModel {
    /// Builds the model on `vb`.
    pub fn new(config: &NoteModelConfig, vb: VarBuilder, device: &Device) -> Result<NoteModel> {
        if config.window < 8 || config.depth == 0 || config.heads == 0 || !config.dim.is_multiple_of(config.heads) {
            return Err(ModelError::Invalid(format!(
                "note model window {} (at least 8), depth {}, heads {} (dividing dim {}) are not usable",
                config.window, config.depth, config.heads, config.dim
            )));
        }
        if config.vocab.instruments.is_empty() || config.vocab.moods.is_empty() {
            return Err(ModelError::Invalid(
                "a note model needs at least one instrument and mood".into(),
            ));
        }
        let layout = TokenLayout::new(&config.vocab);
        let d = config.dim;
        Ok(NoteModel {
            tokens: embedding(layout.len(), d, vb.pp("tokens"))?,
            positions: vb.get_with_hints((config.window, d), "positions", Init::Randn { mean: 0.0, stdev: 0.02 })?,
            blocks: (0..config.depth)
                .map(|i| Block::new(d, config.heads, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            norm: LayerNorm::new(d, true, vb.pp("norm"))?,
            out: Dense::new(d, layout.len(), vb.pp("out"))?,
            layout,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// Reads a note-model folder.
    pub fn load(dir: &Path, device: &Device) -> Result<NoteModel> {
        NoteModel::from_files(&FolderFiles::read(dir)?, device)
    }

    /// Builds it from its folder's files, read once (see [`FolderFiles`]).
    pub fn from_files(files: &FolderFiles, device: &Device) -> Result<NoteModel> {
        load_weights_folder(files, device, "note model", |c: &NoteModelConfig, vb| {
            NoteModel::new(c, vb, device)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NoteModelConfig {
        &self.config
    }

    /// Its token layout.
    pub fn layout(&self) -> &TokenLayout {
        &self.layout
    }

    /// Next-token logits (b, n, vocabulary) of windows `ids` (b, n) u32, n at most
    /// the window.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let n = ids.dim(1)?;
        if n > self.config.window {
            return Err(ModelError::Invalid(format!(
                "{n} tokens do not fit the note model's window of {}",
                self.config.window
            )));
        }
        let mut xs = self
            .tokens
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, n)?.unsqueeze(0)?)?;
        for block in &self.blocks {
            xs = block.forward(&xs)?;
        }
        Ok(self.out.forward(&self.norm.forward(&xs)?)?)
    }

    /// Next-token logits after `ids` (u32), which follow the tokens already in
    /// `caches` (one per block) at positions counted from the window's start; the new
    /// tokens join the caches. Equals the last row of [`Self::forward`] over the whole
    /// window.
    fn decode(&self, ids: &[u32], caches: &mut [KvCache]) -> Result<Vec<f32>> {
        let past = caches.first().map_or(0, KvCache::current_seq_len);
        let n = ids.len();
        if n == 0 || past + n > self.config.window {
            return Err(ModelError::Invalid(format!(
                "{past} + {n} tokens do not fit the note model's window of {}",
                self.config.window
            )));
        }
        let ids = Tensor::from_slice(ids, (1, n), &self.device)?;
        let mut xs = self
            .tokens
            .forward(&ids)?
            .broadcast_add(&self.positions.narrow(0, past, n)?.unsqueeze(0)?)?;
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            xs = block.forward_cached(&xs, cache)?;
        }
        let last = self.norm.forward(&xs.narrow(1, n - 1, 1)?)?;
        Ok(self.out.forward(&last)?.flatten_all()?.to_vec1()?)
    }

    /// A score of `bars` bars for `instrument` and `mood`, sampled from `seed` at
    /// `temperature` (1 samples the learned distribution; near 0 takes the likeliest).
    pub fn generate(&self, instrument: &str, mood: &str, bars: usize, seed: u64, temperature: f32) -> Result<Score> {
        let vocab = &self.config.vocab;
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Err(ModelError::Invalid(format!(
                "temperature is {temperature}; allowed 0 or more"
            )));
        }
        let l = &self.layout;
        let mut tokens = vec![
            l.id(Token::Instrument(vocab.instrument_id(instrument)?)),
            l.id(Token::Mood(vocab.mood_id(mood)?)),
            l.id(Token::Bar),
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x4E4F_5445);
        let mut grammar = Grammar::default();
        grammar.push(Token::Bar);
        let mut bar_count = 1;
        // A model that never closes a bar still ends: at most this many tokens a bar.
        let limit = bars * 16 * BEATS_PER_BAR * 4 + 16;
        let window = self.config.window;
        let mut caches: Vec<KvCache> = (0..self.config.depth).map(|_| KvCache::new(2, window)).collect();
        // Tokens not yet in the caches (at first, the whole opening).
        let mut unseen = tokens.len();
        while tokens.len() < limit {
            mmgen_diffusion::cancel::check()?;
            let in_cache = caches[0].current_seq_len();
            let logits = if in_cache + unseen <= window {
                self.decode(&tokens[tokens.len() - unseen..], &mut caches)?
            } else {
                // The window is full: it slides by half, restarting from the two
                // conditioning tokens and the latest tokens (one pass over them), so
                // each token costs one cached step and a share of the restart.
                caches.iter_mut().for_each(KvCache::reset);
                let keep = window / 2 - 2;
                let context: Vec<u32> = tokens[..2]
                    .iter()
                    .chain(&tokens[tokens.len() - keep..])
                    .copied()
                    .collect();
                self.decode(&context, &mut caches)?
            };
            let allowed = grammar.allowed(l);
            let next = sample(&logits, &allowed, temperature, &mut rng)
                .ok_or_else(|| ModelError::Invalid("the note model's grammar allowed no token".into()))?;
            let token = l.token(next).expect("sampled from the layout");
            if token == Token::Bar {
                if bar_count == bars {
                    break;
                }
                bar_count += 1;
            }
            grammar.push(token);
            tokens.push(next);
            unseen = 1;
        }
        let mut score = Score::from_tokens(&tokens, vocab);
        let end = (bars * BEATS_PER_BAR) as f32;
        score.notes.retain(|n| n.beat < end);
        Ok(score)
    }

    /// Mean next-token cross-entropy of token windows `ids` (b, n), over the tokens
    /// after the two conditioning ones.
    pub fn loss(&self, ids: &Tensor) -> Result<Tensor> {
        let n = ids.dim(1)?;
        let logits = self.forward(&ids.narrow(1, 0, n - 1)?)?;
        let predicted = logits.narrow(1, 1, n - 2)?;
        let target = ids.narrow(1, 2, n - 2)?.contiguous()?;
        let log_p = candle_nn::ops::log_softmax(&predicted, D::Minus1)?;
        let picked = log_p.gather(&target.unsqueeze(2)?, 2)?;
        Ok(picked.mean_all()?.neg()?)
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameters' dtype (f32).
    pub fn dtype(&self) -> DType {
        DType::F32
    }
}

/// Where the token grammar stands: what the last token was.
#[derive(Default)]
struct Grammar {
    last: Option<Token>,
    /// The position within the bar, once one was given.
    position: Option<u32>,
}

impl Grammar {
    fn push(&mut self, token: Token) {
        match token {
            Token::Bar => self.position = None,
            Token::Position(p) => self.position = Some(p),
            _ => {}
        }
        self.last = Some(token);
    }

    /// Kind indices (in [`Token`] order) and the ids allowed next.
    fn allowed(&self, l: &TokenLayout) -> Vec<u32> {
        // Kinds: 0 bar, 1 position, 2 voice, 3 pitch, 4 duration, 5 velocity.
        let kinds: &[usize] = match self.last {
            None | Some(Token::Instrument(_)) | Some(Token::Mood(_)) => &[0],
            Some(Token::Bar) => &[0, 1],
            Some(Token::Position(_)) => &[2],
            Some(Token::Voice(v)) if l.pitched(v) => &[3],
            Some(Token::Voice(_)) | Some(Token::Pitch(_)) => &[4],
            Some(Token::Duration(_)) => &[5],
            Some(Token::Velocity(_)) => &[0, 1, 2],
        };
        let mut ids = Vec::new();
        for &kind in kinds {
            for id in l.range(kind) {
                // Positions only move forward within a bar.
                if let (1, Some(Token::Position(p)), Some(now)) = (kind, l.token(id), self.position) {
                    if p <= now {
                        continue;
                    }
                }
                ids.push(id);
            }
        }
        ids
    }
}

/// A token among `allowed`, from `logits` at `temperature` (0: the likeliest), among
/// those at least [`MIN_P`] times as likely as the likeliest (see [`crate::grounded::draw`]).
fn sample(logits: &[f32], allowed: &[u32], temperature: f32, rng: &mut impl Rng) -> Option<u32> {
    let best = allowed
        .iter()
        .copied()
        .max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]))?;
    if temperature < 1e-4 {
        return Some(best);
    }
    let top = logits[best as usize];
    let weights: Vec<f64> = allowed
        .iter()
        .map(|&i| (((logits[i as usize] - top) / temperature) as f64).exp())
        .map(|w| if w >= MIN_P as f64 { w } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut pick = rng.random::<f64>() * total;
    for (&id, &w) in allowed.iter().zip(&weights).filter(|(_, &w)| w > 0.0) {
        pick -= w;
        if pick <= 0.0 {
            return Some(id);
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grounded::music::score::MELODY;
    use candle_nn::VarMap;
    use mmgen_nn::seeded_var_builder;

    fn vocab() -> ScoreVocab {
        ScoreVocab {
            instruments: vec!["keys".into(), "kit".into()],
            moods: vec!["up".into(), "down".into()],
            percussion: vec!["boom".into()],
        }
    }

    #[test]
    fn an_untrained_model_still_writes_well_formed_scores_of_the_asked_length() {
        let varmap = VarMap::new();
        let config = NoteModelConfig::tiny(vocab());
        let model = NoteModel::new(
            &config,
            seeded_var_builder(&varmap, 3, DType::F32, &Device::Cpu),
            &Device::Cpu,
        )
        .unwrap();
        let a = model.generate("keys", "down", 6, 7, 1.0).unwrap();
        assert_eq!(a, model.generate("keys", "down", 6, 7, 1.0).unwrap(), "seeded");
        assert_ne!(a, model.generate("keys", "down", 6, 8, 1.0).unwrap());
        assert!(a.notes.iter().all(|n| n.beat < 24.0));
        assert!(a
            .notes
            .iter()
            .all(|n| (n.voice == MELODY || n.voice == "bass") == n.pitch.is_some()));
        assert!(model
            .generate("choir", "down", 2, 0, 1.0)
            .unwrap_err()
            .to_string()
            .contains("choir"));
        assert!(model.generate("keys", "down", 2, 0, f32::NAN).is_err());
    }

    #[test]
    fn cached_decoding_gives_the_logits_of_a_whole_window_pass() {
        let varmap = VarMap::new();
        let config = NoteModelConfig::tiny(vocab());
        let model = NoteModel::new(
            &config,
            seeded_var_builder(&varmap, 5, DType::F32, &Device::Cpu),
            &Device::Cpu,
        )
        .unwrap();
        let vocabulary = model.layout().len() as u32;
        let ids: Vec<u32> = (0..12u32).map(|i| (i * 7 + 3) % vocabulary).collect();
        let mut caches: Vec<KvCache> = (0..config.depth).map(|_| KvCache::new(2, config.window)).collect();
        let mut cached = model.decode(&ids[..5], &mut caches).unwrap();
        for at in 5..ids.len() {
            let whole = model
                .forward(&Tensor::from_slice(&ids[..at], (1, at), &Device::Cpu).unwrap())
                .unwrap()
                .narrow(1, at - 1, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let diff = whole
                .iter()
                .zip(&cached)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "token {at}: {diff}");
            cached = model.decode(&ids[at..at + 1], &mut caches).unwrap();
        }
        assert!(
            model.decode(&vec![3; config.window], &mut caches).is_err(),
            "past the window"
        );
    }
}
