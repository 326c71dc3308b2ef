//! Image-quality measures of a reconstruction against the original: PSNR and SSIM.
//!
//! Both take images with pixels in [0, 1] (peak value 1), as `PIXELS`-long row-major slices of
//! `side × side` images. They are the privacy-loss measures of PrivyNet: the better an attacker
//! reconstructs the private images from the uploaded features, the higher both are.

use crate::error::{PrivyError, Result};

/// Peak signal-to-noise ratio in dB: `10·log10(1 / MSE)`, peak 1. Identical images give
/// `f64::INFINITY`.
pub fn psnr(original: &[f32], reconstruction: &[f32]) -> Result<f64> {
    check(original, reconstruction)?;
    let mse = original
        .iter()
        .zip(reconstruction)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        / original.len() as f64;
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    })
}

/// Gaussian window side of SSIM (Wang et al. 2004).
pub const SSIM_WINDOW: usize = 11;
/// Gaussian window standard deviation of SSIM.
pub const SSIM_SIGMA: f64 = 1.5;
/// SSIM's `C1 = (K1·L)²` with `K1 = 0.01`, `L = 1`.
pub const SSIM_C1: f64 = 0.01 * 0.01;
/// SSIM's `C2 = (K2·L)²` with `K2 = 0.03`, `L = 1`.
pub const SSIM_C2: f64 = 0.03 * 0.03;

/// Structural similarity of two `side × side` images: the mean over every position where the
/// 11×11 Gaussian window (σ = 1.5) fits inside the image of
/// `(2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`.
pub fn ssim(original: &[f32], reconstruction: &[f32], side: usize) -> Result<f64> {
    check(original, reconstruction)?;
    if original.len() != side * side || side < SSIM_WINDOW {
        return Err(PrivyError::Shape(format!(
            "{} pixels is not a {side}×{side} image of side ≥ {SSIM_WINDOW}",
            original.len()
        )));
    }
    let kernel = gaussian_window();
    let half = SSIM_WINDOW / 2;
    let mut total = 0.0;
    let mut count = 0usize;
    for cy in half..side - half {
        for cx in half..side - half {
            let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (ky, row) in kernel.iter().enumerate() {
                for (kx, &w) in row.iter().enumerate() {
                    let i = (cy + ky - half) * side + cx + kx - half;
                    let (a, b) = (original[i] as f64, reconstruction[i] as f64);
                    mx += w * a;
                    my += w * b;
                    xx += w * a * a;
                    yy += w * b * b;
                    xy += w * a * b;
                }
            }
            let (vx, vy, cov) = (xx - mx * mx, yy - my * my, xy - mx * my);
            total += (2.0 * mx * my + SSIM_C1) * (2.0 * cov + SSIM_C2)
                / ((mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2));
            count += 1;
        }
    }
    Ok(total / count as f64)
}

/// Mean PSNR and mean SSIM over image pairs stored one after another.
pub fn mean_quality(originals: &[f32], reconstructions: &[f32], side: usize) -> Result<(f64, f64)> {
    check(originals, reconstructions)?;
    let pixels = side * side;
    if pixels == 0 || !originals.len().is_multiple_of(pixels) {
        return Err(PrivyError::Shape(format!(
            "{} values are not whole {side}×{side} images",
            originals.len()
        )));
    }
    let n = originals.len() / pixels;
    let (mut p, mut s) = (0.0, 0.0);
    for (a, b) in originals.chunks(pixels).zip(reconstructions.chunks(pixels)) {
        // A perfect reconstruction of one image would make the mean infinite; cap at 100 dB.
        p += psnr(a, b)?.min(100.0);
        s += ssim(a, b, side)?;
    }
    Ok((p / n as f64, s / n as f64))
}

fn check(a: &[f32], b: &[f32]) -> Result<()> {
    if a.len() != b.len() || a.is_empty() {
        return Err(PrivyError::Shape(format!(
            "images of {} and {} pixels",
            a.len(),
            b.len()
        )));
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(PrivyError::NonFinite("image pixel".into()));
    }
    Ok(())
}

fn gaussian_window() -> [[f64; SSIM_WINDOW]; SSIM_WINDOW] {
    let half = (SSIM_WINDOW / 2) as f64;
    let g: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-(i as f64 - half).powi(2) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let sum: f64 = g.iter().sum();
    let mut w = [[0.0; SSIM_WINDOW]; SSIM_WINDOW];
    for (y, row) in w.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            *v = g[y] * g[x] / (sum * sum);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_a_constant_offset_is_10_log10_of_inverse_squared_offset() {
        let a = vec![0.5f32; 784];
        let b = vec![0.6f32; 784];
        // MSE = 0.1² (in f32: |0.6 − 0.5| = 0.100000024), PSNR = 20 dB.
        let d = (0.6f32 as f64 - 0.5f32 as f64).powi(2);
        assert!((psnr(&a, &b).unwrap() - (-10.0 * d.log10())).abs() < 1e-12);
        assert!((psnr(&a, &b).unwrap() - 20.0).abs() < 1e-5);
        assert_eq!(psnr(&a, &a).unwrap(), f64::INFINITY);
    }

    #[test]
    fn psnr_of_half_the_pixels_wrong_by_one_is_3_db() {
        let a = vec![0f32; 100];
        let b: Vec<f32> = (0..100).map(|i| (i % 2) as f32).collect();
        // MSE = 1/2 → PSNR = 10·log10(2).
        assert!((psnr(&a, &b).unwrap() - 10.0 * 2f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn ssim_of_constant_images_is_the_luminance_term() {
        let (a, b) = (0.2f32, 0.7f32);
        let x = vec![a; 784];
        let y = vec![b; 784];
        let (a, b) = (a as f64, b as f64);
        let expected = (2.0 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1);
        assert!((ssim(&x, &y, 28).unwrap() - expected).abs() < 1e-9);
        assert!((ssim(&x, &x, 28).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn ssim_of_an_image_against_its_negative_is_negative() {
        // A checkerboard x against 1 − x: equal means (0.5), equal variances, covariance −σ².
        let x: Vec<f32> = (0..784).map(|i| ((i / 28 + i % 28) % 2) as f32).collect();
        let y: Vec<f32> = x.iter().map(|v| 1.0 - v).collect();
        let s = ssim(&x, &y, 28).unwrap();
        assert!(s < -0.9, "ssim {s}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(psnr(&[0.0; 3], &[0.0; 4]).is_err());
        assert!(psnr(&[f32::NAN; 4], &[0.0; 4]).is_err());
        assert!(ssim(&[0.0; 100], &[0.0; 100], 10).is_err());
        assert!(mean_quality(&[0.0; 785], &[0.0; 785], 28).is_err());
    }
}
