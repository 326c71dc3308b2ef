//! A two-holder secure matrix product, checked against plaintext, plus a Paillier round trip.
//!
//! `cargo run --example crypto_demo`
//!
//! Two data holders each own some feature columns of the same samples; together they compute
//! `Z = X·W` for a secret-shared weight matrix `W` with a dealer's Beaver triple, then truncate
//! the product back to 16 fractional bits exactly with a dealer's truncation triple. Only the
//! sum `Z` is opened at the end.

use rug::Integer;
use spnn::crypto::beaver::{
    Dealer, beaver_masks, beaver_product, open, truncation_finish, truncation_open,
};
use spnn::crypto::paillier::{KeySize, Keypair};
use spnn::crypto::share::{reconstruct, share};
use spnn::prelude::*;

fn main() -> Result<(), spnn::crypto::CryptoError> {
    let fp = FixedPoint::default();
    let mut rng = SecureRng::from_os_entropy();
    let (batch, features, hidden) = (4, 6, 3);

    // Plaintext inputs, known here only to print the comparison at the end.
    let x: Vec<f32> = (0..batch * features)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let w: Vec<f32> = (0..features * hidden)
        .map(|i| (i as f32 * 0.11).cos() * 0.5)
        .collect();

    // Each value is shared between the two holders; neither share says anything alone.
    let xs = share(
        &fp.encode_matrix(batch, features, &x)?,
        fp.frac_bits(),
        2,
        &mut rng,
    )?;
    let ws = share(
        &fp.encode_matrix(features, hidden, &w)?,
        fp.frac_bits(),
        2,
        &mut rng,
    )?;

    // The dealer hands out a Beaver triple; the holders open E = X − U and F = W − V.
    let mut dealer = Dealer::new(SecureRng::from_os_entropy());
    let triples = dealer.matrix_triple(
        2,
        (batch, features, hidden),
        (fp.frac_bits(), fp.frac_bits()),
    )?;
    let masks = [
        beaver_masks(&xs[0], &ws[0], &triples[0])?,
        beaver_masks(&xs[1], &ws[1], &triples[1])?,
    ];
    let e = open(&[masks[0].0.clone(), masks[1].0.clone()])?;
    let f = open(&[masks[0].1.clone(), masks[1].1.clone()])?;
    let products = triples
        .iter()
        .map(|t| beaver_product(&e, &f, t))
        .collect::<Result<Vec<_>, _>>()?;
    // Exact truncation: |x·w| summed over 6 terms stays below 2^40 at scale 2^32.
    let truncation =
        dealer.truncation_triples(2, (batch, hidden), 2 * fp.frac_bits(), fp.frac_bits(), 40)?;
    let c = open(&[
        truncation_open(&products[0], &truncation[0])?,
        truncation_open(&products[1], &truncation[1])?,
    ])?;
    let zs = truncation
        .iter()
        .map(|t| truncation_finish(&c, t))
        .collect::<Result<Vec<_>, _>>()?;
    let z = fp.decode_matrix(&reconstruct(&zs)?);

    let bound = fp.matmul_error_bound(features, 1.0, 0.5);
    let mut worst = 0f32;
    for i in 0..batch {
        for j in 0..hidden {
            let exact: f32 = (0..features)
                .map(|k| x[i * features + k] * w[k * hidden + j])
                .sum();
            worst = worst.max((z[i * hidden + j] - exact).abs());
        }
    }
    println!(
        "secure X·W ({batch}x{features} · {features}x{hidden}): max |error| = {worst:.2e} (bound {bound:.2e})"
    );

    let kp = Keypair::generate(KeySize::Bits2048, &mut rng);
    let a = kp.public.encrypt(&Integer::from(-1234), &mut rng)?;
    let b = kp.public.mul_scalar(&a, &Integer::from(1000))?;
    println!(
        "Paillier-2048: Dec(1000 ⊗ Enc(-1234)) = {}",
        kp.secret.decrypt_signed(&b)?
    );
    Ok(())
}
