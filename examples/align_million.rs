//! Private sample alignment at scale: two data holders with `N` ids each (1,000,000 by
//! default), half of them common, aligned by ECDH-PSI through the server — every party a thread
//! of this process over in-memory channels, so the run shares this machine's cores the way
//! three hosts would not. Prints the wall time and the work per id next to a plaintext
//! hash-set intersection of the same sets measured in the same run, and the process's peak
//! resident memory.
//!
//! ```text
//! cargo run -p spnn-bench --release --example align_million            # N = 1,000,000
//! cargo run -p spnn-bench --release --example align_million -- 100000
//! ```

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use spnn::burn::align::{AlignSpec, align};
use spnn::net::{Network, NetworkConfig, PartyId, Roster};

fn peak_resident_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of ids"))
        .unwrap_or(1_000_000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let common: Vec<u64> = (0..n / 2).map(|_| rng.random()).collect();
    let sets: Vec<Vec<u64>> = (0..2)
        .map(|_| {
            let mut s = common.clone();
            s.extend((0..n - n / 2).map(|_| rng.random::<u64>()));
            s
        })
        .collect();

    let t = Instant::now();
    let first: HashSet<u64> = sets[0].iter().copied().collect();
    let plain = sets[1].iter().filter(|id| first.contains(id)).count();
    let plain_time = t.elapsed();

    let roster = Roster::spnn(2, false).expect("three parties");
    let nets = Network::in_memory(
        &roster,
        NetworkConfig::new(7).with_timeout(Duration::from_secs(3600)),
    );
    let spec = AlignSpec {
        participants: vec![PartyId(1), PartyId(2)],
        aggregator: PartyId(0),
    };
    let t = Instant::now();
    let parties: Vec<_> = nets
        .into_iter()
        .enumerate()
        .map(|(i, net)| {
            let ids = (i > 0).then(|| sets[i - 1].clone());
            let spec = spec.clone();
            std::thread::spawn(move || align(&net, &spec, ids.as_deref()))
        })
        .collect();
    let results: Vec<_> = parties
        .into_iter()
        .map(|p| p.join().expect("party thread").expect("alignment"))
        .collect();
    let psi_time = t.elapsed();
    assert!(
        results.iter().all(|r| r.size == plain),
        "PSI and plaintext disagree"
    );

    let threads = rayon::current_num_threads();
    println!("| | ids per holder | common | wall time | per id and holder |");
    println!("|---|---|---|---|---|");
    println!(
        "| plaintext hash-set intersection | {n} | {plain} | {:.3} s | {:.2} µs |",
        plain_time.as_secs_f64(),
        plain_time.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "| ECDH-PSI, 2 holders + aggregator ({threads} threads) | {n} | {} | {:.1} s | {:.1} µs |",
        results[0].size,
        psi_time.as_secs_f64(),
        psi_time.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "\nPSI / plaintext: {:.0}x; peak resident memory {}",
        psi_time.as_secs_f64() / plain_time.as_secs_f64(),
        peak_resident_mb().map_or("unknown".into(), |m| format!("{m:.0} MB"))
    );
}
