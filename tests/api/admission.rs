//! Admission at the edge, over raw sockets: connections that never finish a
//! request head are closed, idle HTTP/2 connections too, and one address
//! cannot hold or open more connections than its share while another still
//! gets in. Client sockets bind 127.0.0.2, 127.0.0.3…: all of 127/8 is
//! loopback, so each acts as a different client address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{TestApp, spawn_app_with};

/// Far longer than any deadline a test sets: reaching it means a defence is missing.
const HANG: Duration = Duration::from_secs(10);

fn server(app: &TestApp) -> SocketAddr {
    app.address.trim_start_matches("http://").parse().unwrap()
}

async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Waits for the server to close `stream`, returning what it sent; panics
/// if it is still open after [`HANG`].
async fn closed_by_server(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    let mut received = Vec::new();
    let waiting = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(HANG, waiting).await.unwrap_or_else(|_| panic!("{what}: still open"))
}

/// Sends a keep-alive `GET /healthz` with `headers` and returns the response
/// head and body, or `None` when the server closed the connection instead.
async fn get(stream: &mut TcpStream, headers: &str) -> Option<String> {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: parley\r\n{headers}\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return None;
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(HANG, stream.read(&mut buf)).await.expect("an answer or a close") {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Some(text.into_owned());
            }
        }
    }
    (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned())
}

/// A fresh connection from `from` and one request on it.
async fn get_from(from: &str, app: &TestApp, headers: &str) -> Option<String> {
    get(&mut connect_from(from, server(app)).await, headers).await
}

fn status(response: &Option<String>) -> &str {
    response.as_deref().and_then(|r| r.split(' ').nth(1)).unwrap_or("closed")
}

/// A connection that sends `start` and then stalls is closed by the header timeout.
async fn stalled_after(start: &[u8], what: &str) {
    let app = spawn_app_with(&["--header-timeout", "0.2"]).await;
    let mut stream = connect_from("127.0.0.2", server(&app)).await;
    stream.write_all(start).await.unwrap();
    closed_by_server(&mut stream, what).await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    stalled_after(b"", "a silent connection").await;
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed_after_the_header_timeout() {
    stalled_after(b"PRI * HTTP/2.0\r\n", "half an HTTP/2 preface").await;
}

#[tokio::test]
async fn a_partial_request_head_is_closed_after_the_header_timeout() {
    stalled_after(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n", "half a request head").await;
}

#[tokio::test]
async fn an_http2_connection_with_no_open_stream_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(&["--header-timeout", "0.2", "--idle-timeout", "0.2"]).await;
    let mut h2 = connect_from("127.0.0.2", server(&app)).await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    // An empty SETTINGS frame, then stream 1: HEADERS (END_STREAM | END_HEADERS) with
    // HPACK static entries only: `:method GET`, `:scheme http`, `:path /`.
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    h2.write_all(&[0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84]).await.unwrap();
    let received = closed_by_server(&mut h2, "an idle HTTP/2 connection").await;
    // The request was answered (a HEADERS frame on stream 1) before the connection idled.
    let mut frames = received.as_slice();
    let mut answered = false;
    while frames.len() >= 9 {
        let length = usize::from(frames[0]) << 16 | usize::from(frames[1]) << 8 | usize::from(frames[2]);
        answered |= frames[3] == 1 && frames[5..9] == [0, 0, 0, 1];
        frames = &frames[(9 + length).min(frames.len())..];
    }
    assert!(answered, "no response to the request: {received:?}");
}

#[tokio::test]
async fn an_address_holding_its_cap_is_refused_while_another_connects() {
    let app = spawn_app_with(&["--max-connections-per-address", "2"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from("127.0.0.2", server(&app)).await;
        assert_eq!(status(&get(&mut stream, "").await), "200");
        held.push(stream);
    }
    assert_eq!(status(&get_from("127.0.0.2", &app, "").await), "closed", "a third from 127.0.0.2");
    assert_eq!(status(&get_from("127.0.0.3", &app, "").await), "200", "127.0.0.3 is another client");
    drop(held);
    let mut again = None;
    for _ in 0..100 {
        again = get_from("127.0.0.2", &app, "").await;
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&again), "200", "closing gives the places back");
}

#[tokio::test]
async fn an_address_opening_connections_too_fast_is_refused_while_another_connects() {
    let rate = ["--connections-per-second-per-address", "1", "--connection-burst-per-address", "2"];
    let app = spawn_app_with(&rate).await;
    for _ in 0..2 {
        assert_eq!(status(&get_from("127.0.0.2", &app, "Connection: close\r\n").await), "200");
    }
    assert_eq!(status(&get_from("127.0.0.2", &app, "").await), "closed", "past the burst");
    assert_eq!(status(&get_from("127.0.0.3", &app, "").await), "200", "127.0.0.3 is another client");
}

#[tokio::test]
async fn limits_off_lifts_the_per_address_cap_and_rate() {
    let args = [
        "--limits",
        "off",
        "--max-connections-per-address",
        "1",
        "--connections-per-second-per-address",
        "1",
        "--connection-burst-per-address",
        "1",
    ];
    let app = spawn_app_with(&args).await;
    let mut held = Vec::new();
    for n in 0..5 {
        let mut stream = connect_from("127.0.0.2", server(&app)).await;
        assert_eq!(status(&get(&mut stream, "").await), "200", "connection {n}");
        held.push(stream);
    }
}

#[tokio::test]
async fn the_process_cap_holds_even_with_limits_off() {
    let app = spawn_app_with(&["--limits", "off", "--max-tcp-connections", "2"]).await;
    let mut held = Vec::new();
    for from in ["127.0.0.2", "127.0.0.3"] {
        let mut stream = connect_from(from, server(&app)).await;
        assert_eq!(status(&get(&mut stream, "").await), "200");
        held.push(stream);
    }
    assert_eq!(status(&get_from("127.0.0.4", &app, "").await), "closed");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_one_limited() {
    let args = [
        "--trusted-proxies",
        "127.0.0.2/32",
        "--connections-per-second-per-address",
        "1",
        "--connection-burst-per-address",
        "2",
    ];
    let app = spawn_app_with(&args).await;
    let ann = "X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n";
    // The proxy opens more connections than one address may: it is exempt at accept.
    for _ in 0..2 {
        assert_eq!(status(&get_from("127.0.0.2", &app, ann).await), "200");
    }
    let refused = get_from("127.0.0.2", &app, ann).await.expect("an answer, not a close");
    assert_eq!(status(&Some(refused.clone())), "429", "{refused}");
    let head = refused.to_ascii_lowercase();
    assert!(head.contains("\r\nretry-after: "), "{refused}");
    assert!(refused.ends_with(r#"{"detail":"too many new connections from this address; slow down"}"#), "{refused}");
    let bob = "Forwarded: for=\"[2001:db8::7]:4711\"\r\n";
    assert_eq!(status(&get_from("127.0.0.2", &app, bob).await), "200", "another client behind the proxy");
    assert_eq!(status(&get_from("127.0.0.2", &app, "X-Forwarded-For: 203.0.113.8\r\n").await), "200");

    // An untrusted peer's header is ignored: one connection, counted once, however many requests.
    let mut untrusted = connect_from("127.0.0.3", server(&app)).await;
    for n in 0..4 {
        assert_eq!(status(&get(&mut untrusted, ann).await), "200", "request {n} claiming to be 203.0.113.7");
    }
}
