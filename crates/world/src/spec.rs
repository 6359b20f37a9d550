//! The scene spec: everything the world can draw and play, as plain serde data.
//!
//! A spec is the ground truth of one training sample and of one evaluation prompt.
//! It is versioned ([`SPEC_VERSION`]) so that a JSON file written today is read (or
//! clearly refused) by a later mmgen.

use serde::{Deserialize, Serialize};

use crate::error::WorldError;

/// Version written into every spec; [`SceneSpec::validate`] refuses any other.
pub const SPEC_VERSION: u32 = 1;
/// Most objects a scene holds.
pub const MAX_OBJECTS: usize = 4;
/// Slowest tempo the world plays, in beats per minute.
pub const MIN_TEMPO_BPM: u32 = 60;
/// Fastest tempo the world plays, in beats per minute.
pub const MAX_TEMPO_BPM: u32 = 160;

/// Declares a closed set of attribute values with its serde names, an `ALL` list, a
/// stable `index()` (probe class ids) and a `FromStr` whose error lists what is allowed.
macro_rules! attribute {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = $text] #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Machine name, as in spec JSON.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Position in [`Self::ALL`]; stable class id for probes.
            pub fn index(self) -> usize {
                Self::ALL.iter().position(|v| *v == self).unwrap_or(0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = WorldError;
            fn from_str(s: &str) -> Result<Self, WorldError> {
                Self::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| WorldError::UnknownValue {
                    what: $what,
                    got: s.to_string(),
                    allowed: Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
                })
            }
        }
    };
}

attribute!(
    /// The scene behind the objects.
    Background, "background" {
        SunsetSea => "sunset_sea", NightSky => "night_sky", DaySky => "day_sky",
        GrassField => "grass_field", Desert => "desert", Snow => "snow", Underwater => "underwater",
    }
);
attribute!(
    /// An object's outline.
    Shape, "shape" {
        Circle => "circle", Square => "square", Triangle => "triangle", Star => "star",
        Heart => "heart", Diamond => "diamond", Hexagon => "hexagon", Cross => "cross",
    }
);
attribute!(
    /// An object's colour name; each covers a range of shades (see `render::colour`).
    Colour, "colour" {
        Red => "red", Orange => "orange", Yellow => "yellow", Green => "green",
        Blue => "blue", Purple => "purple", Pink => "pink", White => "white",
    }
);
attribute!(
    /// An object's size class.
    Size, "size" { Small => "small", Large => "large" }
);
attribute!(
    /// Where on the canvas an object stands.
    Position, "position" {
        Left => "left", Right => "right", Top => "top", Bottom => "bottom", Centre => "centre",
    }
);
attribute!(
    /// Where an object stands relative to another one.
    Relation, "relation" { LeftOf => "left_of", RightOf => "right_of", Above => "above", Below => "below" }
);
attribute!(
    /// How an object moves over a video clip.
    Motion, "motion" {
        Still => "still", MoveLeft => "move_left", MoveRight => "move_right", MoveUp => "move_up",
        MoveDown => "move_down", Bounce => "bounce", Spin => "spin", Grow => "grow", Shrink => "shrink",
    }
);
attribute!(
    /// How the light changes over a video clip.
    Lighting, "lighting" { Steady => "steady", SunGoingDown => "sun_going_down", SunComingUp => "sun_coming_up" }
);
attribute!(
    /// How the whole picture is drawn.
    Style, "style" {
        Flat => "flat", Watercolour => "watercolour", PixelArt => "pixel_art", Sketch => "sketch", Neon => "neon",
    }
);
attribute!(
    /// The instrument that plays the melody.
    Instrument, "instrument" { Piano => "piano", Strings => "strings", Flute => "flute", Pluck => "pluck", Drums => "drums" }
);
attribute!(
    /// The music's mood; decides key and mode (see `audio::music`).
    Mood, "mood" { Happy => "happy", Sad => "sad", Calm => "calm", Tense => "tense" }
);
attribute!(
    /// Background sound under the music.
    Ambience, "ambience" { Waves => "waves", Wind => "wind", Rain => "rain" }
);
attribute!(
    /// Coarse tempo classes, read by the audio probe.
    TempoClass, "tempo class" { Slow => "slow", Medium => "medium", Fast => "fast" }
);

impl TempoClass {
    /// The class of a tempo: slow below 90 bpm, fast above 120.
    pub fn of(bpm: u32) -> TempoClass {
        match bpm {
            0..=89 => TempoClass::Slow,
            90..=120 => TempoClass::Medium,
            _ => TempoClass::Fast,
        }
    }
}

impl Motion {
    /// The motion seen in a mirror image.
    pub fn mirrored(self) -> Motion {
        match self {
            Motion::MoveLeft => Motion::MoveRight,
            Motion::MoveRight => Motion::MoveLeft,
            m => m,
        }
    }
}

impl Position {
    /// The position seen in a mirror image.
    pub fn mirrored(self) -> Position {
        match self {
            Position::Left => Position::Right,
            Position::Right => Position::Left,
            p => p,
        }
    }
}

impl Relation {
    /// The relation seen in a mirror image.
    pub fn mirrored(self) -> Relation {
        match self {
            Relation::LeftOf => Relation::RightOf,
            Relation::RightOf => Relation::LeftOf,
            r => r,
        }
    }
}

/// Where an object is placed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Anywhere free; the caption says nothing about where.
    Free,
    /// At a named position of the canvas.
    At(Position),
    /// Relative to an earlier object (`of` is its index, smaller than this object's).
    Relative {
        /// Which side of the anchor.
        relation: Relation,
        /// Index of the anchor object in [`SceneSpec::objects`].
        of: usize,
    },
}

/// One object of the scene.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// Outline.
    pub shape: Shape,
    /// Colour name.
    pub colour: Colour,
    /// Size class.
    pub size: Size,
    /// Where it stands.
    #[serde(default = "free")]
    pub placement: Placement,
    /// How it moves in a video (ignored by still images).
    #[serde(default = "still")]
    pub motion: Motion,
}

fn free() -> Placement {
    Placement::Free
}
fn still() -> Motion {
    Motion::Still
}
fn steady() -> Lighting {
    Lighting::Steady
}
fn flat() -> Style {
    Style::Flat
}

/// The music of a scene.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct MusicSpec {
    /// Melody instrument.
    pub instrument: Instrument,
    /// Mood (key and mode).
    pub mood: Mood,
    /// Tempo in beats per minute, within [`MIN_TEMPO_BPM`]..=[`MAX_TEMPO_BPM`].
    pub tempo_bpm: u32,
}

/// A whole scene: what is seen and what is heard.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct SceneSpec {
    /// Format version, [`SPEC_VERSION`].
    pub version: u32,
    /// What is behind the objects.
    pub background: Background,
    /// One to [`MAX_OBJECTS`] objects, drawn in order (later ones in front).
    pub objects: Vec<ObjectSpec>,
    /// Light over time (videos).
    #[serde(default = "steady")]
    pub lighting: Lighting,
    /// Drawing style.
    #[serde(default = "flat")]
    pub style: Style,
    /// Music, if any.
    #[serde(default)]
    pub music: Option<MusicSpec>,
    /// Ambient sound, if any.
    #[serde(default)]
    pub ambience: Option<Ambience>,
}

impl SceneSpec {
    /// Checks everything serde cannot: version, object count, anchors, positions, tempo.
    pub fn validate(&self) -> Result<(), WorldError> {
        let bad = |reason: String| Err(WorldError::InvalidSpec(reason));
        if self.version != SPEC_VERSION {
            return bad(format!(
                "version is {}, this mmgen reads version {SPEC_VERSION}",
                self.version
            ));
        }
        if self.objects.is_empty() || self.objects.len() > MAX_OBJECTS {
            return bad(format!(
                "objects has {} entries, allowed 1 to {MAX_OBJECTS}",
                self.objects.len()
            ));
        }
        for (i, object) in self.objects.iter().enumerate() {
            match object.placement {
                Placement::Relative { of, .. } if of >= i => {
                    return bad(format!(
                        "objects[{i}] is placed relative to objects[{of}]; an anchor must come earlier in the list"
                    ))
                }
                Placement::At(position) => {
                    let earlier = self.objects[..i]
                        .iter()
                        .position(|o| o.placement == Placement::At(position));
                    if let Some(j) = earlier {
                        return bad(format!(
                            "objects[{j}] and objects[{i}] are both at {position}; use one object per named position"
                        ));
                    }
                }
                _ => {}
            }
        }
        if let Some(music) = &self.music {
            if !(MIN_TEMPO_BPM..=MAX_TEMPO_BPM).contains(&music.tempo_bpm) {
                return bad(format!(
                    "music.tempo_bpm is {}, allowed {MIN_TEMPO_BPM} to {MAX_TEMPO_BPM}",
                    music.tempo_bpm
                ));
            }
        }
        Ok(())
    }

    /// Parses and validates spec JSON.
    pub fn from_json(text: &str) -> Result<SceneSpec, WorldError> {
        // Editors on Windows save UTF-8 with a byte-order mark; it is not JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let spec: SceneSpec = serde_json::from_str(text).map_err(|e| WorldError::MalformedSpec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain enums, ints and vecs cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// True when the scene has anything to hear.
    pub fn has_audio(&self) -> bool {
        self.music.is_some() || self.ambience.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_object() -> SceneSpec {
        SceneSpec {
            version: SPEC_VERSION,
            background: Background::SunsetSea,
            objects: vec![ObjectSpec {
                shape: Shape::Star,
                colour: Colour::Red,
                size: Size::Large,
                placement: Placement::At(Position::Left),
                motion: Motion::Spin,
            }],
            lighting: Lighting::SunGoingDown,
            style: Style::Watercolour,
            music: Some(MusicSpec {
                instrument: Instrument::Piano,
                mood: Mood::Calm,
                tempo_bpm: 90,
            }),
            ambience: Some(Ambience::Waves),
        }
    }

    #[test]
    fn json_round_trip_and_names() {
        let spec = one_object();
        let text = spec.to_json();
        assert!(
            text.contains("\"sunset_sea\"") && text.contains("\"at\": \"left\""),
            "{text}"
        );
        assert_eq!(SceneSpec::from_json(&text).unwrap(), spec);
        for shape in Shape::ALL {
            assert_eq!(shape.name().parse::<Shape>().unwrap(), *shape);
            assert_eq!(serde_json::to_string(shape).unwrap(), format!("\"{}\"", shape.name()));
        }
    }

    #[test]
    fn defaults_fill_optional_fields() {
        let text =
            r#"{"version":1,"background":"desert","objects":[{"shape":"circle","colour":"blue","size":"small"}]}"#;
        let spec = SceneSpec::from_json(text).unwrap();
        assert_eq!(spec.style, Style::Flat);
        assert_eq!(spec.objects[0].placement, Placement::Free);
        assert_eq!(spec.objects[0].motion, Motion::Still);
        assert!(spec.music.is_none());
        // A byte-order mark is skipped; a misspelt field is named, not ignored.
        assert_eq!(SceneSpec::from_json(&format!("\u{feff}{text}")).unwrap(), spec);
        let typo = text.replace("\"objects\"", "\"stlye\":\"neon\",\"objects\"");
        let err = SceneSpec::from_json(&typo).unwrap_err().to_string();
        assert!(err.contains("unknown field `stlye`"), "{err}");
    }

    #[test]
    fn invalid_specs_are_refused_with_reasons() {
        let mut spec = one_object();
        spec.version = 7;
        assert!(spec.validate().unwrap_err().to_string().contains("version is 7"));

        let mut spec = one_object();
        spec.objects.clear();
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("objects has 0 entries"));

        let mut spec = one_object();
        spec.objects[0].placement = Placement::Relative {
            relation: Relation::Above,
            of: 0,
        };
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("anchor must come earlier"));

        let mut spec = one_object();
        spec.objects.push(spec.objects[0]);
        assert!(spec.validate().unwrap_err().to_string().contains("both at left"));

        let mut spec = one_object();
        spec.music.as_mut().unwrap().tempo_bpm = 400;
        assert!(spec.validate().unwrap_err().to_string().contains("tempo_bpm is 400"));

        let err = SceneSpec::from_json(r#"{"version":1,"background":"moon","objects":[]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `moon`"), "{err}");
        assert!("bluish"
            .parse::<Colour>()
            .unwrap_err()
            .to_string()
            .contains("allowed: red, orange"));
    }

    #[test]
    fn tempo_classes_cover_the_range() {
        assert_eq!(TempoClass::of(60), TempoClass::Slow);
        assert_eq!(TempoClass::of(100), TempoClass::Medium);
        assert_eq!(TempoClass::of(160), TempoClass::Fast);
    }
}
