//! Drawing a class from a network's probabilities with the seed, for every learned
//! choice of the grounded family. The music planner's attributes and the note model's
//! tokens are drawn by min-p sampling (Nguyen et al. 2024): what the prompt states
//! stays likely and is kept, what it leaves free varies, and the tail of unlikely
//! draws is cut. The planner's centres and the editor's new poses are drawn from the
//! whole distribution: cutting its tail drew counted objects closer together, and
//! the probes counted fewer of them.

/// A class drawn from `probs` among those at least `min_p` times as likely as the
/// likeliest, by `u` in [0, 1) (`min_p` 0: the whole distribution).
pub(crate) fn sample_index(probs: &[f32], u: f32, min_p: f32) -> usize {
    let floor = min_p * probs.iter().cloned().fold(0.0, f32::max);
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

/// The share of the likeliest class's probability below which a music attribute or a
/// score token is not drawn.
pub const MIN_P: f32 = 0.1;

/// The whole distribution: a pose's centre bin.
pub(crate) const WHOLE: f32 = 0.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_keep_what_is_likely() {
        for u in [0.0, 0.3, 0.7, 0.999] {
            assert_eq!(
                sample_index(&[0.001, 0.99, 0.009], u, MIN_P),
                1,
                "classes under a tenth of the top are dropped"
            );
        }
        assert_eq!(sample_index(&[0.5, 0.5], 0.2, MIN_P), 0);
        assert_eq!(sample_index(&[0.5, 0.5], 0.7, MIN_P), 1);
        assert_eq!(
            sample_index(&[0.0, 0.0], 0.5, MIN_P),
            0,
            "no mass at all: the first class"
        );
        assert_eq!(
            sample_index(&[0.001, 0.99, 0.009], 0.9995, WHOLE),
            2,
            "the whole distribution keeps its tail"
        );
    }
}
