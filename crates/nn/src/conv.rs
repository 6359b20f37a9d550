//! A 3x3 convolution over a zero-bordered cell grid stored flat, as nine shifted
//! matrix multiplies.
//!
//! Why not `candle_nn::Conv2d`: candle's CPU backend computes a conv2d's input
//! gradient with a direct (loop) transposed convolution, which made probe training
//! ~20x slower than its forward pass. Here features live as (b, (h+2)(w+2), c) with a
//! zero border; tap (dy, dx) of a 3x3 kernel is then one shift of the flat cell axis,
//! so the forward and backward passes are contiguous copies and GEMMs only.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Features on a grid of `h` x `w` cells with a one-cell zero border, stored as
/// (b, (h+2)(w+2), c).
#[derive(Debug, Clone)]
pub struct CellGrid {
    /// The features, border included.
    pub xs: Tensor,
    /// Interior rows.
    pub h: usize,
    /// Interior columns.
    pub w: usize,
}

impl CellGrid {
    /// From (b, h, w, c) features.
    pub fn from_nhwc(xs: &Tensor) -> Result<CellGrid> {
        let (b, h, w, c) = xs.dims4()?;
        let padded = xs.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
        Ok(CellGrid {
            xs: padded.reshape((b, (h + 2) * (w + 2), c))?,
            h,
            w,
        })
    }

    /// Back to (b, h, w, c), border dropped.
    pub fn to_nhwc(&self) -> Result<Tensor> {
        let (b, _, c) = self.xs.dims3()?;
        self.xs
            .reshape((b, self.h + 2, self.w + 2, c))?
            .narrow(1, 1, self.h)?
            .narrow(2, 1, self.w)?
            .contiguous()
    }

    /// Mean over interior cells: (b, c).
    pub fn mean(&self) -> Result<Tensor> {
        // The border is zero, so the sum over all cells is the interior sum.
        self.xs.sum(1)? / (self.h * self.w) as f64
    }

    /// (1, (h+2)(w+2), 1): 1 inside, 0 on the border.
    fn interior_mask(&self, device: &Device) -> Result<Tensor> {
        let (h, w) = (self.h + 2, self.w + 2);
        let mask: Vec<f32> = (0..h * w)
            .map(|i| (i / w > 0 && i / w < h - 1 && i % w > 0 && i % w < w - 1) as u8 as f32)
            .collect();
        Tensor::from_vec(mask, (1, h * w, 1), device)
    }

    /// Applies `f` to every cell (a per-cell linear map or activation), keeping the
    /// border at zero.
    pub fn map(&self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<CellGrid> {
        let ys = f(&self.xs)?.broadcast_mul(&self.interior_mask(self.xs.device())?)?;
        Ok(CellGrid {
            xs: ys,
            h: self.h,
            w: self.w,
        })
    }
}

/// 3x3 convolution, padding 1, stride 1, on a [`CellGrid`].
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    /// (9, c_in, c_out): one matrix per tap, taps ordered (dy, dx).
    weight: Tensor,
    bias: Tensor,
}

impl Conv3x3 {
    /// Parameters `weight` (9, c_in, c_out) and `bias` (c_out), Kaiming-uniform init.
    pub fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Conv3x3> {
        let bound = (6.0 / (9 * c_in) as f64).sqrt();
        let weight = vb.get_with_hints((9, c_in, c_out), "weight", Init::Uniform { lo: -bound, up: bound })?;
        let bias = vb.get_with_hints(c_out, "bias", Init::Const(0.0))?;
        Ok(Conv3x3 { weight, bias })
    }

    /// The convolution of `grid`; the border of the result is zero again.
    pub fn forward(&self, grid: &CellGrid) -> Result<CellGrid> {
        let (b, cells, c) = grid.xs.dims3()?;
        let row = grid.w + 2;
        // Shifts reach one row and one cell either way: pad the flat axis by row + 1.
        let reach = row + 1;
        let padded = grid.xs.pad_with_zeros(1, reach, reach)?;
        let mut sum: Option<Tensor> = None;
        for dy in 0..3 {
            for dx in 0..3 {
                let shift = dy * row + dx; // = reach + (dy - 1) * row + (dx - 1)
                let tap = padded.narrow(1, shift, cells)?.contiguous()?.reshape((b * cells, c))?;
                let term = tap.matmul(&self.weight.get(dy * 3 + dx)?)?;
                sum = Some(match sum {
                    Some(s) => (s + term)?,
                    None => term,
                });
            }
        }
        let out = match sum {
            Some(s) => crate::dense::add_bias(&s, &self.bias)?,
            None => candle_core::bail!("no taps"),
        };
        let c_out = self.bias.dim(0)?;
        let out = CellGrid {
            xs: out.reshape((b, cells, c_out))?,
            h: grid.h,
            w: grid.w,
        };
        out.map(|xs| Ok(xs.clone()))
    }
}

/// (b, h, w, c) -> (b, h/k, w/k, k*k*c): each k x k block of cells becomes one cell,
/// channels ordered (dy, dx, c).
pub fn space_to_depth(xs: &Tensor, k: usize) -> Result<Tensor> {
    let (b, h, w, c) = xs.dims4()?;
    if !h.is_multiple_of(k) || !w.is_multiple_of(k) {
        candle_core::bail!("space_to_depth: {h}x{w} is not a multiple of {k}");
    }
    xs.reshape((b, h / k, k, w / k, k * c))?
        .permute((0, 1, 3, 2, 4))?
        .reshape((b, h / k, w / k, k * k * c))
}

/// The inverse of [`space_to_depth`]: (b, h, w, k*k*c) -> (b, h*k, w*k, c).
pub fn depth_to_space(xs: &Tensor, k: usize) -> Result<Tensor> {
    let (b, h, w, kkc) = xs.dims4()?;
    if !kkc.is_multiple_of(k * k) {
        candle_core::bail!("depth_to_space: {kkc} channels are not a multiple of {}", k * k);
    }
    let c = kkc / (k * k);
    xs.reshape((b, h, w, k, k * c))?
        .permute((0, 1, 3, 2, 4))?
        .reshape((b, h * k, w * k, c))
}

/// Keeps `Module` users (per-cell maps) in one place.
pub fn per_cell(module: &impl Module, grid: &CellGrid) -> Result<CellGrid> {
    grid.map(|xs| module.forward(xs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// The same convolution through candle's reference conv2d (NCHW).
    #[test]
    fn matches_candle_conv2d() {
        let dev = Device::Cpu;
        let vb = VarBuilder::from_varmap(&candle_nn::VarMap::new(), DType::F32, &dev);
        let conv = Conv3x3::new(3, 5, vb).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (2, 7, 6, 3), &dev).unwrap();
        let ours = conv
            .forward(&CellGrid::from_nhwc(&xs).unwrap())
            .unwrap()
            .to_nhwc()
            .unwrap();
        // weight (dy*3+dx, c_in, c_out) -> (c_out, c_in, dy, dx)
        let kernel = conv
            .weight
            .reshape((3, 3, 3, 5))
            .unwrap()
            .permute((3, 2, 0, 1))
            .unwrap()
            .contiguous()
            .unwrap();
        let reference = xs
            .permute((0, 3, 1, 2))
            .unwrap()
            .conv2d(&kernel, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&conv.bias.reshape((1, 5, 1, 1)).unwrap())
            .unwrap()
            .permute((0, 2, 3, 1))
            .unwrap();
        assert_eq!(ours.dims(), reference.dims());
        let diff = (ours - reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn space_to_depth_stacks_blocks_and_inverts() {
        let xs = Tensor::arange(0f32, 32.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 4, 4, 2))
            .unwrap();
        let ys = space_to_depth(&xs, 2).unwrap();
        assert_eq!(ys.dims(), &[1, 2, 2, 8]);
        let first: Vec<f32> = ys.flatten_all().unwrap().to_vec1().unwrap();
        // Top-left block: cells (0,0) (0,1) (1,0) (1,1), two channels each.
        assert_eq!(&first[..8], &[0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0]);
        let back = depth_to_space(&ys, 2).unwrap();
        let diff: f32 = (back - &xs)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
        assert!(space_to_depth(&xs, 3).is_err());
    }

    #[test]
    fn border_stays_zero_and_mean_is_interior() {
        let dev = Device::Cpu;
        let xs = Tensor::ones((1, 2, 3, 4), DType::F32, &dev).unwrap();
        let grid = CellGrid::from_nhwc(&xs).unwrap();
        let mean: Vec<Vec<f32>> = grid.mean().unwrap().to_vec2().unwrap();
        assert!(mean[0].iter().all(|v| (v - 1.0).abs() < 1e-6));
        let shifted = grid.map(|t| t.affine(1.0, 1.0)).unwrap();
        assert_eq!(shifted.xs.sum_all().unwrap().to_scalar::<f32>().unwrap(), 2.0 * 24.0);
    }
}
