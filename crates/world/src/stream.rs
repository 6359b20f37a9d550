//! Training streams: an endless iterator of ready candle batches (token ids and a
//! padding mask, plus images, videos or audio), rendered on the fly by worker threads.
//! No dataset touches the disk.
//!
//! Batch `i` is a pure function of (config, i): worker `w` renders batches
//! `w, w + W, ...` and the iterator hands them out in index order, so a stream is
//! reproducible from its seed whatever the number of workers or their timing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use image::RgbImage;
use rand::Rng;

use crate::audio::render_audio;
use crate::augment::{augment_audio, augment_video, AugmentConfig};
use crate::caption::{caption, CaptionOptions, Lang, Medium};
use crate::error::{Result, WorldError};
use crate::render::Scene;
use crate::rng::{mix64, rng_for, Purpose};
use crate::sampler::{SpecSampler, Split};
use crate::spec::SceneSpec;

/// Turns a caption into token ids (the text encoder's tokenizer, passed in so that
/// the world does not depend on any model crate).
pub type Tokenize = Arc<dyn Fn(&str) -> Vec<u32> + Send + Sync>;

/// Padding id of [`byte_tokenizer`].
pub const PAD_ID: u32 = 0;
/// Begin-of-text id of [`byte_tokenizer`].
pub const BOS_ID: u32 = 1;
/// End-of-text id of [`byte_tokenizer`].
pub const EOS_ID: u32 = 2;

/// UTF-8 bytes shifted past the three special ids, between BOS and EOS: a tokenizer
/// that covers English and Chinese with no training, for tests and baselines.
pub fn byte_tokenizer() -> Tokenize {
    Arc::new(|text: &str| {
        let mut ids = Vec::with_capacity(text.len() + 2);
        ids.push(BOS_ID);
        ids.extend(text.bytes().map(|b| b as u32 + 3));
        ids.push(EOS_ID);
        ids
    })
}

/// What each sample of a stream carries besides its caption.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Modality {
    /// One still image.
    Image,
    /// A clip of `frames` frames.
    Video {
        /// Frames per clip.
        frames: u32,
    },
    /// `seconds` of audio.
    Audio {
        /// Clip length.
        seconds: f32,
    },
}

/// Everything that defines a stream.
#[derive(Clone)]
pub struct StreamConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Which side of the compositional split.
    pub split: Split,
    /// What each sample carries.
    pub modality: Modality,
    /// Image side, pixels.
    pub size: u32,
    /// Audio sample rate.
    pub sample_rate: u32,
    /// Caption languages, drawn uniformly per sample.
    pub langs: Vec<Lang>,
    /// Caption dropout (see [`CaptionOptions`]).
    pub caption_dropout: f64,
    /// Augmentation, if any.
    pub augment: Option<AugmentConfig>,
    /// Worker threads.
    pub workers: usize,
    /// Batches each worker may render ahead.
    pub prefetch: usize,
    /// Seed of the whole stream.
    pub seed: u64,
    /// Token sequences are cut (keeping the end token) or padded to this length.
    pub max_tokens: usize,
    /// The tokenizer.
    pub tokenize: Tokenize,
    /// The spec sampler.
    pub sampler: SpecSampler,
}

impl StreamConfig {
    /// A 64x64 image stream of the training split with the byte tokenizer.
    pub fn images(batch_size: usize, seed: u64) -> StreamConfig {
        StreamConfig {
            batch_size,
            split: Split::Train,
            modality: Modality::Image,
            size: 64,
            sample_rate: crate::audio::SAMPLE_RATE,
            langs: vec![Lang::En, Lang::Zh],
            caption_dropout: 0.15,
            augment: Some(AugmentConfig::default()),
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            prefetch: 2,
            seed,
            max_tokens: 160,
            tokenize: byte_tokenizer(),
            sampler: SpecSampler::default(),
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(WorldError::InvalidOption(m));
        if self.batch_size == 0 {
            return bad("batch_size is 0; it must be at least 1".into());
        }
        if self.workers == 0 {
            return bad("workers is 0; it must be at least 1".into());
        }
        if self.langs.is_empty() {
            return bad("langs is empty; give at least one of en, zh".into());
        }
        if self.max_tokens < 2 {
            return bad(format!(
                "max_tokens is {}; it must hold at least the begin and end tokens",
                self.max_tokens
            ));
        }
        if self.size == 0 || self.size > crate::render::MAX_SIDE {
            return bad(format!(
                "size is {}; allowed 1 to {}",
                self.size,
                crate::render::MAX_SIDE
            ));
        }
        Ok(())
    }
}

/// One rendered batch. Tensors live on the CPU; move them with `to_device`.
#[derive(Debug)]
pub struct Batch {
    /// Position of the batch in its stream.
    pub index: u64,
    /// Token ids, (b, max_tokens) u32, padded with the pad id 0.
    pub tokens: Tensor,
    /// 1 for real tokens, 0 for padding, (b, max_tokens) u8.
    pub token_mask: Tensor,
    /// Images (b, 3, h, w) in [-1, 1], for image streams.
    pub images: Option<Tensor>,
    /// Clips (b, t, 3, h, w) in [-1, 1], for video streams.
    pub videos: Option<Tensor>,
    /// Audio (b, samples) in [-1, 1], for audio streams.
    pub audio: Option<Tensor>,
    /// Ground truth of each sample, after augmentation's relabelling.
    pub specs: Vec<SceneSpec>,
    /// The caption of each sample.
    pub captions: Vec<String>,
    /// The caption language of each sample.
    pub langs: Vec<Lang>,
}

/// The sample seed of item `j` of batch `i`.
fn sample_seed(stream_seed: u64, index: u64, j: usize, batch_size: usize) -> u64 {
    // Wrapping: any u64 index is a valid batch, and the product is only hashed.
    mix64(stream_seed ^ mix64(index.wrapping_mul(batch_size as u64).wrapping_add(j as u64)))
}

/// Frames as channel planes scaled to [-1, 1]: (t, 3, h, w) values, flattened. The one
/// pixel convention of every model and probe input.
pub fn pixels(frames: &[RgbImage]) -> Vec<f32> {
    // (t, 3, h, w): channel planes, scaled to [-1, 1].
    let mut out = Vec::new();
    for frame in frames {
        for c in 0..3 {
            out.extend(frame.pixels().map(|p| p.0[c] as f32 / 127.5 - 1.0));
        }
    }
    out
}

/// Renders batch `index` of a stream; a pure function of its arguments.
pub fn render_batch(config: &StreamConfig, index: u64) -> Result<Batch> {
    config.check()?;
    let b = config.batch_size;
    let (mut token_ids, mut mask) = (
        Vec::with_capacity(b * config.max_tokens),
        Vec::with_capacity(b * config.max_tokens),
    );
    let (mut media, mut specs, mut captions, mut langs) = (
        Vec::new(),
        Vec::with_capacity(b),
        Vec::with_capacity(b),
        Vec::with_capacity(b),
    );
    let medium = match config.modality {
        Modality::Image => Medium::Image,
        Modality::Video { .. } => Medium::Video,
        Modality::Audio { .. } => Medium::Audio,
    };
    for j in 0..b {
        let seed = sample_seed(config.seed, index, j, b);
        let mut rng = rng_for(seed, Purpose::Augment);
        let spec = config.sampler.sample(config.split, seed);
        let spec = match config.modality {
            Modality::Image | Modality::Video { .. } => {
                let frames = match config.modality {
                    Modality::Video { frames } if frames > 0 => frames,
                    Modality::Video { .. } => return Err(WorldError::InvalidOption("video frames is 0".into())),
                    _ => 1,
                };
                let rendered = Scene::new(&spec, seed).clip(config.size, config.size, frames)?;
                let (spec, rendered) = match &config.augment {
                    Some(aug) => augment_video(&spec, &rendered, aug, &mut rng),
                    None => (spec, rendered),
                };
                media.extend(pixels(&rendered));
                spec
            }
            Modality::Audio { seconds } => {
                let mut samples = render_audio(&spec, seed, seconds, config.sample_rate)?;
                if let Some(aug) = &config.augment {
                    augment_audio(&mut samples, aug, &mut rng);
                }
                media.extend(samples);
                spec
            }
        };
        let lang = config.langs[rng.random_range(0..config.langs.len())];
        let text = caption(
            &spec,
            lang,
            CaptionOptions {
                medium,
                dropout: config.caption_dropout,
            },
            &mut rng,
        );
        let mut ids = (config.tokenize)(&text);
        if ids.len() > config.max_tokens {
            let last = ids.last().copied().unwrap_or(PAD_ID);
            ids.truncate(config.max_tokens);
            ids[config.max_tokens - 1] = last;
        }
        mask.extend((0..config.max_tokens).map(|k| (k < ids.len()) as u8));
        ids.resize(config.max_tokens, PAD_ID);
        token_ids.extend(ids);
        specs.push(spec);
        captions.push(text);
        langs.push(lang);
    }
    let dev = Device::Cpu;
    let s = config.size as usize;
    let (mut images, mut videos, mut audio) = (None, None, None);
    match config.modality {
        Modality::Image => images = Some(Tensor::from_vec(media, (b, 3, s, s), &dev)?),
        Modality::Video { frames } => videos = Some(Tensor::from_vec(media, (b, frames as usize, 3, s, s), &dev)?),
        Modality::Audio { .. } => {
            let n = media.len() / b;
            audio = Some(Tensor::from_vec(media, (b, n), &dev)?)
        }
    }
    Ok(Batch {
        index,
        tokens: Tensor::from_vec(token_ids, (b, config.max_tokens), &dev)?,
        token_mask: Tensor::from_vec(mask, (b, config.max_tokens), &dev)?,
        images,
        videos,
        audio,
        specs,
        captions,
        langs,
    })
}

/// Items `0, 1, 2, ...` of `produce`, computed ahead by worker threads and handed out
/// in index order: worker `w` computes items `w, w + W, ...`, so the sequence is the
/// same whatever the number of workers or their timing.
pub struct OrderedWorkers<T: Send + 'static> {
    receiver: Option<Receiver<(u64, T)>>,
    pending: BTreeMap<u64, T>,
    next: u64,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> OrderedWorkers<T> {
    /// Starts `workers` threads, each allowed `prefetch` items ahead.
    pub fn new(
        workers: usize,
        prefetch: usize,
        produce: impl Fn(u64) -> T + Send + Sync + 'static,
    ) -> OrderedWorkers<T> {
        let workers = workers.max(1);
        let (sender, receiver) = sync_channel(workers * prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let produce = Arc::new(produce);
        let handles = (0..workers)
            .map(|w| {
                let (sender, stop, produce) = (sender.clone(), stop.clone(), produce.clone());
                std::thread::spawn(move || {
                    let mut index = w as u64;
                    while !stop.load(Ordering::Relaxed) {
                        if sender.send((index, produce(index))).is_err() {
                            break;
                        }
                        index += workers as u64;
                    }
                })
            })
            .collect();
        OrderedWorkers {
            receiver: Some(receiver),
            pending: BTreeMap::new(),
            next: 0,
            stop,
            workers: handles,
        }
    }
}

impl<T: Send + 'static> Iterator for OrderedWorkers<T> {
    type Item = T;

    /// The next item in index order; `None` only if every worker died.
    fn next(&mut self) -> Option<T> {
        let receiver = self.receiver.as_ref()?;
        loop {
            if let Some(item) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some(item);
            }
            let (index, item) = receiver.recv().ok()?;
            self.pending.insert(index, item);
        }
    }
}

impl<T: Send + 'static> Drop for OrderedWorkers<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver wakes workers blocked on a full channel.
        self.receiver.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// An endless, reproducible stream of batches rendered by worker threads.
pub struct WorldStream {
    inner: OrderedWorkers<Result<Batch>>,
}

impl WorldStream {
    /// Starts the workers.
    pub fn new(config: StreamConfig) -> Result<WorldStream> {
        config.check()?;
        let (workers, prefetch) = (config.workers, config.prefetch);
        Ok(WorldStream {
            inner: OrderedWorkers::new(workers, prefetch, move |i| render_batch(&config, i)),
        })
    }
}

impl Iterator for WorldStream {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        Some(
            self.inner
                .next()
                .unwrap_or_else(|| Err(WorldError::Worker("all stream workers stopped".into()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(modality: Modality, workers: usize) -> StreamConfig {
        StreamConfig {
            size: 16,
            workers,
            modality,
            ..StreamConfig::images(3, 11)
        }
    }

    #[test]
    fn batches_have_the_promised_shapes() {
        let mut stream = WorldStream::new(tiny(Modality::Image, 2)).unwrap();
        let batch = stream.next().unwrap().unwrap();
        assert_eq!(batch.tokens.dims(), &[3, 160]);
        assert_eq!(batch.token_mask.dims(), &[3, 160]);
        assert_eq!(batch.images.as_ref().unwrap().dims(), &[3, 3, 16, 16]);
        let max = batch
            .images
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max <= 1.0 && max > 0.5);
        let mask: Vec<Vec<u8>> = batch.token_mask.to_vec2().unwrap();
        let ids: Vec<Vec<u32>> = batch.tokens.to_vec2().unwrap();
        for (row, ids) in mask.iter().zip(&ids) {
            let n = row.iter().filter(|m| **m == 1).count();
            assert_eq!(ids[0], BOS_ID);
            assert_eq!(ids[n - 1], EOS_ID);
            assert!(ids[n..].iter().all(|i| *i == PAD_ID));
        }

        let video = render_batch(&tiny(Modality::Video { frames: 4 }, 1), 0).unwrap();
        assert_eq!(video.videos.unwrap().dims(), &[3, 4, 3, 16, 16]);
        let audio = render_batch(&tiny(Modality::Audio { seconds: 0.5 }, 1), 0).unwrap();
        assert_eq!(audio.audio.unwrap().dims(), &[3, 8000]);
    }

    #[test]
    fn streams_reproduce_whatever_the_worker_count() {
        let take = |workers| {
            WorldStream::new(tiny(Modality::Image, workers))
                .unwrap()
                .take(4)
                .map(|b| {
                    let b = b.unwrap();
                    (
                        b.index,
                        b.captions,
                        b.images.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let one = take(1);
        assert_eq!(one, take(3));
        assert_eq!(one.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_ne!(one[0].1, one[1].1);
    }

    #[test]
    fn heldout_streams_hold_only_heldout_specs() {
        let config = StreamConfig {
            split: Split::Heldout,
            augment: None,
            ..tiny(Modality::Image, 1)
        };
        let batch = render_batch(&config, 0).unwrap();
        assert!(batch.specs.iter().all(crate::sampler::is_heldout));
    }

    #[test]
    fn bad_configs_fail_clearly() {
        let err = WorldStream::new(StreamConfig {
            batch_size: 0,
            ..tiny(Modality::Image, 1)
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("batch_size is 0"));
        let err = render_batch(&tiny(Modality::Video { frames: 0 }, 1), 0).unwrap_err();
        assert!(err.to_string().contains("frames"));
    }
}
