//! The ELF reader and the binary rules, on arbitrary bytes: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use preflight::System;

fuzz_target!(|data: &[u8]| {
    let system = System::flight("sat1");
    for base in ["gcr.io/distroless/cc-debian12", "scratch", "busybox"] {
        let _ = preflight::lint_binary("app", data, &system, base).render();
    }
});
