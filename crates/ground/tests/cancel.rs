//! Cancelling a sent execution, the ground against a fake flight agent (two `link` endpoints on
//! loopback under one key; the test plays the agent): the ground shows it `CANCELLING` and sends
//! a cancel order signed with the plans' key after its plan (from the API or the dashboard's
//! Cancel form); the agent's `CANCELLED` events end it; a cancel that reaches the agent after the end leaves the end as it was, and says so; a
//! restarted agent gets the pending cancel again, before the plan.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::flight::{Flight, em};
use common::{TestGround, free_udp_addr, ground_with, start_listings};
use serde_json::{Value, json};
use wire::{CancelOrder, ErrorCode, LinkKey, Message, Plan, TaskError, TaskState};

async fn plan(flight: &mut Flight) -> Plan {
    match flight.recv().await {
        Message::Plan(p) => p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

async fn order(flight: &mut Flight) -> CancelOrder {
    match flight.recv().await {
        Message::Cancel(o) => {
            common::verifier()
                .verify_cancel(&o)
                .expect("every cancel order is signed by the ground");
            o
        }
        other => panic!("expected a cancel order, got {other:?}"),
    }
}

/// When the agent's execution events say they happened.
const ENDED_AT: u64 = 1_800_000_100_000;

fn cancelled(message: &str) -> Option<TaskError> {
    Some(TaskError {
        code: ErrorCode::Cancelled,
        message: message.into(),
        log_tail: Vec::new(),
    })
}

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

async fn get(g: &TestGround, token: &str, id: &str) -> Value {
    g.get(&format!("/api/v1/executions/{id}"), token)
        .await
        .json()
}

/// Polls the execution until its state is `state`.
async fn wait_for(g: &TestGround, token: &str, id: &str, state: &str) -> Value {
    for _ in 0..400 {
        let e = get(g, token, id).await;
        if e["state"] == state {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "execution {id} never got {state}: {}",
        get(g, token, id).await
    );
}

async fn cancel(g: &TestGround, token: &str, id: &str) -> common::Reply {
    g.post_json(
        &format!("/api/v1/executions/{id}/cancel"),
        Some(token),
        json!({}),
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

#[tokio::test]
async fn a_sent_execution_is_cancelling_until_its_system_confirms() {
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let key = LinkKey::from_bytes(rand::random());
    let g = ground_with(vec![em(ground_addr, flight_addr, key.clone())]).await;
    let mut flight = Flight::spawn(flight_addr, ground_addr, key).await;
    let t = g.login("alice").await;

    // Running onboard: its first task started.
    let id = start_listings(&g, &t, "long").await;
    assert_eq!(plan(&mut flight).await.execution, id);
    flight.execution(&id, TaskState::Running, ENDED_AT).await;
    flight.task(&id, 0, TaskState::Running, None, None).await;
    wait_for(&g, &t, &id, "RUNNING").await;
    // The two reports cross the link as separate messages, handled in either order: wait for
    // the task's too (the execution's alone made this test fail now and then).
    for _ in 0..400 {
        if get(&g, &t, &id).await["tasks"][0]["state"] == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let r = cancel(&g, &t, &id).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "CANCELLING");
    assert_eq!(
        e["history"].as_array().unwrap().last().unwrap()["by"],
        "alice"
    );
    assert_eq!(
        e["tasks"][0]["state"], "RUNNING",
        "nothing changes before the system says so"
    );
    let o = order(&mut flight).await;
    assert_eq!(
        (o.execution.as_str(), o.system.as_str(), o.by.as_str()),
        (id.as_str(), "em", "alice")
    );

    // The agent stops the first task and never starts the second.
    flight
        .task(
            &id,
            0,
            TaskState::Cancelled,
            cancelled(
                "the pod was stopped (SIGTERM, then SIGKILL after 5s): the execution was cancelled",
            ),
            None,
        )
        .await;
    flight
        .task(
            &id,
            1,
            TaskState::Cancelled,
            cancelled("not run: the execution was cancelled by alice"),
            None,
        )
        .await;
    flight.execution(&id, TaskState::Cancelled, ENDED_AT).await;
    let e = wait_for(&g, &t, &id, "CANCELLED").await;
    assert_eq!(
        states(&e["history"]),
        ["CREATED", "SCHEDULED", "RUNNING", "CANCELLING", "CANCELLED"]
    );
    assert_eq!(e["history"][4]["by"], "alice");
    assert_ne!(e["finished_at"], Value::Null);
    assert_eq!(e["tasks"][0]["state"], "CANCELLED");
    assert_eq!(e["tasks"][0]["error"]["code"], 23);
    assert!(
        e["tasks"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the pod was stopped"),
        "{e:#}"
    );
    assert_eq!(e["tasks"][1]["state"], "CANCELLED");
    assert_eq!(e["tasks"][1]["started_at"], Value::Null, "never ran: {e:#}");
    let errors = e["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{e:#}");
    assert_eq!(errors[0]["name"], "CANCELLED");
    assert_eq!(
        errors[0]["message"],
        "cancelled by alice; stopped on system 'em'"
    );

    // Ended: a cancel now is refused, clearly.
    let r = cancel(&g, &t, &id).await;
    r.assert_answer(
        StatusCode::CONFLICT,
        "has already ended (CANCELLED): there is nothing left to cancel",
    );

    // A cancel that reaches the system after the end: the end stands, and the history says so.
    // This one is cancelled from the dashboard: its page's Cancel form, with the CSRF token.
    let late = start_listings(&g, &t, "late").await;
    assert_eq!(plan(&mut flight).await.execution, late);
    let page = g
        .send(browser(
            Method::GET,
            &format!("/executions/{late}"),
            &t,
            None,
        ))
        .await
        .text();
    let form = format!("action=\"/executions/{late}/cancel\"");
    assert!(page.contains(&form), "{page}");
    let csrf = csrf_of(&page);
    let r = g
        .send(browser(
            Method::POST,
            &format!("/executions/{late}/cancel"),
            &t,
            Some("csrf=0000&back=execution"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a forged form is refused");
    let r = g
        .send(browser(
            Method::POST,
            &format!("/executions/{late}/cancel"),
            &t,
            Some(&format!("csrf={csrf}&back=execution")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/executions/{late}")
    );
    let page = g
        .send(browser(
            Method::GET,
            &format!("/executions/{late}"),
            &t,
            None,
        ))
        .await
        .text();
    assert!(page.contains("Cancel requested by alice"), "{page}");
    assert!(!page.contains(&form), "no second Cancel button: {page}");
    assert_eq!(order(&mut flight).await.execution, late);
    for i in 0..2 {
        flight.task(&late, i, TaskState::Running, None, None).await;
        flight.task(&late, i, TaskState::Success, None, None).await;
    }
    // It started while CANCELLING: the start is kept, the state is not.
    flight.execution(&late, TaskState::Running, ENDED_AT).await;
    flight.execution(&late, TaskState::Success, ENDED_AT).await;
    let e = wait_for(&g, &t, &late, "COMPLETED").await;
    assert_ne!(e["started_at"], Value::Null);
    let last = e["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["state"], "COMPLETED");
    assert_eq!(
        last["reason"],
        "the cancel alice asked for reached system 'em' after the execution had ended"
    );
    assert_eq!(e["errors"], json!([]));

    // The agent restarts while a cancel is pending: the cancel comes again, before the plan.
    let pending = start_listings(&g, &t, "pending").await;
    let first_plan = plan(&mut flight).await;
    assert_eq!(cancel(&g, &t, &pending).await.status, StatusCode::ACCEPTED);
    let first_order = order(&mut flight).await;
    flight
        .send(Message::Hello {
            agent: "em".into(),
            platform: "linux/amd64".into(),
            catalogue: wire::catalogue("linux/amd64"),
            boot: 42,
            holds: Vec::new(),
            engine: wire::EngineReport::default(),
        })
        .await;
    assert_eq!(
        order(&mut flight).await,
        first_order,
        "the same order, first"
    );
    assert_eq!(plan(&mut flight).await, first_plan, "then the plan");
    // The agent that lost the plan reports the execution cancelled at once.
    flight
        .execution(&pending, TaskState::Cancelled, ENDED_AT)
        .await;
    let e = wait_for(&g, &t, &pending, "CANCELLED").await;
    for t in e["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "CANCELLED", "{e:#}");
        assert_eq!(
            t["error"]["message"],
            "not run: the execution was cancelled"
        );
    }
}
