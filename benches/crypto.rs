//! Criterion benchmarks of spnn-crypto, each next to a plaintext baseline measured in the same run.
//!
//! `cargo bench -p spnn-bench --bench crypto` — ring matmul 256×784×256 (one thread and all threads) against
//! Burn Flex's f32 matmul of the same shape; Paillier-2048 key generation, encryption
//! (fixed-base and textbook), CRT decryption, addition, scalar multiplication, packed
//! encryption per value, and the circuit-private re-randomisation of a returned product next to
//! the homomorphic product it protects.

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

criterion_group!(benches, ring_matmul, paillier);
criterion_main!(benches);
