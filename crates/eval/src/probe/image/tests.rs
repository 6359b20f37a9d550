//! The image probe's decoding, suppression, mirroring, box head and sizes.

use super::targets::shown_size;
use super::*;
use candle_nn::VarMap;
use mmgen_world::layout;
use mmgen_world::{Motion, ObjectSpec};

#[test]
fn growing_objects_are_taught_the_size_they_show() {
    let object = |size, motion| ObjectSpec {
        shape: Shape::Star,
        colour: Colour::Red,
        size,
        placement: mmgen_world::Placement::Free,
        motion,
    };
    let rest = |size| Pose {
        cx: 0.5,
        cy: 0.5,
        radius: layout::radius(size),
        angle: 0.0,
    };
    let at = |size, motion, t| layout::pose_at(rest(size), motion, t);
    // Still or spinning: the spec's class, whatever the radius.
    for size in Size::ALL.iter().copied() {
        assert_eq!(shown_size(&object(size, Motion::Still), &rest(size)), size);
        assert_eq!(
            shown_size(&object(size, Motion::Spin), &at(size, Motion::Spin, 0.3)),
            size
        );
    }
    // Growing and shrinking: the own class at rest.
    for motion in [Motion::Grow, Motion::Shrink] {
        for size in Size::ALL.iter().copied() {
            assert_eq!(shown_size(&object(size, motion), &at(size, motion, 0.5)), size);
        }
    }
    // At the far ends a large object shows small and a small one large.
    for (size, motion, t, shown) in [
        (Size::Large, Motion::Grow, 0.0, Size::Small),
        (Size::Large, Motion::Grow, 1.0, Size::Large),
        (Size::Small, Motion::Shrink, 0.0, Size::Large),
        (Size::Small, Motion::Shrink, 1.0, Size::Small),
    ] {
        assert_eq!(
            shown_size(&object(size, motion), &at(size, motion, t)),
            shown,
            "{size:?} {motion:?} {t}"
        );
    }
}

#[test]
fn shapes_and_decoding() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let cfg = ImageProbeConfig::tiny();
    let probe = ImageProbe::new(&cfg, vb).unwrap();
    let xs = Tensor::zeros((2, 3, 32, 32), DType::F32, &dev).unwrap();
    let (dense, global, pooled) = probe.forward(&xs).unwrap();
    assert_eq!(dense.dims(), &[2, DENSE, 8, 8]);
    assert_eq!(global.dims(), &[2, 12]);
    assert_eq!(pooled.dims(), &[2, 8]);
    assert_eq!(cfg.feature_dim(), 8);
    assert_eq!(probe.read(&xs).unwrap().len(), 2);
    assert!(ImageProbe::new(
        &ImageProbeConfig {
            image_size: 30,
            ..cfg.clone()
        },
        VarBuilder::zeros(DType::F32, &dev)
    )
    .is_err());
}

/// Two touching objects of different colours peak in neighbouring cells and are
/// both read; a weaker neighbour of the same colour is the same object's shoulder.
#[test]
fn suppression_is_per_colour() {
    let dev = Device::Cpu;
    let cfg = ImageProbeConfig::tiny();
    let probe = ImageProbe::new(&cfg, VarBuilder::zeros(DType::F32, &dev)).unwrap();
    let g = cfg.grid();
    let decode = |second_colour: usize| {
        let mut dense = vec![-10.0f32; DENSE * g * g];
        let mut set = |c: usize, y: usize, x: usize, v: f32| dense[(c * g + y) * g + x] = v;
        // A hot pink peak at (3, 3) and a weaker one at (4, 4) beside it.
        for (y, x, heat, colour) in [(3, 3, 3.0, Colour::Pink.index()), (4, 4, 1.0, second_colour)] {
            set(HEAT, y, x, heat);
            set(COLOUR + colour, y, x, 5.0);
            set(SHAPE + Shape::Triangle.index(), y, x, 5.0);
        }
        let dense = Tensor::from_vec(dense, (1, DENSE, g, g), &dev).unwrap();
        let global = Tensor::zeros((1, N_BACKGROUND + N_STYLE), DType::F32, &dev).unwrap();
        let pooled = Tensor::zeros((1, cfg.feature_dim()), DType::F32, &dev).unwrap();
        let reading = probe.decode(&dense, &global, &pooled, 0.5).unwrap().remove(0);
        reading.objects.iter().map(|d| d.colour).collect::<Vec<_>>()
    };
    assert_eq!(decode(Colour::Blue.index()), vec![Colour::Pink, Colour::Blue]);
    assert_eq!(decode(Colour::Pink.index()), vec![Colour::Pink]);
}

/// Reading averages an image with its mirror image, so the mirror image of a scene
/// reads as the same objects, mirrored: this fails if the mirrored dense map is not
/// put back cell for cell.
#[test]
fn mirrored_images_read_as_mirrored_objects() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, 3, DType::F32, &dev);
    let probe = ImageProbe::new(&ImageProbeConfig::tiny(), vb).unwrap();
    let spec = mmgen_world::SpecSampler::default().sample(mmgen_world::Split::Train, 11);
    let image = mmgen_world::render_image(&spec, 11, 32, 32).unwrap();
    let mirrored = image::imageops::flip_horizontal(&image);
    let xs = images_to_tensor(&[image, mirrored], &dev).unwrap();
    // An untrained probe: keep every local maximum so that there is much to compare.
    let readings = probe.read_above(&xs, 1e-6).unwrap();
    let key = |d: &Detection, flip: bool| {
        let cell = (d.cx * 8.0).floor() as i32;
        (
            if flip { 7 - cell } else { cell },
            (d.cy * 8.0).floor() as i32,
            d.shape,
            d.colour,
            d.size,
            (d.score * 1e4).round() as i32,
        )
    };
    let mut a: Vec<_> = readings[0].objects.iter().map(|d| key(d, false)).collect();
    let mut b: Vec<_> = readings[1].objects.iter().map(|d| key(d, true)).collect();
    a.sort();
    b.sort();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(readings[0].background, readings[1].background);
    assert_eq!(readings[0].style, readings[1].style);
}

/// The box head's two outputs reach the reading: objectness drops detections, the
/// scale corrects radii. The head is set by hand (zero weights, chosen biases).
#[test]
fn box_head_drops_empty_crops_and_corrects_radii() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = mmgen_nn::seeded_var_builder(&varmap, 3, DType::F32, &dev);
    let probe = ImageProbe::new(&ImageProbeConfig::tiny(), vb).unwrap();
    let shape_vars = VarMap::new();
    let shape_vb = mmgen_nn::seeded_var_builder(&shape_vars, 4, DType::F32, &dev);
    let shapes = ShapeProbe::new(&crate::probe::shape::ShapeProbeConfig::tiny(), shape_vb).unwrap();
    let set_box = |objectness: f32, log_scale: f32| {
        let data = shape_vars.data().lock().unwrap();
        let weight = &data["box.weight"];
        weight.set(&weight.zeros_like().unwrap()).unwrap();
        data["box.bias"]
            .set(&Tensor::new(&[objectness, log_scale], &dev).unwrap())
            .unwrap();
    };
    let probe = probe.with_shape_probe(shapes).unwrap();
    let spec = mmgen_world::SpecSampler::default().sample(mmgen_world::Split::Train, 11);
    let xs = images_to_tensor(&[mmgen_world::render_image(&spec, 11, 32, 32).unwrap()], &dev).unwrap();
    let detected = probe.detect_above(&xs, 1e-6).unwrap();
    assert!(!detected[0].objects.is_empty());

    set_box(20.0, 1.5f32.ln());
    let kept = probe.read_above(&xs, 1e-6).unwrap();
    assert_eq!(kept[0].objects.len(), detected[0].objects.len());
    for (k, d) in kept[0].objects.iter().zip(&detected[0].objects) {
        assert!((k.radius - 1.5 * d.radius.max(MIN_RADIUS)).abs() < 1e-4, "{k:?} {d:?}");
        assert_eq!((k.cx, k.cy, k.colour), (d.cx, d.cy, d.colour));
    }
    set_box(-20.0, 0.0);
    assert!(probe.read_above(&xs, 1e-6).unwrap()[0].objects.is_empty());
}

#[test]
fn detection_threshold_must_be_a_probability() {
    let dev = Device::Cpu;
    for t in [0.0, 1.0, -0.2, f64::NAN] {
        let cfg = ImageProbeConfig {
            detection_threshold: t,
            ..ImageProbeConfig::tiny()
        };
        let err = ImageProbe::new(&cfg, VarBuilder::zeros(DType::F32, &dev)).unwrap_err();
        assert!(err.to_string().contains("detection_threshold"), "{err}");
    }
    // Folders saved before calibration read with the default.
    let old: ImageProbeConfig =
        serde_json::from_str(r#"{"image_size": 64, "width": 64, "depth": 4, "stem": [16, 32]}"#).unwrap();
    assert_eq!(old.detection_threshold, DEFAULT_DETECTION_THRESHOLD);
}

#[test]
fn stem_must_halve_to_cells() {
    let dev = Device::Cpu;
    for stem in [vec![4], vec![4, 0], vec![4, 4, 4]] {
        let cfg = ImageProbeConfig {
            stem,
            ..ImageProbeConfig::tiny()
        };
        let err = ImageProbe::new(&cfg, VarBuilder::zeros(DType::F32, &dev)).unwrap_err();
        assert!(err.to_string().contains("stem"), "{err}");
    }
    // Without a stem the probe embeds raw patches (the first shipped format).
    let cfg = ImageProbeConfig {
        stem: vec![],
        ..ImageProbeConfig::tiny()
    };
    let probe = ImageProbe::new(&cfg, VarBuilder::zeros(DType::F32, &dev)).unwrap();
    let xs = Tensor::zeros((1, 3, 32, 32), DType::F32, &dev).unwrap();
    assert_eq!(probe.forward(&xs).unwrap().0.dims(), &[1, DENSE, 8, 8]);
}
