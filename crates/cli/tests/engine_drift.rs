//! Systems as data end to end: a real flight agent on the real Docker Engine reports what its
//! engine holds at each hello, and the ground shows how it drifts from the system's declaration.

#![allow(dead_code)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::{Stack, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_engine_report_shows_drift_from_the_declaration() {
    let platform = preflight::host_platform();
    let wrong = wire::Digest::of(b"not the busybox onboard");
    let mut catalogue = wire::default_catalogue();
    for e in &mut catalogue {
        if e.name == "busybox:latest" {
            e.digest = Some(wrong);
        }
    }
    let absent = format!("orbitdock-absent/{}:1", unique("x"));
    catalogue.push(wire::CatalogueEntry {
        name: absent.clone(),
        digest: None,
        platform: None,
        description: String::new(),
        shell: false,
        libraries: Vec::new(),
        glibc: None,
        interpreters: Vec::new(),
        layers: Vec::new(),
    });
    let declared = wire::SystemDescription::new(platform, wire::Builder::Classic, catalogue);
    let stack =
        Stack::start_with(|g| g.with_declarations(BTreeMap::from([("em".into(), declared)]))).await;
    let user = stack.user(&unique("drift")).await;

    let mut system = Value::Null;
    for _ in 0..600 {
        let (status, s) = user.get("/api/v1/systems/em").await;
        assert_eq!(status, 200, "{s}");
        if !s["engine"].is_null() {
            system = s;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!system.is_null(), "the EM agent never reported its engine");

    let engine = &system["engine"];
    assert_eq!(engine["platform"], platform, "{engine}");
    assert_eq!(engine["builder"], "classic");
    let images = engine["images"].as_array().unwrap();
    assert!(
        images
            .iter()
            .all(|i| !i["name"].as_str().unwrap().starts_with("tenants/")),
        "tenant images are not the catalogue's: {engine}"
    );
    let busybox = images
        .iter()
        .find(|i| i["name"] == "busybox:latest")
        .unwrap_or_else(|| panic!("the seeded busybox is reported: {engine}"));
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", "busybox:latest"])
        .output()
        .unwrap();
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(busybox["id"], id.as_str());
    assert!(
        wire::same_platform(busybox["platform"].as_str().unwrap(), platform),
        "{busybox}"
    );

    let drift: Vec<(&str, &str)> = system["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["subject"].as_str().unwrap()))
        .collect();
    assert!(
        drift.contains(&("digest_mismatch", "busybox:latest")),
        "{drift:?}"
    );
    assert!(
        drift.contains(&("missing_image", absent.as_str())),
        "{drift:?}"
    );
    // The seeded stand-ins are there, on this platform, built as declared.
    for (kind, subject) in &drift {
        assert!(
            !matches!(*kind, "platform_mismatch" | "builder_mismatch"),
            "{drift:?}"
        );
        assert!(*kind != "missing_image" || *subject == absent, "{drift:?}");
    }
    let mismatch = system["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "digest_mismatch")
        .unwrap();
    assert_eq!(mismatch["declared"], wrong.to_string());
    assert_eq!(mismatch["reported"], id.as_str());
}
