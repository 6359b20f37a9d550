//! Drawing a class from a network's probabilities with the seed: min-p sampling
//! (Nguyen et al. 2024), one rule for every learned choice of the grounded family
//! (the planner's centres, the editor's new poses, the music planner's attributes,
//! the note model's tokens). What the prompt states stays likely and is kept; what
//! it leaves free keeps its spread; the tail of unlikely draws is cut.

/// A class drawn from `probs` among those at least [`MIN_P`] times as likely as the
/// likeliest (min-p sampling), by `u` in [0, 1): a free placement keeps its spread
/// over the canvas, and a relation loses the tail of unlikely offsets that break it.
pub(crate) fn sample_index(probs: &[f32], u: f32) -> usize {
    let floor = MIN_P * probs.iter().cloned().fold(0.0, f32::max);
    let kept = |p: f32| if p >= floor { p } else { 0.0 };
    let total: f32 = probs.iter().map(|&p| kept(p)).sum();
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if kept(p) > 0.0 {
            acc += kept(p) / total;
            last = i;
            if u < acc {
                return i;
            }
        }
    }
    last
}

/// The share of the likeliest class's probability below which a class is not drawn.
pub(crate) const MIN_P: f32 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_keep_what_is_likely() {
        for u in [0.0, 0.3, 0.7, 0.999] {
            assert_eq!(
                sample_index(&[0.001, 0.99, 0.009], u),
                1,
                "classes under a tenth of the top are dropped"
            );
        }
        assert_eq!(sample_index(&[0.5, 0.5], 0.2), 0);
        assert_eq!(sample_index(&[0.5, 0.5], 0.7), 1);
        assert_eq!(sample_index(&[0.0, 0.0], 0.5), 0, "no mass at all: the first class");
    }
}
