//! The instrument synthesisers. Each renders one note to a buffer that starts at the
//! note's onset and may ring past its nominal duration.
//!
//! - piano: additive, slightly inharmonic partials (stiff string, f_k = k f sqrt(1 + B k^2))
//!   with decays faster for higher partials, and a hammer click;
//! - strings: two detuned bowed sawtooths (additive), slow attack, delayed vibrato;
//! - flute: near-sine with weak harmonics, breath noise and vibrato;
//! - pluck: Karplus-Strong (1983) with a fractional delay line;
//! - drums: swept-sine kick, noise-and-tone snare, high-passed noise hat.

use rand::Rng;

use super::filter::{difference, one_pole_lowpass};
use super::music::{midi_to_hz, Voice};
use crate::spec::Instrument;

const TAU: f32 = std::f32::consts::TAU;

/// Attack-sustain-release envelope: linear attack, flat, linear release after `hold`.
fn asr(t: f32, attack: f32, hold: f32, release: f32) -> f32 {
    if t < attack {
        t / attack
    } else if t < hold {
        1.0
    } else {
        (1.0 - (t - hold) / release).max(0.0)
    }
}

/// Sum of harmonics `amps[k-1]` at `freq` with a vibrato, bounded below Nyquist.
fn additive(out: &mut [f32], freq: f32, amps: &[f32], vibrato: (f32, f32, f32), sr: f32, detune: f32) {
    let (rate, depth, delay) = vibrato;
    let mut phase = 0.0f32;
    for (i, sample) in out.iter_mut().enumerate() {
        let t = i as f32 / sr;
        let vib = if t > delay {
            1.0 + depth * (TAU * rate * t).sin()
        } else {
            1.0
        };
        phase += freq * detune * vib / sr;
        phase -= phase.floor();
        let mut sum = 0.0;
        for (k, a) in amps.iter().enumerate() {
            if freq * (k as f32 + 1.0) < sr * 0.45 {
                sum += a * (TAU * phase * (k as f32 + 1.0)).sin();
            }
        }
        *sample += sum;
    }
}

fn piano(freq: f32, duration: f32, velocity: f32, sr: f32, rng: &mut impl Rng) -> Vec<f32> {
    let length = (duration * 1.5).clamp(0.3, 3.0);
    let n = (length * sr) as usize;
    let mut out = vec![0.0; n];
    let inharmonicity = 0.0004f32;
    for k in 1..=10 {
        let kf = k as f32;
        let fk = kf * freq * (1.0 + inharmonicity * kf * kf).sqrt();
        if fk > sr * 0.45 {
            break;
        }
        let amp = velocity.powf(0.5 + 0.1 * kf) / kf.powf(1.3);
        let decay = 0.9 + 0.5 * kf;
        for (i, s) in out.iter_mut().enumerate() {
            let t = i as f32 / sr;
            *s += amp * (-t * decay).exp() * (TAU * fk * t).sin();
        }
    }
    let release = (0.05 * sr) as usize;
    let attack = (0.003 * sr) as usize;
    for (i, s) in out.iter_mut().enumerate() {
        let mut g = if i < attack { i as f32 / attack as f32 } else { 1.0 };
        if i + release > n {
            g *= (n - i) as f32 / release as f32;
        }
        *s *= g;
    }
    let click_len = (0.008 * sr) as usize;
    let mut click: Vec<f32> = (0..click_len).map(|_| rng.random_range(-1.0..1.0)).collect();
    one_pole_lowpass(&mut click, 0.3);
    for (i, c) in click.iter().enumerate() {
        out[i] += 0.08 * velocity * c * (1.0 - i as f32 / click_len as f32);
    }
    out
}

fn strings(freq: f32, duration: f32, velocity: f32, sr: f32, rng: &mut impl Rng) -> Vec<f32> {
    // Detached bowing: each note is bowed for 80% of its length, so that every beat
    // starts with a fresh attack (and a little bow noise) that an ear, or an onset
    // detector, can hear.
    let (release, hold) = (0.08, 0.8 * duration);
    let n = ((hold + release) * sr) as usize;
    let mut out = vec![0.0; n];
    let amps: Vec<f32> = (1..=12).map(|k| 1.0 / k as f32).collect();
    for detune in [0.998, 1.002] {
        additive(&mut out, freq, &amps, (5.5, 0.0025, 0.2), sr, detune);
    }
    let scratch_len = ((0.03 * sr) as usize).min(n);
    let mut scratch: Vec<f32> = (0..scratch_len).map(|_| rng.random_range(-1.0..1.0)).collect();
    difference(&mut scratch);
    for (i, s) in out.iter_mut().enumerate() {
        let t = i as f32 / sr;
        let bow = if i < scratch_len {
            0.5 * scratch[i] * (1.0 - t / 0.03)
        } else {
            0.0
        };
        *s = 0.3 * velocity * (*s * asr(t, 0.04, hold, release) + bow);
    }
    out
}

fn flute(freq: f32, duration: f32, velocity: f32, sr: f32, rng: &mut impl Rng) -> Vec<f32> {
    // Tongued notes: 75% of the beat, each starting with a breathy "chiff".
    let (release, hold) = (0.06, 0.75 * duration);
    let n = ((hold + release) * sr) as usize;
    let mut out = vec![0.0; n];
    additive(&mut out, freq, &[1.0, 0.22, 0.07, 0.02], (4.8, 0.003, 0.2), sr, 1.0);
    let mut breath: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    one_pole_lowpass(&mut breath, 0.25);
    for (i, s) in out.iter_mut().enumerate() {
        let t = i as f32 / sr;
        let chiff = 1.0 + 4.0 * (-t / 0.02).exp();
        *s = 0.6 * velocity * (*s + 0.1 * chiff * breath[i]) * asr(t, 0.025, hold, release);
    }
    out
}

fn pluck(freq: f32, duration: f32, velocity: f32, sr: f32, rng: &mut impl Rng) -> Vec<f32> {
    let n = ((duration + 0.6).min(2.5) * sr) as usize;
    // The two-point average delays by half a sample: take it off the loop length.
    let delay = sr / freq - 0.5;
    let start = delay.ceil() as usize + 1;
    let mut out = vec![0.0f32; n.max(start + 1)];
    for s in out.iter_mut().take(start) {
        *s = rng.random_range(-1.0..1.0);
    }
    one_pole_lowpass(&mut out[..start], 0.5 + 0.4 * velocity);
    let read = |buf: &[f32], pos: f32| {
        let i = pos.floor() as usize;
        let f = pos - pos.floor();
        buf[i] * (1.0 - f) + buf[i + 1] * f
    };
    for i in start..out.len() {
        let pos = i as f32 - delay;
        out[i] = 0.996 * 0.5 * (read(&out, pos) + read(&out, pos - 1.0));
    }
    let fade = (0.03 * sr) as usize;
    let len = out.len();
    for (i, s) in out.iter_mut().enumerate() {
        let tail = if i + fade > len {
            (len - i) as f32 / fade as f32
        } else {
            1.0
        };
        *s *= 0.7 * velocity * tail;
    }
    out
}

fn kick(velocity: f32, sr: f32) -> Vec<f32> {
    let n = (0.35 * sr) as usize;
    let mut phase = 0.0f32;
    (0..n)
        .map(|i| {
            let t = i as f32 / sr;
            phase += (50.0 + 90.0 * (-t * 25.0).exp()) / sr;
            velocity * (-t * 8.0).exp() * (TAU * phase).sin()
        })
        .collect()
}

fn noise_hit(length: f32, decay: f32, highpass_passes: usize, sr: f32, rng: &mut impl Rng) -> Vec<f32> {
    let n = (length * sr) as usize;
    let mut out: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    for _ in 0..highpass_passes {
        difference(&mut out);
    }
    for (i, s) in out.iter_mut().enumerate() {
        *s *= (-(i as f32 / sr) * decay).exp();
    }
    out
}

fn snare(velocity: f32, sr: f32, rng: &mut impl Rng) -> Vec<f32> {
    let mut out = noise_hit(0.25, 18.0, 1, sr, rng);
    for (i, s) in out.iter_mut().enumerate() {
        let t = i as f32 / sr;
        *s = velocity * (0.45 * *s + 0.4 * (-t * 20.0).exp() * (TAU * 185.0 * t).sin());
    }
    out
}

fn bass(freq: f32, duration: f32, velocity: f32, sr: f32) -> Vec<f32> {
    let n = (duration * sr) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / sr;
            let tone = (TAU * freq * t).sin() + 0.3 * (TAU * 2.0 * freq * t).sin();
            velocity * 0.5 * tone * (-t * 1.5).exp() * asr(t, 0.005, duration - 0.04, 0.04)
        })
        .collect()
}

/// Renders one voice of the score, played on `instrument` where it is the melody.
pub fn render_voice(
    instrument: Instrument,
    voice: Voice,
    duration: f32,
    velocity: f32,
    sr: f32,
    rng: &mut impl Rng,
) -> Vec<f32> {
    match voice {
        Voice::Melody(midi) => {
            let f = midi_to_hz(midi);
            match instrument {
                Instrument::Piano => piano(f, duration, velocity, sr, rng),
                Instrument::Strings => strings(f, duration, velocity, sr, rng),
                Instrument::Flute => flute(f, duration, velocity, sr, rng),
                Instrument::Pluck => pluck(f, duration, velocity, sr, rng),
                // Drums carry no melody; a score for drums has none.
                Instrument::Drums => bass(f, duration, velocity, sr),
            }
        }
        Voice::Bass(midi) => bass(midi_to_hz(midi), duration, velocity, sr),
        Voice::Kick => kick(velocity, sr),
        Voice::Snare => snare(velocity, sr, rng),
        Voice::Hat => {
            let mut hat = noise_hit(0.08, 60.0, 2, sr, rng);
            hat.iter_mut().for_each(|s| *s *= 0.25 * velocity);
            hat
        }
    }
}
