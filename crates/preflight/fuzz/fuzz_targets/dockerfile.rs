//! The Dockerfile parser and every rule, on arbitrary text: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use preflight::{BuildSite, Builder, MemContext, Options, System};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut buildkit = System::em("linux/amd64");
    buildkit.builder = Builder::BuildKit;
    let ground = Options { site: BuildSite::Ground, build_args: vec![("A".into(), "1".into())], tenant_images: Vec::new() };
    for (system, options) in [(System::flight("sat1"), Options::onboard()), (buildkit, ground)] {
        let report = preflight::lint_dockerfile_text(&text, "Dockerfile", &system, &options);
        let _ = report.render();
        let mut ctx = MemContext::new();
        ctx.add("Dockerfile", data);
        ctx.add("app", b"\x7fELF\x02\x01\x01\x00");
        ctx.add("dir/run.sh", b"#!/bin/bash\n");
        let _ = preflight::lint_source(&ctx, "Dockerfile", &system, &options);
    }
});
