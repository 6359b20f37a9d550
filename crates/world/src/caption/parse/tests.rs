//! Tests of `parse`.

use super::*;
use crate::caption::{caption, CaptionOptions};
use crate::rng::{rng_for, Purpose};
use crate::sampler::{SpecSampler, Split};

/// What a caption may leave unsaid: exact tempo (a class word may stand for it),
/// and the background of an audio caption.
fn comparable(mut r: Request, said_tempo: bool) -> Request {
    if let Some(m) = r.music.as_mut() {
        if !said_tempo {
            m.tempo_bpm = None;
        }
    }
    if r.medium == Medium::Audio {
        r.background = None;
    }
    r
}

#[test]
fn full_captions_parse_back_to_their_spec() {
    let sampler = SpecSampler::default();
    let mut rng = rng_for(5, Purpose::Caption);
    let mut failures = Vec::new();
    let mut total = 0;
    for seed in 0..600u64 {
        let spec = sampler.sample(if seed % 3 == 0 { Split::Heldout } else { Split::Train }, seed);
        for lang in [Lang::En, Lang::Zh] {
            for medium in [Medium::Image, Medium::Video, Medium::Audio] {
                if medium == Medium::Audio && !spec.has_audio() {
                    continue;
                }
                let text = caption(&spec, lang, CaptionOptions::full(medium), &mut rng);
                let parsed = parse_prompt(&text).unwrap();
                let said_tempo = parsed.music.and_then(|m| m.tempo_bpm).is_some();
                let want = comparable(request_of(&spec, lang, medium), said_tempo);
                // The oracle's spec states the same things again.
                let oracle = spec_from_request(&parsed, seed).unwrap();
                assert_eq!(
                    comparable(request_of(&oracle, lang, medium), said_tempo),
                    want,
                    "{text}"
                );
                let got = comparable(parsed, said_tempo);
                total += 1;
                if got != want {
                    failures.push(format!("{text}\n  got  {got:?}\n  want {want:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} captions misread; first: {}",
        failures.len(),
        failures.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn free_prompts_read_sensibly() {
    let r = parse_prompt("生成一段描述海边日落的短视频,配乐为钢琴曲").unwrap();
    assert_eq!(r.medium, Medium::Video);
    assert_eq!(r.background, Some(Background::SunsetSea));
    assert_eq!(r.music.unwrap().instrument, Some(Instrument::Piano));
    assert!(r.objects.is_empty());

    let r = parse_prompt("Please draw two small red stars on a grassy field, thanks!").unwrap();
    assert_eq!(r.medium, Medium::Image);
    assert_eq!(r.objects.len(), 1);
    assert_eq!(
        (r.objects[0].count, r.objects[0].colour, r.objects[0].size),
        (2, Some(Colour::Red), Some(Size::Small))
    );

    let r = parse_prompt("a blue circle to the left of a yellow square").unwrap();
    assert_eq!(r.objects.len(), 2, "{r:?}");

    let spec = spec_from_request(
        &parse_prompt("a blue circle to the left of a yellow square").unwrap(),
        3,
    )
    .unwrap();
    assert_eq!(
        spec.objects[1].placement,
        Placement::Relative {
            relation: Relation::RightOf,
            of: 0
        }
    );

    let err = parse_prompt("hello world").unwrap_err().to_string();
    assert!(err.contains("names no shape"), "{err}");
}
