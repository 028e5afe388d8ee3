//! Roles and the approval gate through `app()`: an execution on a flight system waits for an
//! operator, who approves or rejects it; a tenant cancels one (at once when not yet sent, else
//! `CANCELLING` until its system confirms); operators see every
//! tenant's executions and queue and manage users and quotas; a tenant sees and touches nothing
//! of another's, through the API or the dashboard.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Entry, Reply, TestGround, tar};
use ground::{Role, SystemLink};
use serde_json::{Value, json};

/// A system whose link points at a port nobody listens on; `up: false` is never in contact, so
/// whatever is sent to it stays queued.
fn system(name: &str, up: bool) -> SystemLink {
    SystemLink {
        name: name.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        link: "127.0.0.1:9".parse().unwrap(),
        key: wire::LinkKey::from_bytes([7; 32]),
        rate_bits_per_sec: None,
        contact: if up {
            link::Contact::Always
        } else {
            link::Contact::Windows(Vec::new())
        },
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    }
}

/// A ground with `em` and the flight system `fm`, users alice and bob (tenants) and ops (an
/// operator), and their bearer tokens.
async fn setup() -> (TestGround, Tokens) {
    let g = common::ground_with(vec![system("em", true), system("fm", false)]).await;
    g.ground.ensure_user("ops", "pw-ops").await.unwrap();
    g.ground.set_role("ops", Role::Operator).await.unwrap();
    let tokens = Tokens {
        alice: g.login("alice").await,
        bob: g.login("bob").await,
        ops: g.login("ops").await,
    };
    (g, tokens)
}

struct Tokens {
    alice: String,
    bob: String,
    ops: String,
}

/// Uploads a file into `ns` and applies operation `op` uplinking it; returns nothing.
async fn operation(g: &TestGround, token: &str, ns: &str, op: &str) {
    let r = g
        .upload_tar(
            ns,
            "",
            token,
            tar(&[Entry::File("in/data.txt", b"payload", 0o644)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let yaml = format!(
        "id: {op}\nnamespace: {ns}\ntasks:\n- id: up\n  type: uplink\n  source: /in\n  destination: /\n- id: ls\n  type: files.list\n"
    );
    let r = g.post_yaml("/api/v1/operations", token, &yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

/// Starts `ns/op` on `system`; returns the execution.
async fn start(g: &TestGround, token: &str, ns: &str, op: &str, system: &str) -> Value {
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(token),
            json!({"namespace": ns, "operation": op, "system": system}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()
}

async fn post(g: &TestGround, uri: &str, token: &str, body: Option<Value>) -> Reply {
    match body {
        Some(b) => g.post_json(uri, Some(token), b).await,
        None => {
            g.call(Method::POST, uri, Some(token), None, Vec::new())
                .await
        }
    }
}

async fn put(g: &TestGround, token: &str, tenant: &str, body: Value) -> Reply {
    g.call(
        Method::PUT,
        &format!("/api/v1/quotas/{tenant}"),
        Some(token),
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await
}

fn states(history: &Value) -> Vec<&str> {
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect()
}

fn ids(list: &Value) -> Vec<&str> {
    list["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_execution_on_a_flight_system_waits_until_an_operator_approves_it() {
    let (g, t) = setup().await;
    operation(&g, &t.alice, "alice-ns", "up").await;
    let e = start(&g, &t.alice, "alice-ns", "up", "fm").await;
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(e["state"], "AWAITING_APPROVAL");
    assert_eq!(e["tenant"], "alice");
    assert_eq!(states(&e["history"]), ["CREATED", "AWAITING_APPROVAL"]);
    assert_eq!(e["scheduled_at"], Value::Null);
    for task in e["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "CREATED");
    }
    // Nothing was sent: fm's queue is empty, for its tenant and for an operator alike.
    for token in [&t.alice, &t.ops] {
        let q = g.get("/api/v1/systems/fm/queue", token).await.json();
        assert_eq!(q["transfers"], json!([]), "{q}");
        assert_eq!(q["other_tenants"]["transfers"], 0, "{q}");
    }

    // Only an operator may approve: not its own tenant, not another.
    let approve = format!("/api/v1/executions/{id}/approve");
    for token in [&t.alice, &t.bob] {
        let r = post(&g, &approve, token, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "forbidden");
    }
    // Bob sees none of it.
    assert_eq!(
        g.get(&format!("/api/v1/executions/{id}"), &t.bob)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let bobs = g.get("/api/v1/executions", &t.bob).await.json();
    assert!(ids(&bobs).is_empty(), "{bobs}");

    // The operator sees every tenant's executions, and those awaiting approval.
    let all = g.get("/api/v1/executions", &t.ops).await.json();
    assert_eq!(ids(&all), [id.as_str()]);
    assert_eq!(all["executions"][0]["tenant"], "alice");
    let awaiting = g
        .get("/api/v1/executions?state=AWAITING_APPROVAL", &t.ops)
        .await
        .json();
    assert_eq!(ids(&awaiting), [id.as_str()]);
    let none = g
        .get("/api/v1/executions?state=SCHEDULED&tenant=alice", &t.ops)
        .await
        .json();
    assert!(ids(&none).is_empty());
    let bad = g.get("/api/v1/executions?state=WAITING", &t.ops).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("AWAITING_APPROVAL"), "{}", bad.text());
    assert_eq!(
        g.get(&format!("/api/v1/executions/{id}"), &t.ops)
            .await
            .json()["state"],
        "AWAITING_APPROVAL"
    );

    let r = post(&g, &approve, &t.ops, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "SCHEDULED");
    assert_eq!(
        states(&e["history"]),
        ["CREATED", "AWAITING_APPROVAL", "SCHEDULED"]
    );
    assert_eq!(e["history"][2]["by"], "ops", "who approved: {e}");
    assert!(e["history"][1].get("by").is_none(), "{e}");
    assert!(e["scheduled_at"].is_string());
    // Now its plan is queued (its object goes when the agent asks for it): the tenant sees its
    // own, the operator sees it with its tenant, another tenant only as a total.
    let mut mine = Value::Null;
    for _ in 0..100 {
        mine = g.get("/api/v1/systems/fm/queue", &t.alice).await.json();
        if !mine["transfers"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(mine["transfers"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["transfers"][0]["message"], true, "the plan");
    assert_eq!(mine["transfers"][0]["execution"], id.as_str());
    assert_eq!(mine["transfers"][0]["tenant"], "alice");
    let ops = g.get("/api/v1/systems/fm/queue", &t.ops).await.json();
    assert_eq!(ops["transfers"], mine["transfers"]);
    let bobs = g.get("/api/v1/systems/fm/queue", &t.bob).await.json();
    assert_eq!(bobs["transfers"], json!([]));
    assert_eq!(bobs["other_tenants"]["transfers"], 1);

    // Approved once: not again. Called off now, it is CANCELLING until the system confirms
    // (this one is never in contact), and a second cancel changes nothing.
    let again = post(&g, &approve, &t.ops, None).await;
    again.assert_answer(
        StatusCode::CONFLICT,
        "is not awaiting approval (it is SCHEDULED)",
    );
    let cancel_uri = format!("/api/v1/executions/{id}/cancel");
    let cancel = post(&g, &cancel_uri, &t.alice, None).await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.text());
    let cancelling = cancel.json();
    assert_eq!(cancelling["state"], "CANCELLING");
    assert_eq!(cancelling["history"][3]["state"], "CANCELLING");
    assert_eq!(cancelling["history"][3]["by"], "alice");
    assert_eq!(cancelling["finished_at"], Value::Null);
    let twice = post(&g, &cancel_uri, &t.ops, None).await;
    assert_eq!(twice.status, StatusCode::ACCEPTED);
    assert_eq!(twice.json()["history"], cancelling["history"]);
    let listed = g
        .get("/api/v1/executions?state=CANCELLING", &t.alice)
        .await
        .json();
    assert_eq!(listed["executions"][0]["id"], id.as_str());
    // The tenant reads who approved it.
    let seen = g
        .get(&format!("/api/v1/executions/{id}"), &t.alice)
        .await
        .json();
    assert_eq!(seen["history"][2]["by"], "ops");
}

#[tokio::test]
async fn a_rejection_ends_the_execution_with_its_reason_and_sends_nothing() {
    let (g, t) = setup().await;
    operation(&g, &t.alice, "alice-ns", "up").await;
    let id = start(&g, &t.alice, "alice-ns", "up", "fm").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reject = format!("/api/v1/executions/{id}/reject");
    let r = post(&g, &reject, &t.alice, Some(json!({"reason": "mine"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"reason": "  "}),
        json!({}),
        json!({"reason": "x".repeat(1001)}),
    ] {
        let r = post(&g, &reject, &t.ops, Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
    let r = post(
        &g,
        &reject,
        &t.ops,
        Some(json!({"reason": "uplink budget spent this week"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "REJECTED");
    assert!(e["finished_at"].is_string());
    let last = &e["history"][2];
    assert_eq!(
        (&last["state"], &last["by"], &last["reason"]),
        (
            &json!("REJECTED"),
            &json!("ops"),
            &json!("uplink budget spent this week")
        )
    );
    assert_eq!(e["errors"][0]["code"], 22);
    assert_eq!(e["errors"][0]["name"], "REJECTED");
    assert_eq!(
        e["errors"][0]["message"],
        "rejected by operator ops: uplink budget spent this week"
    );
    for task in e["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "CANCELLED", "{task}");
        assert_eq!(
            task["error"]["message"],
            "not run: the execution was rejected"
        );
    }
    // Never sent: once another execution is approved, its plan is all fm's queue holds.
    let other = start(&g, &t.alice, "alice-ns", "up", "fm").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        &g,
        &format!("/api/v1/executions/{other}/approve"),
        &t.ops,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut q = Value::Null;
    for _ in 0..100 {
        q = g.get("/api/v1/systems/fm/queue", &t.ops).await.json();
        if !q["transfers"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let queued: Vec<&str> = q["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["execution"].as_str().unwrap())
        .collect();
    assert_eq!(queued, [other.as_str()], "{q}");
    // And final.
    for action in ["approve", "reject"] {
        let r = post(
            &g,
            &format!("/api/v1/executions/{id}/{action}"),
            &t.ops,
            Some(json!({"reason": "again"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{action}");
    }
    let r = post(
        &g,
        &format!("/api/v1/executions/{id}/cancel"),
        &t.alice,
        None,
    )
    .await;
    r.assert_answer(StatusCode::CONFLICT, "has already ended (REJECTED)");
    assert_eq!(
        post(&g, "/api/v1/executions/nope/approve", &t.ops, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_tenant_cancels_what_has_not_been_sent_and_the_em_needs_no_approval() {
    let (g, t) = setup().await;
    operation(&g, &t.alice, "alice-ns", "up").await;
    let id = start(&g, &t.alice, "alice-ns", "up", "fm").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = format!("/api/v1/executions/{id}/cancel");
    // Another tenant's execution is as good as absent.
    assert_eq!(
        post(&g, &cancel, &t.bob, None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = post(&g, &cancel, &t.alice, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "CANCELLED");
    assert_eq!(e["history"][2]["by"], "alice");
    assert_eq!(e["errors"][0]["name"], "CANCELLED");
    assert_eq!(
        e["errors"][0]["message"],
        "cancelled by alice before it was sent"
    );
    assert_eq!(e["tasks"][0]["state"], "CANCELLED");
    // An operator may cancel a tenant's too.
    let other = start(&g, &t.alice, "alice-ns", "up", "fm").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        &g,
        &format!("/api/v1/executions/{other}/cancel"),
        &t.ops,
        None,
    )
    .await;
    assert_eq!(r.json()["history"][2]["by"], "ops");

    // The EM needs no approval: its execution is sent (queued on its link) at once; a cancel
    // then goes after it, and it is CANCELLING until the system confirms.
    let em = start(&g, &t.alice, "alice-ns", "up", "em").await;
    assert_eq!(em["state"], "SCHEDULED");
    let r = post(
        &g,
        &format!("/api/v1/executions/{}/cancel", em["id"].as_str().unwrap()),
        &t.alice,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["state"], "CANCELLING");

    // Each system says whether it needs approval.
    let systems = g.get("/api/v1/systems", &t.alice).await.json();
    let gates: Vec<(&str, &str)> = systems["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["approval"].as_str().unwrap()))
        .collect();
    assert_eq!(gates, [("em", "none"), ("fm", "required")]);
}

#[tokio::test]
async fn the_systems_file_sets_each_gate() {
    let g = common::ground_with(vec![system("em", true), system("fm", true)]).await;
    let g = g.with(|ground| {
        ground.with_approvals(
            [
                ("em".to_string(), ground::Approval::Required),
                ("fm".to_string(), ground::Approval::NotRequired),
            ]
            .into(),
        )
    });
    let t = g.login("alice").await;
    operation(&g, &t, "alice-ns", "up").await;
    assert_eq!(
        start(&g, &t, "alice-ns", "up", "fm").await["state"],
        "SCHEDULED"
    );
    assert_eq!(
        start(&g, &t, "alice-ns", "up", "em").await["state"],
        "AWAITING_APPROVAL"
    );
}

/// The same request as a browser makes it: with bob's session cookie and, for a write, the
/// form's CSRF token.
fn browser(method: Method, uri: &str, session: &str, form: Option<&str>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", format!("orbitdock_session={session}"));
    match form {
        Some(f) => b
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(f.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// The CSRF token a signed-in page names.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf-token\" content=\"")
        .expect("the page names its CSRF token")
        + 27;
    page[at..at + 32].to_string()
}

#[tokio::test]
async fn a_tenant_can_neither_see_nor_touch_another_tenants_namespace_operation_or_execution() {
    let (g, t) = setup().await;
    operation(&g, &t.alice, "alice-ns", "up").await;
    let waiting = start(&g, &t.alice, "alice-ns", "up", "fm").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sent = start(&g, &t.alice, "alice-ns", "up", "em").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = &t.bob;

    // Through the API.
    let reads = [
        ("/api/v1/namespaces/alice-ns/files", StatusCode::FORBIDDEN),
        (
            "/api/v1/namespaces/alice-ns/files/in/data.txt",
            StatusCode::FORBIDDEN,
        ),
        ("/api/v1/operations/alice-ns/up", StatusCode::FORBIDDEN),
        (
            "/api/v1/operations/alice-ns/up/revisions/1",
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/operations?namespace=alice-ns",
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/executions?namespace=alice-ns",
            StatusCode::FORBIDDEN,
        ),
        ("/api/v1/executions?tenant=alice", StatusCode::FORBIDDEN),
        (
            &format!("/api/v1/executions/{waiting}"),
            StatusCode::NOT_FOUND,
        ),
        (&format!("/api/v1/executions/{sent}"), StatusCode::NOT_FOUND),
        ("/api/v1/quotas/alice", StatusCode::NOT_FOUND),
        ("/api/v1/users", StatusCode::FORBIDDEN),
        ("/api/v1/quotas", StatusCode::FORBIDDEN),
    ];
    for (uri, status) in reads {
        let r = g.get(uri, bob).await;
        assert_eq!(r.status, status, "GET {uri}: {}", r.text());
    }
    for list in [
        "/api/v1/namespaces",
        "/api/v1/operations",
        "/api/v1/executions",
    ] {
        let text = g.get(list, bob).await.text();
        assert!(
            !text.contains("alice") && !text.contains(&waiting),
            "{list}: {text}"
        );
    }
    let r = g
        .upload_tar(
            "alice-ns",
            "",
            bob,
            tar(&[Entry::File("x", b"bob's", 0o644)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = g
        .call(
            Method::DELETE,
            "/api/v1/namespaces/alice-ns/files/in/data.txt",
            Some(bob),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = g
        .post_json(
            "/api/v1/namespaces/alice-ns/move",
            Some(bob),
            json!({"from": "/in", "to": "/out"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = g
        .post_yaml(
            "/api/v1/operations",
            bob,
            "id: up\nnamespace: alice-ns\ntasks:\n- id: ls\n  type: files.list\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(bob),
            json!({"namespace": "alice-ns", "operation": "up", "system": "em"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for id in [&waiting, &sent] {
        let r = post(&g, &format!("/api/v1/executions/{id}/cancel"), bob, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = post(&g, &format!("/api/v1/executions/{id}/approve"), bob, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    // Through the dashboard, signed in as bob.
    let page = g.send(browser(Method::GET, "/executions", bob, None)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(!html.contains(&waiting) && !html.contains(&sent), "{html}");
    assert!(!html.contains("Awaiting approval"), "{html}");
    let csrf = csrf_of(&html);
    for (uri, status) in [
        ("/namespaces/alice-ns".to_string(), StatusCode::FORBIDDEN),
        ("/operations/alice-ns/up".to_string(), StatusCode::FORBIDDEN),
        (format!("/executions/{waiting}"), StatusCode::NOT_FOUND),
        (format!("/executions/{sent}"), StatusCode::NOT_FOUND),
    ] {
        let r = g.send(browser(Method::GET, &uri, bob, None)).await;
        assert_eq!(r.status, status, "GET {uri}: {}", r.text());
    }
    let home = g.send(browser(Method::GET, "/", bob, None)).await.text();
    assert!(
        !home.contains("alice-ns") && !home.contains(&sent),
        "{home}"
    );
    let systems = g
        .send(browser(Method::GET, "/systems", bob, None))
        .await
        .text();
    assert!(
        !systems.contains(&sent) && !systems.contains("alice"),
        "{systems}"
    );
    let form = format!("csrf={csrf}&path=%2Fin%2Fdata.txt");
    let r = g
        .send(browser(
            Method::POST,
            "/namespaces/alice-ns/delete",
            bob,
            Some(&form),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let form = format!("csrf={csrf}&reason=no");
    for (action, status) in [
        ("approve", StatusCode::FORBIDDEN),
        ("reject", StatusCode::FORBIDDEN),
        ("cancel", StatusCode::NOT_FOUND),
    ] {
        let uri = format!("/executions/{waiting}/{action}");
        let r = g.send(browser(Method::POST, &uri, bob, Some(&form))).await;
        assert_eq!(r.status, status, "POST {uri}: {}", r.text());
    }
    // Alice's things are as they were.
    let e = g
        .get(&format!("/api/v1/executions/{waiting}"), &t.alice)
        .await
        .json();
    assert_eq!(e["state"], "AWAITING_APPROVAL");
    let files = g
        .get("/api/v1/namespaces/alice-ns/files", &t.alice)
        .await
        .json();
    assert_eq!(files["files"][0]["path"], "/in/data.txt");
}

#[tokio::test]
async fn an_operator_approves_and_rejects_from_the_dashboard_with_its_csrf_token() {
    let (g, t) = setup().await;
    operation(&g, &t.alice, "alice-ns", "up").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            start(&g, &t.alice, "alice-ns", "up", "fm").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let page = g
        .send(browser(Method::GET, "/executions", &t.ops, None))
        .await
        .text();
    assert!(
        page.contains("Signed in as <b>ops</b> (operator)"),
        "{page}"
    );
    assert!(page.contains("<table id=\"awaiting\">"), "{page}");
    for id in &ids {
        assert!(
            page.contains(&format!("action=\"/executions/{id}/approve\"")),
            "{page}"
        );
    }
    let csrf = csrf_of(&page);
    // The execution's page shows what it will run.
    let one = g
        .send(browser(
            Method::GET,
            &format!("/executions/{}", ids[0]),
            &t.ops,
            None,
        ))
        .await
        .text();
    assert!(one.contains("What it will run"), "{one}");
    assert!(one.contains("type: uplink"), "{one}");
    // Alice's own page of it offers no decision, only a cancel.
    let hers = g
        .send(browser(
            Method::GET,
            &format!("/executions/{}", ids[0]),
            &t.alice,
            None,
        ))
        .await
        .text();
    assert!(
        !hers.contains("/approve\"") && hers.contains("/cancel\""),
        "{hers}"
    );

    let approve = format!("/executions/{}/approve", ids[0]);
    let r = g
        .send(browser(
            Method::POST,
            &approve,
            &t.ops,
            Some("csrf=0000&back=list"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a forged form is refused");
    let r = g
        .send(browser(
            Method::POST,
            &approve,
            &t.ops,
            Some(&format!("csrf={csrf}&back=list")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.headers["location"], "/executions");
    let reject = format!("/executions/{}/reject", ids[1]);
    let r = g
        .send(browser(
            Method::POST,
            &reject,
            &t.ops,
            Some(&format!("csrf={csrf}&back=execution&reason=too+big")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/executions/{}", ids[1])
    );
    let get = |id: &str| {
        let uri = format!("/api/v1/executions/{id}");
        let g = &g;
        let token = t.alice.clone();
        async move { g.get(&uri, &token).await.json() }
    };
    let a = get(&ids[0]).await;
    assert_eq!(
        (&a["state"], &a["history"][2]["by"]),
        (&json!("SCHEDULED"), &json!("ops"))
    );
    let b = get(&ids[1]).await;
    assert_eq!(b["state"], "REJECTED");
    assert_eq!(b["history"][2]["reason"], "too big");
    let page = g
        .send(browser(Method::GET, "/executions", &t.ops, None))
        .await
        .text();
    assert!(page.contains("Nothing awaits your approval."), "{page}");
}

#[tokio::test]
async fn operators_manage_users_and_quotas() {
    let (g, t) = setup().await;
    let users = g.get("/api/v1/users", &t.ops).await;
    assert_eq!(users.status, StatusCode::OK);
    let listed: api::UserList = serde_json::from_slice(&users.body).unwrap();
    let seen: Vec<(&str, api::Role)> = listed
        .users
        .iter()
        .map(|u| (u.name.as_str(), u.role))
        .collect();
    assert_eq!(
        seen,
        [
            ("alice", api::Role::Tenant),
            ("bob", api::Role::Tenant),
            ("ops", api::Role::Operator)
        ]
    );
    for (method, uri) in [
        (Method::GET, "/api/v1/users"),
        (Method::POST, "/api/v1/users/bob/disable"),
        (Method::POST, "/api/v1/users/bob/enable"),
        (Method::GET, "/api/v1/quotas"),
    ] {
        let r = g
            .call(method.clone(), uri, Some(&t.alice), None, Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {uri}");
    }
    let carol = json!({"name": "carol", "password": "pw-carol"});
    let r = g
        .post_json("/api/v1/users", Some(&t.alice), carol.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = g
        .post_json("/api/v1/users", Some(&t.ops), carol.clone())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["role"], "tenant");
    assert_eq!(r.json()["disabled_at"], Value::Null);
    let r = g.post_json("/api/v1/users", Some(&t.ops), carol).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    for bad in [
        json!({"name": "Carol!", "password": "x"}),
        json!({"name": "dave", "password": ""}),
        json!({"name": "dave", "password": "x", "role": "admin"}),
    ] {
        let r = g
            .post_json("/api/v1/users", Some(&t.ops), bad.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
    let r = g
        .post_json(
            "/api/v1/users",
            Some(&t.ops),
            json!({"name": "ops2", "password": "pw-ops2", "role": "operator"}),
        )
        .await;
    assert_eq!(r.json()["role"], "operator");
    let carol = g.login("carol").await;
    assert_eq!(
        g.get("/api/v1/namespaces", &carol).await.status,
        StatusCode::OK
    );

    // Disabled: its sessions end and it cannot log in; enabled again, it can.
    let r = post(&g, "/api/v1/users/carol/disable", &t.ops, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["disabled_at"].is_string());
    assert_eq!(
        g.get("/api/v1/namespaces", &carol).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = g
        .post_json(
            "/api/v1/login",
            None,
            json!({"user": "carol", "password": "pw-carol"}),
        )
        .await;
    r.assert_answer(StatusCode::FORBIDDEN, "user 'carol' is disabled");
    // A wrong password still reads as one.
    let r = g
        .post_json(
            "/api/v1/login",
            None,
            json!({"user": "carol", "password": "nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A ground restarted with carol in its users file keeps her disabled.
    g.ground.ensure_user("carol", "pw-carol").await.unwrap();
    let r = g
        .post_json(
            "/api/v1/login",
            None,
            json!({"user": "carol", "password": "pw-carol"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&g, "/api/v1/users/ops/disable", &t.ops, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "not itself");
    let r = post(&g, "/api/v1/users/nobody/disable", &t.ops, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(&g, "/api/v1/users/carol/enable", &t.ops, None).await;
    assert_eq!(r.json()["disabled_at"], Value::Null);
    let carol = g.login("carol").await;

    // Quotas: none until set; set whole; a tenant reads its own only.
    let q = g.get("/api/v1/quotas/carol", &t.ops).await.json();
    assert_eq!(
        q,
        json!({"tenant": "carol", "limits": {"volume_bytes": null, "image_bytes": null,
               "compute_seconds_per_day": null, "downlink_bytes_per_day": null},
               "updated_at": null, "updated_by": null})
    );
    let limits = json!({"volume_bytes": 2_147_483_648u64, "compute_seconds_per_day": 3600});
    let r = put(&g, &t.alice, "carol", limits.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = put(&g, &t.ops, "nobody", limits.clone()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = put(&g, &t.ops, "carol", json!({"volume_bites": 1})).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
    let r = put(&g, &t.ops, "carol", limits).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let set = r.json();
    assert_eq!(set["limits"]["volume_bytes"], 2_147_483_648u64);
    assert_eq!(set["limits"]["image_bytes"], Value::Null);
    assert_eq!(set["limits"]["compute_seconds_per_day"], 3600);
    assert_eq!(set["updated_by"], "ops");
    assert_eq!(g.get("/api/v1/quotas/carol", &carol).await.json(), set);
    assert_eq!(
        g.get("/api/v1/quotas/carol", &t.alice).await.status,
        StatusCode::NOT_FOUND
    );
    let all = g.get("/api/v1/quotas", &t.ops).await.json();
    let tenants: Vec<&str> = all["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["alice", "bob", "carol", "ops", "ops2"]);
}

#[tokio::test]
async fn operators_manage_users_and_quotas_from_the_dashboard() {
    let (g, t) = setup().await;
    let page = g.send(browser(Method::GET, "/users", &t.ops, None)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains("<a href=\"/users\" class=\"here\">Users</a>"),
        "{html}"
    );
    for form in [
        "action=\"/users/alice/disable\"",
        "action=\"/users/bob/disable\"",
        "action=\"/users/alice/quota\"",
    ] {
        assert!(html.contains(form), "{form}: {html}");
    }
    assert!(
        !html.contains("action=\"/users/ops/disable\""),
        "no button to disable oneself"
    );
    let csrf = csrf_of(&html);

    // A tenant neither sees the page nor the link, nor may post its forms.
    let alices = g
        .send(browser(Method::GET, "/", &t.alice, None))
        .await
        .text();
    assert!(!alices.contains("href=\"/users\""), "{alices}");
    assert_eq!(
        g.send(browser(Method::GET, "/users", &t.alice, None))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let alice_csrf = csrf_of(&alices);
    let r = g
        .send(browser(
            Method::POST,
            "/users/bob/disable",
            &t.alice,
            Some(&format!("csrf={alice_csrf}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = g
        .send(browser(
            Method::POST,
            "/users/bob/disable",
            &t.ops,
            Some("csrf=forged"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        g.get("/api/v1/namespaces", &t.bob).await.status,
        StatusCode::OK,
        "bob is untouched"
    );

    let r = g
        .send(browser(
            Method::POST,
            "/users/bob/disable",
            &t.ops,
            Some(&format!("csrf={csrf}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        g.get("/api/v1/namespaces", &t.bob).await.status,
        StatusCode::UNAUTHORIZED,
        "bob's sessions ended"
    );
    let html = g
        .send(browser(Method::GET, "/users", &t.ops, None))
        .await
        .text();
    assert!(html.contains("action=\"/users/bob/enable\""), "{html}");

    let form = format!(
        "csrf={csrf}&volume_bytes=1000&image_bytes=&compute_seconds_per_day=60&downlink_bytes_per_day="
    );
    let r = g
        .send(browser(
            Method::POST,
            "/users/alice/quota",
            &t.ops,
            Some(&form),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let q = g.get("/api/v1/quotas/alice", &t.alice).await.json();
    assert_eq!(
        q["limits"],
        json!({"volume_bytes": 1000, "image_bytes": null, "compute_seconds_per_day": 60,
               "downlink_bytes_per_day": null})
    );
    assert_eq!(q["updated_by"], "ops");
    let bad = format!("csrf={csrf}&volume_bytes=lots");
    let r = g
        .send(browser(
            Method::POST,
            "/users/alice/quota",
            &t.ops,
            Some(&bad),
        ))
        .await;
    r.assert_answer(StatusCode::BAD_REQUEST, "volume_bytes: \\\"lots\\\"");
}

#[tokio::test]
async fn an_execution_of_a_disabled_tenant_is_not_approved() {
    let (g, t) = setup().await;
    operation(&g, &t.alice, "alice-ns", "up").await;
    let e = start(&g, &t.alice, "alice-ns", "up", "fm").await;
    let id = e["id"].as_str().unwrap().to_string();
    let r = post(&g, "/api/v1/users/alice/disable", &t.ops, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let approve = format!("/api/v1/executions/{id}/approve");
    post(&g, &approve, &t.ops, None)
        .await
        .assert_answer(StatusCode::CONFLICT, "whose account is disabled");
    // Still held, and nothing went to the system.
    let e = g
        .get(&format!("/api/v1/executions/{id}"), &t.ops)
        .await
        .json();
    assert_eq!(e["state"], "AWAITING_APPROVAL", "{e}");
    let q = g.get("/api/v1/systems/fm/queue", &t.ops).await.json();
    assert_eq!(q["transfers"], json!([]), "{q}");
}
