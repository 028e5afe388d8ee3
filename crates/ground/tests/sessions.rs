//! Users and sessions across restarts, and login throttling, through `app()`.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Reply, TestGround, ground};
use serde_json::json;

/// `POST /api/v1/login` as the server sees it from `from`.
async fn login_from(g: &TestGround, from: &str, user: &str, password: &str) -> Reply {
    let from: SocketAddr = format!("{from}:40000").parse().unwrap();
    let req = Request::post("/api/v1/login")
        .header("content-type", "application/json")
        .extension(ConnectInfo(from))
        .body(Body::from(
            json!({"user": user, "password": password}).to_string(),
        ))
        .unwrap();
    g.send(req).await
}

async fn namespaces(g: &TestGround, token: &str) -> StatusCode {
    g.get("/api/v1/namespaces", token).await.status
}

#[tokio::test]
async fn the_same_password_again_keeps_sessions_and_a_new_one_ends_them() {
    let g = ground().await;
    let token = g.login("alice").await;
    g.ground.ensure_user("alice", "pw-alice").await.unwrap();
    assert_eq!(namespaces(&g, &token).await, StatusCode::OK);

    // A restart of a ground started with the same users.
    let g = g.reopen(Vec::new()).await;
    g.ground.ensure_user("alice", "pw-alice").await.unwrap();
    g.ground.ensure_user("bob", "pw-bob").await.unwrap();
    assert_eq!(
        namespaces(&g, &token).await,
        StatusCode::OK,
        "the session made before the restart still works"
    );

    // A new password ends the sessions of the old one.
    g.ground.ensure_user("alice", "new-pw").await.unwrap();
    assert_eq!(namespaces(&g, &token).await, StatusCode::UNAUTHORIZED);
    let r = login_from(&g, "192.0.2.1", "alice", "new-pw").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn users_can_be_given_as_argon2_hashes() {
    use argon2::password_hash::PasswordHasher;
    let g = ground().await;
    let phc = argon2::Argon2::default()
        .hash_password(b"hunter2")
        .unwrap()
        .to_string();
    g.ground.ensure_user_hashed("carol", &phc).await.unwrap();
    let r = login_from(&g, "192.0.2.1", "carol", "hunter2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    // The same hash again changes nothing; the password it hashes changes nothing either.
    g.ground.ensure_user_hashed("carol", &phc).await.unwrap();
    g.ground.ensure_user("carol", "hunter2").await.unwrap();
    assert_eq!(namespaces(&g, &token).await, StatusCode::OK);
    for bad in ["argon2", "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA", ""] {
        let e = g.ground.ensure_user_hashed("carol", bad).await.unwrap_err();
        assert_eq!(e.kind(), ground::ErrorKind::InvalidInput, "{bad}: {e}");
    }
    assert_eq!(namespaces(&g, &token).await, StatusCode::OK);
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_eleventh_attempt_even_with_the_right_one() {
    let g = ground().await;
    let attacker = "198.51.100.9";
    for i in 0..10 {
        let r = login_from(&g, attacker, "alice", &format!("guess-{i}")).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "attempt {i}: {}",
            r.text()
        );
        assert_eq!(r.json()["error"]["message"], "wrong user or password");
    }
    let r = login_from(&g, attacker, "alice", "pw-alice").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(
        r.json()["error"],
        json!({"code": "too_many_requests",
               "message": "too many failed logins for this user from this address; try again in 900 s"})
    );
    assert_eq!(r.headers["retry-after"], "900");

    // The attacker has not locked alice out: from her own address she logs in.
    let r = login_from(&g, "192.0.2.1", "alice", "pw-alice").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Nor has he locked himself out of other accounts yet.
    let r = login_from(&g, attacker, "bob", "pw-bob").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn an_address_trying_many_users_is_locked_for_all_of_them() {
    let g = ground().await;
    let sprayer = "203.0.113.5";
    for i in 0..30 {
        let r = login_from(&g, sprayer, &format!("user{i}"), "123456").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = login_from(&g, sprayer, "bob", "pw-bob").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json()["error"]["message"],
        "too many failed logins from this address; try again in 900 s"
    );
    // The dashboard's form is refused the same way.
    let from: SocketAddr = format!("{sprayer}:40000").parse().unwrap();
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .extension(ConnectInfo(from))
        .body(Body::from("user=bob&password=pw-bob"))
        .unwrap();
    let r = g.send(req).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.text()
            .contains("Too many failed logins; try again in 900 s."),
        "{}",
        r.text()
    );
    assert_eq!(r.headers["retry-after"], "900");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_sent_at_once_are_throttled_as_if_one_after_another() {
    let g = ground().await;
    let passwords: Vec<String> = (0..25).map(|i| format!("guess-{i}")).collect();
    let guesses = passwords
        .iter()
        .map(|p| login_from(&g, "198.51.100.20", "alice", p));
    let replies = futures_util::future::join_all(guesses).await;
    let count = |s: StatusCode| replies.iter().filter(|r| r.status == s).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (10, 15),
        "ten passwords were checked, no more"
    );
}
