//! Scoring one prompt: generate, read with the probes (the image, video and audio
//! arms), check each category, and keep the features for world-FD.

use mmgen_world::caption::parse::{AskedObject, Request};

use crate::align::{audio_checks, image_checks, Category};
use crate::error::{EvalError, Result};
use crate::generator::Generated;
use crate::probe::image::{Detection, ImageReading};
use crate::probe::video::{middle_frame, motion_features, track_frame_indices, TrackPoint};
use crate::track::{find_copies, Track, TRACK_THRESHOLD};

use crate::probes::Probes;
use crate::run::Task;

pub(crate) fn mean_features(readings: &[ImageReading]) -> Vec<f32> {
    let n = readings.len().max(1) as f32;
    let width = readings.first().map(|r| r.features.len()).unwrap_or(0);
    (0..width)
        .map(|k| readings.iter().map(|r| r.features[k]).sum::<f32>() / n)
        .collect()
}

/// Scores of one prompt, what was read (see [`PromptResult::reading`]), and the
/// features of its output and of a fresh render.
pub(crate) struct Scored {
    pub(crate) checks: Vec<(Category, bool)>,
    pub(crate) reading: serde_json::Value,
    pub(crate) generated: Vec<f32>,
    pub(crate) real: Vec<f32>,
}

/// An image reading as [`PromptResult::reading`] shows it.
pub(crate) fn image_reading_json(reading: &ImageReading) -> serde_json::Value {
    let objects: Vec<serde_json::Value> = reading
        .objects
        .iter()
        .map(|d| {
            serde_json::json!({
                "shape": d.shape,
                "colour": d.colour,
                "size": d.size,
                "cx": (d.cx * 1000.0).round() / 1000.0,
                "cy": (d.cy * 1000.0).round() / 1000.0,
            })
        })
        .collect();
    serde_json::json!({
        "objects": objects,
        "background": reading.background,
        "style": reading.style,
    })
}

/// A track's frames as [`PromptResult::reading`] shows them.
pub(crate) fn track_pattern(track: &Track) -> String {
    track
        .seen
        .iter()
        .zip(&track.judged)
        .map(|(&seen, &judged)| match (judged, seen) {
            (false, _) => '-',
            (true, true) => '#',
            (true, false) => '.',
        })
        .collect()
}

/// What was read where a followed object was judged but not seen (the `.` frames of
/// its [`track_pattern`]): per such frame, the detection nearest its estimated centre
/// within its estimated radius, with its reading and the probabilities it gave the
/// asked shape and colour, or only the frame where nothing was detected there.
/// `copy` is the copy's index for a counted object.
pub(crate) fn misreads(
    track: &Track,
    readings: &[ImageReading],
    asked: &AskedObject,
    copy: Option<usize>,
) -> Vec<serde_json::Value> {
    let round = |p: f32| (f64::from(p) * 100.0).round() / 100.0;
    let estimated = track.estimated();
    (0..track.seen.len())
        .filter(|&f| track.judged[f] && !track.seen[f])
        .map(|f| {
            let at = estimated[f];
            let mut entry = serde_json::json!({ "frame": f });
            if let Some(k) = copy {
                entry["copy"] = k.into();
            }
            let nearest = readings[f]
                .objects
                .iter()
                .map(|d| (d, (d.cx - at.cx).hypot(d.cy - at.cy)))
                .filter(|&(_, distance)| distance <= at.radius)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((d, _)) = nearest {
                entry["shape"] = serde_json::json!(d.shape);
                entry["colour"] = serde_json::json!(d.colour);
                entry["p_shape"] = round(d.shape_probabilities[asked.shape.index()]).into();
                if let Some(colour) = asked.colour {
                    entry["p_colour"] = round(d.colour_probabilities[colour.index()]).into();
                }
            }
            entry
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn score_prompt(
    probes: &Probes,
    task: Task,
    request: &Request,
    out: &Generated,
    real: &Generated,
    name: &str,
    text: &str,
    detail: bool,
) -> Result<Scored> {
    let missing = |what: &str| EvalError::Invalid(format!("{name} returned no {what} for {text:?}"));
    match task {
        Task::Image => {
            let image = out.image.as_ref().ok_or_else(|| missing("image"))?;
            let real_image = real.image.as_ref().ok_or_else(|| missing("image"))?;
            let readings = probes.read_images(&[image.clone(), real_image.clone()])?;
            Ok(Scored {
                checks: image_checks(request, &readings[0]),
                reading: if detail {
                    image_reading_json(&readings[0])
                } else {
                    serde_json::Value::Null
                },
                generated: readings[0].features.clone(),
                real: readings[1].features.clone(),
            })
        }
        Task::Video => {
            let video_probe = probes.video.as_ref().ok_or_else(|| EvalError::Invalid("the video task needs the video probe (models/probe-video); train it with `mmgen train probe-video`".into()))?;
            let frames = out
                .video
                .as_ref()
                .filter(|f| !f.is_empty())
                .ok_or_else(|| missing("video"))?;
            // Weak detections are read too, to continue tracks; objects are found only
            // among those at the calibrated threshold.
            let threshold = probes.image.config().detection_threshold;
            let readings = probes.read_images_above(frames, TRACK_THRESHOLD.min(threshold))?;
            let mid = middle_frame(frames.len());
            let found: Vec<Vec<Detection>> = readings
                .iter()
                .map(|r| {
                    r.objects
                        .iter()
                        .filter(|d| d.score as f64 >= threshold)
                        .cloned()
                        .collect()
                })
                .collect();
            // Each copy of each asked object is followed (once, for both categories)
            // from the frame where its copies are found most surely; a copy found in
            // no frame has no track.
            let mut copies: Vec<Vec<Option<Track>>> = request
                .objects
                .iter()
                .map(|o| {
                    let mut tracks: Vec<Option<Track>> = find_copies(o, &found)
                        .map(|(i, starts)| Track::follow_all(&starts, &readings, i).into_iter().map(Some).collect())
                        .unwrap_or_default();
                    tracks.resize(o.count.max(1), None);
                    tracks
                })
                .collect();
            // Frames where a copy is hidden behind another asked object (or another copy
            // of its own), or too small to read, are not counted for its temporal
            // consistency.
            let followed: Vec<Track> = copies.iter().flatten().flatten().cloned().collect();
            for (k, track) in copies.iter_mut().flatten().flatten().enumerate() {
                let others: Vec<&Track> = followed
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, t)| t)
                    .collect();
                track.judge_visibility(&others);
            }
            // Motion is read from the track of each object's surest copy.
            let tracks: Vec<Option<&Track>> = copies.iter().map(|c| c[0].as_ref()).collect();
            let mut checks = Vec::new();
            let mut motions_read = vec![None; request.objects.len()];
            let asked_motion: Vec<(usize, &AskedObject, Option<&Track>)> = request
                .objects
                .iter()
                .zip(&tracks)
                .enumerate()
                .filter(|(_, (o, _))| o.motion.is_some())
                .map(|(i, (o, &t))| (i, o, t))
                .collect();
            if !asked_motion.is_empty() {
                let motion_tracks: Option<Vec<&Track>> = asked_motion.iter().map(|&(_, _, t)| t).collect();
                let ok = match motion_tracks {
                    Some(motion_tracks) => {
                        let features = motion_tracks
                            .iter()
                            .map(|track| {
                                let places = track.sighted_or_estimated();
                                let points: Vec<TrackPoint> =
                                    track_frame_indices(frames.len()).iter().map(|&i| places[i]).collect();
                                motion_features(frames, &points, places[mid])
                            })
                            .collect::<Result<Vec<_>>>()?;
                        let motions = video_probe.read(&features, &probes.device)?;
                        for ((i, _, _), &m) in asked_motion.iter().zip(&motions) {
                            motions_read[*i] = Some(m);
                        }
                        asked_motion
                            .iter()
                            .zip(motions)
                            .all(|((_, o, _), m)| o.motion == Some(m))
                    }
                    None => false,
                };
                checks.push((Category::Motion, ok));
            }
            if !request.objects.is_empty() {
                let ok = copies
                    .iter()
                    .flatten()
                    .all(|t| t.as_ref().is_some_and(Track::consistent));
                checks.push((Category::TemporalConsistency, ok));
            }
            // What was read, frame by frame, only when the caller shows it (--per-prompt).
            let reading = if detail {
                let objects: Vec<serde_json::Value> = request
                    .objects
                    .iter()
                    .zip(&copies)
                    .zip(&motions_read)
                    .map(|((o, c), m)| {
                        let mut object = serde_json::json!({
                            "asked": o,
                            "frames": c[0].as_ref().map(track_pattern),
                            "motion": m,
                        });
                        if c.len() > 1 {
                            object["copies"] = c.iter().map(|t| t.as_ref().map(track_pattern)).collect();
                        }
                        let misread: Vec<serde_json::Value> = c
                            .iter()
                            .enumerate()
                            .filter_map(|(k, t)| t.as_ref().map(|t| (k, t)))
                            .flat_map(|(k, t)| misreads(t, &readings, o, (c.len() > 1).then_some(k)))
                            .collect();
                        if !misread.is_empty() {
                            object["misread"] = misread.into();
                        }
                        object
                    })
                    .collect();
                serde_json::json!({ "objects": objects, "style": readings[mid].style })
            } else {
                serde_json::Value::Null
            };
            let real_frames = real.video.as_ref().ok_or_else(|| missing("video"))?;
            let real_readings = probes.read_images(real_frames)?;
            Ok(Scored {
                checks,
                reading,
                generated: mean_features(&readings),
                real: mean_features(&real_readings),
            })
        }
        Task::Audio => {
            let audio_probe = probes.audio.as_ref().ok_or_else(|| EvalError::Invalid("the audio task needs the audio probe (models/probe-audio); train it with `mmgen train probe-audio`".into()))?;
            let clip = out.audio.as_ref().ok_or_else(|| missing("audio"))?;
            let real_clip = real.audio.as_ref().ok_or_else(|| missing("audio"))?;
            let readings = audio_probe.read(&[clip.clone(), real_clip.clone()], &probes.device)?;
            let heard = &readings[0];
            Ok(Scored {
                checks: audio_checks(request, heard),
                reading: if detail {
                    serde_json::json!({
                        "instrument": heard.instrument,
                        "mood": heard.mood,
                        "tempo_bpm": heard.tempo_bpm.map(|t| (t * 10.0).round() / 10.0),
                    })
                } else {
                    serde_json::Value::Null
                },
                generated: readings[0].features.clone(),
                real: readings[1].features.clone(),
            })
        }
    }
}
