//! An execution followed live (`GET /api/v1/executions/{id}/events`), the ground against a fake
//! flight agent (two `link` endpoints on loopback under one key; the test plays the agent): each
//! task event the agent sends comes out of the stream as the execution in its new state, the
//! stream ends after the final state, another tenant is answered as for the execution itself,
//! and a listener does not hold the server open when it stops. The dashboard's execution page
//! carries the region its script replaces, and the region alone is served to the signed-in.

mod common;

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{Method, Request, StatusCode};
use common::flight::{Flight, em};
use common::{TestGround, free_udp_addr, ground_with, start_listings};
use futures_util::StreamExt;
use serde_json::Value;
use tower::ServiceExt;
use wire::{LinkKey, Message, TaskState};

/// When the agent's execution events say they happened.
const ENDED_AT: u64 = 1_800_000_100_000;

/// A stream of server-sent events, read event by event.
struct Events {
    body: BodyDataStream,
    buffer: String,
}

impl Events {
    async fn open(g: &TestGround, id: &str, token: &str) -> Events {
        let req = Request::builder()
            .uri(format!("/api/v1/executions/{id}/events"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = g.app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Events {
            body: res.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }

    /// The next `execution` event's data, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                // Keep-alive comments (`:`) carry nothing.
                if event.lines().any(|l| l == "event: execution") {
                    let data: String = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                    return Some(serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("an event within 30 s")?
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Events until the execution is in `state` with its tasks in `tasks`; that event. The
    /// agent's reports cross the link as separate messages and may be handled in either order,
    /// so the states in between vary; this one must come, and the stream must go on until it.
    async fn until(&mut self, state: &str, tasks: &[&str]) -> Value {
        loop {
            let e = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before {state} {tasks:?}"));
            if e["state"] == state && task_states(&e) == tasks {
                return e;
            }
        }
    }
}

fn task_states(e: &Value) -> Vec<&str> {
    e["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn task_events_stream_out_as_they_land_until_the_end() {
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let key = LinkKey::from_bytes(rand::random());
    let g = ground_with(vec![em(ground_addr, flight_addr, key.clone())]).await;
    let mut flight = Flight::spawn(flight_addr, ground_addr, key).await;
    let alice = g.login("alice").await;
    let bob = g.login("bob").await;
    let id = start_listings(&g, &alice, "look").await;

    // Another tenant's execution is as good as absent; no token, no stream.
    let r = g
        .get(&format!("/api/v1/executions/{id}/events"), &bob)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = g
        .call(
            Method::GET,
            &format!("/api/v1/executions/{id}/events"),
            None,
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());

    // The first event is the execution as it is.
    let mut events = Events::open(&g, &id, &alice).await;
    let first = events.next().await.unwrap();
    assert_eq!(first["id"], id.as_str());
    assert_eq!(task_states(&first), ["SCHEDULED", "SCHEDULED"], "{first:#}");

    // Each change the agent reports comes out, and equals what the API answers then.
    match flight.recv().await {
        Message::Plan(p) => assert_eq!(p.execution, id),
        other => panic!("expected the plan, got {other:?}"),
    }
    flight.execution(&id, TaskState::Running, ENDED_AT).await;
    flight.task(&id, 0, TaskState::Running, None, None).await;
    events.until("RUNNING", &["RUNNING", "SCHEDULED"]).await;
    flight.task(&id, 0, TaskState::Success, None, None).await;
    flight.task(&id, 1, TaskState::Running, None, None).await;
    events.until("RUNNING", &["SUCCESS", "RUNNING"]).await;
    flight.task(&id, 1, TaskState::Success, None, None).await;
    flight.execution(&id, TaskState::Success, ENDED_AT).await;
    let last = events.until("COMPLETED", &["SUCCESS", "SUCCESS"]).await;
    assert_eq!(
        last,
        g.get(&format!("/api/v1/executions/{id}"), &alice)
            .await
            .json(),
        "the last event is the execution as the API answers it"
    );
    assert!(
        events.next().await.is_none(),
        "the stream ends after the final state"
    );

    // Following an execution that ended: its one event, then the end.
    let mut events = Events::open(&g, &id, &alice).await;
    assert_eq!(events.next().await.unwrap()["state"], "COMPLETED");
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn a_listener_does_not_hold_the_server_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = common::ground().await;
    let alice = g.login("alice").await;
    let id = start_listings(&g, &alice, "look").await;
    let (addr, stop, server) = common::serve(&g).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /api/v1/executions/{id}/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {alice}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: execution") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    // The execution never ends (its system is unreachable), yet stopping ends the stream.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops with a listener connected")
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
}

#[tokio::test]
async fn the_page_carries_the_region_its_script_replaces() {
    let g = common::ground().await;
    let alice = g.login("alice").await;
    let id = start_listings(&g, &alice, "look").await;
    // The API's token is also the session the dashboard's cookie carries.
    let cookie = format!("orbitdock_session={alice}");
    let browser = |uri: String| {
        Request::builder()
            .uri(uri)
            .header("cookie", cookie.clone())
            .body(Body::empty())
            .unwrap()
    };
    let page = g.send(browser(format!("/executions/{id}"))).await;
    assert_eq!(page.status, StatusCode::OK);
    let page = page.text();
    assert!(
        page.contains(&format!(
            "<div id=\"live\" aria-live=\"polite\" data-events=\"/api/v1/executions/{id}/events\" data-region=\"/executions/{id}/live\">"
        )),
        "{page}"
    );
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "no reload: {page}"
    );
    assert!(page.contains("<noscript>"), "a reload link without scripts");
    let region = g.send(browser(format!("/executions/{id}/live"))).await;
    assert_eq!(region.status, StatusCode::OK);
    let region = region.text();
    assert!(region.starts_with("<p>"), "{region}");
    assert!(region.contains("SCHEDULED"), "{region}");
    // The same template: the region's task table is the page's (the uplink's ETA, which follows
    // the link's own progress, may differ between two reads).
    let tasks = |html: &str| {
        let at = html.find("<table id=\"tasks\">").expect("the tasks' table");
        html[at..at + html[at..].find("</table>").unwrap()].to_string()
    };
    assert_eq!(tasks(&region), tasks(&page));
    // Signed out, or another tenant's: nothing.
    let r = g
        .send(
            Request::builder()
                .uri(format!("/executions/{id}/live"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Two replicas on one PostgreSQL database: the link's events land on the one that holds the
/// system's link, and an execution followed on the other streams each change as it lands
/// (`replicas`: NOTIFY on a change, LISTEN on each replica). Without a server (and without
/// `ORBITDOCK_REQUIRE_POSTGRES=1`) it says so and passes over.
#[tokio::test]
async fn a_follower_on_another_replica_sees_each_change_on_postgres() {
    let Some(server) = common::postgres::server_url() else {
        eprintln!("ORBITDOCK_TEST_POSTGRES_URL is not set: the PostgreSQL test is not run");
        return;
    };
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let key = LinkKey::from_bytes(rand::random());
    let database = common::TestDatabase::postgres(&server).await;
    // Replica A holds the link to `em`; replica B serves the follower, with no link of its own.
    let a = common::ground_on(database, vec![em(ground_addr, flight_addr, key.clone())]).await;
    let b_dir = tempfile::tempdir().unwrap();
    let b = ground::Ground::open(common::config(&b_dir, &a.database, Vec::new()))
        .await
        .unwrap();
    let b = TestGround {
        ground: b,
        dir: b_dir,
        database: common::TestDatabase::sqlite(),
    };
    let mut flight = Flight::spawn(flight_addr, ground_addr, key).await;
    let alice = a.login("alice").await;
    let id = start_listings(&a, &alice, "look").await;

    let mut events = Events::open(&b, &id, &alice).await;
    let first = events.next().await.unwrap();
    assert_eq!(task_states(&first), ["SCHEDULED", "SCHEDULED"], "{first:#}");
    match flight.recv().await {
        Message::Plan(p) => assert_eq!(p.execution, id),
        other => panic!("expected the plan, got {other:?}"),
    }
    flight.execution(&id, TaskState::Running, ENDED_AT).await;
    flight.task(&id, 0, TaskState::Running, None, None).await;
    events.until("RUNNING", &["RUNNING", "SCHEDULED"]).await;
    flight.task(&id, 0, TaskState::Success, None, None).await;
    flight.task(&id, 1, TaskState::Success, None, None).await;
    flight.execution(&id, TaskState::Success, ENDED_AT).await;
    let last = events.until("COMPLETED", &["SUCCESS", "SUCCESS"]).await;
    assert_eq!(
        last,
        a.get(&format!("/api/v1/executions/{id}"), &alice)
            .await
            .json(),
        "replica B streams what replica A answers"
    );
    assert!(events.next().await.is_none());
}
