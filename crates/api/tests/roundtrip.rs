//! Every type family read from the JSON `docs/api.md` shows and written back unchanged: the same
//! field names, the same `null`s, the same absent fields.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Reads `v` as a `T`, writes it back, and checks nothing changed; returns the `T`.
fn check<T: Serialize + DeserializeOwned>(v: Value) -> T {
    let t: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{v:#} does not read as {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(back, v, "{} changed on the way", std::any::type_name::<T>());
    t
}

#[test]
fn session() {
    check::<api::LoginRequest>(json!({"user": "demo", "password": "pw"}));
    check::<api::LoginResponse>(json!({"token": "ab".repeat(32), "user": "demo"}));
    check::<api::Health>(json!({"status": "ok"}));
}

#[test]
fn errors() {
    let plain = check::<api::ErrorBody>(
        json!({"error": {"code": "not_found", "message": "execution 'x' not found"}}),
    );
    assert_eq!(plain.error.code, api::ErrorCode::NotFound);
    assert_eq!(plain.error.diagnostics, None);
    let invalid = check::<api::ErrorBody>(json!({"error": {
        "code": "bad_request", "message": "the operation is invalid (1 problem): …",
        "diagnostics": [{"severity": "error", "line": 12, "column": 7, "task": "build",
                         "message": "task 'build' (line 7): unknown type 'docker.bild'"},
                        {"severity": "warning", "line": 1, "column": 1, "task": null,
                         "message": "operation (line 1): …"}]}}));
    assert_eq!(invalid.error.diagnostics.map(|d| d.len()), Some(2));
    let preflight = check::<api::ErrorBody>(json!({"error": {
        "code": "bad_request", "message": "preflight found 1 error …",
        "preflight": [{"task": "build", "file": "Dockerfile", "line": 2, "column": 5,
                       "code": "OD201", "severity": "error", "message": "…", "help": null}]}}));
    assert_eq!(
        preflight.error.preflight.unwrap()[0].severity,
        api::Severity::Error
    );
    for (code, text) in [
        (api::ErrorCode::BadRequest, "bad_request"),
        (api::ErrorCode::Unauthorized, "unauthorized"),
        (api::ErrorCode::Forbidden, "forbidden"),
        (api::ErrorCode::NotFound, "not_found"),
        (api::ErrorCode::Conflict, "conflict"),
        (api::ErrorCode::RequestTimeout, "request_timeout"),
        (api::ErrorCode::TooLarge, "too_large"),
        (api::ErrorCode::Unprocessable, "unprocessable"),
        (api::ErrorCode::TooManyRequests, "too_many_requests"),
        (api::ErrorCode::Internal, "internal"),
    ] {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(text));
        assert_eq!(code.as_str(), text);
    }
}

#[test]
fn namespaces_and_files() {
    check::<api::CreateNamespace>(json!({"name": "ns"}));
    assert!(
        serde_json::from_value::<api::CreateNamespace>(json!({"name": "ns", "owner": "x"}))
            .is_err(),
        "unknown fields are refused"
    );
    check::<api::NamespaceList>(json!({"namespaces": [
        {"name": "demo", "owner": "alice", "created_at": "2026-11-28T23:10:00.123Z"}]}));
    check::<api::Uploaded>(json!({"files": [
        {"path": "/app/run.sh", "version": 2, "size": 18, "digest": "sha256:00", "mode": "755",
         "created_at": "2026-11-28T23:10:00.123Z"}]}));
    check::<api::FileList>(json!({"files": [
        {"path": "/app/run.sh", "version": 3, "versions": 3, "size": 2, "digest": "sha256:00",
         "mode": "700", "created_at": "2026-11-28T23:10:00.123Z"}]}));
}

#[test]
fn operations() {
    let finding = json!({"task": "build", "file": "Dockerfile", "line": 2, "column": 5,
        "code": "OD201", "severity": "warning", "message": "…", "help": "…"});
    check::<api::AppliedOperation>(json!({"namespace": "demo", "id": "hello", "revision": 1,
        "created_at": "…", "updated_at": "…", "preflight": [finding]}));
    check::<api::Validation>(json!({"valid": false,
        "diagnostics": [{"severity": "error", "line": 5, "column": 4, "task": null,
                         "message": "YAML syntax error at line 5, column 4: …"}],
        "preflight": []}));
    check::<api::OperationList>(json!({"operations": [{"namespace": "demo", "id": "hello",
        "revision": 2, "created_at": "…", "updated_at": "…"}]}));
    check::<api::OperationDetail>(json!({"namespace": "demo", "id": "hello", "revision": 2,
        "yaml": "id: hello\n", "created_at": "…", "updated_at": "…",
        "executions": [{"id": "6f1c", "state": "RUNNING", "system": "em", "created_at": "…"}]}));
    assert_eq!(
        serde_json::to_value(api::Severity::Info).unwrap(),
        json!("info")
    );
}

#[test]
fn executions() {
    let start = check::<api::StartExecution>(
        json!({"namespace": "ns", "operation": "op", "system": "em", "force": false}),
    );
    assert_eq!(start.system.as_deref(), Some("em"));
    let bare: api::StartExecution =
        serde_json::from_value(json!({"namespace": "ns", "operation": "op"})).unwrap();
    assert_eq!((bare.system, bare.force), (None, false));
    assert!(
        serde_json::from_value::<api::StartExecution>(
            json!({"namespace": "ns", "operation": "op", "sytem": "em"})
        )
        .is_err(),
        "unknown fields are refused"
    );

    // The example of docs/api.md, with a failed task, a downlink still waiting for its files, a
    // files.list and an uplink ETA.
    let e = check::<api::Execution>(json!({
        "id": "6f1c", "tenant": "alice", "namespace": "demo", "operation": "hello", "revision": 1,
        "system": "em", "state": "RUNNING",
        "created_at": "…", "scheduled_at": "…", "started_at": "…", "finished_at": null,
        "history": [{"state": "CREATED", "at": "…"}, {"state": "AWAITING_APPROVAL", "at": "…"},
                    {"state": "SCHEDULED", "at": "…", "by": "ops"}],
        "errors": [{"task": "build", "code": 12, "name": "DOCKER_BUILD_FAILED", "message": "…",
                    "log_tail": ["…"]},
                   {"code": 21, "name": "TRANSFER_FAILED",
                    "message": "the link to system 'em' has stopped", "log_tail": []}],
        "tasks": [
            {"index": 0, "id": "down", "type": "downlink", "state": "SUCCESS",
             "started_at": "…", "finished_at": "…",
             "history": [{"state": "CREATED", "at": "…"}],
             "error": null,
             "outputs": {"files": [{"path": "/out/result.txt", "digest": "sha256:00", "size": 12,
                                    "version": 1,
                                    "uri": "/api/v1/namespaces/demo/files/out/result.txt?version=1",
                                    "contentType": "application/octet-stream",
                                    "contentLength": 12}],
                         "listing": [], "image": null, "message": null, "exit_code": null,
                         "log_tail": [], "uri": null, "contentType": null,
                         "contentLength": 12}},
            {"index": 1, "id": "down2", "type": "downlink", "state": "RUNNING",
             "started_at": "…", "finished_at": null, "history": [], "error": null,
             "outputs": {"files": [{"path": "out/a.txt", "digest": "sha256:00", "size": 1,
                                    "uri": null, "contentType": null, "contentLength": 1}],
                         "listing": [], "image": null,
                         "message": "waiting for 1 of 1 files to come down",
                         "exit_code": null, "log_tail": [], "uri": null, "contentType": null,
                         "contentLength": 1}},
            {"index": 2, "id": "ls", "type": "files.list", "state": "SUCCESS",
             "started_at": "…", "finished_at": "…", "history": [], "error": null,
             "outputs": {"files": [{"path": "/in/input.txt", "digest": null, "size": 5,
                                    "uri": null, "contentType": null, "contentLength": 5}],
                         "listing": [{"path": "/in", "size": 0, "is_dir": true, "modified": "…"},
                                     {"path": "/in/input.txt", "size": 5, "is_dir": false,
                                      "modified": "…"}],
                         "image": "tenants/a/app:v1", "message": "ok", "exit_code": 0,
                         "log_tail": ["hello"], "uri": null, "contentType": null,
                         "contentLength": 5}},
            {"index": 3, "id": "build", "type": "docker.build", "state": "FAILED",
             "started_at": null, "finished_at": "…", "history": [],
             "error": {"code": 12, "name": "DOCKER_BUILD_FAILED", "message": "…",
                       "log_tail": []},
             "outputs": null}
        ],
        "uplink_eta": {"remaining_bytes": 612, "completion": null, "pass": null,
                       "error": "the elements of system 'sat' are too old …"},
        "uplink": {"objects": 1, "object_bytes": 788992, "plan_bytes": 307,
                   "sent": [{"digest": "sha256:00", "size": 788992, "encoding": "zstd-ref",
                             "object": "sha256:01", "base": "sha256:02", "bytes": 792}],
                   "wire_bytes": 1099}
    }));
    assert_eq!(e.uplink.as_ref().map(|u| u.wire_bytes), Some(1099));
    assert_eq!(e.tasks[2].task_type, "files.list");
    assert_eq!(e.state, api::State::Running);
    check::<api::UplinkEta>(json!({"remaining_bytes": 612, "completion": "…",
        "pass": {"station": "darmstadt", "aos": "…", "los": "…"}}));
    assert_eq!(e.history[2].by.as_deref(), Some("ops"));
    check::<api::ExecutionList>(json!({"executions": [{"id": "6f1c", "tenant": "alice",
        "namespace": "demo", "operation": "hello", "system": "em", "state": "FAILED",
        "created_at": "…"}]}));
    let rejected = check::<api::HistoryEntry>(
        json!({"state": "REJECTED", "at": "…", "by": "ops", "reason": "not this week"}),
    );
    assert_eq!(rejected.state, api::State::Rejected);
    check::<api::Reject>(json!({"reason": "not this week"}));

    for s in [
        "CREATED",
        "AWAITING_APPROVAL",
        "SCHEDULED",
        "RUNNING",
        "SUCCESS",
        "COMPLETED",
        "FAILED",
        "REJECTED",
        "CANCELLED",
        "CANCELLING",
    ] {
        let state: api::State = s.parse().unwrap();
        assert_eq!(serde_json::to_value(state).unwrap(), json!(s));
        assert_eq!(
            state.is_final(),
            ["SUCCESS", "COMPLETED", "FAILED", "REJECTED", "CANCELLED"].contains(&s)
        );
        // An execution's success is COMPLETED, as Clustergate-2 names it; nothing else differs.
        let shown = state.of_execution().as_str();
        assert_eq!(shown, if s == "SUCCESS" { "COMPLETED" } else { s });
    }
    assert!("success".parse::<api::State>().is_err());

    // Outputs recorded before the Clustergate-2 fields existed still read.
    let old: api::TaskOutputs = serde_json::from_value(json!({
        "files": [{"path": "/out/r.txt", "digest": "sha256:00", "size": 3, "version": 2}],
        "listing": [], "image": null, "message": null, "exit_code": null, "log_tail": []}))
    .unwrap();
    assert_eq!((old.uri, old.content_length), (None, None));
    assert_eq!(old.files[0].digest.as_deref(), Some("sha256:00"));

    assert_eq!(
        api::namespace_file_uri("demo", "/out/a b#1.txt", 3),
        "/api/v1/namespaces/demo/files/out/a%20b%231.txt?version=3"
    );
}

#[test]
fn systems() {
    let declared = json!({"platform": "linux/arm64", "builder": "classic",
        "catalogue": [{"name": "busybox:latest", "digest": null, "platform": "linux/arm64",
                       "shell": true, "libraries": [], "glibc": null, "interpreters": ["sh"],
                       "layers": []}], "gpu": null});
    check::<api::SystemList>(json!({"systems": [
        {"name": "em", "platform": null, "last_seen": null,
         "catalogue": [{"name": "busybox:latest", "platform": "linux/arm64", "digest": null,
                        "description": "…"}],
         "declared": declared, "engine": null, "drift": [], "inventory": null, "approval": "none",
         "link": null, "elements": null},
        {"name": "fm", "platform": "linux/arm64", "last_seen": "…",
         "catalogue": [{"name": "busybox:latest", "platform": "linux/arm64",
                        "digest": "sha256:00", "description": "…"}],
         "declared": declared,
         "engine": {"platform": "linux/arm64", "builder": "classic",
                    "images": [{"name": "busybox:latest", "id": "sha256:00",
                                "platform": "linux/arm64"}]},
         "drift": [{"kind": "digest_mismatch", "subject": "busybox:latest",
                    "declared": "sha256:01", "reported": "sha256:00", "message": "…"}],
         "inventory": {"compared_at": "…", "objects": 3, "mirrored_objects": 2,
                       "in_sync": false, "drift": ["objects: 3 onboard, 2 in the mirror"],
                       "drift_since": "…", "repaired": [], "repaired_at": null},
         "approval": "required",
         "link": {"replica": "ground-a", "generation": 3, "expires_at": "…", "live": true},
         "elements": {"source": "sent", "name": "ISS (ZARYA)", "line1": "1 25544U …",
                      "line2": "2 25544 …", "catalog_number": 25544, "epoch": "…",
                      "sent_at": "…", "sent_by": "ops"}}]}));
    check::<api::VolumeList>(json!({"volumes": [{"name": "demo", "files": 3, "bytes": 5012}]}));
    check::<api::VolumeFileList>(json!({"files": [
        {"path": "in/input.txt", "size": 5000, "is_dir": false, "modified": "…"},
        {"path": "in/app", "size": 5, "is_dir": false, "modified": "…", "digest": "sha256:00"}]}));
    check::<api::PlanRequest>(json!({"system": "fm", "sources": ["demo:/app"],
        "volume": "demo-pvc", "destination": "/"}));
    check::<api::PlanRequest>(json!({"system": "fm", "sources": ["demo:/app"]}));
    check::<api::UplinkPlan>(
        json!({"system": "fm", "volume": "demo-pvc", "generated_at": "…",
        "files": [{"source": "demo:/app/bin/tool", "path": "/app/bin/tool", "digest": "sha256:00",
                   "size": 767456, "encoding": "exe", "base": "sha256:01", "bytes": 1868}],
        "total": {"files": 1, "size": 767456, "bytes": 1868},
        "eta": {"always_in_contact": false, "queued_bytes_ahead": 0, "completion": "…",
                "pass": {"station": "darmstadt", "aos": "…", "los": "…"}, "passes": 1}}),
    );
    check::<api::Passes>(json!({"system": "sat", "generated_at": "…", "hours": 24,
        "always_in_contact": false,
        "passes": [{"station": "darmstadt", "aos": "…", "los": "…", "duration_s": 512.25,
                    "max_elevation_deg": 41.5, "uplink_bps": 9600.0, "downlink_bps": 64000.0,
                    "up_bytes": 614700, "down_bytes": 4098000}],
        "eclipses": [{"penumbra_entry": "…", "umbra_entry": "…", "umbra_exit": "…",
                      "penumbra_exit": "…", "duration_s": 2167.607},
                     {"penumbra_entry": "…", "penumbra_exit": "…", "duration_s": 12.5}]}));
    check::<api::Passes>(json!({"system": "em", "generated_at": "…", "hours": 24,
        "always_in_contact": true, "passes": [], "eclipses": []}));
    check::<api::Track>(json!({"system": "sat", "generated_at": "…",
        "always_in_contact": false, "points": [{"lat": 51.5, "lon": -0.1275, "time": "…"}]}));
    check::<api::Telemetry>(json!({"system": "fm", "from": "…", "to": "…", "step_s": 60,
        "series": [
            {"data_type": "battery_soc_percent", "points": [
                {"start": "…", "count": 6, "min": 77.5, "mean": 78.75, "max": 80.0}]},
            {"data_type": "temperature_sensor0", "points": []}]}));
    check::<api::Queue>(json!({
        "system": "sat1", "generated_at": "…", "link_up": false, "always_in_contact": false,
        "eta_error": null,
        "transfers": [
            {"digest": "sha256:00", "message": true, "execution": "6f1c", "tenant": "alice",
             "bytes": 612,
             "remaining": 612, "other_bytes_ahead": 0,
             "eta": {"pass": {"station": "darmstadt", "aos": "…", "los": "…"},
                     "completion": "…"}},
            {"digest": "sha256:01", "message": false, "execution": "6f1c", "tenant": "alice",
             "bytes": 1,
             "remaining": 1, "other_bytes_ahead": 0,
             "eta": {"pass": null, "completion": null}}
        ],
        "other_tenants": {"transfers": 2, "bytes": 200845, "bytes_ahead": 845}
    }));
}

#[test]
fn users_and_quotas() {
    let users = check::<api::UserList>(json!({"users": [
        {"name": "alice", "role": "tenant", "created_at": "…", "disabled_at": null},
        {"name": "ops", "role": "operator", "created_at": "…", "disabled_at": "…"}]}));
    assert_eq!(users.users[1].role, api::Role::Operator);
    check::<api::CreateUser>(json!({"name": "carol", "password": "pw", "role": "operator"}));
    let bare: api::CreateUser =
        serde_json::from_value(json!({"name": "carol", "password": "pw"})).unwrap();
    assert_eq!(bare.role, api::Role::Tenant);
    assert!(
        serde_json::from_value::<api::CreateUser>(
            json!({"name": "carol", "password": "pw", "role": "admin"})
        )
        .is_err()
    );
    let limits = json!({"volume_bytes": 2147483648u64, "image_bytes": null,
        "compute_seconds_per_day": 3600, "downlink_bytes_per_day": null});
    check::<api::Limits>(limits.clone());
    let q = check::<api::Quota>(json!({"tenant": "alice", "limits": limits,
        "updated_at": "…", "updated_by": "ops"}));
    assert_eq!(q.limits.compute_seconds_per_day, Some(3600));
    check::<api::QuotaList>(json!({"quotas": [{"tenant": "bob", "limits": {
        "volume_bytes": null, "image_bytes": null, "compute_seconds_per_day": null,
        "downlink_bytes_per_day": null}, "updated_at": null, "updated_by": null}]}));
    let partial: api::Limits = serde_json::from_value(json!({"image_bytes": 5})).unwrap();
    assert_eq!((partial.image_bytes, partial.volume_bytes), (Some(5), None));
}
