//! Clients that send or read slowly, on a real socket against `ground::serve` with short
//! timeouts: a body that stops or trickles is answered `408` and its connection closed (an
//! upload leaves nothing staged), headers that never end and an idle kept-alive connection are
//! closed, and so is a connection whose client takes no byte of a large answer, or (over HTTPS)
//! never finishes its TLS handshake.
//!
//! Every read has a generous guard (a minute) so that a regression fails instead of hanging;
//! what is asserted is what the client gets, never how long it took.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Entry, TestGround, ground, tar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GUARD: Duration = Duration::from_secs(60);

fn short() -> ground::HttpTimeouts {
    ground::HttpTimeouts {
        headers: Duration::from_secs(1),
        body_idle: Duration::from_secs(1),
        body_grace: Duration::from_secs(2),
        body_min_rate: 1000,
        write_stall: Duration::from_secs(1),
    }
}

/// Serves `g` with [`short`] timeouts on a free port.
async fn serve(g: &TestGround) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ground = g.ground.clone().with_http_timeouts(short());
    tokio::spawn(ground::serve(ground, listener, std::future::pending()));
    addr
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn a_body_that_stops_is_answered_408_and_closed() {
    let g = ground().await;
    let token = g.login("alice").await;
    let addr = serve(&g).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/operations/validate HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/yaml\r\ncontent-length: 1000\r\n\r\nid: hello\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let reply = read_to_close(&mut s).await;
    eprintln!("answered after {:?}:\n{reply}", started.elapsed());
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("connection: close"), "{reply}");
    assert!(
        reply.ends_with(
            r#"{"error":{"code":"request_timeout","message":"no byte of the request body came for 1 s"}}"#
        ),
        "{reply}"
    );
}

#[tokio::test]
async fn a_trickling_upload_is_answered_408_and_leaves_nothing_staged() {
    let g = ground().await;
    let token = g.login("alice").await;
    let addr = serve(&g).await;
    let body = tar(&[Entry::File("big.bin", &[7u8; 200_000], 0o644)]);
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rx, mut tx) = s.into_split();
    let head = format!(
        "POST /api/v1/namespaces/slow/files HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/x-tar\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    // Ten bytes every 300 ms: never idle for a second, but far below 1000 bytes/s.
    let writer = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(10) {
            tx.write_all(chunk).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok::<_, std::io::Error>(())
    });
    let started = Instant::now();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(GUARD, rx.read_to_end(&mut reply)).await;
    writer.abort();
    let reply = String::from_utf8_lossy(&reply);
    eprintln!("answered after {:?}:\n{reply}", started.elapsed());
    assert!(read.is_ok(), "the server kept the connection open");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        reply.contains("the request body came slower than 1000 bytes/s after its first 2 s"),
        "{reply}"
    );
    // Nothing was stored, not even the namespace.
    assert_eq!(tmp_entries(&g), 0);
    assert_eq!(g.blob_count(), 0);
    let r = g.get("/api/v1/namespaces/slow/files", &token).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text());
}

/// Files and folders in the ground's scratch space (each upload stages in a folder of it).
fn tmp_entries(g: &TestGround) -> usize {
    std::fs::read_dir(g.dir.path().join("tmp")).map_or(0, |d| d.count())
}

#[tokio::test]
async fn an_upload_that_stops_midway_removes_what_it_staged() {
    let g = ground().await;
    let token = g.login("alice").await;
    let addr = serve(&g).await;
    let body = tar(&[Entry::File("big.bin", &[7u8; 400_000], 0o644)]);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/namespaces/stopped/files HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/x-tar\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..200_000]).await.unwrap();
    // The first half is being staged.
    let staged = tokio::time::timeout(GUARD, async {
        while g.tmp_count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(staged.is_ok(), "the upload's first half was staged");
    let reply = read_to_close(&mut s).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert_eq!(tmp_entries(&g), 0, "the staging folder is gone");
    assert_eq!(g.blob_count(), 0);
}

#[tokio::test]
async fn headers_that_never_end_and_idle_connections_are_closed() {
    let g = ground().await;
    let addr = serve(&g).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut s).await;
    eprintln!("half a request got: {reply:?}");
    assert!(!reply.contains("200 OK"), "{reply}");

    // A kept-alive connection serves requests one after the other, and is closed once it
    // stays idle.
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(GUARD, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with(r#"{"status":"ok"}"#), "{reply}");
    }
    assert_eq!(read_to_close(&mut s).await, "");
}

#[tokio::test]
async fn a_client_that_takes_no_byte_of_a_large_answer_is_closed() {
    let g = ground().await;
    let token = g.login("alice").await;
    let size = 32 << 20;
    let r = g
        .upload_tar(
            "big",
            "",
            &token,
            tar(&[Entry::File("f.bin", &vec![1u8; size], 0o644)]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text());
    let addr = serve(&g).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let head = format!(
        "GET /api/v1/namespaces/big/files/f.bin HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Take nothing for a while: the server's writes stall, then it gives up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = 0usize;
    let read = tokio::time::timeout(GUARD, async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    eprintln!("the client got {got} bytes of a {size}-byte answer");
    assert!(read.is_ok(), "the server kept the connection open");
    assert!(
        got < size,
        "the connection was closed before the whole answer"
    );
}

#[tokio::test]
async fn a_tls_handshake_that_never_ends_is_closed() {
    let g = ground().await;
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let tls = ground::TlsConfig::from_pem_files(&cert, &key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = g.ground.clone().with_http_timeouts(short());
    tokio::spawn(ground::serve_tls(
        served,
        listener,
        tls,
        std::future::pending(),
    ));

    // Silent after connecting, and silent after the first bytes of a ClientHello.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_to_close(&mut silent).await, "");
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut partial).await, "");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut plain).await;
    assert!(!reply.contains("HTTP/1.1"), "{reply}");
}
