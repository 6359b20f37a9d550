//! The request readers on hostile text: scene plans (`--plan`), modality lists
//! (`--modalities`) and prompts (the planned modalities) give a value or an error,
//! never a panic.

use mmgen_models::grounded::ScenePlan;
use mmgen_pipeline::{Modality, Plan};
use proptest::prelude::*;

const PLAN: &str = r#"{"background": "snow", "style": "flat", "lighting": "steady", "objects": [
    {"shape": "star", "colour": "red", "size": "large", "motion": "still",
     "pose": {"cx": 0.3, "cy": 0.4, "radius": 0.15, "angle": 0.0}}]}"#;

proptest! {
    // Seeded, so that CI runs the same cases every time.
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(7),
        ..ProptestConfig::with_cases(400)
    })]

    #[test]
    fn any_text_is_a_plan_or_an_error(text in any::<String>()) {
        let _ = ScenePlan::from_json(&text);
    }

    #[test]
    fn damaged_plans_are_read_or_refused(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut bytes = PLAN.as_bytes().to_vec();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        let _ = ScenePlan::from_json(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn modality_lists_parse_or_refuse(text in "[a-zA-Z ,]{0,40}") {
        if let Ok(list) = Modality::parse_list(&text) {
            prop_assert!(!list.is_empty());
        }
    }

    #[test]
    fn any_prompt_plans_at_least_one_modality(prompt in any::<String>()) {
        prop_assert!(!Plan::read(&prompt, None).modalities.is_empty());
    }
}
