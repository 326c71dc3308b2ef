//! Criterion benchmarks of spnn-crypto, each next to a plaintext baseline measured in the same run.
//!
//! `cargo bench -p spnn-bench --bench crypto` — ring matmul 256×784×256 (one thread and all threads) against
//! Burn Flex's f32 matmul of the same shape; Paillier-2048 key generation, encryption
//! (fixed-base and textbook), CRT decryption, addition, scalar multiplication, packed
//! encryption per value, and the circuit-private re-randomisation of a returned product next to
//! the homomorphic product it protects; SPNN-HE's plaintext-times-ciphertext products at the
//! breast-cancer shapes (forward `X_j·Enc(W)`, backward `X_jᵀ·Enc(G)`), by Straus
//! multi-exponentiation next to one exponentiation per term, on one thread and on all; and the
//! two kernels of private set intersection (hash-and-blind 4,096 ids, re-blind 4,096 points on
//! ristretto255) next to a plaintext hash-set build of the same ids.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rug::Integer;
use spnn_crypto::paillier::{KeySize, Keypair, Packing};
use spnn_crypto::{RingMatrix, SecureRng};

const M: usize = 256;
const K: usize = 784;
const N: usize = 256;

fn pools() -> Vec<(String, rayon::ThreadPool)> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    [1, all]
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            (format!("{t}-thread"), pool)
        })
        .collect()
}

fn ring_matmul(c: &mut Criterion) {
    let mut rng = SecureRng::insecure_from_seed_for_tests(1);
    let a = RingMatrix::random(M, K, &mut rng);
    let b = RingMatrix::random(K, N, &mut rng);
    let device = Device::flex();
    let ta = Tensor::<2>::random([M, K], Distribution::Default, &device);
    let tb = Tensor::<2>::random([K, N], Distribution::Default, &device);

    let mut g = c.benchmark_group("matmul_256x784x256");
    g.throughput(Throughput::Elements((M * K * N) as u64));
    g.sample_size(20);
    for (name, pool) in pools() {
        g.bench_function(BenchmarkId::new("ring_u64", &name), |bench| {
            bench.iter(|| pool.install(|| black_box(a.matmul(&b).unwrap())))
        });
        g.bench_function(BenchmarkId::new("burn_flex_f32", &name), |bench| {
            bench.iter(|| pool.install(|| black_box(ta.clone().matmul(tb.clone()).into_data())))
        });
    }
    g.finish();
}

fn paillier(c: &mut Criterion) {
    let mut rng = SecureRng::insecure_from_seed_for_tests(2);
    let kp = Keypair::generate(KeySize::Bits2048, &mut rng);
    let (pk, sk) = (&kp.public, &kp.secret);
    pk.precompute();
    let m = Integer::from(0x1234_5678_9abc_def0u64);
    let ct = pk.encrypt(&m, &mut rng).unwrap();
    let ct2 = pk.encrypt(&m, &mut rng).unwrap();
    let scalar = Integer::from(u64::MAX - 12345);

    let mut g = c.benchmark_group("paillier_2048");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    // Single operations: none of these uses rayon once the fixed-base table exists.
    {
        g.bench_function("keygen", |b| {
            b.iter(|| black_box(Keypair::generate(KeySize::Bits2048, &mut rng)))
        });
        g.bench_function("fixed_base_table", |b| {
            b.iter(|| {
                let fresh = spnn_crypto::paillier::PublicKey::from_data(&pk.to_data()).unwrap();
                fresh.precompute();
                black_box(fresh)
            })
        });
        g.bench_function("encrypt_fixed_base", |b| {
            b.iter(|| black_box(pk.encrypt(&m, &mut rng).unwrap()))
        });
        g.bench_function("encrypt_textbook", |b| {
            b.iter(|| black_box(pk.encrypt_textbook(&m, &mut rng).unwrap()))
        });
        g.bench_function("decrypt_crt", |b| {
            b.iter(|| black_box(sk.decrypt(&ct).unwrap()))
        });
        g.bench_function("add", |b| b.iter(|| black_box(pk.add(&ct, &ct2).unwrap())));
        g.bench_function("mul_scalar_64bit", |b| {
            b.iter(|| black_box(pk.mul_scalar(&ct, &scalar).unwrap()))
        });
        // SPNN-HE's products multiply by feature encodings below 2^22.
        let feature = Integer::from((1u64 << 21) + 12345);
        g.bench_function("mul_scalar_22bit", |b| {
            b.iter(|| black_box(pk.mul_scalar(&ct, &feature).unwrap()))
        });
        // What every returned ciphertext costs for circuit privacy: a fixed-base exponent of
        // the key's 448 bits, plus the 22-bit features, ⌈log2 64⌉ terms and 40 statistical bits.
        let wide = pk.randomness_bits() + 22 + 6 + 40;
        g.bench_function(BenchmarkId::new("rerandomize_circuit_private", wide), |b| {
            b.iter(|| black_box(pk.rerandomize_wide(&ct, wide, &mut rng).unwrap()))
        });
        let packing = Packing::new(pk, 64 + 64 + 10 + 40 + 2).unwrap();
        let values: Vec<Integer> = (0..packing.slots())
            .map(|i| Integer::from(i as i64 * -977))
            .collect();
        g.throughput(Throughput::Elements(packing.slots() as u64));
        g.bench_function(
            BenchmarkId::new("encrypt_packed_per_value", packing.slots()),
            |b| b.iter(|| black_box(pk.encrypt_packed(&packing, &values, &mut rng).unwrap())),
        );
    }
    g.finish();
}

/// Okamoto–Uchiyama at 2048 bits, the operations of `paillier` above (its plaintexts hold a
/// third of the bits: `plaintext_bits` is printed).
fn okamoto_uchiyama(c: &mut Criterion) {
    use spnn_crypto::ou;
    let mut rng = SecureRng::insecure_from_seed_for_tests(5);
    let kp = ou::Keypair::generate(KeySize::Bits2048, &mut rng);
    let (pk, sk) = (&kp.public, &kp.secret);
    println!(
        "ou_2048: modulus {} bits, plaintexts below 2^{}",
        pk.bits(),
        pk.plaintext_bits()
    );
    let m = Integer::from(0x1234_5678_9abc_def0u64);
    let ct = pk.encrypt(&m, &mut rng).unwrap();
    let ct2 = pk.encrypt(&m, &mut rng).unwrap();
    let mut g = c.benchmark_group("ou_2048");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("keygen", |b| {
        b.iter(|| black_box(ou::Keypair::generate(KeySize::Bits2048, &mut rng)))
    });
    g.bench_function("encrypt_fixed_base", |b| {
        b.iter(|| black_box(pk.encrypt(&m, &mut rng).unwrap()))
    });
    // What SPNN-HE would encrypt: five packed 133-bit slots (and, as a re-randomisation's
    // mask, the same size again: g^M·h^r).
    let packed = (Integer::from(1) << 665) - 12345u32;
    g.bench_function("encrypt_665bit", |b| {
        b.iter(|| black_box(pk.encrypt(&packed, &mut rng).unwrap()))
    });
    g.bench_function("decrypt", |b| b.iter(|| black_box(sk.decrypt(&ct))));
    g.bench_function("add", |b| b.iter(|| black_box(pk.add(&ct, &ct2))));
    let scalar = Integer::from(u64::MAX - 12345);
    g.bench_function("mul_scalar_64bit", |b| {
        b.iter(|| black_box(pk.mul_scalar(&ct, &scalar).unwrap()))
    });
    let feature = Integer::from((1u64 << 21) + 12345);
    g.bench_function("mul_scalar_22bit", |b| {
        b.iter(|| black_box(pk.mul_scalar(&ct, &feature).unwrap()))
    });
    g.finish();
}

/// SPNN-HE's products at the breast-cancer shapes (batch 64, a holder's 15 features encoded
/// below 2^22, `h` = 64 in packed cells of the protocol's slot width): the forward
/// `X_j (64 × 15) ⊗ Enc(W) (15 × ⌈64 / slots⌉)` and the backward
/// `X_jᵀ (15 × 64) ⊗ Enc(cG) (64 × ⌈64 / slots⌉)`.
fn he_products(c: &mut Criterion) {
    let mut rng = SecureRng::insecure_from_seed_for_tests(3);
    let kp = Keypair::generate(KeySize::Bits2048, &mut rng);
    let pk = &kp.public;
    pk.precompute();
    let packing = Packing::new(pk, 64 + 22 + 6 + 40 + 3).unwrap();
    let (batch, d, h) = (64usize, 15usize, 64usize);
    let blocks = h.div_ceil(packing.slots());
    let encrypted = |rows: usize, rng: &mut SecureRng| {
        let m = RingMatrix::random(rows, h, rng);
        pk.encrypt_rows(&packing, &m, rng).unwrap()
    };
    let features = |rows: usize, cols: usize, rng: &mut SecureRng| {
        let v = (0..rows * cols)
            .map(|_| ((rand::RngCore::next_u64(rng) as i64) >> 43) as u64)
            .collect();
        RingMatrix::from_vec(rows, cols, v).unwrap()
    };
    let forward = (features(batch, d, &mut rng), encrypted(d, &mut rng));
    let backward = (features(d, batch, &mut rng), encrypted(batch, &mut rng));
    let mut g = c.benchmark_group("he_product_2048");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for (name, pool) in pools() {
        for (shape, (p, enc)) in [("forward", &forward), ("backward", &backward)] {
            let terms = (p.rows() * blocks * p.cols()) as u64;
            g.throughput(Throughput::Elements(terms));
            g.bench_function(BenchmarkId::new(format!("{shape}/by_terms"), &name), |b| {
                b.iter(|| {
                    pool.install(|| black_box(pk.plain_matmul_packed_by_terms(p, 22, enc).unwrap()))
                })
            });
            g.bench_function(BenchmarkId::new(format!("{shape}/straus"), &name), |b| {
                b.iter(|| pool.install(|| black_box(pk.plain_matmul_packed(p, 22, enc).unwrap())))
            });
        }
    }
    g.finish();
}

fn psi(c: &mut Criterion) {
    use spnn_crypto::psi::PsiKey;
    const IDS: usize = 4096;
    let mut rng = SecureRng::from_os_entropy();
    let key = PsiKey::random(&mut rng);
    let ids: Vec<u64> = (0..IDS as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let blinded = key.blind_ids(b"bench", &ids);
    let mut g = c.benchmark_group("psi_4096_ids");
    g.throughput(Throughput::Elements(IDS as u64));
    g.sample_size(10);
    for (name, pool) in pools() {
        g.bench_function(BenchmarkId::new("hash_and_blind", &name), |bench| {
            bench.iter(|| pool.install(|| black_box(key.blind_ids(b"bench", &ids))))
        });
        g.bench_function(BenchmarkId::new("reblind", &name), |bench| {
            bench.iter(|| pool.install(|| black_box(key.reblind(&blinded).unwrap())))
        });
    }
    g.bench_function("plaintext_hash_set", |bench| {
        bench.iter(|| {
            black_box(
                ids.iter()
                    .copied()
                    .collect::<std::collections::HashSet<u64>>(),
            )
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    ring_matmul,
    paillier,
    okamoto_uchiyama,
    he_products,
    psi
);
criterion_main!(benches);
