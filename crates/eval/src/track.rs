//! Following an asked object through a clip's frames (the video task's reader of
//! temporal consistency and motion): where its copies start, and a track per copy
//! through weaker detections (ByteTrack's two thresholds, Zhang et al. 2022), with
//! places estimated where it is hidden.

use mmgen_world::caption::parse::AskedObject;

use crate::align::same_kind;
use crate::probe::image::{Detection, ImageReading};
use crate::probe::video::TrackPoint;

/// Where to start following the `o.count` copies of an asked object through a clip's
/// frames (`found[i]`: the detections of frame `i` at the calibrated threshold, best
/// first): the frame where the `o.count`-th best detection of its kind scores highest,
/// and those detections. Where no frame shows every copy, the frame showing the most
/// (and fewer starts); None where the object is in no frame.
pub fn find_copies<'a>(o: &AskedObject, found: &'a [Vec<Detection>]) -> Option<(usize, Vec<&'a Detection>)> {
    found
        .iter()
        .enumerate()
        .map(|(i, detections)| {
            let copies: Vec<&Detection> = detections
                .iter()
                .filter(|d| same_kind(d, o))
                .take(o.count.max(1))
                .collect();
            (i, copies)
        })
        .filter(|(_, copies)| !copies.is_empty())
        .max_by(|(_, a), (_, b)| {
            let weakest = |c: &[&Detection]| c.last().map_or(0.0, |d| d.score);
            a.len().cmp(&b.len()).then(weakest(a).total_cmp(&weakest(b)))
        })
}

/// Detection score from which a detection may continue an object's track in a clip.
///
/// Objects are found at the image probe's calibrated threshold and only followed
/// through weaker detections, as ByteTrack does (Zhang et al. 2022):
/// a turned or partly covered object's heat dips below the threshold tuned for
/// counting stills, while what else a low threshold lets in (suns, clouds taken for
/// objects) rarely has the tracked object's shape and colour where it was (measured
/// on oracle clips in docs/evaluation.md).
pub const TRACK_THRESHOLD: f64 = 0.2;

/// Probability from which a detection's reading of the tracked object's shape and of
/// its colour lets it continue the track when that is not the most likely reading.
///
/// The same two thresholds as for detection scores, applied to what an object is: a
/// track starts only where the object is read as asked, and continues through frames
/// whose reading does not rule it out. Where the probes are unsure (a small pixel-art
/// hexagon as it moves across the block grid, a colour tinted by a setting sun), the
/// most likely reading flips for a frame or two between near neighbours; an object
/// that changes identity is read as the new one, not as a close second, so the
/// `morph` control still fails (measured in docs/evaluation.md). The value was chosen
/// once, before measuring, and not tuned.
pub const TRACK_IDENTITY_PROBABILITY: f32 = 0.25;

/// Furthest (canvas fractions) a tracked object moves between frames where it is seen.
const TRACK_GATE: f32 = 0.25;

/// Smallest radius (canvas fraction) at which a clip's object is judged. Below it a
/// 64-pixel frame shows the object as a blot of a few pixels (a small object at the
/// start of its growth is 6 pixels across; in pixel art, three 2x2 blocks) whose
/// outline no reader can tell, so such frames are not counted for or against its
/// identity, as KITTI's benchmark does not count objects below a minimum height. A
/// small object at rest is 0.085, so only the far ends of a growth or a shrink fall
/// below it.
pub const MIN_JUDGED_RADIUS: f32 = 0.065;

/// Where an object found in one frame of a clip is in every frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// Per frame: the object's detection there, or where it was last seen.
    pub points: Vec<TrackPoint>,
    /// Per frame: whether the object was seen there.
    pub seen: Vec<bool>,
    /// Per frame: whether the object can be judged there (see
    /// [`Track::judge_visibility`]; every frame until it is called).
    pub judged: Vec<bool>,
}

impl Track {
    /// Follows the objects detected as `starts` in frame `from` of `frames` (one, or
    /// the copies of a counted object): in each other frame, walking out from `from`,
    /// the nearest detection within [`TRACK_GATE`] of where it was last seen that may
    /// be of its shape and colour (read so, or with at least
    /// [`TRACK_IDENTITY_PROBABILITY`] for each). A detection continues one track only:
    /// detections go to tracks nearest first, so a copy that changes identity is not
    /// continued by its neighbour's detection.
    /// (With one copy followed, the `morph` control's change went unseen in 21 of 300
    /// held-out clips, all of counted objects; with every copy, in none.)
    pub fn follow_all(starts: &[&Detection], frames: &[ImageReading], from: usize) -> Vec<Track> {
        let point = |d: &Detection| TrackPoint {
            cx: d.cx,
            cy: d.cy,
            radius: d.radius,
        };
        let mut tracks: Vec<Track> = starts
            .iter()
            .map(|start| {
                let mut seen = vec![false; frames.len()];
                if let Some(s) = seen.get_mut(from) {
                    *s = true;
                }
                Track {
                    points: vec![point(start); frames.len()],
                    seen,
                    judged: vec![true; frames.len()],
                }
            })
            .collect();
        for order in [
            (from + 1..frames.len()).collect::<Vec<_>>(),
            (0..from.min(frames.len())).rev().collect(),
        ] {
            let mut last: Vec<TrackPoint> = starts.iter().map(|d| point(d)).collect();
            for i in order {
                let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
                for (t, start) in starts.iter().enumerate() {
                    for (k, d) in frames[i].objects.iter().enumerate() {
                        let dist = (d.cx - last[t].cx).hypot(d.cy - last[t].cy);
                        if dist < TRACK_GATE && d.may_be(start.shape, start.colour, TRACK_IDENTITY_PROBABILITY) {
                            pairs.push((dist, t, k));
                        }
                    }
                }
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut detection_used = vec![false; frames[i].objects.len()];
                let mut track_done = vec![false; starts.len()];
                for (_, t, k) in pairs {
                    if track_done[t] || detection_used[k] {
                        continue;
                    }
                    (track_done[t], detection_used[k]) = (true, true);
                    last[t] = point(&frames[i].objects[k]);
                    tracks[t].seen[i] = true;
                }
                for (track, &p) in tracks.iter_mut().zip(&last) {
                    track.points[i] = p;
                }
            }
        }
        tracks
    }

    /// Where the object is estimated to be in every frame. Its centre: where it was
    /// seen; between two sightings, on the straight line between them; before the
    /// first or after the last, continued along the line fitted to the nearest
    /// [`EXTRAPOLATION_FRAMES`] sightings. Its radius: the line fitted to every
    /// sighting, as the world's objects keep their size or grow and shrink at a
    /// steady rate, and one frame's radius reading of a small object is off by a
    /// fifth either way. Without any sighting, the held points.
    pub fn estimated(&self) -> Vec<TrackPoint> {
        let sightings: Vec<usize> = (0..self.seen.len()).filter(|&f| self.seen[f]).collect();
        let (Some(&first), Some(&last)) = (sightings.first(), sightings.last()) else {
            return self.points.clone();
        };
        let head = &sightings[..sightings.len().min(EXTRAPOLATION_FRAMES)];
        let tail = &sightings[sightings.len().saturating_sub(EXTRAPOLATION_FRAMES)..];
        let radius = self.line(&sightings, |p| p.radius);
        let (head_x, head_y) = (self.line(head, |p| p.cx), self.line(head, |p| p.cy));
        let (tail_x, tail_y) = (self.line(tail, |p| p.cx), self.line(tail, |p| p.cy));
        (0..self.seen.len())
            .map(|f| {
                let (cx, cy) = if self.seen[f] {
                    (self.points[f].cx, self.points[f].cy)
                } else if f < first {
                    (head_x.at(f), head_y.at(f))
                } else if f > last {
                    (tail_x.at(f), tail_y.at(f))
                } else {
                    let before = sightings[sightings.partition_point(|&s| s < f) - 1];
                    let after = sightings[sightings.partition_point(|&s| s < f)];
                    let w = (f - before) as f32 / (after - before) as f32;
                    let (a, b) = (self.points[before], self.points[after]);
                    (a.cx + w * (b.cx - a.cx), a.cy + w * (b.cy - a.cy))
                };
                TrackPoint {
                    cx,
                    cy,
                    radius: radius.at(f).max(0.0),
                }
            })
            .collect()
    }

    /// Where the object is in every frame for reading its motion: its sighting where
    /// it was seen, its [`Track::estimated`] place elsewhere. The video probe learnt
    /// motions from true tracks, and the estimate is nearer the truth than the last
    /// sighting held still (which made a growth whose first frames were missed look
    /// still there). Whether the object was there at all is for temporal consistency
    /// to judge.
    pub fn sighted_or_estimated(&self) -> Vec<TrackPoint> {
        self.estimated()
            .into_iter()
            .enumerate()
            .map(|(f, estimate)| if self.seen[f] { self.points[f] } else { estimate })
            .collect()
    }

    /// The least-squares line through `value` of the points of `frames` (sightings,
    /// at least one) against the frame index.
    fn line(&self, frames: &[usize], value: fn(&TrackPoint) -> f32) -> Line {
        let n = frames.len() as f32;
        let mean_t = frames.iter().map(|&i| i as f32).sum::<f32>() / n;
        let var_t: f32 = frames.iter().map(|&i| (i as f32 - mean_t).powi(2)).sum();
        let mean = frames.iter().map(|&i| value(&self.points[i])).sum::<f32>() / n;
        let slope = if var_t > 0.0 {
            frames
                .iter()
                .map(|&i| (i as f32 - mean_t) * (value(&self.points[i]) - mean))
                .sum::<f32>()
                / var_t
        } else {
            0.0
        };
        Line { mean_t, mean, slope }
    }

    /// Marks the frames where the object cannot be judged: where its estimated radius
    /// is below [`MIN_JUDGED_RADIUS`], and where it is hidden behind another object of
    /// the clip, one of `others` (the tracks of the prompt's other objects): their
    /// estimated places are closer than the larger radius, so one covers the other's
    /// middle. Only a track that is a second object counts, one seen apart from this
    /// one in some frame where both are seen: an object that turns into another one
    /// in its own place is not hidden behind it.
    pub fn judge_visibility(&mut self, others: &[&Track]) {
        let mine = self.estimated();
        let covering: Vec<Vec<TrackPoint>> = others
            .iter()
            .filter(|other| {
                (0..self.seen.len().min(other.seen.len()))
                    .any(|f| self.seen[f] && other.seen[f] && !covers(self.points[f], other.points[f]))
            })
            .map(|other| other.estimated())
            .collect();
        self.judged = mine
            .iter()
            .enumerate()
            .map(|(f, &p)| {
                p.radius >= MIN_JUDGED_RADIUS && !covering.iter().any(|t| t.get(f).is_some_and(|&q| covers(p, q)))
            })
            .collect();
    }

    /// Whether the object keeps its identity through the clip: it can be judged in at
    /// least half of the frames, and in at least 90% of those it is seen with the
    /// shape and colour it was found with.
    pub fn consistent(&self) -> bool {
        let judged = self.judged.iter().filter(|&&j| j).count();
        let seen = self.seen.iter().zip(&self.judged).filter(|&(&s, &j)| s && j).count();
        2 * judged >= self.seen.len() && seen as f32 >= 0.9 * judged as f32
    }
}

/// A fitted line through a track's values: `mean + slope * (frame - mean_t)`.
#[derive(Clone, Copy, Debug)]
struct Line {
    mean_t: f32,
    mean: f32,
    slope: f32,
}

impl Line {
    fn at(self, frame: usize) -> f32 {
        self.mean + self.slope * (frame as f32 - self.mean_t)
    }
}

/// Sightings a track's ends are continued from (see [`Track::estimated`]).
const EXTRAPOLATION_FRAMES: usize = 4;

/// Whether two objects overlap so far that one covers the other's middle: their
/// centres are closer than the larger radius.
fn covers(a: TrackPoint, b: TrackPoint) -> bool {
    (a.cx - b.cx).hypot(a.cy - b.cy) < a.radius.max(b.radius)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::fixtures::{det, reading, unsure};
    use mmgen_world::caption::parse::parse_prompt;
    use mmgen_world::{Colour, Shape};

    /// The one track of `start`.
    fn follow_one(start: &Detection, frames: &[ImageReading], from: usize) -> Track {
        Track::follow_all(&[start], frames, from).remove(0)
    }

    /// A clip of `n` frames: a red star moving right by 0.02 a frame, whose frame-`i`
    /// detection `star_at(i)` returns (or none), beside a still blue circle.
    fn clip(n: usize, star_at: impl Fn(usize, Detection) -> Option<Detection>) -> Vec<ImageReading> {
        (0..n)
            .map(|i| {
                let star = det(Shape::Star, Colour::Red, 0.2 + 0.02 * i as f32, 0.5);
                let circle = det(Shape::Circle, Colour::Blue, 0.5, 0.3);
                reading(star_at(i, star).into_iter().chain([circle]).collect())
            })
            .collect()
    }

    #[test]
    fn tracks_follow_their_object_and_fail_when_it_changes() {
        let n = 24;
        let mid = 12;
        let whole = clip(n, |_, star| Some(star));
        let start = &whole[mid].objects[0];
        let track = follow_one(start, &whole, mid);
        assert!(track.seen.iter().all(|&s| s) && track.consistent());
        assert_eq!(track.points.len(), n);
        assert!((track.points[0].cx - 0.2).abs() < 1e-6 && (track.points[n - 1].cx - 0.66).abs() < 1e-6);

        // Missed in two frames: still consistent; the missed frames keep the last place.
        let two_missed = clip(n, |i, star| (i != 3 && i != 20).then_some(star));
        let track = follow_one(start, &two_missed, mid);
        assert_eq!(track.seen.iter().filter(|&&s| !s).count(), 2);
        assert!(track.consistent());
        assert_eq!(track.points[20], track.points[19]);

        // Turned into a circle (or recoloured) for the last quarter: not consistent,
        // and the blue circle nearby is not taken for it.
        for changed in [Shape::Circle, Shape::Star] {
            let colour = if changed == Shape::Star {
                Colour::Green
            } else {
                Colour::Red
            };
            let frames = clip(n, |i, star| {
                Some(if i >= 18 {
                    det(changed, colour, star.cx, star.cy)
                } else {
                    star
                })
            });
            let track = follow_one(start, &frames, mid);
            assert_eq!(track.seen.iter().filter(|&&s| s).count(), 18);
            assert!(!track.consistent());
        }

        // Read as a diamond in every third frame: with the star a close second, the
        // track goes on (the reading does not rule the star out); with the star at
        // 0.1, the object changed in a third of the frames.
        for (p, consistent) in [(0.3, true), (0.1, false)] {
            let frames = clip(n, |i, star| {
                Some(if i % 3 == 1 {
                    unsure(Shape::Diamond, Shape::Star, p, star.cx, star.cy, star.colour)
                } else {
                    star
                })
            });
            let track = follow_one(start, &frames, mid);
            assert_eq!(track.consistent(), consistent, "star at {p} in every third frame");
        }
        // A detection may continue a track but not start one on a close second.
        let uncertain = unsure(Shape::Diamond, Shape::Star, 0.3, 0.5, 0.5, Colour::Red);
        assert!(uncertain.may_be(Shape::Star, Colour::Red, TRACK_IDENTITY_PROBABILITY));
        for (p, possible) in [(0.3, true), (0.1, false)] {
            let mut tinted = det(Shape::Star, Colour::Orange, 0.5, 0.5);
            tinted.colour_probabilities[Colour::Orange.index()] = 1.0 - p;
            tinted.colour_probabilities[Colour::Red.index()] = p;
            assert_eq!(
                tinted.may_be(Shape::Star, Colour::Red, TRACK_IDENTITY_PROBABILITY),
                possible
            );
        }
        let asked = &parse_prompt("a red star").unwrap().objects[0];
        assert!(find_copies(asked, &[vec![uncertain]]).is_none());

        // A same-kind object that jumps further than the gate is not the same object.
        let jumped = clip(n, |i, star| {
            Some(if i > mid { Detection { cy: 0.9, ..star } } else { star })
        });
        assert!(!follow_one(start, &jumped, mid).consistent());
    }

    #[test]
    fn every_copy_of_a_counted_object_is_followed_on_its_own() {
        // Two red stars 0.1 apart (within the gate of each other); the left one turns
        // into a circle from frame 12.
        let n = 24;
        let frames: Vec<ImageReading> = (0..n)
            .map(|i| {
                let left = if i < 12 { Shape::Star } else { Shape::Circle };
                let mut right = det(Shape::Star, Colour::Red, 0.5, 0.5);
                right.score = 0.95;
                reading(vec![right, det(left, Colour::Red, 0.4, 0.5)])
            })
            .collect();
        let found: Vec<Vec<Detection>> = frames.iter().map(|r| r.objects.clone()).collect();
        let asked = parse_prompt("two red stars").unwrap().objects[0];
        let (from, starts) = find_copies(&asked, &found).unwrap();
        assert!(from < 12 && starts.len() == 2, "started where both stars are seen");
        let tracks = Track::follow_all(&starts, &frames, from);
        assert!(tracks[0].consistent(), "the right star stays a star");
        assert!(!tracks[1].consistent(), "the left one is not taken for its neighbour");
        // Followed alone, the left star's track would take its neighbour's detection.
        assert!(follow_one(starts[1], &frames, from).consistent());

        // Three stars asked, two shown: the frame with the most copies, two starts.
        let three = AskedObject { count: 3, ..asked };
        assert_eq!(find_copies(&three, &found).unwrap().1.len(), 2);
        assert!(find_copies(&three, &[vec![], vec![]]).is_none());
    }

    /// A track of `n` frames seen where `seen(i)`, at `place(i)`.
    fn track(n: usize, seen: impl Fn(usize) -> bool, place: impl Fn(usize) -> TrackPoint) -> Track {
        Track {
            points: (0..n).map(&place).collect(),
            seen: (0..n).map(seen).collect(),
            judged: vec![true; n],
        }
    }

    fn at(cx: f32, cy: f32, radius: f32) -> TrackPoint {
        TrackPoint { cx, cy, radius }
    }

    #[test]
    fn estimated_places_fill_gaps_and_continue_the_ends() {
        // Moving right by 0.01 and growing by 0.002 a frame; seen in frames 3..=9
        // except 6 (the held points elsewhere are wrong on purpose).
        let truth = |i: usize| at(0.3 + 0.01 * i as f32, 0.5, 0.08 + 0.002 * i as f32);
        let t = track(
            12,
            |i| (3..=9).contains(&i) && i != 6,
            |i| {
                if (3..=9).contains(&i) && i != 6 {
                    truth(i)
                } else {
                    at(0.9, 0.9, 0.3)
                }
            },
        );
        let estimated = t.estimated();
        for (i, p) in estimated.iter().enumerate() {
            let want = truth(i);
            assert!(
                (p.cx - want.cx).abs() < 1e-5 && (p.cy - want.cy).abs() < 1e-5 && (p.radius - want.radius).abs() < 1e-5,
                "frame {i}: {p:?} for {want:?}"
            );
        }
        // Seen once: held there; never seen: the held points.
        let once = track(5, |i| i == 2, |i| at(0.1 * i as f32, 0.5, 0.1));
        assert!(once.estimated().iter().all(|p| *p == at(0.2, 0.5, 0.1)));
        let never = track(3, |_| false, |i| at(0.1 * i as f32, 0.5, 0.1));
        assert_eq!(never.estimated(), never.points);
    }

    #[test]
    fn motion_reads_sightings_where_seen_and_estimates_elsewhere() {
        // A growing object missed in its first 12 frames: the held points showed it
        // still there; the estimate continues its growth. A sighting off the line
        // (a noisy radius) is kept as read.
        let truth = |i: usize| at(0.5, 0.5, 0.05 + 0.003 * i as f32);
        let noisy = |i: usize| if i == 15 { at(0.5, 0.5, 0.11) } else { truth(i) };
        let mut t = track(24, |i| i >= 12, noisy);
        for i in 0..12 {
            t.points[i] = truth(12);
        }
        let places = t.sighted_or_estimated();
        assert_eq!(places[15], at(0.5, 0.5, 0.11));
        assert_eq!(places[20], truth(20));
        assert!(
            places[0].radius < places[6].radius && places[6].radius < places[12].radius,
            "{places:?}"
        );
        assert!((places[0].radius - truth(0).radius).abs() < 0.01, "{:?}", places[0]);
    }

    #[test]
    fn hidden_and_tiny_frames_are_not_judged_and_changes_still_fail() {
        let n = 24;
        // A star moving right crosses a circle moving left at frame 12; in frames
        // 11..=13, where the circle in front covers the star's middle, only the circle
        // is read.
        let star = |i: usize| at(0.2 + 0.025 * i as f32, 0.5, 0.1);
        let circle = |i: usize| at(0.8 - 0.025 * i as f32, 0.52, 0.1);
        let hidden = |i: usize| (11..=13).contains(&i);
        let circle_track = track(n, |_| true, circle);
        let mut star_track = track(n, |i| !hidden(i), star);
        assert!(!star_track.consistent(), "3 of 24 frames unseen");
        star_track.judge_visibility(&[&circle_track]);
        let unjudged: Vec<usize> = (0..n).filter(|&i| !star_track.judged[i]).collect();
        assert_eq!(unjudged, vec![11, 12, 13]);
        assert!(star_track.consistent());

        // The star turns into a circle in its own place for its last quarter, beside
        // a circle that stays apart: the circle hides nothing, the change fails.
        let still_circle = track(n, |_| true, |_| at(0.5, 0.25, 0.1));
        let mut changed = track(n, |i| i < 18, star);
        changed.judge_visibility(&[&still_circle]);
        assert!(changed.judged.iter().all(|&j| j) && !changed.consistent());
        // Nor does a second track that was never apart from it (the changed object
        // itself, followed as the other asked object).
        let mut changed = track(n, |i| i < 18, star);
        let itself = track(n, |i| i >= 18, star);
        changed.judge_visibility(&[&itself]);
        assert!(!changed.consistent());

        // A small object growing from 0.05 to 0.12, unread in its first four frames:
        // those are too small to judge. The same misses at a small object's resting
        // size are not forgiven.
        let growing = |i: usize| at(0.5, 0.5, 0.05 + 0.07 * i as f32 / (n - 1) as f32);
        let mut t = track(n, |i| i >= 4, growing);
        t.judge_visibility(&[]);
        assert!(t.consistent() && (0..4).all(|i| !t.judged[i]) && t.judged[6]);
        let mut t = track(n, |i| i >= 4, |_| at(0.5, 0.5, 0.085));
        t.judge_visibility(&[]);
        assert!(t.judged.iter().all(|&j| j) && !t.consistent());

        // An object too small to judge in most of the clip is not consistent, however
        // often it is read.
        let mut tiny = track(n, |_| true, |_| at(0.5, 0.5, 0.04));
        tiny.judge_visibility(&[]);
        assert!(!tiny.consistent());
    }
}
