//! Every word and phrase the captions use for each attribute value, in English and
//! Chinese. The first entry of each list is the plain name. Keeping the vocabulary
//! in one table lets the caption writer vary phrasing and lets a caption parser (the
//! evaluation's prompt reader) recognise the same words.

use crate::spec::*;

/// Singular and plural English nouns for a shape.
pub fn shape_en(shape: Shape) -> &'static [(&'static str, &'static str)] {
    match shape {
        Shape::Circle => &[
            ("circle", "circles"),
            ("ball", "balls"),
            ("disc", "discs"),
            ("round dot", "round dots"),
        ],
        Shape::Square => &[("square", "squares"), ("box", "boxes"), ("block", "blocks")],
        Shape::Triangle => &[("triangle", "triangles"), ("triangular shape", "triangular shapes")],
        Shape::Star => &[("star", "stars"), ("five-pointed star", "five-pointed stars")],
        Shape::Heart => &[("heart", "hearts"), ("heart shape", "heart shapes")],
        Shape::Diamond => &[("diamond", "diamonds"), ("rhombus", "rhombuses")],
        Shape::Hexagon => &[("hexagon", "hexagons"), ("six-sided shape", "six-sided shapes")],
        Shape::Cross => &[("cross", "crosses"), ("plus sign", "plus signs")],
    }
}

/// Chinese nouns for a shape.
pub fn shape_zh(shape: Shape) -> &'static [&'static str] {
    match shape {
        Shape::Circle => &["圆形", "圆球", "圆"],
        Shape::Square => &["正方形", "方块"],
        Shape::Triangle => &["三角形"],
        Shape::Star => &["星星", "五角星"],
        Shape::Heart => &["爱心", "心形"],
        Shape::Diamond => &["菱形"],
        Shape::Hexagon => &["六边形"],
        Shape::Cross => &["十字", "十字形"],
    }
}

/// English colour words.
pub fn colour_en(colour: Colour) -> &'static [&'static str] {
    match colour {
        Colour::Red => &["red", "bright red"],
        Colour::Orange => &["orange"],
        Colour::Yellow => &["yellow", "golden yellow"],
        Colour::Green => &["green"],
        Colour::Blue => &["blue"],
        Colour::Purple => &["purple", "violet"],
        Colour::Pink => &["pink"],
        Colour::White => &["white"],
    }
}

/// Chinese colour words.
pub fn colour_zh(colour: Colour) -> &'static [&'static str] {
    match colour {
        Colour::Red => &["红色", "红"],
        Colour::Orange => &["橙色", "橘色"],
        Colour::Yellow => &["黄色", "金黄色"],
        Colour::Green => &["绿色", "绿"],
        Colour::Blue => &["蓝色", "蓝"],
        Colour::Purple => &["紫色", "紫"],
        Colour::Pink => &["粉色", "粉红色"],
        Colour::White => &["白色", "白"],
    }
}

/// English size adjectives.
pub fn size_en(size: Size) -> &'static [&'static str] {
    match size {
        Size::Small => &["small", "little", "tiny"],
        Size::Large => &["large", "big", "huge"],
    }
}

/// Chinese size adjectives.
pub fn size_zh(size: Size) -> &'static [&'static str] {
    match size {
        Size::Small => &["小", "小小的"],
        Size::Large => &["大", "大大的", "巨大的"],
    }
}

/// English phrases for a named position.
pub fn position_en(position: Position) -> &'static [&'static str] {
    match position {
        Position::Left => &["on the left", "on the left side", "at the left of the frame"],
        Position::Right => &["on the right", "on the right side", "at the right of the frame"],
        Position::Top => &["at the top", "near the top", "at the top of the frame"],
        Position::Bottom => &["at the bottom", "near the bottom", "at the bottom of the frame"],
        Position::Centre => &["in the centre", "in the middle", "in the center"],
    }
}

/// Chinese phrases for a named position.
pub fn position_zh(position: Position) -> &'static [&'static str] {
    match position {
        Position::Left => &["在左边", "位于左侧", "在画面左侧"],
        Position::Right => &["在右边", "位于右侧", "在画面右侧"],
        Position::Top => &["在上方", "位于顶部", "在画面上方"],
        Position::Bottom => &["在下方", "位于底部", "在画面下方"],
        Position::Centre => &["在中间", "位于正中央", "在画面中央"],
    }
}

/// English phrases for going to a named position ("move the star to the left").
pub fn position_to_en(position: Position) -> &'static [&'static str] {
    match position {
        Position::Left => &["to the left", "to the left side", "over to the left"],
        Position::Right => &["to the right", "to the right side", "over to the right"],
        Position::Top => &["to the top", "up to the top", "to the top of the frame"],
        Position::Bottom => &["to the bottom", "down to the bottom", "to the bottom of the frame"],
        Position::Centre => &["to the centre", "to the middle", "to the center"],
    }
}

/// English relation phrases, to be followed by the anchor.
pub fn relation_en(relation: Relation) -> &'static [&'static str] {
    match relation {
        Relation::LeftOf => &["to the left of", "left of", "on the left of"],
        Relation::RightOf => &["to the right of", "right of", "on the right of"],
        Relation::Above => &["above", "over", "higher than"],
        Relation::Below => &["below", "under", "beneath"],
    }
}

/// Chinese relation suffixes: "在" + anchor + suffix.
pub fn relation_zh(relation: Relation) -> &'static [&'static str] {
    match relation {
        Relation::LeftOf => &["的左边", "的左侧"],
        Relation::RightOf => &["的右边", "的右侧"],
        Relation::Above => &["的上方", "的上面"],
        Relation::Below => &["的下方", "的下面"],
    }
}

/// English motion phrases (present participle, follows the object).
pub fn motion_en(motion: Motion) -> &'static [&'static str] {
    match motion {
        Motion::Still => &["standing still", "staying still", "not moving"],
        Motion::MoveLeft => &["moving left", "sliding to the left", "drifting left"],
        Motion::MoveRight => &["moving right", "sliding to the right", "drifting right"],
        Motion::MoveUp => &["moving up", "rising", "floating upward"],
        Motion::MoveDown => &["moving down", "sinking", "falling slowly"],
        Motion::Bounce => &["bouncing", "bouncing up and down", "hopping"],
        Motion::Spin => &["spinning", "rotating", "turning round"],
        Motion::Grow => &["growing", "getting bigger", "expanding"],
        Motion::Shrink => &["shrinking", "getting smaller", "contracting"],
    }
}

/// Chinese motion phrases.
pub fn motion_zh(motion: Motion) -> &'static [&'static str] {
    match motion {
        Motion::Still => &["静止不动", "一动不动"],
        Motion::MoveLeft => &["向左移动", "往左移动", "慢慢向左滑动"],
        Motion::MoveRight => &["向右移动", "往右移动", "慢慢向右滑动"],
        Motion::MoveUp => &["向上移动", "缓缓上升", "往上飘"],
        Motion::MoveDown => &["向下移动", "慢慢下落", "往下沉"],
        Motion::Bounce => &["上下弹跳", "跳来跳去", "弹跳"],
        Motion::Spin => &["旋转", "转圈", "不停地旋转"],
        Motion::Grow => &["逐渐变大", "慢慢变大", "越变越大"],
        Motion::Shrink => &["逐渐变小", "慢慢缩小", "越变越小"],
    }
}

/// English noun phrases for a background.
pub fn background_en(background: Background) -> &'static [&'static str] {
    match background {
        Background::SunsetSea => &[
            "a sunset over the sea",
            "the sea at sunset",
            "a seaside sunset",
            "the ocean at sunset",
        ],
        Background::NightSky => &["a starry night sky", "the night sky", "a night full of stars"],
        Background::DaySky => &["a clear blue sky", "the daytime sky", "a bright blue sky"],
        Background::GrassField => &["a grassy field", "a green meadow", "a field of grass"],
        Background::Desert => &["a sandy desert", "the desert", "desert dunes"],
        Background::Snow => &["a snowy landscape", "a snowfield", "fresh snow"],
        Background::Underwater => &["the underwater world", "deep blue water", "the sea floor"],
    }
}

/// Chinese noun phrases for a background.
pub fn background_zh(background: Background) -> &'static [&'static str] {
    match background {
        Background::SunsetSea => &["海边日落", "海上日落", "夕阳下的大海"],
        Background::NightSky => &["星空", "夜空", "繁星点点的夜空"],
        Background::DaySky => &["晴朗的天空", "蓝天", "白天的天空"],
        Background::GrassField => &["草地", "绿油油的草地", "草原"],
        Background::Desert => &["沙漠", "沙丘", "金色的沙漠"],
        Background::Snow => &["雪地", "雪景", "白雪覆盖的大地"],
        Background::Underwater => &["水下世界", "海底世界", "深蓝的水下"],
    }
}

/// English style phrases that end a sentence ("... in watercolour").
pub fn style_en(style: Style) -> &'static [&'static str] {
    match style {
        Style::Flat => &["in a flat style", "as a flat illustration", "in flat vector style"],
        Style::Watercolour => &["in watercolour", "in watercolor", "as a watercolour painting"],
        Style::PixelArt => &["as pixel art", "in pixel-art style", "in 8-bit pixel style"],
        Style::Sketch => &["as a pencil sketch", "in sketch style", "drawn in pencil"],
        Style::Neon => &["in neon", "in glowing neon", "in neon-light style"],
    }
}

/// English style adjectives ("a watercolour picture of ...").
pub fn style_adj_en(style: Style) -> &'static [&'static str] {
    match style {
        Style::Flat => &["flat", "flat-style"],
        Style::Watercolour => &["watercolour", "watercolor"],
        Style::PixelArt => &["pixel-art", "8-bit"],
        Style::Sketch => &["pencil-sketch", "sketched"],
        Style::Neon => &["neon", "neon-lit"],
    }
}

/// Chinese style phrases.
pub fn style_zh(style: Style) -> &'static [&'static str] {
    match style {
        Style::Flat => &["扁平风格", "扁平插画风格"],
        Style::Watercolour => &["水彩风格", "水彩画风格"],
        Style::PixelArt => &["像素风", "像素艺术风格"],
        Style::Sketch => &["素描风格", "铅笔素描风格"],
        Style::Neon => &["霓虹风格", "霓虹灯风格"],
    }
}

/// English lighting-change clauses.
pub fn lighting_en(lighting: Lighting) -> &'static [&'static str] {
    match lighting {
        Lighting::Steady => &[],
        Lighting::SunGoingDown => &["as the sun goes down", "while the sun sets", "as the light fades"],
        Lighting::SunComingUp => &["as the sun comes up", "while the sun rises", "as the light grows"],
    }
}

/// Chinese lighting-change clauses.
pub fn lighting_zh(lighting: Lighting) -> &'static [&'static str] {
    match lighting {
        Lighting::Steady => &[],
        Lighting::SunGoingDown => &["太阳渐渐落下", "夕阳西下", "天色渐暗"],
        Lighting::SunComingUp => &["太阳慢慢升起", "旭日东升", "天色渐亮"],
    }
}

/// English instrument names.
pub fn instrument_en(instrument: Instrument) -> &'static [&'static str] {
    match instrument {
        Instrument::Piano => &["piano"],
        Instrument::Strings => &["strings", "string ensemble", "violin"],
        Instrument::Flute => &["flute"],
        Instrument::Pluck => &["plucked guitar", "plucked strings", "harp"],
        Instrument::Drums => &["drums", "percussion", "drum"],
    }
}

/// Chinese instrument names.
pub fn instrument_zh(instrument: Instrument) -> &'static [&'static str] {
    match instrument {
        Instrument::Piano => &["钢琴"],
        Instrument::Strings => &["弦乐", "小提琴"],
        Instrument::Flute => &["长笛", "笛子"],
        Instrument::Pluck => &["拨弦", "吉他", "竖琴"],
        Instrument::Drums => &["鼓", "打击乐", "鼓点"],
    }
}

/// English mood adjectives.
pub fn mood_en(mood: Mood) -> &'static [&'static str] {
    match mood {
        Mood::Happy => &["happy", "cheerful", "joyful"],
        Mood::Sad => &["sad", "melancholy", "sorrowful"],
        Mood::Calm => &["calm", "peaceful", "gentle"],
        Mood::Tense => &["tense", "suspenseful", "dark"],
    }
}

/// Chinese mood adjectives.
pub fn mood_zh(mood: Mood) -> &'static [&'static str] {
    match mood {
        Mood::Happy => &["欢快", "快乐", "愉快"],
        Mood::Sad => &["悲伤", "忧伤", "伤感"],
        Mood::Calm => &["平静", "舒缓", "宁静"],
        Mood::Tense => &["紧张", "紧张刺激", "阴郁"],
    }
}

/// English tempo-class adjectives.
pub fn tempo_en(class: TempoClass) -> &'static [&'static str] {
    match class {
        TempoClass::Slow => &["slow", "slow-paced"],
        TempoClass::Medium => &["moderate", "mid-tempo"],
        TempoClass::Fast => &["fast", "up-tempo"],
    }
}

/// Chinese tempo-class phrases.
pub fn tempo_zh(class: TempoClass) -> &'static [&'static str] {
    match class {
        TempoClass::Slow => &["节奏缓慢", "慢节奏"],
        TempoClass::Medium => &["节奏适中", "中速"],
        TempoClass::Fast => &["节奏明快", "快节奏"],
    }
}

/// English ambience phrases.
pub fn ambience_en(ambience: Ambience) -> &'static [&'static str] {
    match ambience {
        Ambience::Waves => &["the sound of waves", "crashing waves", "waves washing ashore"],
        Ambience::Wind => &["the sound of wind", "a howling wind", "the wind blowing"],
        Ambience::Rain => &["the sound of rain", "falling rain", "rain pattering"],
    }
}

/// Chinese ambience phrases.
pub fn ambience_zh(ambience: Ambience) -> &'static [&'static str] {
    match ambience {
        Ambience::Waves => &["海浪声", "浪花拍岸的声音"],
        Ambience::Wind => &["风声", "呼呼的风声"],
        Ambience::Rain => &["雨声", "淅淅沥沥的雨声"],
    }
}

/// English number words, 1 to 4.
pub const NUMBERS_EN: [&str; 5] = ["zero", "one", "two", "three", "four"];
/// Chinese number words with the measure word, 1 to 4.
pub const NUMBERS_ZH: [&str; 5] = ["零个", "一个", "两个", "三个", "四个"];

/// Short names of backgrounds that free prompts use but captions do not (the parser
/// knows them too).
pub fn background_keywords_en(background: Background) -> &'static [&'static str] {
    match background {
        Background::SunsetSea => &["sunset", "sunset sea", "sea sunset", "seaside"],
        Background::NightSky => &["night sky", "starry sky", "night"],
        Background::DaySky => &["blue sky", "sky", "daytime"],
        Background::GrassField => &["meadow", "grass", "field", "grassland"],
        Background::Desert => &["desert", "dunes"],
        Background::Snow => &["snow", "snowy field", "winter landscape"],
        Background::Underwater => &["underwater", "under the sea", "ocean floor"],
    }
}

/// Chinese short names of backgrounds for free prompts.
pub fn background_keywords_zh(background: Background) -> &'static [&'static str] {
    match background {
        Background::SunsetSea => &["日落", "海边", "夕阳"],
        Background::NightSky => &["夜晚", "晚上"],
        Background::DaySky => &["天空", "白天"],
        Background::GrassField => &["草坪", "田野"],
        Background::Desert => &["沙地"],
        Background::Snow => &["雪", "冬天"],
        Background::Underwater => &["水下", "海底", "水里"],
    }
}
