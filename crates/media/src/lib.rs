//! # mmgen-media
//!
//! Reading and writing the files mmgen produces: PNG (with UTF-8 text metadata, so a
//! prompt in any language travels with its image), animated GIF, 16-bit WAV, and MP4
//! (H.264 + Opus).
//! No system libraries (the H.264 encoder is built from bundled C++ source). Shared by the world's tools and, later, the
//! generation pipeline, so it depends on neither.
#![warn(missing_docs)]

mod mp4;

pub use mp4::{encode_mp4, read_mp4_tracks, write_mp4, Mp4Audio, Mp4Summary, Mp4Track, OPUS_SAMPLE_RATES};

use std::fs::File;
use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbImage, RgbaImage};

/// What can go wrong with a media file.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file could not be created, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The PNG encoder refused.
    #[error("{path}: PNG encoding failed: {message}")]
    Png {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The GIF encoder refused.
    #[error("{path}: GIF encoding failed: {message}")]
    Gif {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The WAV codec refused.
    #[error("{path}: WAV: {message}")]
    Wav {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The MP4 encoders or muxer refused, or an MP4 could not be read.
    #[error("{path}: MP4: {message}")]
    Mp4 {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// Arguments that cannot make a file.
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`MediaError`].
pub type Result<T> = std::result::Result<T, MediaError>;

/// The name an encoder's errors give before the bytes have a file.
const IN_MEMORY: &str = "(in memory)";

impl MediaError {
    /// This error, said of the file at `path`.
    fn at(self, path: &Path) -> MediaError {
        let path = path.display().to_string();
        match self {
            MediaError::Io { source, .. } => MediaError::Io { path, source },
            MediaError::Png { message, .. } => MediaError::Png { path, message },
            MediaError::Gif { message, .. } => MediaError::Gif { path, message },
            MediaError::Wav { message, .. } => MediaError::Wav { path, message },
            MediaError::Mp4 { message, .. } => MediaError::Mp4 { path, message },
            invalid @ MediaError::Invalid(_) => invalid,
        }
    }
}

/// Writes `bytes` to `path`.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| MediaError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes an RGB PNG with `text` as international (UTF-8) text chunks.
pub fn write_png(path: &Path, image: &RgbImage, text: &[(&str, &str)]) -> Result<()> {
    write_file(path, &encode_png(image, text).map_err(|e| e.at(path))?)
}

/// An RGB PNG with `text` as international (UTF-8) text chunks, as bytes.
pub fn encode_png(image: &RgbImage, text: &[(&str, &str)]) -> Result<Vec<u8>> {
    let err = |e: png::EncodingError| MediaError::Png {
        path: IN_MEMORY.into(),
        message: e.to_string(),
    };
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, image.width(), image.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    for (key, value) in text {
        encoder
            .add_itxt_chunk(key.to_string(), value.to_string())
            .map_err(err)?;
    }
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(image.as_raw()).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(bytes)
}

/// Reads the text chunks of a PNG (tEXt, zTXt and iTXt), in file order.
pub fn read_png_text(path: &Path) -> Result<Vec<(String, String)>> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| MediaError::Io {
        path: name.clone(),
        source,
    })?;
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| MediaError::Png {
            path: name.clone(),
            message: e.to_string(),
        })?;
    let info = reader.info();
    let mut out: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    for chunk in &info.utf8_text {
        out.push((chunk.keyword.clone(), chunk.get_text().unwrap_or_default()));
    }
    Ok(out)
}

/// Writes an endlessly looping GIF at `fps` frames per second (GIF stores delays in
/// whole centiseconds, so 8 fps plays at 120 ms a frame).
pub fn write_gif(path: &Path, frames: &[RgbImage], fps: u32) -> Result<()> {
    write_file(path, &encode_gif(frames, fps).map_err(|e| e.at(path))?)
}

/// An endlessly looping GIF at `fps` frames per second, as bytes.
pub fn encode_gif(frames: &[RgbImage], fps: u32) -> Result<Vec<u8>> {
    if frames.is_empty() || fps == 0 {
        return Err(MediaError::Invalid(format!(
            "a GIF needs at least one frame and fps >= 1 (got {} frames at {fps} fps)",
            frames.len()
        )));
    }
    let err = |e: image::ImageError| MediaError::Gif {
        path: IN_MEMORY.into(),
        message: e.to_string(),
    };
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(err)?;
        let delay = Delay::from_numer_denom_ms(1000, fps);
        for frame in frames {
            let rgba: RgbaImage = image::DynamicImage::ImageRgb8(frame.clone()).into_rgba8();
            encoder
                .encode_frame(Frame::from_parts(rgba, 0, 0, delay))
                .map_err(err)?;
        }
    }
    Ok(bytes)
}

/// Writes mono 16-bit PCM; samples are clipped to [-1, 1].
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    write_file(path, &encode_wav(samples, sample_rate).map_err(|e| e.at(path))?)
}

/// Mono 16-bit PCM as WAV bytes; samples are clipped to [-1, 1].
pub fn encode_wav(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::with_capacity(wav_bytes(samples.len())));
    let mut wav = WavStream::new(&mut bytes, sample_rate)?;
    wav.push(samples)?;
    wav.finish()?;
    Ok(bytes.into_inner())
}

/// Bytes of a mono 16-bit WAV of `samples` samples (its 44-byte header included).
pub fn wav_bytes(samples: usize) -> usize {
    44 + 2 * samples
}

/// A mono 16-bit PCM WAV written as its samples arrive, so that no copy of the whole
/// sound in f32 is needed; samples are clipped to [-1, 1].
pub struct WavStream<W: std::io::Write + std::io::Seek> {
    writer: hound::WavWriter<W>,
}

fn wav_error(e: hound::Error) -> MediaError {
    MediaError::Wav {
        path: IN_MEMORY.into(),
        message: e.to_string(),
    }
}

impl<W: std::io::Write + std::io::Seek> WavStream<W> {
    /// Starts the WAV in `out`.
    pub fn new(out: W, sample_rate: u32) -> Result<WavStream<W>> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(WavStream {
            writer: hound::WavWriter::new(out, spec).map_err(wav_error)?,
        })
    }

    /// Appends `samples`.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        for s in samples {
            self.writer
                .write_sample((s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16)
                .map_err(wav_error)?;
        }
        Ok(())
    }

    /// Completes the header.
    pub fn finish(self) -> Result<()> {
        self.writer.finalize().map_err(wav_error)
    }
}

/// Reads a WAV as mono f32 in [-1, 1] (channels are averaged) and its sample rate.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32)> {
    let name = path.display().to_string();
    let err = |e: hound::Error| MediaError::Wav {
        path: name.clone(),
        message: e.to_string(),
    };
    let mut reader = hound::WavReader::open(path).map_err(err)?;
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let raw: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(err)?,
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(err)?
        }
    };
    let mono = raw
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok((mono, spec.sample_rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mmgen-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn png_keeps_pixels_and_utf8_text() {
        let path = temp("a.png");
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
        write_png(&path, &image, &[("prompt", "海边日落 sunset"), ("seed", "42")]).unwrap();
        assert_eq!(image::open(&path).unwrap().into_rgb8(), image);
        let text = read_png_text(&path).unwrap();
        assert!(text.contains(&("prompt".to_string(), "海边日落 sunset".to_string())));
        assert!(text.contains(&("seed".to_string(), "42".to_string())));
    }

    #[test]
    fn gif_has_every_frame() {
        use image::AnimationDecoder;
        let path = temp("a.gif");
        let frames: Vec<RgbImage> = (0..4)
            .map(|i| RgbImage::from_pixel(8, 8, image::Rgb([i * 60, 0, 0])))
            .collect();
        write_gif(&path, &frames, 8).unwrap();
        let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        let decoded = decoder.into_frames().collect_frames().unwrap();
        assert_eq!(decoded.len(), 4);
        // GIF delays are whole centiseconds: 125 ms is stored as 120 ms.
        let (numer, denom) = decoded[0].delay().numer_denom_ms();
        assert!((numer as f32 / denom as f32 - 125.0).abs() <= 5.0);
        assert!(write_gif(&path, &[], 8)
            .unwrap_err()
            .to_string()
            .contains("at least one frame"));
    }

    #[test]
    fn wav_round_trip() {
        let path = temp("a.wav");
        let xs: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        write_wav(&path, &xs, 16_000).unwrap();
        let (ys, sr) = read_wav(&path).unwrap();
        assert_eq!(sr, 16_000);
        assert_eq!(ys.len(), xs.len());
        assert!(xs.iter().zip(&ys).all(|(a, b)| (a - b).abs() < 1e-4));
        assert!(read_wav(&temp("missing.wav"))
            .unwrap_err()
            .to_string()
            .contains("missing.wav"));
    }
}
