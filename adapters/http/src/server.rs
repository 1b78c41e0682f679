//! Accepting connections and serving requests: HTTP/1.1 and HTTP/2 on one
//! port, header-read timeouts against slow clients, graceful shutdown, a
//! request id and one access-log line per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, ORIGIN};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use parley_ports::domain::ClientAddress;
use tokio::net::TcpListener;

use crate::api::Api;
use crate::cors::Cors;
use crate::reply::Reply;
use crate::routes::Routes;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A client must send its request headers within this time.
    pub header_timeout: Duration,
    /// After shutdown is asked for, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            cors_origins: vec!["http://localhost:3000".to_owned()],
        }
    }
}

struct Http {
    api: Api,
    routes: Routes,
    cors: Cors,
    next_request: AtomicU64,
}

/// Serves `api` on `listener` until `shutdown` resolves, then waits (up to
/// the grace period) for requests in flight.
pub async fn serve(listener: TcpListener, api: Api, config: ServerConfig, shutdown: impl Future<Output = ()>) {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let http = Arc::new(Http {
        api,
        routes: Routes::new(),
        cors: Cors::new(config.cors_origins.clone()),
        next_request: AtomicU64::new(seed << 20),
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let http = Arc::clone(&http);
        let service = service_fn(move |request| {
            let http = Arc::clone(&http);
            async move { Ok::<_, Infallible>(http.handle(request, peer).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after the shutdown grace period; dropping them");
    }
}

impl Http {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Reply {
        let started = Instant::now();
        let id = self.request_id(&request);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let origin = request.headers().get(ORIGIN).cloned();
        let mut reply = match self.cors.preflight(&method, request.headers()) {
            Some(reply) => reply,
            None => self
                .routes
                .dispatch(&self.api, request, ClientAddress::new(peer.ip()))
                .await
                .unwrap_or_else(|error| error.into_reply()),
        };
        self.cors.decorate(origin.as_ref(), &mut reply);
        reply.headers_mut().insert(REQUEST_ID.clone(), id.clone());
        tracing::info!(
            target: "parley::access",
            request_id = id.to_str().unwrap_or_default(),
            %peer,
            %method,
            path,
            status = reply.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
        );
        reply
    }

    /// The client's `x-request-id` if it is short and plain, else a fresh one.
    fn request_id(&self, request: &Request<Incoming>) -> HeaderValue {
        let offered = request.headers().get(&REQUEST_ID).filter(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty() && bytes.len() <= 64 && bytes.iter().all(|b| b.is_ascii_graphic())
        });
        match offered {
            Some(value) => value.clone(),
            None => {
                let n = self.next_request.fetch_add(1, Ordering::Relaxed);
                HeaderValue::from_str(&format!("{n:016x}")).unwrap_or_else(|_| HeaderValue::from_static("0"))
            }
        }
    }
}
