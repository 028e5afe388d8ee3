//! YAML alias bombs of the largest size the API takes (1 MiB), sent to operation validation: each
//! is answered with one diagnostic, and the ground's memory stays bounded while it judges them.
//!
//! The test binary counts every allocation (its global allocator), so the peak is measured, not
//! guessed; it holds this file's test only, so nothing else allocates beside it but the ground.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::http::StatusCode;
use common::ground;

/// The largest YAML body the API takes.
const BODY_LIMIT: usize = 1 << 20;

/// The most the ground may hold beyond what it held before the request, while it answers one.
const PEAK_BOUND: usize = 64 << 20;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = CURRENT.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Pads `yaml` with a comment to exactly [`BODY_LIMIT`] bytes.
fn to_limit(mut yaml: String) -> String {
    assert!(yaml.len() < BODY_LIMIT - 3, "the bomb fits the body limit");
    yaml.push('#');
    yaml.push_str(&"-".repeat(BODY_LIMIT - yaml.len() - 1));
    yaml.push('\n');
    assert_eq!(yaml.len(), BODY_LIMIT);
    yaml
}

/// One string of 64 KiB (double-quoted with an escape, so the tree owns a copy of it for every
/// alias) aliased about 245,000 times: some 16 GB once expanded.
fn string_bomb() -> String {
    let mut yaml = format!(
        "id: bomb\nnamespace: ns\ndescription: &s \"{}\\t\"\ntasks: [*s",
        "y".repeat(64 << 10)
    );
    while yaml.len() + 8 < BODY_LIMIT - 64 {
        yaml.push_str(", *s");
    }
    yaml.push_str("]\n");
    to_limit(yaml)
}

/// Nine levels of ten aliases of the level below (10^9 nodes), then a list of the top level
/// repeated to fill the body.
fn node_bomb() -> String {
    let mut yaml =
        String::from("id: bomb\nnamespace: ns\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let row = vec![format!("*l{}", i - 1); 10].join(", ");
        yaml.push_str(&format!("l{i}: &l{i} [{row}]\n"));
    }
    yaml.push_str("tasks: [*l8");
    while yaml.len() + 8 < BODY_LIMIT - 64 {
        yaml.push_str(", *l8");
    }
    yaml.push_str("]\n");
    to_limit(yaml)
}

/// What the bounds still let through, padded to the body limit: 1.9 MB of text once its
/// aliases are expanded, and 190,000 nodes (80,000 from aliases, under saphyr's own budget of
/// 100,000 nodes made by aliases).
fn just_under_the_bounds() -> String {
    let mut yaml = format!(
        "id: near\nnamespace: ns\ns: &s \"{}\\t\"\nt: [{}]\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n",
        "y".repeat(60 << 10),
        ["*s"; 30].join(", ")
    );
    for i in 1..4 {
        let row = vec![format!("*l{}", i - 1); 10].join(", ");
        yaml.push_str(&format!("l{i}: &l{i} [{row}]\n"));
    }
    yaml.push_str(&format!("m: [{}]\n", ["*l3"; 6].join(", ")));
    yaml.push_str(&format!("n: [{}]\n", vec!["x"; 100_000].join(",")));
    to_limit(yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_bombs_of_a_mebibyte_get_a_diagnostic_in_bounded_memory() {
    let g = ground().await;
    let t = g.login("alice").await;
    let near = just_under_the_bounds();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let r = g.post_yaml("/api/v1/operations/validate", &t, &near).await;
    let (elapsed, peak) = (started.elapsed(), PEAK.load(Ordering::Relaxed) - before);
    eprintln!(
        "just under the bounds ({} bytes): answered in {elapsed:?}, peak {:.1} MiB above the baseline",
        near.len(),
        peak as f64 / f64::from(1 << 20)
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["valid"], false, "it has no tasks and unknown fields");
    assert!(
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["message"].as_str().unwrap().starts_with("operation ")),
        "the tree was built and read: {v}"
    );
    assert!(peak < PEAK_BOUND, "the ground held {peak} bytes more");

    for (name, bomb) in [("string", string_bomb()), ("nodes", node_bomb())] {
        let before = CURRENT.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let started = Instant::now();
        let r = g.post_yaml("/api/v1/operations/validate", &t, &bomb).await;
        let elapsed = started.elapsed();
        let peak = PEAK.load(Ordering::Relaxed) - before;
        eprintln!(
            "{name} bomb ({} bytes): answered in {elapsed:?}, peak {:.1} MiB above the baseline",
            bomb.len(),
            peak as f64 / f64::from(1 << 20)
        );
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["valid"], false);
        let diagnostics = v["diagnostics"].as_array().unwrap();
        assert_eq!(diagnostics.len(), 1, "{v}");
        let message = diagnostics[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("YAML syntax error at line ")
                && message.ends_with("(aliases expanded)"),
            "{message}"
        );
        assert!(
            peak < PEAK_BOUND,
            "the {name} bomb made the ground hold {peak} bytes more"
        );
        // Applying it is refused the same way, and nothing is stored.
        let r = g.post_yaml("/api/v1/operations", &t, &bomb).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .ends_with("(aliases expanded)")
        );
    }
}
