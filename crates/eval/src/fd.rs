//! Frechet distance between two sets of feature vectors (Heusel et al. 2017, the
//! FID's formula): |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), computed in
//! f64 with Jacobi eigendecompositions (features here are at most a few hundred wide).

use crate::error::{EvalError, Result};

fn mean_cov(xs: &[Vec<f32>]) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (xs.len(), xs[0].len());
    let mut mean = vec![0f64; d];
    for x in xs {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += *v as f64 / n as f64;
        }
    }
    let mut cov = vec![0f64; d * d];
    for x in xs {
        for i in 0..d {
            let a = x[i] as f64 - mean[i];
            for j in i..d {
                cov[i * d + j] += a * (x[j] as f64 - mean[j]);
            }
        }
    }
    let denom = (n.max(2) - 1) as f64;
    for i in 0..d {
        for j in i..d {
            cov[i * d + j] /= denom;
            cov[j * d + i] = cov[i * d + j];
        }
    }
    (mean, cov)
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, cyclic Jacobi.
fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0f64; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0f64; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// The Frechet distance between the Gaussians fitted to `a` and `b` (rows are samples).
pub fn frechet_distance(a: &[Vec<f32>], b: &[Vec<f32>]) -> Result<f64> {
    if a.len() < 2 || b.len() < 2 {
        return Err(EvalError::Invalid(format!(
            "Frechet distance needs at least 2 samples per set (got {} and {})",
            a.len(),
            b.len()
        )));
    }
    let d = a[0].len();
    if a.iter().chain(b).any(|x| x.len() != d) {
        return Err(EvalError::Invalid("feature vectors of different widths".into()));
    }
    let (m1, s1) = mean_cov(a);
    let (m2, s2) = mean_cov(b);
    // S1^1/2 = V diag(sqrt(l)) V^T.
    let (l1, v1) = symmetric_eigen(&s1, d);
    let mut root = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..d {
            root[i * d + j] = (0..d)
                .map(|k| v1[i * d + k] * l1[k].max(0.0).sqrt() * v1[j * d + k])
                .sum();
        }
    }
    let inner = matmul(&matmul(&root, &s2, d), &root, d);
    let (l, _) = symmetric_eigen(&inner, d);
    let trace_sqrt: f64 = l.iter().map(|x| x.max(0.0).sqrt()).sum();
    let mean_term: f64 = m1.iter().zip(&m2).map(|(x, y)| (x - y).powi(2)).sum();
    let trace: f64 = (0..d).map(|i| s1[i * d + i] + s2[i * d + i]).sum();
    Ok((mean_term + trace - 2.0 * trace_sqrt).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn gaussian(n: usize, mean: f32, scale: f32, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                (0..3)
                    .map(|_| {
                        mean + scale * (rng.random::<f32>() + rng.random::<f32>() + rng.random::<f32>() - 1.5) * 2.0
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn closed_form_cases() {
        // Same distribution: near zero. Shifted by 1 in each of 3 dims: ~3.
        let a = gaussian(4000, 0.0, 1.0, 1);
        let b = gaussian(4000, 0.0, 1.0, 2);
        let c = gaussian(4000, 1.0, 1.0, 3);
        assert!(frechet_distance(&a, &b).unwrap() < 0.02);
        assert!((frechet_distance(&a, &c).unwrap() - 3.0).abs() < 0.1);
        // Diagonal covariances: the trace term is sum (s1 - s2)^2 with s the std devs.
        let d = gaussian(4000, 0.0, 2.0, 4);
        let var1 = 1.0f64; // (uniform sum) variance of one coordinate at scale 1
        let expected = 3.0 * (var1.sqrt() * 2.0 - var1.sqrt()).powi(2);
        assert!(
            (frechet_distance(&a, &d).unwrap() - expected).abs() < 0.15 * expected,
            "{}",
            frechet_distance(&a, &d).unwrap()
        );
        assert!(frechet_distance(&a[..1], &b).is_err());
    }
}
