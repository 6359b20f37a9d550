//! The text tokenizer: byte-level BPE (Radford et al. 2019; the `tokenizers` crate),
//! trained on the world's English and Chinese captions. Byte-level means any input
//! encodes (no unknown token); BPE means the world's words and common Chinese
//! characters are single tokens, so sequences are 3-4x shorter than raw UTF-8 bytes.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::unicode::NFKC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder, TokenizerImpl};

use crate::error::{ModelError, Result};

/// Padding token, id 0.
pub const PAD: &str = "<pad>";

type Inner = TokenizerImpl<BPE, NFKC, ByteLevel, ByteLevel, ByteLevelDecoder>;

/// A trained tokenizer and the longest sequence the text encoder takes.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Inner,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextTokenizer({} tokens)", self.vocab_size())
    }
}

fn build(model: BPE) -> Result<Inner> {
    TokenizerBuilder::new()
        .with_model(model)
        .with_normalizer(Some(NFKC))
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevelDecoder::default()))
        .build()
        .map_err(|e| ModelError::Invalid(format!("cannot build the tokenizer: {e}")))
}

impl TextTokenizer {
    /// Trains a byte-level BPE of at most `vocab_size` tokens on `texts`.
    pub fn train<S: AsRef<str> + Send>(
        texts: impl Iterator<Item = S> + Send,
        vocab_size: usize,
    ) -> Result<TextTokenizer> {
        if vocab_size < 300 {
            return Err(ModelError::Invalid(format!(
                "vocab_size is {vocab_size}; allowed 300 or more (256 bytes + merges)"
            )));
        }
        let mut inner = build(BPE::default())?;
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(PAD, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        inner
            .train(&mut trainer, texts)
            .map_err(|e| ModelError::Invalid(format!("tokenizer training failed: {e}")))?;
        Ok(TextTokenizer { inner })
    }

    /// Reads `tokenizer.json`.
    pub fn load(path: &Path) -> Result<TextTokenizer> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::file(path, e))?;
        TextTokenizer::from_json(&bytes, path)
    }

    /// A tokenizer from the bytes of `tokenizer.json` read from `path` (named in errors).
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<TextTokenizer> {
        let inner: Inner =
            serde_json::from_slice(bytes).map_err(|e| ModelError::file(path, format!("not a mmgen tokenizer: {e}")))?;
        let tokenizer = TextTokenizer { inner };
        if tokenizer.inner.token_to_id(PAD) != Some(0) {
            return Err(ModelError::file(path, format!("its padding token {PAD} is not id 0")));
        }
        Ok(tokenizer)
    }

    /// Writes `tokenizer.json` (the format Hugging Face tools read).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| ModelError::file(path, format!("cannot write: {e}")))
    }

    /// Tokens in the vocabulary (ids are below this).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text` (no special tokens), at most `max_len`.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| ModelError::Invalid(format!("cannot tokenize {text:?}: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        ids.truncate(max_len);
        Ok(ids)
    }

    /// [`Self::encode`], with each token's byte range in `text` (a training target can
    /// then name the tokens of a phrase).
    pub fn encode_with_offsets(&self, text: &str, max_len: usize) -> Result<Encoded> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| ModelError::Invalid(format!("cannot tokenize {text:?}: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        let mut offsets = encoding.get_offsets().to_vec();
        ids.truncate(max_len);
        offsets.truncate(max_len);
        Ok(Encoded { ids, offsets })
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| ModelError::Invalid(format!("cannot decode: {e}")))
    }

    /// A batch as ids (b, L) u32 and a key mask (b, L) f32 (1 for tokens, 0 for
    /// padding), L the longest encoding (at least 1: an empty text is one pad token,
    /// masked in as the "null" prompt of classifier-free guidance).
    pub fn encode_batch(&self, texts: &[&str], max_len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let encoded = texts
            .iter()
            .map(|t| self.encode(t, max_len))
            .collect::<Result<Vec<_>>>()?;
        pad_batch(&encoded, device)
    }
}

/// Token ids with the byte range of each in the text they came from.
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// `[start, end)` bytes of each token.
    pub offsets: Vec<(usize, usize)>,
}

/// Pads id lists to a batch: ids (b, L) and mask (b, L). An empty list becomes one
/// unmasked pad token, so that every row attends to something.
pub fn pad_batch(encoded: &[Vec<u32>], device: &Device) -> Result<(Tensor, Tensor)> {
    let len = encoded.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
    let b = encoded.len();
    let mut ids = vec![0u32; b * len];
    let mut mask = vec![0f32; b * len];
    for (i, e) in encoded.iter().enumerate() {
        ids[i * len..i * len + e.len()].copy_from_slice(e);
        let real = e.len().max(1);
        mask[i * len..i * len + real].iter_mut().for_each(|m| *m = 1.0);
    }
    Ok((
        Tensor::from_vec(ids, (b, len), device)?,
        Tensor::from_vec(mask, (b, len), device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let mut texts = Vec::new();
        for colour in ["red", "blue", "green", "yellow"] {
            for shape in ["circle", "square", "star"] {
                texts.push(format!("a {colour} {shape} on a sunny beach"));
                texts.push(format!("海边的{colour}{shape},配乐为钢琴曲"));
            }
        }
        texts
    }

    #[test]
    fn trains_round_trips_and_saves() {
        let tok = TextTokenizer::train(corpus().into_iter(), 400).unwrap();
        assert!(tok.vocab_size() > 256 && tok.vocab_size() <= 400);
        for text in [
            "a red star on a sunny beach",
            "生成一段描述海边日落的短视频",
            "unseen words: zebra 🦓",
        ] {
            let ids = tok.encode(text, 256).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), text);
        }
        // Frequent words became single tokens: fewer tokens than bytes.
        let ids = tok.encode("a blue circle on a sunny beach", 256).unwrap();
        assert!(ids.len() < 12, "{ids:?}");
        let dir = std::env::temp_dir().join(format!("mmgen-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        tok.save(&path).unwrap();
        let back = TextTokenizer::load(&path).unwrap();
        assert_eq!(
            back.encode("海边的red star", 64).unwrap(),
            tok.encode("海边的red star", 64).unwrap()
        );
        std::fs::write(&path, "{}").unwrap();
        assert!(TextTokenizer::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a mmgen tokenizer"));
        assert!(TextTokenizer::train(corpus().into_iter(), 10).is_err());
    }

    #[test]
    fn batches_pad_and_mask() {
        let tok = TextTokenizer::train(corpus().into_iter(), 400).unwrap();
        let (ids, mask) = tok.encode_batch(&["a red star", ""], 64, &Device::Cpu).unwrap();
        let mask: Vec<Vec<f32>> = mask.to_vec2().unwrap();
        let n = mask[0].iter().filter(|m| **m == 1.0).count();
        assert_eq!(ids.dims(), &[2, n]);
        assert_eq!(mask[1].iter().filter(|m| **m == 1.0).count(), 1);
        let (ids, _) = tok
            .encode_batch(&["a red star on a sunny beach"], 2, &Device::Cpu)
            .unwrap();
        assert_eq!(ids.dims(), &[1, 2]);
    }
}
