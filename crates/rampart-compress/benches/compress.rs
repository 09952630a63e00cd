//! Compression throughput per algorithm and level: 1 MiB of JSON-like text pushed through an
//! [`Encoder`] in 64 KiB chunks, as the compression stage does, on one core. Criterion reports
//! bytes of input per second; CPU time per MiB is its inverse. The compressed size of each
//! run is printed once, so the ratio goes next to the speed.
//!
//! Run: `cargo bench -p rampart-compress --bench compress -- --warm-up-time 1 --measurement-time 2`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rampart_compress::{CHUNK, Encoder, Encoding};

/// 1 MiB of an API's JSON: records with ids, names, timestamps and free text.
fn corpus() -> Vec<u8> {
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let mut out = String::with_capacity(1 << 20);
    out.push('[');
    let mut i: u64 = 0;
    while out.len() < (1 << 20) - 200 {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        let _ = write!(
            out,
            "{{\"id\":{i},\"name\":\"{} {}\",\"score\":{},\"created\":\"2026-{:02}-{:02}T{:02}:{:02}:00Z\",\"tags\":[\"{}\",\"{}\"],\"active\":{}}},",
            words[(x % 8) as usize],
            words[(x / 8 % 8) as usize],
            x % 10_000,
            x % 12 + 1,
            x % 28 + 1,
            x % 24,
            x % 60,
            words[(x / 64 % 8) as usize],
            words[(x / 512 % 8) as usize],
            x.is_multiple_of(2)
        );
        i += 1;
    }
    out.push_str("{}]");
    out.into_bytes()
}

/// Compresses `input` in chunks; returns the compressed size.
fn run(encoding: Encoding, level: u32, input: &[u8]) -> usize {
    let Ok(mut encoder) = Encoder::new(encoding, level) else {
        return 0;
    };
    let mut size = 0;
    for chunk in input.chunks(CHUNK) {
        size += encoder.write(chunk).map_or(0, |out| out.len());
    }
    size + encoder.finish().map_or(0, |out| out.len())
}

fn bench(c: &mut Criterion) {
    let input = corpus();
    let cases: &[(Encoding, &[u32])] = &[
        (Encoding::Gzip, &[1, 6, 9]),
        (Encoding::Brotli, &[0, 4, 6, 9, 11]),
        (Encoding::Zstd, &[1, 3, 9, 19]),
    ];
    let mut group = c.benchmark_group("compress_1mib_json");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);
    for (encoding, levels) in cases {
        for &level in *levels {
            let size = run(*encoding, level, &input);
            eprintln!(
                "{} level {level}: {} -> {size} bytes (ratio {:.2})",
                encoding.token(),
                input.len(),
                input.len() as f64 / size.max(1) as f64
            );
            group.bench_with_input(
                BenchmarkId::new(encoding.token(), level),
                &input,
                |b, input| b.iter(|| run(*encoding, level, black_box(input))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
