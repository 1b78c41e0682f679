//! One accepted connection's life: it must deliver a complete request head
//! within the header timeout of being accepted, is closed after an idle
//! period with nothing in flight, and finishes gracefully at shutdown. Its
//! admission slots travel with the socket, so a connection upgraded to a
//! WebSocket keeps counting until the socket closes.
//!
//! Knows nothing of routes or of what a request means.
//!
//! What hyper 1 does by itself: for HTTP/1 its `header_read_timeout` runs
//! whenever it waits for a head, on keep-alive connections too, so an idle
//! HTTP/1 connection is closed after it. It starts only once hyper-util's
//! protocol detection has read its first bytes, though, and detection (and
//! the HTTP/2 preface) has no deadline; HTTP/2 has keep-alive pings but no
//! idle timeout. Those two are what this adds.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use parley_ports::domain::ClientAddress;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::admission::{ClientSlot, Slot};

/// A socket with the admission slots it holds; they are given back when the
/// socket is dropped, whoever owns it by then.
pub(crate) struct Held<T> {
    io: T,
    _slots: (Slot, ClientSlot),
}

impl<T> Held<T> {
    pub(crate) fn new(io: T, process: Slot, client: ClientSlot) -> Self {
        Self { io, _slots: (process, client) }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Held<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Held<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Requests seen on one connection: connection-local counters, so a request
/// costs two uncontended atomic updates.
#[derive(Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// Counts a request as in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }
}

pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a connection may wait for what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From accept to the first complete request head.
    pub(crate) first_request: Duration,
    /// With no request in flight and none begun, after this the connection is closed.
    pub(crate) idle: Duration,
}

/// Runs `connection` to its end, closing it when the first request is late,
/// when it idles, or (gracefully) when `stopping` changes.
pub(crate) async fn drive<C>(
    connection: C,
    activity: Arc<Activity>,
    deadlines: Deadlines,
    mut stopping: watch::Receiver<()>,
    client: ClientAddress,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let mut deadline = Instant::now() + deadlines.first_request;
    let mut seen = 0;
    let mut stopped = false;
    let mut idle = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%client, %error, "connection ended with an error");
                }
                return;
            }
            _ = stopping.changed(), if !stopped => {
                stopped = true;
                connection.as_mut().graceful_shutdown();
            }
            () = sleep_until(deadline), if !stopped => {
                let started = activity.started.load(Ordering::Relaxed);
                if started == 0 || idle {
                    // Dropping the connection closes the socket. An idle HTTP/2
                    // client told to go away had a header timeout to answer
                    // hyper's closing ping: one that does not is not waited for.
                    tracing::debug!(%client, first = started == 0, "closed: no request head in time, or idle");
                    return;
                }
                if started == seen && activity.in_flight.load(Ordering::Relaxed) == 0 {
                    tracing::debug!(%client, "closing an idle connection");
                    idle = true;
                    connection.as_mut().graceful_shutdown();
                    deadline = Instant::now() + deadlines.first_request;
                    continue;
                }
                seen = started;
                deadline = Instant::now() + deadlines.idle;
            }
        }
    }
}
