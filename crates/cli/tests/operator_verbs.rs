//! The operators' verbs and `exec cancel` with `-o json`, against a real ground and a real flight
//! agent of a flight system (Docker Engine, UDP link): an execution waits for `orbitdock
//! approve`, runs once approved, ends REJECTED when rejected and CANCELLED when cancelled before
//! it was sent; `user` and `quota` manage users and quotas; another tenant sees and does none of
//! it; each answer is the API's.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{DockerCleanup, Stack, User, assert_schema, unique};

/// Starts `ns/op` as `user` with `exec start -o json`; returns the execution, which waits for
/// an operator: as the API answers it then.
async fn start(user: &User, ns: &str) -> Value {
    let (code, e) = user
        .cli_json(&["exec", "start", &format!("{ns}/hello")])
        .await;
    assert_eq!(code, 0, "{e:#}");
    assert_schema::<api::Execution>(&e);
    assert_eq!(e["state"], "AWAITING_APPROVAL", "{e:#}");
    let id = e["id"].as_str().unwrap();
    let (_, api) = user.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e, api, "exec start -o json is the API's answer");
    e
}

/// `name`'s entry of `GET /api/v1/users`, as `operator` reads it.
async fn listed_user(operator: &User, name: &str) -> Value {
    let (_, users) = operator.get("/api/v1/users").await;
    users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("no user {name}: {users:#}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_approves_rejects_and_manages_users_and_quotas_from_the_cli() {
    // `fm` is a flight system on this machine's engine: declared with its platform, so that
    // preflight judges the pod as the agent will run it.
    let stack = Stack::start_system("fm", |g| {
        g.with_declarations(
            [(
                "fm".to_string(),
                wire::SystemDescription::default_for(preflight::host_platform()),
            )]
            .into(),
        )
    })
    .await;
    let (a, b, o) = (unique("ta"), unique("tb"), unique("op"));
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone(), b.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let bob = stack.user(&b).await;
    let ops = stack.operator(&o).await;
    let dir = stack.dir.path();
    let ns = unique("ns");
    let op = dir.join("op.yaml");
    std::fs::write(
        &op,
        format!(
            "id: hello\nnamespace: {ns}\nsystem: fm\ntasks:\n\
             - id: run\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo approved-and-ran']\n  max_duration: 1\n"
        ),
    )
    .unwrap();
    let (code, _) = alice.cli_json(&["op", "apply", op.to_str().unwrap()]).await;
    assert_eq!(code, 0);

    // Started on the flight system, it waits for an operator; nothing runs onboard meanwhile.
    let e = start(&alice, &ns).await;
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(e["state"], "AWAITING_APPROVAL", "{e:#}");
    assert_eq!(e["system"], "fm");

    // Another tenant sees none of it, and may not decide.
    let (code, list) = bob.cli_json(&["exec", "list"]).await;
    assert_eq!(code, 0);
    assert_eq!(list["executions"], serde_json::json!([]), "{list:#}");
    let (code, err) = bob.cli_json(&["exec", "show", &id]).await;
    assert_eq!(
        (code, &err["error"]["code"]),
        (1, &Value::from("not_found"))
    );
    let (code, err) = bob.cli_json(&["approve", &id]).await;
    assert_eq!(code, 1, "a refused approval is a failure of what was asked");
    assert_eq!(err["error"]["code"], "forbidden", "{err:#}");
    assert_schema::<api::ErrorBody>(&err);
    let (code, err) = alice.cli_json(&["approve", &id]).await;
    assert_eq!(
        (code, &err["error"]["code"]),
        (1, &Value::from("forbidden"))
    );
    let (code, err) = bob.cli_json(&["exec", "cancel", &id]).await;
    assert_eq!(
        (code, &err["error"]["code"]),
        (1, &Value::from("not_found"))
    );

    // The operator lists what awaits it, as the API answers.
    let (code, awaiting) = ops
        .cli_json(&["exec", "list", "--state", "AWAITING_APPROVAL"])
        .await;
    assert_eq!(code, 0);
    let (_, api_awaiting) = ops.get("/api/v1/executions?state=AWAITING_APPROVAL").await;
    assert_eq!(awaiting, api_awaiting);
    assert_eq!(awaiting["executions"][0]["id"], id.as_str());
    assert_eq!(awaiting["executions"][0]["tenant"], a.as_str());
    assert_schema::<api::ExecutionList>(&awaiting);
    let (_, all) = ops.cli_json(&["exec", "list", "--tenant", &a]).await;
    assert_eq!(all["executions"].as_array().unwrap().len(), 1);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, still) = alice.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(still["state"], "AWAITING_APPROVAL");
    assert_eq!(still["tasks"][0]["state"], "CREATED");
    assert_eq!(
        still["started_at"],
        Value::Null,
        "nothing ran before the approval"
    );

    let (code, approved) = ops.cli_json(&["approve", &id]).await;
    assert_eq!(code, 0, "{approved:#}");
    assert_ne!(approved["state"], "AWAITING_APPROVAL");
    assert_schema::<api::Execution>(&approved);
    let by = approved["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["state"] == "SCHEDULED")
        .expect("scheduled once approved");
    assert_eq!(by["by"], o.as_str());
    let (code, done) = alice.cli_json(&["exec", "wait", &id]).await;
    assert_eq!(code, 0, "{done:#}");
    assert_eq!(done["state"], "COMPLETED");
    // It started onboard only after the approval (RFC 3339 UTC to the millisecond: ordered as
    // text).
    let approved_at = by["at"].as_str().unwrap();
    let started_at = done["tasks"][0]["started_at"].as_str().unwrap();
    assert!(started_at >= approved_at, "{started_at} < {approved_at}");
    let (_, logs) = alice.cli_json(&["exec", "logs", &id]).await;
    assert!(
        logs.to_string().contains("approved-and-ran"),
        "the pod ran once approved: {logs:#}"
    );
    let (code, err) = alice.cli_json(&["exec", "cancel", &id]).await;
    assert_eq!((code, &err["error"]["code"]), (1, &Value::from("conflict")));

    // Rejected with a reason: never sent, and `exec wait` says it failed.
    let rejected = start(&alice, &ns).await["id"].as_str().unwrap().to_string();
    let (code, r) = ops
        .cli_json(&[
            "approve",
            &rejected,
            "--reject",
            "--reason",
            "not this week",
        ])
        .await;
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["state"], "REJECTED");
    assert_schema::<api::Execution>(&r);
    let (_, api) = alice.get(&format!("/api/v1/executions/{rejected}")).await;
    assert_eq!(r, api, "approve --reject -o json is the API's answer");
    assert_eq!(
        r["errors"][0]["message"],
        format!("rejected by operator {o}: not this week")
    );
    let (code, waited) = alice.cli_json(&["exec", "wait", &rejected]).await;
    assert_eq!(code, 1);
    assert_eq!(waited["state"], "REJECTED");
    let (_, api) = alice.get(&format!("/api/v1/executions/{rejected}")).await;
    assert_eq!(waited, api, "exec wait -o json is the API's answer");
    // `--reject` needs a reason: a usage error.
    let out = ops.cli(&["approve", &rejected, "--reject"]).await;
    assert_eq!(out.status.code(), Some(2));

    // Cancelled by its tenant before it was sent.
    let cancelled = start(&alice, &ns).await["id"].as_str().unwrap().to_string();
    let (code, c) = alice.cli_json(&["exec", "cancel", &cancelled]).await;
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(c["state"], "CANCELLED");
    assert_schema::<api::Execution>(&c);
    let (_, api) = alice.get(&format!("/api/v1/executions/{cancelled}")).await;
    assert_eq!(c, api);
    let (code, err) = ops.cli_json(&["approve", &cancelled]).await;
    assert_eq!((code, &err["error"]["code"]), (1, &Value::from("conflict")));
    for never in [&rejected, &cancelled] {
        let (_, e) = alice.get(&format!("/api/v1/executions/{never}")).await;
        assert_eq!(e["tasks"][0]["state"], "CANCELLED", "{e:#}");
        assert_eq!(e["tasks"][0]["started_at"], Value::Null, "never ran: {e:#}");
    }

    // Users.
    let (code, users) = ops.cli_json(&["user", "list"]).await;
    assert_eq!(code, 0);
    let (_, api_users) = ops.get("/api/v1/users").await;
    assert_eq!(users, api_users);
    assert_schema::<api::UserList>(&users);
    let (code, err) = alice.cli_json(&["user", "list"]).await;
    assert_eq!(
        (code, &err["error"]["code"]),
        (1, &Value::from("forbidden"))
    );
    let carol = unique("tc");
    let (code, created) = ops
        .cli_json(&["user", "add", &carol, "--password", &format!("pw-{carol}")])
        .await;
    assert_eq!(code, 0, "{created:#}");
    assert_eq!(created["name"], carol.as_str());
    assert_eq!(created["role"], "tenant");
    assert_schema::<api::User>(&created);
    assert_eq!(created, listed_user(&ops, &carol).await);
    let dave = unique("od");
    let (code, operator) = ops
        .cli_json(&[
            "user",
            "add",
            &dave,
            "--operator",
            "--password",
            &format!("pw-{dave}"),
        ])
        .await;
    assert_eq!(code, 0, "{operator:#}");
    assert_eq!(operator["role"], "operator");
    assert_schema::<api::User>(&operator);
    assert_eq!(operator, listed_user(&ops, &dave).await);
    let (code, err) = ops
        .cli_json(&["user", "add", &carol, "--password", "x"])
        .await;
    assert_eq!((code, &err["error"]["code"]), (1, &Value::from("conflict")));
    let (code, disabled) = ops.cli_json(&["user", "disable", &carol]).await;
    assert_eq!(code, 0);
    assert!(disabled["disabled_at"].is_string(), "{disabled:#}");
    assert_schema::<api::User>(&disabled);
    assert_eq!(disabled, listed_user(&ops, &carol).await);
    let login = support::http_client()
        .post(format!("{}/api/v1/login", stack.url))
        .json(&serde_json::json!({"user": carol, "password": format!("pw-{carol}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403, "a disabled user cannot log in");
    let (code, enabled) = ops.cli_json(&["user", "enable", &carol]).await;
    assert_eq!(code, 0);
    assert_eq!(enabled["disabled_at"], Value::Null);
    assert_schema::<api::User>(&enabled);
    assert_eq!(enabled, listed_user(&ops, &carol).await);

    // Quotas: set some, keep the others, remove one; show them as the API does.
    let (code, q) = ops
        .cli_json(&[
            "quota",
            "set",
            &a,
            "--volume-bytes",
            "2GiB",
            "--compute-seconds-per-day",
            "3600",
        ])
        .await;
    assert_eq!(code, 0, "{q:#}");
    assert_eq!(q["limits"]["volume_bytes"], 2u64 << 30);
    assert_eq!(q["updated_by"], o.as_str());
    assert_schema::<api::Quota>(&q);
    let (_, q) = ops
        .cli_json(&["quota", "set", &a, "--image-bytes", "500MB"])
        .await;
    assert_eq!(q["limits"]["volume_bytes"], 2u64 << 30, "kept: {q:#}");
    assert_eq!(q["limits"]["image_bytes"], 500_000_000u64);
    let (_, q) = ops
        .cli_json(&["quota", "set", &a, "--volume-bytes", "none"])
        .await;
    assert_eq!(q["limits"]["volume_bytes"], Value::Null);
    assert_eq!(q["limits"]["compute_seconds_per_day"], 3600);
    let (_, shown) = ops.cli_json(&["quota", "show", &a]).await;
    let (_, api_q) = ops.get(&format!("/api/v1/quotas/{a}")).await;
    assert_eq!(shown, api_q);
    assert_eq!(shown, q);
    assert_schema::<api::Quota>(&shown);
    let (_, all) = ops.cli_json(&["quota", "show"]).await;
    let (_, api_all) = ops.get("/api/v1/quotas").await;
    assert_eq!(all, api_all);
    assert_schema::<api::QuotaList>(&all);
    // A tenant reads its own quota, no one else's, and sets none.
    let (code, own) = alice.cli_json(&["quota", "show", &a]).await;
    assert_eq!((code, &own), (0, &q));
    let (code, _) = alice.cli_json(&["quota", "show", &b]).await;
    assert_eq!(code, 1);
    let (code, err) = alice
        .cli_json(&["quota", "set", &a, "--volume-bytes", "1TB"])
        .await;
    assert_eq!(
        (code, &err["error"]["code"]),
        (1, &Value::from("forbidden"))
    );
    let out = ops
        .cli(&["quota", "set", &a, "--volume-bytes", "1.5GB"])
        .await;
    assert_eq!(out.status.code(), Some(2), "a bad size is a usage error");

    // In text, for a person.
    let out = ops.cli(&["quota", "show", &a]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TENANT") && text.contains("3600") && text.contains(&format!("by {o}")),
        "{text}"
    );
}
