//! Training the music planner on the world's (caption, spec) pairs of the training
//! split, in English and Chinese: held-out instrument x mood pairs are never seen.
//! Image captions never name the sound, so their target is "no music, no
//! ambience"; clip and audio captions name both whenever the scene has them.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use mmgen_models::grounded::music::{MusicPlanner, MusicPlannerConfig, MusicVocab};
use mmgen_models::tokenizer::{pad_batch, TextTokenizer};
use mmgen_nn::seeded_var_builder;
use mmgen_world::caption::lexicon::{instrument_en, instrument_zh, mood_en, mood_zh, tempo_en, tempo_zh};
use mmgen_world::caption::{caption, CaptionOptions, Lang, Medium};
use mmgen_world::rng::{mix64, rng_for, Purpose};
use mmgen_world::{
    Ambience, Instrument, Mood, SceneSpec, SpecSampler, Split, TempoClass, MAX_TEMPO_BPM, MIN_TEMPO_BPM,
};
use rand::Rng;
use serde_json::json;

use crate::error::Result;
use crate::fit::{fit, resume, save_model_runs, FitOptions, RunInfo, StepReport};
use crate::renderer::previous_runs;

/// The world's instruments, moods and ambiences (the music planner's vocabulary).
pub fn world_music_vocab() -> MusicVocab {
    MusicVocab {
        instruments: Instrument::ALL.iter().map(|i| i.name().to_string()).collect(),
        moods: Mood::ALL.iter().map(|m| m.name().to_string()).collect(),
        ambiences: Ambience::ALL.iter().map(|a| a.name().to_string()).collect(),
        media: MEDIA.iter().map(|m| medium_name(*m).to_string()).collect(),
    }
}

/// The media a request may ask for, in the music planner's id order.
const MEDIA: [Medium; 3] = [Medium::Image, Medium::Video, Medium::Audio];

fn medium_name(medium: Medium) -> &'static str {
    match medium {
        Medium::Image => "image",
        Medium::Video => "video",
        Medium::Audio => "audio",
    }
}

/// The world's tempo range, bpm.
pub fn world_tempo_range() -> (f32, f32) {
    (MIN_TEMPO_BPM as f32, MAX_TEMPO_BPM as f32)
}

/// One batch: token ids, mask and targets (music, instrument, mood, tempo bin,
/// ambience, medium), with the specs for accuracy.
pub struct MusicPlannerBatch {
    ids: Tensor,
    mask: Tensor,
    targets: [Tensor; 6],
    /// 1 where the caption names music (instrument, mood and tempo are judged there).
    has_music: Tensor,
    /// 1 where the instrument and the mood are judged: music named, and that
    /// attribute's words not dropped by [`drop_phrase`].
    instrument_known: Tensor,
    mood_known: Tensor,
    /// (b, L) each: 1 on the tokens of the caption's instrument phrase, its mood
    /// phrase and its tempo phrase; `said` (b, 3) is 1 where the caption holds that
    /// phrase.
    phrase_tokens: [Tensor; 3],
    said: Tensor,
    /// (b, L): 1 on the token after a stated tempo's last digit (see
    /// [`token_after_number`]); `number_said` (b) is 1 where it is found.
    number_end: Tensor,
    number_said: Tensor,
    specs: Vec<(SceneSpec, bool)>,
    texts: Vec<String>,
}

/// Which captions a batch holds.
#[derive(Clone, Copy)]
enum Captions {
    /// Training split, every medium, both languages, details sometimes unsaid.
    Training,
    /// Full audio captions of one split in one language (measurement).
    Audio(Split, Lang),
    /// Full captions of one medium (measurement of the medium head).
    Full(Split, Lang, Medium),
}

fn music_batch(
    planner: &MusicPlanner,
    captions: Captions,
    batch: usize,
    seed: u64,
    index: u64,
    device: &Device,
) -> Result<MusicPlannerBatch> {
    let config = planner.config();
    let sampler = SpecSampler {
        p_music: 0.85,
        ..SpecSampler::default()
    };
    let (mut texts, mut specs) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
    let mut targets: [Vec<u32>; 6] = Default::default();
    let mut has_music = Vec::with_capacity(batch);
    let (mut instrument_known, mut mood_known) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
    let mut spans = Vec::with_capacity(batch);
    let mut stated_tempi = Vec::with_capacity(batch);
    let none_ambience = config.vocab.ambiences.len() as u32;
    for j in 0..batch {
        let sample_seed = mix64(seed ^ mix64(index.wrapping_mul(batch as u64).wrapping_add(j as u64)));
        let mut rng = rng_for(sample_seed, Purpose::Caption);
        let (split, medium, lang, options) = match captions {
            Captions::Training => {
                let medium = [
                    Medium::Audio,
                    Medium::Audio,
                    Medium::Video,
                    Medium::Video,
                    Medium::Image,
                ][rng.random_range(0..5)];
                let lang = if rng.random_bool(0.5) { Lang::En } else { Lang::Zh };
                let options = if rng.random_bool(0.5) {
                    CaptionOptions::full(medium)
                } else {
                    CaptionOptions::training(medium)
                };
                (Split::Train, medium, lang, options)
            }
            Captions::Audio(split, lang) => (split, Medium::Audio, lang, CaptionOptions::full(Medium::Audio)),
            Captions::Full(split, lang, medium) => (split, medium, lang, CaptionOptions::full(medium)),
        };
        let spec = match captions {
            Captions::Training => sampler.sample(split, sample_seed),
            Captions::Full(..) => sampler.sample(split, sample_seed),
            // Measurement prompts always hold music, as the evaluation's audio prompts do.
            Captions::Audio(..) => SpecSampler {
                p_music: 1.0,
                ..SpecSampler::default()
            }
            .sample(split, sample_seed),
        };
        let mut text = caption(&spec, lang, options, &mut rng);
        let heard = medium != Medium::Image;
        let music = spec.music.filter(|_| heard);
        // Attribute dropout: now and then a training caption loses its instrument's or
        // its mood's words, and that head is not judged on it. Each head must then read
        // its own words: held-out instrument x mood pairs were read from the mood.
        let mut known = [music.is_some(); 2];
        let phrases = music.map(|m| match lang {
            Lang::En => [instrument_en(m.instrument), mood_en(m.mood)],
            Lang::Zh => [instrument_zh(m.instrument), mood_zh(m.mood)],
        });
        let tempo_phrases = music.map(|m| tempo_phrases(m.tempo_bpm, lang));
        if let (Captions::Training, Some(both)) = (captions, phrases) {
            for (k, p) in [DROP_INSTRUMENT, DROP_MOOD].into_iter().enumerate() {
                if rng.random_bool(p) {
                    if let Some(shorter) = drop_phrase(&text, both[k]) {
                        text = shorter;
                        known[k] = false;
                    }
                }
            }
        }
        let tempo_span =
            tempo_phrases.and_then(|p| phrase_span(&text, &p.iter().map(String::as_str).collect::<Vec<_>>()));
        spans.push(phrases.map_or([None, None, None], |both| {
            [phrase_span(&text, both[0]), phrase_span(&text, both[1]), tempo_span]
        }));
        stated_tempi.push(
            music
                .zip(tempo_span)
                .and_then(|(m, span)| stated_number(&text, span, m.tempo_bpm)),
        );
        texts.push(text);
        instrument_known.push(known[0] as u8 as f32);
        mood_known.push(known[1] as u8 as f32);
        targets[0].push(music.is_some() as u32);
        targets[1].push(music.map_or(0, |m| m.instrument.index() as u32));
        targets[2].push(music.map_or(0, |m| m.mood.index() as u32));
        targets[3].push(music.map_or(0, |m| config.tempo_bin(m.tempo_bpm as f32) as u32));
        targets[4].push(
            spec.ambience
                .filter(|_| heard)
                .map_or(none_ambience, |a| a.index() as u32),
        );
        targets[5].push(MEDIA.iter().position(|m| *m == medium).unwrap_or(0) as u32);
        has_music.push(music.is_some() as u8 as f32);
        specs.push((spec, heard));
    }
    let encoded = texts
        .iter()
        .map(|t| planner.tokenizer().encode_with_offsets(t, config.text.max_len))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let ids: Vec<Vec<u32>> = encoded.iter().map(|e| e.ids.clone()).collect();
    let (ids, mask) = pad_batch(&ids, device)?;
    let len = ids.dim(1)?;
    let mut phrase_tokens = [
        vec![0f32; batch * len],
        vec![0f32; batch * len],
        vec![0f32; batch * len],
    ];
    let mut said = vec![0f32; batch * 3];
    for (i, (encoding, row)) in encoded.iter().zip(&spans).enumerate() {
        for (k, span) in row.iter().enumerate() {
            let Some((start, end)) = *span else { continue };
            for (t, &(a, b)) in encoding.offsets.iter().enumerate() {
                if a < end && b > start {
                    phrase_tokens[k][i * len + t] = 1.0;
                    said[i * 3 + k] = 1.0;
                }
            }
        }
    }
    let mut number_end = vec![0f32; batch * len];
    let mut number_said = vec![0f32; batch];
    for (i, (encoding, stated)) in encoded.iter().zip(&stated_tempi).enumerate() {
        if let Some(t) = stated
            .clone()
            .and_then(|number| token_after_number(&encoding.offsets, number))
        {
            number_end[i * len + t] = 1.0;
            number_said[i] = 1.0;
        }
    }
    let t = |v: &Vec<u32>| Tensor::from_vec(v.clone(), batch, device);
    let [instrument_tokens, mood_tokens, tempo_tokens] =
        phrase_tokens.map(|tokens| Tensor::from_vec(tokens, (batch, len), device));
    Ok(MusicPlannerBatch {
        ids,
        mask,
        targets: [
            t(&targets[0])?,
            t(&targets[1])?,
            t(&targets[2])?,
            t(&targets[3])?,
            t(&targets[4])?,
            t(&targets[5])?,
        ],
        has_music: Tensor::from_vec(has_music, batch, device)?,
        instrument_known: Tensor::from_vec(instrument_known, batch, device)?,
        mood_known: Tensor::from_vec(mood_known, batch, device)?,
        phrase_tokens: [instrument_tokens?, mood_tokens?, tempo_tokens?],
        said: Tensor::from_vec(said, (batch, 3), device)?,
        number_end: Tensor::from_vec(number_end, (batch, len), device)?,
        number_said: Tensor::from_vec(number_said, batch, device)?,
        specs,
        texts,
    })
}

/// Chance that a training caption loses its instrument's words, and its mood's.
const DROP_INSTRUMENT: f64 = 0.2;
const DROP_MOOD: f64 = 0.3;

/// `text` without the first of `phrases` it holds (the longest first), its spaces
/// mended; None when it holds none.
fn drop_phrase(text: &str, phrases: &[&str]) -> Option<String> {
    let mut by_length: Vec<&&str> = phrases.iter().collect();
    by_length.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let phrase = by_length.into_iter().find(|p| text.contains(**p))?;
    let cut = text.replacen(*phrase, "", 1);
    Some(cut.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "))
}

/// The ways a caption states `bpm` (every template of both languages: a caption holds
/// at most one), and its class words.
fn tempo_phrases(bpm: u32, lang: Lang) -> Vec<String> {
    let words = match lang {
        Lang::En => tempo_en(TempoClass::of(bpm)),
        Lang::Zh => tempo_zh(TempoClass::of(bpm)),
    };
    [
        format!("at {bpm} bpm"),
        format!("({bpm} BPM)"),
        format!("每分钟{bpm}拍"),
        format!("速度{bpm} BPM"),
    ]
    .into_iter()
    .chain(words.iter().map(|w| w.to_string()))
    .collect()
}

/// The byte range of the number `bpm` inside `text`'s tempo phrase `span`, if the
/// phrase states it (class words do not).
fn stated_number(text: &str, span: (usize, usize), bpm: u32) -> Option<std::ops::Range<usize>> {
    let digits = bpm.to_string();
    let at = span.0 + text.get(span.0..span.1)?.find(&digits)?;
    Some(at..at + digits.len())
}

/// The token after the last digit of the number at bytes `number` ("bpm", "拍",
/// ")"), given each token's byte offsets; None where the number's end or that token is
/// cut off.
fn token_after_number(offsets: &[(usize, usize)], number: std::ops::Range<usize>) -> Option<usize> {
    let last = offsets.iter().position(|&(a, b)| a < number.end && number.end <= b)?;
    (last + 1 < offsets.len()).then_some(last + 1)
}

/// The byte range of the longest of `phrases` that `text` holds.
fn phrase_span(text: &str, phrases: &[&str]) -> Option<(usize, usize)> {
    phrases
        .iter()
        .filter_map(|p| text.find(p).map(|at| (at, at + p.len())))
        .max_by_key(|(a, b)| b - a)
}

/// Heads whose attention is taught where their words stand: instrument, mood, tempo.
const TAUGHT_HEADS: [usize; 3] = [1, 2, 3];

/// Cross-entropy of each head; instrument, mood and tempo only where music is named
/// (and the instrument and mood where their words were kept). With attention pooling,
/// the instrument, mood and tempo heads are also taught to attend to their own phrase
/// (minus the log of the attention mass on it): a head that also reads the other
/// attribute's words learns that instrument x mood pairs absent from training never
/// occur, and misreads them when they do; a tempo head that reads the mood's words
/// guesses the tempo rather than reading its digits. With the digit reader, its
/// anchor is taught the token after a stated number the same way.
fn losses(planner: &MusicPlanner, b: &MusicPlannerBatch) -> Result<(Tensor, Vec<(&'static str, Tensor)>)> {
    let (out, attention) = planner.forward_attending(&b.ids, &b.mask)?;
    let per_row = |logits: &Tensor, target: &Tensor| -> Result<Tensor> {
        let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        Ok(log_p.gather(&target.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?)
    };
    let masked = |logits: &Tensor, target: &Tensor, judged: &Tensor| -> Result<Tensor> {
        Ok((per_row(logits, target)? * judged)?
            .sum_all()?
            .broadcast_div(&judged.sum_all()?.affine(1.0, 1.0)?)?)
    };
    let total =
        (per_row(&out.music, &b.targets[0])?.mean_all()? + per_row(&out.ambience, &b.targets[4])?.mean_all()?)?;
    let total = (total + masked(&out.instrument, &b.targets[1], &b.instrument_known)?)?;
    let total = (total + masked(&out.mood, &b.targets[2], &b.mood_known)?)?;
    let total = (total + masked(&out.tempo, &b.targets[3], &b.has_music)?)?;
    let mut parts = Vec::new();
    // Minus the log of the attention mass on the taught tokens, averaged where they are said.
    let missed = |weights: &Tensor, tokens: &Tensor, said: &Tensor| -> Result<Tensor> {
        let on_tokens = (weights * tokens)?.sum(D::Minus1)?;
        let miss = on_tokens.affine(1.0, 1e-4)?.log()?.neg()?;
        Ok((miss * said)?
            .sum_all()?
            .broadcast_div(&said.sum_all()?.affine(1.0, 1.0)?)?)
    };
    let total = match &attention {
        Some(attention) => {
            let mut total = total;
            for (k, (head, tokens)) in TAUGHT_HEADS.iter().zip(&b.phrase_tokens).enumerate() {
                let weights = attention.heads.narrow(1, *head, 1)?.squeeze(1)?;
                let mean = missed(&weights, tokens, &b.said.narrow(1, k, 1)?.squeeze(1)?)?;
                total = (&total + &mean)?;
                parts.push((["attention_instrument", "attention_mood", "attention_tempo"][k], mean));
            }
            if let Some(end) = &attention.number_end {
                let mean = missed(end, &b.number_end, &b.number_said)?;
                total = (&total + &mean)?;
                parts.push(("attention_number_end", mean));
            }
            total
        }
        None => total,
    };
    let total = match &out.medium {
        Some(medium) => (total + per_row(medium, &b.targets[5])?.mean_all()?)?,
        None => total,
    };
    Ok((total, parts))
}

/// On `n` full captions of each medium of `split` in `lang`: how often the medium head
/// reads what is asked for (None without the head).
fn measure_media(
    planner: &MusicPlanner,
    split: Split,
    lang: Lang,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<Option<serde_json::Value>> {
    let mut shares = serde_json::Map::new();
    for (k, medium) in MEDIA.iter().enumerate() {
        let b = music_batch(
            planner,
            Captions::Full(split, lang, *medium),
            n,
            seed ^ 0x4D44,
            1 << 41 | k as u64,
            device,
        )?;
        let texts: Vec<&str> = b.texts.iter().map(String::as_str).collect();
        let asked = planner.asked(&texts)?;
        if asked.iter().any(|a| a.medium.is_none()) {
            return Ok(None);
        }
        let right = asked
            .iter()
            .filter(|a| a.medium.as_deref() == Some(medium_name(*medium)))
            .count();
        shares.insert(medium_name(*medium).into(), json!(right as f64 / n.max(1) as f64));
    }
    Ok(Some(serde_json::Value::Object(shares)))
}

/// On `n` full audio captions of `split` in `lang`: how often the plan's instrument
/// and mood are right, its tempo within 10% of the spec's, and its tempo as the
/// evaluation judges the audio: within 10% of a number the caption states, else in
/// the class its words name (seed 0 sampling); and, among captions that state a
/// number, how often it is planned within 10%.
fn measure(
    planner: &MusicPlanner,
    split: Split,
    lang: Lang,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<serde_json::Value> {
    let (mut instrument, mut mood, mut tempo, mut tempo_as_asked, mut music) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut stated, mut stated_read) = (0usize, 0usize);
    let mut done = 0;
    let mut index = 1u64 << 40;
    while done < n {
        let take = (n - done).min(64);
        let b = music_batch(
            planner,
            Captions::Audio(split, lang),
            take,
            seed ^ 0x4D50,
            index,
            device,
        )?;
        let requests: Vec<(&str, u64)> = b.texts.iter().map(|t| (t.as_str(), 0)).collect();
        let plans = planner.plan(&requests)?;
        for ((plan, (spec, _)), text) in plans.iter().zip(&b.specs).zip(&b.texts) {
            let (Some(want), Some(got)) = (spec.music, plan.music.as_ref()) else {
                continue;
            };
            music += 1;
            instrument += (got.instrument == want.instrument.name()) as usize;
            mood += (got.mood == want.mood.name()) as usize;
            let near = (got.tempo_bpm - want.tempo_bpm as f32).abs() <= 0.1 * want.tempo_bpm as f32;
            tempo += near as usize;
            let states_number = text.contains(&want.tempo_bpm.to_string());
            stated += states_number as usize;
            stated_read += (states_number && near) as usize;
            tempo_as_asked += match states_number {
                true => near,
                false => TempoClass::of(got.tempo_bpm.round() as u32) == TempoClass::of(want.tempo_bpm),
            } as usize;
        }
        done += take;
        index += 1;
    }
    let share = |k: usize| k as f64 / n.max(1) as f64;
    Ok(json!({
        "prompts": n,
        "music_found": share(music),
        "instrument": share(instrument),
        "mood": share(mood),
        "tempo_within_10_percent": share(tempo),
        "tempo_as_asked": share(tempo_as_asked),
        "stated_tempo_within_10_percent": stated_read as f64 / stated.max(1) as f64,
    }))
}

/// Trains a music planner (or continues `run.resume`) with `tokenizer` and writes
/// its folder (the tokenizer copied in). `upgrade` adds what new planners have to a
/// resumed planner that lacks it: attention pooling (its queries start near zero, so
/// it reads the mean it read before), lexical heads (no new weights: the heads learn
/// to read embeddings), the medium head and the digit reader (its tempo logits start
/// at zero).
pub fn train_music_planner(
    config: &MusicPlannerConfig,
    tokenizer_path: &Path,
    upgrade: bool,
    fit_options: &FitOptions,
    run: &RunInfo,
    device: &Device,
    progress: impl FnMut(&StepReport),
) -> Result<serde_json::Value> {
    let (mut config, history, tokenizer_path) = match run.resume {
        Some(dir) => (
            mmgen_models::weights::read_folder_config(dir, "music planner")?,
            previous_runs(dir),
            dir.join("tokenizer.json"),
        ),
        None => (config.clone(), Vec::new(), tokenizer_path.to_path_buf()),
    };
    let resumed = run.resume.is_some() && upgrade;
    let adds_pool = resumed && !config.attention_pool;
    let adds_medium = resumed && config.vocab.media.is_empty();
    let adds_digits = resumed && !config.digit_reader;
    if upgrade {
        config.attention_pool = true;
        config.lexical_heads = true;
        config.digit_reader = true;
        if config.vocab.media.is_empty() {
            config.vocab.media = world_music_vocab().media;
        }
    }
    let tokenizer = TextTokenizer::load(&tokenizer_path)?;
    let mut varmap = VarMap::new();
    let planner = MusicPlanner::new(
        &config,
        tokenizer.clone(),
        seeded_var_builder(&varmap, fit_options.seed, DType::F32, device),
        device,
    )?;
    if let Some(dir) = run.resume {
        resume(&mut varmap, dir, device, |name| {
            (adds_pool && name.starts_with("pool."))
                || (adds_medium && name.starts_with("head.medium."))
                || (adds_digits && name.starts_with("digits."))
        })?;
    }
    let (batch, seed) = (fit_options.batch, fit_options.seed);
    let batches = (0u64..).map(|i| music_batch(&planner, Captions::Training, batch, seed, i, device));
    let outcome = fit(&varmap, fit_options, batches, |b| losses(&planner, b), progress)?;
    let n = run.eval_samples.clamp(1, 1000);
    let mut measured = serde_json::Map::new();
    for (name, split, lang) in [
        ("heldout_en", Split::Heldout, Lang::En),
        ("heldout_zh", Split::Heldout, Lang::Zh),
        ("train_en", Split::Train, Lang::En),
    ] {
        measured.insert(
            name.to_string(),
            measure(&planner, split, lang, n, fit_options.seed, device)?,
        );
    }
    if let Some(media) = measure_media(&planner, Split::Heldout, Lang::En, n.min(200), fit_options.seed, device)? {
        measured.insert("media_heldout_en".into(), media);
    }
    let mut record = json!({
        "command": run.command,
        "device": format!("{device:?}"),
        "options": fit_options,
        "resumed_from": run.resume.map(|p| p.display().to_string()),
        "accuracy": {
            "about": "full audio captions of the split: the plan's instrument and mood equal to the spec's, its tempo within 10% of the spec's (seed 0)",
            "final": serde_json::Value::Object(measured),
        },
    });
    outcome.record_into(&mut record, fit_options.batch);
    save_model_runs(run.out, &config, &varmap, "grounded-music-planner", history, &record)?;
    tokenizer.save(&run.out.join("tokenizer.json"))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::train_tokenizer;

    #[test]
    fn a_tempo_phrase_is_found_in_either_language() {
        fn span(text: &str, bpm: u32, lang: Lang) -> Option<&str> {
            let phrases = tempo_phrases(bpm, lang);
            phrase_span(text, &phrases.iter().map(String::as_str).collect::<Vec<_>>()).map(|(a, b)| &text[a..b])
        }
        assert_eq!(span("calm piano music at 80 bpm", 80, Lang::En), Some("at 80 bpm"));
        assert_eq!(
            span("a piano piece (145 BPM) with wind", 145, Lang::En),
            Some("(145 BPM)")
        );
        assert_eq!(span("sad flute music, up-tempo", 150, Lang::En), Some("up-tempo"));
        assert_eq!(span("生成悲伤的钢琴曲,每分钟61拍", 61, Lang::Zh), Some("每分钟61拍"));
        assert_eq!(
            span("calm piano music at 80 bpm", 81, Lang::En),
            None,
            "another tempo's digits"
        );
    }

    #[test]
    fn the_token_after_a_stated_number_is_found() {
        // Offsets as the byte-level tokenizer gives them: "Ġ1" covers only its digit,
        // a lone "Ġ" covers nothing.
        let text = "music at 140 bpm";
        let offsets = [(0, 5), (6, 8), (9, 10), (10, 11), (11, 12), (13, 16)];
        let number = stated_number(text, (6, 16), 140).unwrap();
        assert_eq!(&text[number.clone()], "140");
        assert_eq!(token_after_number(&offsets, number), Some(5));
        let text = "钢琴曲,每分钟92拍";
        let number = stated_number(text, (10, text.len()), 92).unwrap();
        let offsets = [(0, 9), (9, 10), (10, 19), (19, 20), (20, 21), (21, 24)];
        assert_eq!(token_after_number(&offsets, number.clone()), Some(5));
        assert_eq!(token_after_number(&offsets[..5], number), None, "cut off");
        assert_eq!(stated_number("sad flute music, up-tempo", (17, 25), 150), None);
    }

    #[test]
    fn a_dropped_phrase_leaves_the_rest_of_the_caption() {
        let text = "calm plucked strings music over the rain";
        let cut = drop_phrase(text, &["strings", "plucked strings"]).unwrap();
        assert_eq!(cut, "calm music over the rain", "the longest phrase first");
        assert_eq!(drop_phrase("生成悲伤的钢琴曲", &["悲伤"]).unwrap(), "生成的钢琴曲");
        assert_eq!(drop_phrase("a flute tune", &["drums"]), None);
    }

    #[test]
    fn every_music_planner_weight_gets_a_gradient() {
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        let mut config = MusicPlannerConfig::tiny(world_music_vocab(), tokenizer.vocab_size(), world_tempo_range());
        // Long enough to reach the music at the end of most captions.
        config.text.max_len = 96;
        let varmap = VarMap::new();
        let planner = MusicPlanner::new(
            &config,
            tokenizer,
            seeded_var_builder(&varmap, 3, DType::F32, &Device::Cpu),
            &Device::Cpu,
        )
        .unwrap();
        let b = music_batch(&planner, Captions::Training, 16, 1, 0, &Device::Cpu).unwrap();
        let tempo_said = b
            .said
            .narrow(1, 2, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // The tiny tokenizer cuts long Chinese captions before their music: some rows only.
        assert!(tempo_said >= 1.0, "the tempo's phrase is found in the batch");
        let (loss, parts) = losses(&planner, &b).unwrap();
        assert_eq!(
            parts.iter().map(|p| p.0).collect::<Vec<_>>(),
            [
                "attention_instrument",
                "attention_mood",
                "attention_tempo",
                "attention_number_end"
            ],
            "the instrument's, the mood's and the tempo's attention are taught, and the number's end"
        );
        let numbers_said = b.number_said.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(numbers_said >= 2.0, "some stated tempo's end is found");
        let grads = loss.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        for name in [
            "pool.queries",
            "pool.keys.weight",
            "digits.pool.queries",
            "digits.pool.keys.weight",
            "digits.tempo.weight",
        ] {
            let grad = grads.get(data[name].as_tensor()).expect(name);
            let norm = grad.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0, "{name} learns nothing");
        }
    }

    #[test]
    fn a_tiny_music_planner_learns_and_round_trips() {
        let root = std::env::temp_dir().join(format!("mmgen-music-planner-{}", std::process::id()));
        let tokenizer = train_tokenizer(50, 320, 1).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let tokenizer_path = root.join("tokenizer.json");
        tokenizer.save(&tokenizer_path).unwrap();
        // Mean-pooled and without the medium head at first; the resumed run below
        // adds both.
        let mut config = MusicPlannerConfig {
            attention_pool: false,
            lexical_heads: false,
            digit_reader: false,
            ..MusicPlannerConfig::tiny(world_music_vocab(), tokenizer.vocab_size(), world_tempo_range())
        };
        config.vocab.media.clear();
        let options = FitOptions {
            log_every: 5,
            ..FitOptions::new(600, 16, 1e-2, 1)
        };
        let out = root.join("planner");
        let run = RunInfo {
            out: &out,
            command: "test".into(),
            eval_samples: 16,
            checkpoint_every: 0,
            resume: None,
        };
        let record =
            train_music_planner(&config, &tokenizer_path, false, &options, &run, &Device::Cpu, |_| {}).unwrap();
        let (first, last) = (
            record["first_loss"].as_f64().unwrap(),
            record["final_loss"].as_f64().unwrap(),
        );
        assert!(last < 0.85 * first, "loss {first} -> {last}");
        let planner = MusicPlanner::load(&out, &Device::Cpu).unwrap();
        let prompt = "calm piano music at 80 bpm";
        let plans = planner.plan(&[(prompt, 1), (prompt, 1)]).unwrap();
        assert_eq!(plans[0], plans[1], "same prompt and seed, same plan");
        assert!(planner.plan(&[("  ", 0)]).is_err());
        let pooled = root.join("pooled");
        let again = RunInfo {
            out: &pooled,
            resume: Some(&out),
            ..run
        };
        train_music_planner(
            &config,
            &tokenizer_path,
            true,
            &FitOptions::new(3, 8, 1e-3, 2),
            &again,
            &Device::Cpu,
            |_| {},
        )
        .unwrap();
        let resumed: MusicPlannerConfig = mmgen_models::weights::read_folder_config(&pooled, "music planner").unwrap();
        assert!(resumed.attention_pool, "resuming added attention pooling");
        assert!(resumed.lexical_heads, "and lexical heads");
        assert!(resumed.digit_reader, "and the digit reader");
        assert_eq!(resumed.vocab.media, ["image", "video", "audio"], "and the medium head");
        MusicPlanner::load(&pooled, &Device::Cpu).unwrap();
        let _ = std::fs::remove_dir_all(&root);
    }
}
