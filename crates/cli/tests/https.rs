//! HTTPS end to end: a real ground serving TLS with certificates made here (a CA, a server
//! certificate it signs for 127.0.0.1, and a CA that signed nothing), the CLI logging in, pushing
//! and listing over it with `--cacert` (saved with the context, or `ORBITDOCK_CACERT` in CI), a
//! certificate that does not verify refused with exit status 4, the session cookie `Secure`,
//! `orbitdock ground` naming the file at fault when its certificate or key cannot serve, and
//! `orbitdock demo` over HTTPS with a self-signed certificate.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use support::{BIN, GroundOnly, free_udp, json_of};

/// The files of a small PKI in a folder.
struct Pki {
    /// The CA that signed the server certificates.
    ca: PathBuf,
    /// A CA that signed nothing here.
    wrong_ca: PathBuf,
    /// The server certificate for 127.0.0.1 and localhost, and its key.
    cert: PathBuf,
    key: PathBuf,
    /// A server certificate for `localhost` only, and its key.
    localhost_cert: PathBuf,
    localhost_key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki(dir: &Path) -> Pki {
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let authority = ca("orbitdock test CA");
    let other = ca("another CA");
    let server = |names: &[&str]| {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "orbitdock ground");
        let cert = params.signed_by(&key, &authority).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = server(&["127.0.0.1", "localhost"]);
    let (localhost_cert, localhost_key) = server(&["localhost"]);
    Pki {
        ca: write("ca.pem", authority.pem()),
        wrong_ca: write("wrong-ca.pem", other.pem()),
        cert: write("ground.pem", cert),
        key: write("ground.key", key),
        localhost_cert: write("localhost.pem", localhost_cert),
        localhost_key: write("localhost.key", localhost_key),
    }
}

fn tls(cert: &Path, key: &Path) -> ground::TlsConfig {
    ground::TlsConfig::from_pem_files(cert, key).unwrap()
}

/// A client of the tests' own that trusts `ca` only and follows no redirect.
fn trusting(ca: &Path) -> reqwest::Client {
    support::http_client();
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs `orbitdock ARGS` in `cwd` with `env` (and no session from the environment otherwise).
async fn run(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("ORBITDOCK_TOKEN")
        .env_remove("ORBITDOCK_SERVER")
        .env_remove("ORBITDOCK_CACERT")
        .env_remove("ORBITDOCK_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    eprintln!(
        "$ orbitdock {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_logs_in_pushes_and_lists_over_https_with_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let g = GroundOnly::start_tls(tls(&pki.cert, &pki.key)).await;
    assert!(g.url.starts_with("https://127.0.0.1:"), "{}", g.url);
    g.ground.ensure_user("alice", "pw-alice").await.unwrap();
    let session = dir.path().join("session.json");
    let session_env = [("ORBITDOCK_SESSION", session.to_str().unwrap())];

    // Logged in from the CA's folder with a relative path: the context keeps it absolute.
    let out = run(
        &[
            "login",
            "--server",
            &g.url,
            "--user",
            "alice",
            "--password",
            "pw-alice",
            "--cacert",
            "ca.pem",
            "--name",
            "secure",
            "-o",
            "json",
        ],
        dir.path(),
        &session_env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["server"], g.url.as_str());
    let saved: Value = serde_json::from_slice(&std::fs::read(&session).unwrap()).unwrap();
    assert_eq!(
        saved["contexts"]["secure"]["cacert"],
        pki.ca.to_str().unwrap(),
        "the context keeps the CA file, absolute: {saved:#}"
    );
    let token = saved["contexts"]["secure"]["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Pushed and listed from elsewhere, through the context alone.
    let elsewhere = tempfile::tempdir().unwrap();
    let app = elsewhere.path().join("app");
    std::fs::create_dir_all(app.join("in")).unwrap();
    std::fs::write(app.join("in/a.txt"), b"over tls\n").unwrap();
    let out = run(
        &["files", "push", "app", "-n", "tls", "-o", "json"],
        elsewhere.path(),
        &session_env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["files"][0]["path"], "/in/a.txt");
    let out = run(
        &["files", "ls", "tls", "-o", "json"],
        elsewhere.path(),
        &session_env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = json_of(&out);
    let api: Value = trusting(&pki.ca)
        .get(format!("{}/api/v1/namespaces/tls/files", g.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, api, "files ls over HTTPS is the API's answer");
    assert_eq!(listed["files"][0]["size"], 9);

    // `context list` shows the CA file.
    let out = run(
        &["context", "list", "-o", "json"],
        elsewhere.path(),
        &session_env,
    )
    .await;
    let contexts = json_of(&out);
    assert_eq!(contexts[0]["cacert"], pki.ca.to_str().unwrap());
    support::assert_keys(
        &contexts[0],
        &["name", "current", "server", "user", "cacert"],
        &[],
    );

    // CI: server, token and CA from the environment, no session file.
    let nowhere = dir.path().join("no-session.json");
    let ci = [
        ("ORBITDOCK_SESSION", nowhere.to_str().unwrap()),
        ("ORBITDOCK_SERVER", g.url.as_str()),
        ("ORBITDOCK_TOKEN", token.as_str()),
    ];
    let mut with_ca = ci.to_vec();
    with_ca.push(("ORBITDOCK_CACERT", pki.ca.to_str().unwrap()));
    let out = run(
        &["files", "ls", "tls", "-o", "json"],
        elsewhere.path(),
        &with_ca,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out), api);
    // Set but empty is as unset, as for ORBITDOCK_SERVER and ORBITDOCK_TOKEN.
    let mut empty_ca = ci.to_vec();
    empty_ca.push(("ORBITDOCK_CACERT", ""));
    let out = run(&["files", "ls", "tls"], elsewhere.path(), &empty_ca).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "without the CA the system's roots refuse it: {}",
        stderr(&out)
    );
    assert!(!nowhere.exists(), "nothing is written in CI mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_verify_is_refused_with_status_4() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let g = GroundOnly::start_tls(tls(&pki.cert, &pki.key)).await;
    g.ground.ensure_user("alice", "pw-alice").await.unwrap();
    let session = dir.path().join("session.json");
    let env = [("ORBITDOCK_SESSION", session.to_str().unwrap())];
    let login = |ca: Option<&Path>| {
        let mut args = vec![
            "login".to_string(),
            "--server".into(),
            g.url.clone(),
            "--user".into(),
            "alice".into(),
            "--password".into(),
            "pw-alice".into(),
        ];
        if let Some(ca) = ca {
            args.extend(["--cacert".into(), ca.display().to_string()]);
        }
        args
    };
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    // A CA that did not sign it.
    let args = login(Some(&pki.wrong_ca));
    let out = run(&strs(&args), dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("the TLS certificate of {} did not verify", g.url)),
        "{e}"
    );
    assert!(
        e.contains(pki.wrong_ca.to_str().unwrap()),
        "the CA file is named: {e}"
    );
    assert!(!session.exists(), "nothing is saved");

    // No CA: the system's roots do not know this one, and the message says what to give.
    let args = login(None);
    let out = run(&strs(&args), dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--cacert FILE or ORBITDOCK_CACERT"),
        "{}",
        stderr(&out)
    );

    // A CA file that cannot be read is named, and is the failure of what was asked (1).
    let missing = dir.path().join("missing-ca.pem");
    let args = login(Some(&missing));
    let out = run(&strs(&args), dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "cannot read the CA certificate file {}",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );
    let args = login(Some(&pki.key));
    let out = run(&strs(&args), dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no certificate"),
        "{}",
        stderr(&out)
    );

    // Logged in with the right CA; `--cacert` on a verb overrides the context's.
    let args = login(Some(&pki.ca));
    let out = run(&strs(&args), dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let wrong = pki.wrong_ca.to_str().unwrap();
    let out = run(&["op", "list", "--cacert", wrong], dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = run(&["op", "list", "-o", "json"], dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A certificate for another name than the one dialled.
    let other = GroundOnly::start_tls(tls(&pki.localhost_cert, &pki.localhost_key)).await;
    let out = run(
        &[
            "login",
            "--server",
            &other.url,
            "--user",
            "alice",
            "--password",
            "pw-alice",
            "--cacert",
            pki.ca.to_str().unwrap(),
        ],
        dir.path(),
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not valid for name"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let cookie = |r: &reqwest::Response| {
        r.headers()
            .get(reqwest::header::SET_COOKIE)
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_string()
    };

    let secure = GroundOnly::start_tls(tls(&pki.cert, &pki.key)).await;
    secure
        .ground
        .ensure_user("alice", "pw-alice")
        .await
        .unwrap();
    let r = trusting(&pki.ca)
        .post(format!("{}/login", secure.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=alice&password=pw-alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in, sent home");
    let c = cookie(&r);
    assert!(c.ends_with("; Secure"), "{c}");
    assert!(c.contains("HttpOnly; SameSite=Strict"), "{c}");

    let plain = GroundOnly::start().await;
    plain.ground.ensure_user("alice", "pw-alice").await.unwrap();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", plain.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=alice&password=pw-alice")
        .send()
        .await
        .unwrap();
    let c = cookie(&r);
    assert!(
        !c.contains("Secure"),
        "no Secure cookie over plain HTTP: {c}"
    );
}

/// `orbitdock ground` with its users, one EM system on free ports and `extra` flags.
fn ground_command(dir: &Path, extra: &[&str]) -> tokio::process::Command {
    let (bind, link) = (free_udp(), free_udp());
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("ground")
        .arg("--data-dir")
        .arg(dir.join("ground"))
        .arg("--keys")
        .arg(dir.join("keys"))
        .args(["--system", &format!("em={bind},{link}")])
        .args(["--user", "alice:pw-alice"])
        .args(extra)
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbitdock_ground_serves_https_and_names_a_file_that_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let keygen = run(
        &["keygen", dir.path().join("keys/em.key").to_str().unwrap()],
        dir.path(),
        &[],
    )
    .await;
    assert!(keygen.status.success());
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let other_key = pki.localhost_key.to_str().unwrap();
    let missing = dir.path().join("missing.pem");

    for (flags, status, says) in [
        (
            vec!["--tls-cert", missing.to_str().unwrap(), "--tls-key", key],
            1,
            format!("{}: cannot read the TLS certificate", missing.display()),
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", other_key],
            1,
            format!("{other_key}: this private key is not the key of the certificate in {cert}"),
        ),
        (
            vec!["--tls-cert", key, "--tls-key", key],
            1,
            format!("{key}: holds no certificate"),
        ),
        (vec!["--tls-cert", cert], 2, "--tls-key".to_string()),
    ] {
        let out = ground_command(dir.path(), &flags).output().await.unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(status), "{flags:?}: {e}");
        assert!(
            e.contains(&says),
            "{flags:?} names what is wrong ({says}): {e}"
        );
    }

    // The demo checks them before it starts anything.
    let out = run(
        &[
            "demo",
            "--data-dir",
            dir.path().join("demo").to_str().unwrap(),
            "--tls-cert",
            cert,
            "--tls-key",
            other_key,
        ],
        dir.path(),
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not the key of the certificate"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("demo").exists(), "nothing was started");

    let http = ground::free_http_address().unwrap().to_string();
    let mut server = ground_command(
        dir.path(),
        &["--http", &http, "--tls-cert", cert, "--tls-key", key],
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let url = format!("https://{http}");
    let client = trusting(&pki.ca);
    let mut up = false;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            up = true;
            break;
        }
        assert!(server.try_wait().unwrap().is_none(), "the ground stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the ground answers over HTTPS");
    let session = dir.path().join("session.json");
    let env = [("ORBITDOCK_SESSION", session.to_str().unwrap())];
    let out = run(
        &[
            "login",
            "--server",
            &url,
            "--user",
            "alice",
            "--password",
            "pw-alice",
            "--cacert",
            pki.ca.to_str().unwrap(),
        ],
        dir.path(),
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["op", "list", "-o", "json"], dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["operations"], serde_json::json!([]));
    // Plain HTTP to the HTTPS port is no answer at all.
    let plain = run(
        &[
            "login",
            "--server",
            &format!("http://{http}"),
            "--user",
            "alice",
            "--password",
            "pw-alice",
        ],
        dir.path(),
        &[(
            "ORBITDOCK_SESSION",
            dir.path().join("plain.json").to_str().unwrap(),
        )],
    )
    .await;
    assert_eq!(plain.status.code(), Some(1), "{}", stderr(&plain));
    server.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_https_with_a_self_signed_certificate() {
    use tokio::io::AsyncBufReadExt;

    support::seed_bases().await;
    let dir = tempfile::tempdir().unwrap();
    // rcgen's certificate is no CA (no basicConstraints), so it can serve, and it is its own
    // issuer: the demo checks its ground against it.
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("demo.pem"), dir.path().join("demo.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let udp_base = loop {
        let base = 20_000 + (rand::random::<u16>() % 30_000);
        if (0..8).all(|i| std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()) {
            break base;
        }
    };
    let http = ground::free_http_address().unwrap().to_string();
    let mut demo = tokio::process::Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(dir.path().join("demo"))
        .args(["--http", &http, "--udp-base", &udp_base.to_string()])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The demo prints its login line once its ground answers over HTTPS.
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let login = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(cmd) = line.trim().strip_prefix("CLI") {
                return Some(cmd.trim().to_string());
            }
        }
        None
    })
    .await
    .expect("the demo comes up")
    .expect("the demo prints its login line");
    let url = format!("https://{http}");
    assert_eq!(
        login,
        format!(
            "orbitdock login --server {url} --cacert {} --user demo --password orbitdock",
            cert.display()
        )
    );
    let args: Vec<&str> = login.split_whitespace().skip(1).collect();
    let session = dir.path().join("session.json");
    let env = [("ORBITDOCK_SESSION", session.to_str().unwrap())];
    let out = run(&args, dir.path(), &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(
        &["passes", "--system", "em", "-o", "json"],
        dir.path(),
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["always_in_contact"], true);
    demo.kill().await.unwrap();
}
