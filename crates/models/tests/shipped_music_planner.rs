//! The shipped music planner, read as a user would use it: every tempo it may be
//! asked for by number is planned within the evaluation's 10%.

use std::path::Path;

use candle_core::{Device, D};
use mmgen_models::grounded::music::MusicPlanner;
use mmgen_models::grounded::MIN_P;

#[test]
fn the_shipped_planner_reads_every_stated_tempo() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/grounded-music-planner");
    let planner = MusicPlanner::load(&dir, &Device::Cpu).expect("the shipped music planner loads");
    let config = planner.config().clone();
    let phrasings = [
        "calm piano music at {} bpm",
        "a sad flute piece ({} BPM) with the sound of rain",
        "生成欢快的钢琴曲,每分钟{}拍",
        "紧张的鼓乐,速度{} BPM",
    ];
    let asked: Vec<(u32, String)> = (60..=160u32)
        .flat_map(|bpm| phrasings.iter().map(move |p| (bpm, p.replace("{}", &bpm.to_string()))))
        .collect();
    let prompts: Vec<&str> = asked.iter().map(|(_, p)| p.as_str()).collect();
    let (ids, mask) = planner
        .tokenizer()
        .encode_batch(&prompts, config.text.max_len, &Device::Cpu)
        .unwrap();
    let tempo = planner.forward(&ids, &mask).unwrap().tempo;
    let probabilities: Vec<Vec<f32>> = candle_nn::ops::softmax(&tempo, D::Minus1).unwrap().to_vec2().unwrap();
    let mut misread = Vec::new();
    for ((bpm, prompt), p) in asked.iter().zip(&probabilities) {
        let top = p.iter().copied().fold(0f32, f32::max);
        // Every bin the seed may draw (at least MIN_P of the likeliest) must be near.
        let far: Vec<String> = (0..p.len())
            .filter(|&bin| p[bin] >= MIN_P * top)
            .map(|bin| config.tempo_of_bin(bin))
            .filter(|planned| (planned - *bpm as f32).abs() > 0.1 * *bpm as f32)
            .map(|planned| format!("{planned:.0}"))
            .collect();
        if !far.is_empty() {
            misread.push(format!("{prompt}: may plan {}", far.join(", ")));
        }
    }
    assert!(
        misread.is_empty(),
        "{} of {} misread:\n{}",
        misread.len(),
        asked.len(),
        misread.join("\n")
    );
}
