//! The tokenizer's training text: world captions in both languages, for every medium,
//! with the training-time dropout of details (so short phrasings are covered too).

use mmgen_models::tokenizer::TextTokenizer;
use mmgen_world::rng::mix64;
use mmgen_world::{caption_for_seed, CaptionOptions, Lang, Medium, SpecSampler, Split};

use crate::error::Result;

/// `n` captions per language and medium of training-split specs under `seed`.
pub fn caption_corpus(n: usize, seed: u64) -> Vec<String> {
    let sampler = SpecSampler::default();
    let mut texts = Vec::with_capacity(n * 6);
    for i in 0..n as u64 {
        let spec = sampler.sample(Split::Train, mix64(seed ^ mix64(i)));
        for lang in [Lang::En, Lang::Zh] {
            for medium in [Medium::Image, Medium::Video, Medium::Audio] {
                texts.push(caption_for_seed(
                    &spec,
                    lang,
                    CaptionOptions::training(medium),
                    mix64(i ^ 0x7E47),
                ));
            }
        }
    }
    texts
}

/// A byte-level BPE of `vocab_size` tokens trained on [`caption_corpus`]`(n, seed)`.
pub fn train_tokenizer(n: usize, vocab_size: usize, seed: u64) -> Result<TextTokenizer> {
    Ok(TextTokenizer::train(caption_corpus(n, seed).into_iter(), vocab_size)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_covers_both_languages_compactly() {
        let tok = train_tokenizer(300, 600, 1).unwrap();
        let corpus = caption_corpus(20, 99);
        let (mut tokens, mut bytes) = (0, 0);
        for text in &corpus {
            let ids = tok.encode(text, 1000).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), *text);
            tokens += ids.len();
            bytes += text.len();
        }
        // Unseen captions of the same world: under half as many tokens as bytes even
        // with this small vocabulary (measured 2.5 bytes per token; 1 for raw bytes).
        assert!(bytes >= 2 * tokens, "{bytes} bytes in {tokens} tokens");
    }
}
