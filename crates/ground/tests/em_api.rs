//! Clustergate-2's EM API through `app()`, without a flight agent: tokens, CG2's refusals, and a
//! call that cannot end (its plan waits for an EM that never answers) holding the EM (423).
//! `crates/cli/tests/em_api.rs` drives every endpoint against a real EM.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestGround, ground, multipart};
use serde_json::json;

const FORM: &str = "application/x-www-form-urlencoded";

async fn tokens(g: &TestGround, user: &str) -> (String, String) {
    let r = g
        .call(
            Method::POST,
            "/auth/",
            None,
            Some(FORM),
            format!("username={user}&password=pw-{user}").into_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    (
        body["access"].as_str().unwrap().to_string(),
        body["refresh"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn tokens_are_cg2_pairs_and_refusals_speak_drf() {
    let g = ground().await;
    let (access, refresh) = tokens(&g, "alice").await;
    assert_ne!(access, refresh);
    // The access token opens our own API too; the refresh token opens nothing.
    assert_eq!(
        g.get("/api/v1/namespaces", &access).await.status,
        StatusCode::OK
    );
    let r = g.get("/em/nodes/status", &refresh).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["code"], "token_not_valid");

    let r = g
        .post_json("/auth/refresh", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let fresh = r.json()["access"].as_str().unwrap().to_string();
    assert_eq!(
        g.get("/em/nodes/status/", &fresh).await.status,
        StatusCode::OK
    );
    let r = g
        .post_json("/auth/refresh", None, json!({"refresh": access}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["detail"], "Token is invalid or expired");

    let r = g
        .post_json(
            "/auth",
            None,
            json!({"username": "alice", "password": "nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({"detail": "No active account found with the given credentials"})
    );
    let r = g
        .post_json("/auth/", None, json!({"username": "alice"}))
        .await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"password": ["This field is required."]})
        )
    );
    let r = g
        .call(Method::GET, "/em/files/list", None, None, Vec::new())
        .await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
}

#[tokio::test]
async fn nodes_are_not_schedulable_before_the_em_says_hello() {
    let g = ground().await;
    let (access, _) = tokens(&g, "alice").await;
    for method in [Method::GET, Method::POST] {
        let r = g
            .call(method, "/em/nodes/status", Some(&access), None, Vec::new())
            .await;
        assert_eq!(
            r.json(),
            json!({"message": "Nodes retrieved successfully.", "data": [
                {"name": "fpga", "status": "False"},
                {"name": "gpu", "status": "False"},
                {"name": "mpu1", "status": "False"},
            ]})
        );
    }
}

#[tokio::test]
async fn uplinks_are_refused_whole() {
    let g = ground()
        .await
        .with(|ground| ground.with_em_uplink_limit(10));
    let (access, _) = tokens(&g, "alice").await;
    let form = |parts: &[(&str, &str, &[u8])]| multipart("XyZ", parts);
    let ct = Some("multipart/form-data; boundary=XyZ");
    let uplink = |body: Vec<u8>, ct: Option<&'static str>, query: &'static str| {
        let (g, access) = (&g, access.clone());
        async move {
            g.call(
                Method::POST,
                &format!("/em/files/uplink{query}"),
                Some(&access),
                ct,
                body,
            )
            .await
        }
    };
    let r = uplink(b"dest_path=x".to_vec(), Some(FORM), "").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("NO_FILES"))
    );
    let r = uplink(form(&[("files", "big.bin", &[0; 11])]), ct, "").await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "MAX_UPLINK_SIZE_EXCEEDED", "message": "Total upload size exceeds 10 bytes"})
        )
    );
    let r = uplink(form(&[("files", "a.txt", b"a")]), ct, "?dest_path=../x").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("ILLEGAL_PATH"))
    );
    let r = uplink(
        form(&[("files", "a.txt", b"a")]),
        ct,
        "?pvc_name=Not%20A%20Name",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // Nothing of a refused uplink was kept: not even the EM namespace.
    assert_eq!(
        g.get("/api/v1/namespaces/alice-em/files", &access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_call_that_has_not_ended_holds_the_em() {
    let g = ground().await;
    let (alice, _) = tokens(&g, "alice").await;
    let (bob, _) = tokens(&g, "bob").await;
    let run = |token: String, body: serde_json::Value| {
        let g = &g;
        async move { g.post_json("/em/pod/run", Some(&token), body).await }
    };
    for (body, why) in [
        (
            json!({"max_duration": 1, "node": "FPGA"}),
            "'image' is required",
        ),
        (
            json!({"image": "busybox", "node": "FPGA"}),
            "'max_duration' is required",
        ),
        (
            json!({"image": "busybox", "max_duration": 1, "node": "TPU"}),
            "'node' must be FPGA, GPU or MPU, not 'TPU'",
        ),
        (
            json!({"image": "busybox", "max_duration": 1, "scheduled_time": "2025-05-22 12:10"}),
            "'scheduled_time' '2025-05-22 12:10' is not an RFC 3339 date and time with an offset (2025-05-22T12:10:00+02:00, or Z for UTC): too short",
        ),
    ] {
        let r = run(alice.clone(), body).await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "INVALID_REQUEST", "message": why})
            )
        );
    }
    let r = run(
        alice.clone(),
        json!({"image": "busybox", "max_duration": 1, "command": "/bin/sh -c 'sleep 1'", "envs": {"A": "1"}, "ports": [80], "pod_name": "p1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["message"], "Docker run scheduled successfully");
    let execution = r.json()["execution"].as_str().unwrap().to_string();

    // The plan waits for an EM that never answers: the EM stays busy.
    let r = g.get("/em/files/list", &alice).await;
    assert_eq!(r.status, StatusCode::LOCKED);
    assert_eq!(r.json()["error"], "LOCKED");
    assert!(
        r.json()["message"].as_str().unwrap().contains(&execution),
        "{}",
        r.text()
    );
    let r = g.get("/em/pod/image/list", &bob).await;
    assert_eq!(r.status, StatusCode::LOCKED);
    assert!(
        !r.text().contains(&execution),
        "another's execution is not named"
    );

    // Status reads what the EM reported, and is never locked.
    let r = g
        .post_json("/em/pod/status", Some(&alice), json!({"pod_name": "p1"}))
        .await;
    assert_eq!(
        r.json(),
        json!({"message": "Successfully fetched DPhi Pod status",
               "data": {"state": {"waiting": {"reason": "ContainerCreating"}}},
               "execution": execution})
    );
    let r = g.get("/em/pod/status?pod_name=p2", &alice).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("POD_NOT_FOUND"))
    );
    let r = g.get("/em/pod/status?pod_name=p1", &bob).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "bob has no pod p1");

    // The call is an execution of a generated operation, like any other.
    let r = g
        .get(&format!("/api/v1/executions/{execution}"), &alice)
        .await;
    assert_eq!(r.json()["operation"], "em-pod-run");
    assert_eq!(r.json()["state"], "SCHEDULED");
    let r = g
        .get("/api/v1/operations/alice-em/em-pod-run", &alice)
        .await;
    let yaml = r.json()["yaml"].as_str().unwrap().to_string();
    for line in [
        "  - id: \"p1\"",
        "    type: \"dphi.space.cg2.pod.run\"",
        "      - \"/bin/sh\"",
        "      - \"sleep 1\"",
        "      A: \"1\"",
        "      - 80",
        "    volume: \"alice-p1-pvc\"",
    ] {
        assert!(yaml.contains(line), "{line:?} in\n{yaml}");
    }
}
