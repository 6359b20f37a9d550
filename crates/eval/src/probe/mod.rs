//! Probes: small networks trained only on world renders that read attributes back
//! from images, videos and audio. They are the evaluation's detectors.

pub mod audio;
pub mod audio_data;
pub mod folder;
pub mod image;
pub mod image_data;
pub mod measure;
pub mod shape;
pub mod video;
pub mod video_data;

/// Index of the largest value (the first one on ties; 0 for an empty input).
pub fn argmax(values: impl IntoIterator<Item = f32>) -> usize {
    values
        .into_iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (k, v)| if v > best.1 { (k, v) } else { best },
        )
        .0
}

/// Probabilities of `N` classes from their logits (softmax).
pub fn softmax<const N: usize>(logits: impl IntoIterator<Item = f32>) -> [f32; N] {
    let mut p = [0.0f32; N];
    for (slot, v) in p.iter_mut().zip(logits) {
        *slot = v;
    }
    let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for v in &mut p {
        *v = (*v - max).exp();
        total += *v;
    }
    p.map(|v| v / total)
}

/// The logistic function of one logit.
pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

/// Two hidden ReLU layers and a linear output: the audio and video probes' reader.
/// Parameters `l1`, `l2`, `out`.
#[derive(Debug, Clone)]
pub struct Mlp {
    l1: candle_nn::Linear,
    l2: candle_nn::Linear,
    out: candle_nn::Linear,
}

impl Mlp {
    /// `inputs` -> `hidden` -> `hidden` -> `outputs`.
    pub fn new(inputs: usize, hidden: usize, outputs: usize, vb: candle_nn::VarBuilder) -> candle_core::Result<Mlp> {
        Ok(Mlp {
            l1: candle_nn::linear(inputs, hidden, vb.pp("l1"))?,
            l2: candle_nn::linear(hidden, hidden, vb.pp("l2"))?,
            out: candle_nn::linear(hidden, outputs, vb.pp("out"))?,
        })
    }

    /// xs: (b, inputs) -> (outputs (b, outputs), last hidden layer (b, hidden)).
    pub fn forward(&self, xs: &candle_core::Tensor) -> candle_core::Result<(candle_core::Tensor, candle_core::Tensor)> {
        use candle_core::Module;
        let h = self.l1.forward(xs)?.relu()?;
        let h = self.l2.forward(&h)?.relu()?;
        Ok((self.out.forward(&h)?, h))
    }
}
