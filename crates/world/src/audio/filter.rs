//! The few filters the synthesisers need.

/// One-pole low-pass: y += a (x - y). `a` in (0, 1]; smaller is darker.
pub fn one_pole_lowpass(xs: &mut [f32], a: f32) {
    let mut y = 0.0;
    for x in xs.iter_mut() {
        y += a * (*x - y);
        *x = y;
    }
}

/// First difference, a gentle high-pass that removes the low end of noise.
pub fn difference(xs: &mut [f32]) {
    let mut prev = 0.0;
    for x in xs.iter_mut() {
        let cur = *x;
        *x = cur - prev;
        prev = cur;
    }
}

/// RBJ audio-EQ-cookbook band-pass (constant 0 dB peak gain), direct form I.
#[derive(Clone, Debug, Default)]
pub struct BandPass {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl BandPass {
    /// Re-tunes to centre `freq` Hz with quality `q` at `sample_rate`, keeping state.
    pub fn tune(&mut self, freq: f32, q: f32, sample_rate: f32) {
        let w0 = std::f32::consts::TAU * freq / sample_rate;
        let alpha = w0.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        self.b = [alpha / a0, 0.0, -alpha / a0];
        self.a = [-2.0 * w0.cos() / a0, (1.0 - alpha) / a0];
    }

    /// Filters one sample.
    pub fn process(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }
}
