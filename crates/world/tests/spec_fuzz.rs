//! The scene spec reader on hostile text: any string, and valid specs with bytes
//! flipped, cut or inserted, gives a spec or an error, never a panic.

use mmgen_world::{SceneSpec, SpecSampler, Split};
use proptest::prelude::*;

fn valid_spec(seed: u64) -> String {
    SpecSampler::default().sample(Split::Train, seed).to_json()
}

proptest! {
    // Seeded, so that CI runs the same cases every time.
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(7),
        ..ProptestConfig::with_cases(400)
    })]

    #[test]
    fn any_text_is_read_or_refused(text in any::<String>()) {
        let _ = SceneSpec::from_json(&text);
    }

    #[test]
    fn damaged_specs_are_read_or_refused(seed in 0u64..1000, at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut bytes = valid_spec(seed).into_bytes();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(spec) = SceneSpec::from_json(&text) {
            // Whatever is accepted is a valid spec that round-trips.
            prop_assert_eq!(SceneSpec::from_json(&spec.to_json()).unwrap(), spec);
        }
    }
}
