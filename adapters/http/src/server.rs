//! Accepting connections and serving requests: HTTP/1.1 and HTTP/2 on one
//! port, admission at accept (see `admission`), each connection's deadlines
//! (see `connection`), graceful shutdown, a request id and one access-log
//! line per request naming the client.

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
use parley_ports::domain::ClientAddress;
use tokio::net::TcpListener;

use crate::admission::{Admission, PerAddress};
use crate::api::Api;
use crate::connection::{Activity, Deadlines, Held, drive};
use crate::cors::Cors;
use crate::error::ApiError;
use crate::forwarded::{ProxyRange, TrustedProxies};
use crate::reply::Reply;
use crate::routes::Routes;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A client must send a complete request head within this time of
    /// connecting (and, on HTTP/1 keep-alive, of its previous response).
    pub header_timeout: Duration,
    /// A connection with no request in flight and none begun for this long is closed.
    pub idle_timeout: Duration,
    /// After shutdown is asked for, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
    pub cors_origins: Vec<String>,
    /// Open TCP connections at most, WebSockets included; more are closed at accept.
    pub max_connections: usize,
    /// Limits per client address; `None` (`PARLEY_LIMITS=off`) lifts them.
    pub per_address: Option<PerAddress>,
    /// Peers whose `X-Forwarded-For`/`Forwarded` name the client.
    pub trusted_proxies: Vec<ProxyRange>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            cors_origins: vec!["http://localhost:3000".to_owned()],
            max_connections: 10_000,
            per_address: Some(PerAddress { max_open: 300, per_second: 50, burst: 300 }),
            trusted_proxies: Vec::new(),
        }
    }
}

struct Http {
    api: Api,
    routes: Routes,
    cors: Cors,
    next_request: AtomicU64,
    admission: Arc<Admission>,
    trusted: TrustedProxies,
}

/// Serves `api` on `listener` until `shutdown` resolves, then waits (up to
/// the grace period) for requests in flight.
pub async fn serve(listener: TcpListener, api: Api, config: ServerConfig, shutdown: impl Future<Output = ()>) {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let admission = Admission::new(config.max_connections, config.per_address);
    let http = Arc::new(Http {
        api,
        routes: Routes::new(),
        cors: Cors::new(config.cors_origins.clone()),
        next_request: AtomicU64::new(seed << 20),
        admission: Arc::clone(&admission),
        trusted: TrustedProxies::new(&config.trusted_proxies),
    });
    let deadlines = Deadlines { first_request: config.header_timeout, idle: config.idle_timeout };
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    builder.http2().timer(TokioTimer::new());
    // Every connection holds a receiver: `closed()` resolves once all are gone.
    let (stop, stopping) = tokio::sync::watch::channel(());
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
        let address = ClientAddress::new(peer.ip());
        let Ok(process) = admission.connection(address) else { continue };
        // A trusted proxy speaks for many clients: they are counted per request instead.
        let proxied = http.trusted.contains(peer.ip());
        let client = if proxied { Ok(admission.client_exempt()) } else { admission.client(address) };
        let Ok(client) = client else { continue };
        let activity = Arc::new(Activity::default());
        let service = {
            let http = Arc::clone(&http);
            let activity = Arc::clone(&activity);
            service_fn(move |request| {
                let http = Arc::clone(&http);
                let busy = activity.begin();
                async move {
                    let reply = http.handle(request, peer, proxied).await;
                    drop(busy);
                    Ok::<_, Infallible>(reply)
                }
            })
        };
        let io = TokioIo::new(Held::new(stream, process, client));
        let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
        tokio::spawn(drive(connection, activity, deadlines, stopping.clone(), address));
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(());
    if tokio::time::timeout(config.shutdown_grace, stop.closed()).await.is_err() {
        tracing::warn!("requests still running after the shutdown grace period; dropping them");
    }
}

impl Http {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr, proxied: bool) -> Reply {
        let started = Instant::now();
        let id = self.request_id(&request);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let origin = request.headers().get(ORIGIN).cloned();
        let client =
            if proxied { self.trusted.client(peer.ip(), request.headers()) } else { ClientAddress::new(peer.ip()) };
        // Behind a trusted proxy the client was not counted at accept: it is here.
        let admitted = if proxied { self.admission.client(client) } else { Ok(self.admission.client_exempt()) };
        let mut reply = match (admitted, self.cors.preflight(&method, request.headers())) {
            (Err(refusal), _) => ApiError::Refused(refusal).into_reply(),
            (Ok(_counted), Some(reply)) => reply,
            (Ok(_counted), None) => {
                self.routes.dispatch(&self.api, request, client).await.unwrap_or_else(|error| error.into_reply())
            }
        };
        self.cors.decorate(origin.as_ref(), &mut reply);
        reply.headers_mut().insert(REQUEST_ID.clone(), id.clone());
        tracing::info!(
            target: "parley::access",
            request_id = id.to_str().unwrap_or_default(),
            %client,
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
