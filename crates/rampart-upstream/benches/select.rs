//! Cost of one pick for each balancing algorithm over 4 and 32 targets (all healthy, some
//! load in flight), and of computing a consistent-hashing key.
//!
//! Run: `cargo bench -p rampart-upstream --bench select -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use rampart_config::model::Balance;
use rampart_upstream::balance::{Picker, View, stable_hash};
use rampart_upstream::health::TargetStats;

const ALGORITHMS: [Balance; 7] = [
    Balance::P2c,
    Balance::RoundRobin,
    Balance::WeightedRoundRobin,
    Balance::LeastRequest,
    Balance::Random,
    Balance::RingHash,
    Balance::Maglev,
];

fn bench_pick(c: &mut Criterion) {
    for n in [4usize, 32] {
        let labels: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:8080")).collect();
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 3) as u32).collect();
        let stats: Vec<Arc<TargetStats>> = (0..n).map(|_| Arc::default()).collect();
        for (i, s) in stats.iter().enumerate() {
            s.set_load((i % 5) as u32, 800 + 100 * i as u64);
        }
        let view = View {
            stats: &stats,
            weights: &weights,
            all: false,
            tried: &[],
            max_in_flight: u32::MAX,
        };
        let mut group = c.benchmark_group(format!("pick/{n}_targets"));
        for balance in ALGORITHMS {
            let picker = Picker::new(balance, &refs, &weights);
            let mut key = 0u64;
            group.bench_function(balance.as_str(), |b| {
                b.iter(|| {
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    black_box(picker.pick(black_box(&view), Some(key)))
                });
            });
        }
        group.finish();
    }
}

fn bench_key(c: &mut Criterion) {
    c.bench_function("hash_key/client_ip", |b| {
        b.iter(|| black_box(stable_hash(black_box(&[203, 0, 113, 9]))));
    });
    c.bench_function("hash_key/36_byte_cookie", |b| {
        b.iter(|| {
            black_box(stable_hash(black_box(
                b"8f14e45f-ceea-467a-9575-3ef9f8d2c2a1",
            )))
        });
    });
}

criterion_group!(benches, bench_pick, bench_key);
criterion_main!(benches);
