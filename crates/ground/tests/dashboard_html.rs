//! Every dashboard page, as a tenant, as an operator and signed out, is valid HTML (html5ever,
//! the browsers' parsing algorithm, reports no parse error) and accessible in the ways a checker
//! can tell: a language and a title, every form field labelled, every table with header cells,
//! no id given twice, every image or chart with a text alternative.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Entry, TestGround, tar};
use ground::{Role, SystemLink};
use scraper::{ElementRef, Html, Selector};
use serde_json::json;

/// A flight system with the demo orbit (two stations), its elements from now.
fn flying(name: &str) -> SystemLink {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let demo = orbit::demo_system(orbit::Epoch::from_unix_seconds(now.as_secs_f64()));
    SystemLink {
        orbit: Some(orbit::SystemOrbit {
            tle: orbit::parse_tle_text(&demo.tle_text).unwrap().remove(0),
            stations: demo.stations,
        }),
        ..system(name)
    }
}

fn system(name: &str) -> SystemLink {
    SystemLink {
        name: name.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        link: "127.0.0.1:9".parse().unwrap(),
        key: wire::LinkKey::from_bytes([7; 32]),
        rate_bits_per_sec: None,
        contact: link::Contact::Windows(Vec::new()),
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    }
}

/// Fetches a page with the session cookie `token`; its status and HTML.
async fn page(g: &TestGround, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri(path);
    if let Some(t) = token {
        req = req.header("cookie", format!("orbitdock_session={t}"));
    }
    let r = g.send(req.body(Body::empty()).unwrap()).await;
    (r.status, r.text())
}

fn sel(css: &str) -> Selector {
    Selector::parse(css).unwrap()
}

/// What is wrong with a page, one line each; empty when nothing is.
fn problems(html: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let mut out: Vec<String> = doc
        .errors
        .iter()
        .map(|e| format!("parse error: {e}"))
        .collect();
    if !html.starts_with("<!DOCTYPE html>") {
        out.push("no <!DOCTYPE html> first".into());
    }
    let root = doc.root_element();
    if root.value().attr("lang").is_none_or(str::is_empty) {
        out.push("<html> has no lang".into());
    }
    let title: String = doc
        .select(&sel("head > title"))
        .flat_map(|t| t.text())
        .collect();
    if title.trim().is_empty() {
        out.push("no <title>".into());
    }
    if doc.select(&sel("main")).count() != 1 {
        out.push("not exactly one <main>".into());
    }
    if doc.select(&sel("h1")).count() != 1 {
        out.push("not exactly one <h1>".into());
    }

    // Ids are unique (a label's `for` names one).
    let mut ids = BTreeSet::new();
    for e in doc.select(&sel("[id]")) {
        let id = e.value().attr("id").unwrap();
        if !ids.insert(id.to_string()) {
            out.push(format!("id {id:?} given twice"));
        }
    }

    // Every form field has a label: a <label> around it or naming it, or an aria-label.
    let labelled_by_for: BTreeSet<&str> = doc
        .select(&sel("label[for]"))
        .filter_map(|l| l.value().attr("for"))
        .collect();
    for field in doc.select(&sel("input, select, textarea")) {
        let v = field.value();
        if matches!(
            v.attr("type"),
            Some("hidden" | "submit" | "button" | "reset" | "image")
        ) {
            continue;
        }
        let wrapped = field
            .ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| a.value().name() == "label");
        let named = v.id().is_some_and(|id| labelled_by_for.contains(id));
        let aria = v.attr("aria-label").is_some_and(|l| !l.trim().is_empty());
        if !(wrapped || named || aria) {
            out.push(format!("field without a label: {}", field.html()));
        }
    }
    // Every label that names a field names one that exists.
    for f in &labelled_by_for {
        if !ids.contains(*f) {
            out.push(format!("label for a missing id {f:?}"));
        }
    }
    // Every button says what it does.
    for b in doc.select(&sel("button")) {
        let text: String = b.text().collect();
        if text.trim().is_empty() && b.value().attr("aria-label").is_none() {
            out.push(format!("button without text: {}", b.html()));
        }
    }
    // Every table has header cells.
    for t in doc.select(&sel("table")) {
        if t.select(&sel("th")).next().is_none() {
            let head: String = t.html().chars().take(200).collect();
            out.push(format!("table without header cells: {head}"));
        }
    }
    // Every image and chart has a text alternative.
    for img in doc.select(&sel("img")) {
        if img.value().attr("alt").is_none() {
            out.push(format!("img without alt: {}", img.html()));
        }
    }
    for svg in doc.select(&sel("svg")) {
        let v = svg.value();
        let hidden = v.attr("aria-hidden") == Some("true");
        let named = v.attr("aria-label").is_some()
            || v.attr("aria-labelledby").is_some()
            || svg.select(&sel("title")).next().is_some();
        if !(hidden || named) {
            let head: String = svg.html().chars().take(120).collect();
            out.push(format!("svg without a text alternative: {head}"));
        }
    }
    // Every link has text.
    for a in doc.select(&sel("a[href]")) {
        let text: String = a.text().collect();
        if text.trim().is_empty() && a.value().attr("aria-label").is_none() {
            out.push(format!("link without text: {}", a.html()));
        }
    }
    out
}

#[test]
fn the_checker_finds_what_it_looks_for() {
    let good = "<!DOCTYPE html><html lang=\"en\"><head><title>t</title></head><body><main><h1>h</h1>\
                <form><label>Name <input name=n></label><button>Go</button></form>\
                <table><tr><th>a</th></tr><tr><td>1</td></tr></table></main></body></html>";
    assert_eq!(problems(good), Vec::<String>::new());
    let bad = "<!DOCTYPE html><html><head><title>t</title></head><body><main><h1>h</h1>\
               <p><div>misnested</p></div><input name=n id=x><input id=x name=m aria-label=m>\
               <table><tr><td>1</td></tr></table><svg></svg><a href=/></a></main></body></html>";
    let found = problems(bad).join("\n");
    for want in [
        "parse error",
        "no lang",
        "field without a label",
        "id \"x\" given twice",
        "table without header cells",
        "svg without a text alternative",
        "link without text",
    ] {
        assert!(found.contains(want), "{want} not found in:\n{found}");
    }
}

#[tokio::test]
async fn every_page_is_valid_html_with_labelled_fields_and_table_headers() {
    let g = common::ground_with(vec![system("em"), system("fm"), flying("sat")]).await;
    g.ground.ensure_user("ops", "pw-ops").await.unwrap();
    g.ground.set_role("ops", Role::Operator).await.unwrap();
    let alice = g.login("alice").await;
    let ops = g.login("ops").await;

    // Something on every page: files in folders, an operation with two revisions, executions
    // (one waiting for approval on the flight system).
    let r = g
        .upload_tar(
            "alice-ns",
            "",
            &alice,
            tar(&[
                Entry::File("in/data.txt", b"payload", 0o644),
                Entry::File("in/deep/more.txt", b"<b>not markup</b>", 0o644),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    for system in ["em", "fm"] {
        let yaml = format!(
            "id: up\nnamespace: alice-ns\nsystem: {system}\ntasks:\n- id: up\n  type: uplink\n  source: /in\n  destination: /\n- id: ls\n  type: files.list\n"
        );
        let r = g.post_yaml("/api/v1/operations", &alice, &yaml).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let r = g
            .post_json(
                "/api/v1/executions",
                Some(&alice),
                json!({"namespace": "alice-ns", "operation": "up", "system": system}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let executions = g.get("/api/v1/executions", &alice).await.json();
    let ids: Vec<String> = executions["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);

    let mut pages = vec![
        "/".to_string(),
        "/namespaces".into(),
        "/namespaces/alice-ns".into(),
        "/operations".into(),
        "/operations/alice-ns/up".into(),
        "/operations/alice-ns/up?diff=1".into(),
        "/executions".into(),
        "/systems".into(),
        "/systems/em/volumes".into(),
        "/systems/fm/volumes".into(),
    ];
    pages.extend(ids.iter().map(|id| format!("/executions/{id}")));
    let mut report = Vec::new();
    let mut checked = 0;
    for (who, token) in [("alice", &alice), ("ops", &ops)] {
        let mut mine = pages.clone();
        if who == "ops" {
            mine.push("/users".into());
        }
        for path in &mine {
            let (status, html) = page(&g, path, Some(token)).await;
            // An operator sees alice's executions, but alice's namespace and operation are
            // hers alone (a JSON 403, not a page).
            if who == "ops" && status == StatusCode::FORBIDDEN && path.contains("alice-ns") {
                continue;
            }
            assert!(status.is_success(), "{who} {path}: {status} {html}");
            assert!(html.contains("Signed in as"), "{who} {path}: {html}");
            for p in problems(&html) {
                report.push(format!("{who} {path}: {p}"));
            }
            checked += 1;
        }
    }
    // Signed out: the login form, and the login form with an error.
    let (_, html) = page(&g, "/", None).await;
    assert!(html.contains("Sign in"), "{html}");
    report.extend(
        problems(&html)
            .into_iter()
            .map(|p| format!("signed out /: {p}")),
    );
    let r = g
        .send(
            Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("user=alice&password=wrong"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    report.extend(
        problems(&r.text())
            .into_iter()
            .map(|p| format!("wrong login: {p}")),
    );
    assert!(checked >= 20, "{checked}");
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[tokio::test]
async fn the_systems_page_draws_the_passes_as_a_timeline() {
    let g = common::ground_with(vec![system("em"), flying("sat")]).await;
    let alice = g.login("alice").await;
    let (status, html) = page(&g, "/systems", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    let doc = Html::parse_document(&html);
    let timelines: Vec<ElementRef> = doc.select(&sel("svg.timeline")).collect();
    assert_eq!(timelines.len(), 1, "one for sat, none for em: {html}");
    let label = timelines[0].value().attr("aria-label").unwrap();
    let passes: usize = label
        .split(": ")
        .nth(1)
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{label}"));
    assert!(
        passes >= 2,
        "the demo orbit passes its stations several times a day: {label}"
    );
    let bars: Vec<ElementRef> = timelines[0].select(&sel("rect")).collect();
    assert_eq!(bars.len(), passes, "one bar per pass");
    // Each bar says its station and times, and lies within the 24 hours drawn.
    for bar in &bars {
        let title: String = bar.text().collect();
        assert!(title.contains(" to ") && title.contains("MB up"), "{title}");
        let x: f64 = bar.value().attr("x").unwrap().parse().unwrap();
        let w: f64 = bar.value().attr("width").unwrap().parse().unwrap();
        assert!((90.0..=810.0).contains(&x) && x + w <= 812.0, "{x} {w}");
    }
    // The table beside it lists the same first passes.
    let first = bars[0].text().collect::<String>();
    let station = first.split(':').next().unwrap();
    assert!(html.contains(&format!("<td>{station}</td>")), "{html}");
}

#[tokio::test]
async fn the_operation_page_shows_its_uplink_plan_as_the_plan_route_makes_it() {
    let g = common::ground_with(vec![system("em"), flying("sat")]).await;
    let alice = g.login("alice").await;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = g
        .upload_tar(
            "ns",
            "",
            &alice,
            tar(&[
                Entry::File("in/a.txt", b"hello", 0o644),
                Entry::File("in/b.bin", &big, 0o644),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let yaml = "id: up\nnamespace: ns\nsystem: sat\ntasks:\n- id: send\n  type: uplink\n  source: /in\n  destination: /data\n- id: ls\n  type: files.list\n";
    let r = g.post_yaml("/api/v1/operations", &alice, yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let plan = g
        .post_json(
            "/api/v1/plan",
            Some(&alice),
            json!({"system": "sat", "sources": ["ns:/in"], "destination": "/data"}),
        )
        .await
        .json();
    let (status, html) = page(&g, "/operations/ns/up", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Uplink plan on sat") && html.contains("Task send"),
        "{html}"
    );
    let bytes = plan["total"]["bytes"].as_u64().unwrap();
    // The 200 kB file compresses well: under 10 kB, shown exactly.
    assert!(bytes > 0 && bytes < 10_000, "{plan}");
    assert!(
        html.contains(&format!("{bytes} bytes over the link")),
        "{bytes}: {html}"
    );
    for f in plan["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        assert!(path.starts_with("/data/in/"), "{f}");
        assert!(
            html.contains(&format!("<code>{path}</code>")),
            "{path}: {html}"
        );
    }
    let station = plan["eta"]["pass"]["station"].as_str().expect("a pass");
    assert!(
        html.contains(&format!(
            "Arrives in pass {} from now, over {station}",
            plan["eta"]["passes"]
        )),
        "{plan}: {html}"
    );
    assert!(problems(&html).is_empty(), "{:?}", problems(&html));
}
