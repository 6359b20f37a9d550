//! MP4 with H.264 video and an optional Opus audio track: the format every browser,
//! ffmpeg and phone plays. Built from crates only (no ffmpeg on the machine needed):
//! `openh264` compiles Cisco's BSD-licensed encoder from its bundled source, `opus-rs`
//! is a pure-Rust Opus encoder (BSD), and `muxide` writes the ISO-BMFF boxes
//! (fast-start: `moov` before `mdat`). Opus, not AAC: the one free AAC encoder that
//! builds here (FDK-AAC) is non-free in Debian, and Opus in MP4 is standard
//! (ISO/IEC 14496-12 + the Opus-in-ISOBMFF mapping) and plays in current browsers.
//!
//! Patent note: H.264 is patent-encumbered; Cisco's royalty coverage applies to its
//! prebuilt binaries, not to this source build. The GIF and WAV written beside an MP4
//! are free of that question.

use std::path::Path;

use image::RgbImage;
use muxide::api::{AudioCodec, MuxerBuilder, VideoCodec};
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, QpRange, RateControlMode,
};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264::OpenH264API;
use opus_rs::{Application, OpusEncoder};

use crate::{write_file, MediaError, Result, IN_MEMORY};

/// Sample rates the Opus encoder takes.
pub const OPUS_SAMPLE_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

/// Opus frames are 20 ms long.
const OPUS_FRAME_SECONDS: f64 = 0.02;

/// Mono audio to put beside the video.
#[derive(Clone, Copy, Debug)]
pub struct Mp4Audio<'a> {
    /// Samples in [-1, 1] (clipped).
    pub samples: &'a [f32],
    /// One of [`OPUS_SAMPLE_RATES`].
    pub sample_rate: u32,
}

/// What was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Mp4Summary {
    /// Video frames.
    pub frames: usize,
    /// Seconds of video.
    pub video_seconds: f64,
    /// Opus packets (20 ms each), 0 without audio.
    pub audio_packets: usize,
    /// File size in bytes.
    pub bytes: u64,
}

/// Writes `frames` at `fps` as H.264 (constrained quality, a key frame every second)
/// and, with `audio`, an Opus track (64 kbit/s, music mode), to `path`.
pub fn write_mp4(path: &Path, frames: &[RgbImage], fps: u32, audio: Option<Mp4Audio>) -> Result<Mp4Summary> {
    let (bytes, summary) = encode_mp4(frames, fps, audio).map_err(|e| e.at(path))?;
    write_file(path, &bytes)?;
    Ok(summary)
}

/// [`write_mp4`]'s file, as bytes.
pub fn encode_mp4(frames: &[RgbImage], fps: u32, audio: Option<Mp4Audio>) -> Result<(Vec<u8>, Mp4Summary)> {
    let name = IN_MEMORY.to_string();
    let (width, height) = check_frames(frames, fps)?;
    if let Some(a) = audio {
        if !OPUS_SAMPLE_RATES.contains(&a.sample_rate) {
            return Err(MediaError::Invalid(format!(
                "Opus takes audio at {OPUS_SAMPLE_RATES:?} Hz; got {} Hz",
                a.sample_rate
            )));
        }
    }
    let mp4_err = |what: &str, e: &dyn std::fmt::Display| MediaError::Mp4 {
        path: name.clone(),
        message: format!("{what}: {e}"),
    };
    let mut video = encode_h264(frames, fps).map_err(|e| mp4_err("H.264 encoder", &e))?;
    // An MP4's last sample lasts as long as the gap before it, so a lone frame would
    // last no time: it is stored as two half-length copies of itself.
    let mut sample_seconds = 1.0 / fps as f64;
    if video.len() == 1 {
        video.push(video[0].clone());
        sample_seconds /= 2.0;
    }
    let packets = match audio {
        Some(a) => encode_opus(a).map_err(|e| mp4_err("Opus encoder", &e))?,
        None => Vec::new(),
    };

    let mut builder = MuxerBuilder::new(std::io::Cursor::new(Vec::new()))
        .video(VideoCodec::H264, width, height, fps as f64)
        .with_fast_start(true);
    if audio.is_some() {
        // Opus in MP4 always counts time at 48 kHz, whatever rate it was encoded from.
        builder = builder.audio(AudioCodec::Opus, 48_000, 1);
    }
    let mut muxer = builder.build().map_err(|e| mp4_err("muxer", &e))?;
    // Interleave by time, video first at equal times (audio may not precede video).
    let (mut v, mut a) = (0, 0);
    while v < video.len() || a < packets.len() {
        let video_time = v as f64 * sample_seconds;
        let audio_time = a as f64 * OPUS_FRAME_SECONDS;
        if v < video.len() && (a >= packets.len() || video_time <= audio_time) {
            let (data, key) = &video[v];
            muxer
                .write_video(video_time, data, *key)
                .map_err(|e| mp4_err(&format!("video frame {v}"), &e))?;
            v += 1;
        } else {
            muxer
                .write_audio(audio_time, &packets[a])
                .map_err(|e| mp4_err(&format!("audio packet {a}"), &e))?;
            a += 1;
        }
    }
    muxer.finish_in_place().map_err(|e| mp4_err("finishing", &e))?;
    let bytes = muxer.into_writer().into_inner();
    let summary = Mp4Summary {
        frames: frames.len(),
        video_seconds: frames.len() as f64 / fps as f64,
        audio_packets: packets.len(),
        bytes: bytes.len() as u64,
    };
    Ok((bytes, summary))
}

fn check_frames(frames: &[RgbImage], fps: u32) -> Result<(u32, u32)> {
    let first = frames
        .first()
        .ok_or_else(|| MediaError::Invalid("an MP4 needs at least one frame; got none".into()))?;
    if !(1..=240).contains(&fps) {
        return Err(MediaError::Invalid(format!("fps is {fps}; allowed 1 to 240")));
    }
    let (width, height) = first.dimensions();
    // 4:2:0 chroma halves both sides; H.264 levels cap the frame size.
    if width % 2 != 0 || height % 2 != 0 || width < 16 || height < 16 || width > 4096 || height > 4096 {
        return Err(MediaError::Invalid(format!(
            "H.264 frames here must have even sides from 16 to 4096 pixels; got {width}x{height}"
        )));
    }
    if let Some(i) = frames.iter().position(|f| f.dimensions() != (width, height)) {
        return Err(MediaError::Invalid(format!(
            "frame {i} is {}x{}, frame 0 is {width}x{height}: every frame must have the same size",
            frames[i].width(),
            frames[i].height()
        )));
    }
    Ok((width, height))
}

/// Annex-B access units with their key-frame flags, one per input frame.
fn encode_h264(frames: &[RgbImage], fps: u32) -> std::result::Result<Vec<(Vec<u8>, bool)>, openh264::Error> {
    let (width, height) = frames[0].dimensions();
    // Constant quality (no rate control: every frame is kept, none skipped to meet a
    // bitrate); QP 22 at most keeps luma above 40 dB on world frames, and frames this
    // small cost a few kB a second anyway.
    let config = EncoderConfig::new()
        .rate_control_mode(RateControlMode::Off)
        .bitrate(BitRate::from_bps((width * height * fps * 2).max(200_000)))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .skip_frames(false)
        .qp(QpRange::new(0, 22))
        .intra_frame_period(IntraFramePeriod::from_num_frames(fps));
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
    let mut out = Vec::with_capacity(frames.len());
    for frame in frames {
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(frame.as_raw(), (width as usize, height as usize)));
        let stream = encoder.encode(&yuv)?;
        let key = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        out.push((stream.to_vec(), key));
    }
    Ok(out)
}

/// 20 ms Opus packets of `audio`, the last one padded with silence.
fn encode_opus(audio: Mp4Audio) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    let frame = (audio.sample_rate as f64 * OPUS_FRAME_SECONDS) as usize;
    let mut encoder = OpusEncoder::new(audio.sample_rate as i32, 1, Application::Audio)?;
    encoder.bitrate_bps = 64_000;
    let mut packet = vec![0u8; 4000];
    let mut pcm = vec![0f32; frame];
    let mut packets = Vec::with_capacity(audio.samples.len() / frame + 1);
    for chunk in audio.samples.chunks(frame) {
        pcm.iter_mut().for_each(|v| *v = 0.0);
        for (dst, src) in pcm.iter_mut().zip(chunk) {
            *dst = src.clamp(-1.0, 1.0);
        }
        let n = encoder.encode(&pcm, frame, &mut packet)?;
        packets.push(packet[..n].to_vec());
    }
    Ok(packets)
}

/// One track of an MP4 file as its boxes describe it (for checking what was written
/// without a player).
#[derive(Clone, Debug, PartialEq)]
pub struct Mp4Track {
    /// `vide` or `soun`.
    pub handler: String,
    /// Sample entry: `avc1`, `Opus`, ...
    pub codec: String,
    /// Media duration in seconds (`mdhd`).
    pub seconds: f64,
    /// Samples (frames or packets) in the track (`stsz`).
    pub samples: u32,
}

/// Reads the tracks of an MP4 file (a minimal ISO-BMFF box walk: moov/trak/mdia).
pub fn read_mp4_tracks(path: &Path) -> Result<Vec<Mp4Track>> {
    let name = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| MediaError::Io {
        path: name.clone(),
        source,
    })?;
    let bad = |what: &str| MediaError::Mp4 {
        path: name.clone(),
        message: format!("not a readable MP4: {what}"),
    };
    let moov = child(&data, b"moov").ok_or_else(|| bad("no moov box"))?;
    let mut tracks = Vec::new();
    for trak in children(moov, b"trak") {
        let mdia = child(trak, b"mdia").ok_or_else(|| bad("trak without mdia"))?;
        let hdlr = child(mdia, b"hdlr").ok_or_else(|| bad("mdia without hdlr"))?;
        let mdhd = child(mdia, b"mdhd").ok_or_else(|| bad("mdia without mdhd"))?;
        let stbl = child(mdia, b"minf")
            .and_then(|m| child(m, b"stbl"))
            .ok_or_else(|| bad("mdia without minf/stbl"))?;
        let stsd = child(stbl, b"stsd").ok_or_else(|| bad("stbl without stsd"))?;
        let stsz = child(stbl, b"stsz").ok_or_else(|| bad("stbl without stsz"))?;
        let handler = String::from_utf8_lossy(hdlr.get(8..12).ok_or_else(|| bad("short hdlr"))?).into_owned();
        // mdhd: version 0 has 32-bit times (timescale at 12, duration at 16), version 1 64-bit.
        let (timescale, duration) = match mdhd.first() {
            Some(0) => (be32(mdhd, 12), be32(mdhd, 16).map(u64::from)),
            Some(1) => (be32(mdhd, 20), be64(mdhd, 24)),
            _ => (None, None),
        };
        let (timescale, duration) = timescale.zip(duration).ok_or_else(|| bad("unreadable mdhd"))?;
        // stsd: version/flags, entry count, then the first entry's size and type.
        let codec = String::from_utf8_lossy(stsd.get(12..16).ok_or_else(|| bad("short stsd"))?).into_owned();
        let samples = be32(stsz, 8).ok_or_else(|| bad("short stsz"))?;
        tracks.push(Mp4Track {
            handler,
            codec,
            seconds: duration as f64 / timescale.max(1) as f64,
            samples,
        });
    }
    Ok(tracks)
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The payloads of the boxes of type `kind` directly inside `data`.
fn children<'a>(data: &'a [u8], kind: &'a [u8; 4]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        while at + 8 <= data.len() {
            let size = be32(data, at)? as usize;
            let (header, size) = match size {
                1 => (16, be64(data, at + 8)? as usize),
                0 => (8, data.len() - at),
                s => (8, s),
            };
            if size < header || at + size > data.len() {
                return None;
            }
            let (box_kind, payload) = (&data[at + 4..at + 8], &data[at + header..at + size]);
            at += size;
            if box_kind == kind {
                return Some(payload);
            }
        }
        None
    })
}

fn child<'a>(data: &'a [u8], kind: &'a [u8; 4]) -> Option<&'a [u8]> {
    children(data, kind).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Vec<RgbImage> {
        // A red disc moving right over a blue-to-green gradient.
        (0..n)
            .map(|t| {
                RgbImage::from_fn(64, 64, |x, y| {
                    let (cx, cy) = (12.0 + 2.0 * t as f32, 32.0);
                    if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < 64.0 {
                        image::Rgb([220, 30, 30])
                    } else {
                        image::Rgb([20, (y * 3) as u8, (255 - y * 3) as u8])
                    }
                })
            })
            .collect()
    }

    fn tone(seconds: f64, rate: u32) -> Vec<f32> {
        (0..(seconds * rate as f64) as usize)
            .map(|i| 0.4 * (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin())
            .collect()
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mmgen-mp4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn video_and_audio_tracks_have_the_right_durations() {
        let path = temp("av.mp4");
        let samples = tone(3.0, 16_000);
        let audio = Mp4Audio {
            samples: &samples,
            sample_rate: 16_000,
        };
        let summary = write_mp4(&path, &frames(24), 8, Some(audio)).unwrap();
        assert_eq!(summary.frames, 24);
        assert_eq!(summary.audio_packets, 150);
        let tracks = read_mp4_tracks(&path).unwrap();
        let video = tracks.iter().find(|t| t.handler == "vide").unwrap();
        let sound = tracks.iter().find(|t| t.handler == "soun").unwrap();
        assert_eq!((video.codec.as_str(), video.samples), ("avc1", 24));
        assert!((video.seconds - 3.0).abs() < 0.01, "video {} s", video.seconds);
        assert_eq!((sound.codec.as_str(), sound.samples), ("Opus", 150));
        assert!((sound.seconds - 3.0).abs() < 0.03, "audio {} s", sound.seconds);
    }

    #[test]
    fn a_single_frame_lasts_one_frame() {
        let path = temp("one.mp4");
        let summary = write_mp4(&path, &frames(1), 8, None).unwrap();
        assert_eq!((summary.frames, summary.video_seconds), (1, 0.125));
        let tracks = read_mp4_tracks(&path).unwrap();
        let video = tracks.iter().find(|t| t.handler == "vide").unwrap();
        assert!((video.seconds - 0.125).abs() < 0.001, "video {} s", video.seconds);
    }

    #[test]
    fn h264_decodes_back_to_the_frames() {
        let input = frames(8);
        let video = encode_h264(&input, 8).unwrap();
        assert!(video[0].1, "the first frame is a key frame");
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        let mut rgb = vec![0u8; 64 * 64 * 3];
        for (i, (unit, _)) in video.iter().enumerate() {
            let yuv = decoder.decode(unit).unwrap().expect("one picture per access unit");
            yuv.write_rgb8(&mut rgb);
            // Luma carries the detail (chroma is halved both ways by 4:2:0, which alone
            // costs sharp red-on-blue edges several dB of RGB PSNR).
            let luma = |p: &[u8]| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
            let psnr = |err: f64| 10.0 * (255.0f64.powi(2) / err).log10();
            let (mut luma_err, mut rgb_err) = (0.0, 0.0);
            for (a, b) in rgb.chunks(3).zip(input[i].as_raw().chunks(3)) {
                luma_err += (luma(a) - luma(b)).powi(2);
                rgb_err += a
                    .iter()
                    .zip(b)
                    .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
                    .sum::<f64>();
            }
            let (luma_psnr, rgb_psnr) = (psnr(luma_err / 4096.0), psnr(rgb_err / (3.0 * 4096.0)));
            assert!(
                luma_psnr > 40.0 && rgb_psnr > 24.0,
                "frame {i}: luma {luma_psnr:.1} dB, RGB {rgb_psnr:.1} dB"
            );
        }
    }

    #[test]
    fn opus_decodes_back_to_the_tone() {
        let samples = tone(1.0, 16_000);
        let packets = encode_opus(Mp4Audio {
            samples: &samples,
            sample_rate: 16_000,
        })
        .unwrap();
        let mut decoder = opus_rs::OpusDecoder::new(16_000, 1).unwrap();
        let mut decoded = Vec::new();
        let mut pcm = vec![0f32; 320];
        for packet in &packets {
            let n = decoder.decode(packet, 320, &mut pcm).unwrap();
            decoded.extend_from_slice(&pcm[..n]);
        }
        assert_eq!(decoded.len(), samples.len());
        // Past the codec's start-up delay, the 440 Hz tone comes back: its energy at
        // 440 Hz dominates, measured by correlation with sine and cosine.
        let tail = &decoded[4000..];
        let (mut s, mut c, mut energy) = (0f64, 0f64, 0f64);
        for (i, &v) in tail.iter().enumerate() {
            let phase = std::f64::consts::TAU * 440.0 * (i + 4000) as f64 / 16_000.0;
            s += v as f64 * phase.sin();
            c += v as f64 * phase.cos();
            energy += (v as f64).powi(2);
        }
        let tone_share = 2.0 * (s * s + c * c) / (tail.len() as f64 * energy);
        assert!(tone_share > 0.9, "440 Hz holds {tone_share:.2} of the energy");
    }

    #[test]
    fn bad_requests_fail_clearly() {
        let path = temp("bad.mp4");
        let err = write_mp4(&path, &[], 8, None).unwrap_err().to_string();
        assert!(err.contains("at least one frame"), "{err}");
        let odd = vec![RgbImage::new(63, 64)];
        let err = write_mp4(&path, &odd, 8, None).unwrap_err().to_string();
        assert!(err.contains("even sides"), "{err}");
        let err = write_mp4(&path, &frames(2), 0, None).unwrap_err().to_string();
        assert!(err.contains("fps is 0"), "{err}");
        let mixed = vec![RgbImage::new(64, 64), RgbImage::new(32, 32)];
        let err = write_mp4(&path, &mixed, 8, None).unwrap_err().to_string();
        assert!(err.contains("frame 1 is 32x32"), "{err}");
        let samples = [0f32; 100];
        let audio = Mp4Audio {
            samples: &samples,
            sample_rate: 44_100,
        };
        let err = write_mp4(&path, &frames(2), 8, Some(audio)).unwrap_err().to_string();
        assert!(err.contains("44100 Hz"), "{err}");
    }
}
