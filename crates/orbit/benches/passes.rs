//! Pass prediction throughput: a 500 km sun-synchronous satellite over N stations for D days.
//!
//! `cargo bench -p orbit --bench passes` prints one row per workload. Each row is the best of
//! three runs (the library reads no clock; this harness does).

use std::time::{Duration, Instant};

use orbit::PassBenchmark;

fn main() {
    println!(
        "{:>8} {:>5} {:>12} {:>12} {:>14}",
        "stations", "days", "passes found", "time (ms)", "µs per pass"
    );
    for (stations, days) in [(1, 1.0), (1, 7.0), (10, 1.0), (10, 7.0)] {
        let bench = PassBenchmark::new(stations);
        let mut best = Duration::MAX;
        let mut found = 0;
        for _ in 0..3 {
            let start = Instant::now();
            found = bench.run(days).expect("benchmark satellite propagates");
            best = best.min(start.elapsed());
        }
        let ms = best.as_secs_f64() * 1e3;
        println!(
            "{stations:>8} {days:>5} {found:>12} {ms:>12.1} {:>14.1}",
            ms * 1e3 / found.max(1) as f64
        );
    }
}
