//! `--device cpu|cuda[:N]`: where tensors live, for every train, eval and bench command.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use candle_core::Device;

/// A device named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// The host CPU (all cores).
    Cpu,
    /// CUDA device `N` (ordinal from 0).
    Cuda(usize),
}

impl FromStr for DeviceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<DeviceArg, String> {
        let allowed = "allowed: cpu, cuda, cuda:N (N = 0, 1, ...)";
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceArg::Cpu),
            "cuda" | "gpu" => Ok(DeviceArg::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceArg::Cuda(n)),
                Some(Err(_)) => Err(format!("'{s}' has no valid device number; {allowed}")),
                None => Err(format!("unknown device '{s}'; {allowed}")),
            },
        }
    }
}

impl fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceArg::Cpu => write!(f, "cpu"),
            DeviceArg::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The sentence printed when CUDA is asked of a build without it.
pub const NO_CUDA: &str = "this mmgen was built without CUDA; rebuild it with \
`cargo build --release -p mmgen-cli --features cuda` on a machine with the CUDA toolkit \
(README, \"Training on a GPU\", builds one without a toolkit)";

impl DeviceArg {
    /// Opens the device. On CUDA, f32 matmuls may use TF32 tensor cores (candle's
    /// reduced-precision switch), the speed/precision trade PyTorch makes by default
    /// for convolutions; master weights and optimiser state stay f32.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    bail!("--device {self}: {NO_CUDA}");
                }
                let device = open_cuda(n).with_context(|| format!("--device {self}: cannot open CUDA device {n}"))?;
                candle_core::cuda::set_gemm_reduced_precision_f32(true);
                Ok(device)
            }
        }
    }
}

/// `Device::new_cuda`, with the panic that cudarc raises when the driver library
/// (libcuda.so) is absent turned into an error.
fn open_cuda(n: usize) -> Result<Device> {
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Device::new_cuda(n));
    std::panic::set_hook(quiet);
    match opened {
        Ok(device) => Ok(device?),
        Err(_) => bail!("the CUDA driver library (libcuda.so) could not be loaded; is an NVIDIA driver installed and on LD_LIBRARY_PATH?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_allowed_names() {
        assert_eq!("cpu".parse(), Ok(DeviceArg::Cpu));
        assert_eq!("CUDA".parse(), Ok(DeviceArg::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceArg::Cuda(3)));
        assert_eq!(DeviceArg::Cuda(3).to_string(), "cuda:3");
        for bad in ["tpu", "cuda:x", "cuda:-1", ""] {
            let err = bad.parse::<DeviceArg>().unwrap_err();
            assert!(err.contains("allowed: cpu, cuda"), "{bad}: {err}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        let err = DeviceArg::Cuda(0).open().unwrap_err().to_string();
        assert!(
            err.contains("built without CUDA") && err.contains("--features cuda"),
            "{err}"
        );
        assert!(matches!(DeviceArg::Cpu.open(), Ok(Device::Cpu)));
    }
}
