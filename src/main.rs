//! Starts Parley: configuration, logging, wiring, then run until a signal.

use std::io::IsTerminal;

use parley::app::App;
use parley::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::load();
    // Colours only for a person at a terminal, never into files or collectors.
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(colour)
        .init();
    let app = match App::build(&config).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!("cannot start: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = shutdown_signal();
    let listener = match tokio::net::TcpListener::bind((config.host, config.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("cannot listen on {}:{}: {error}", config.host, config.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped(listener, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM (what `docker stop` and systemd send). The handlers are
/// installed now, before the server says it is listening, so a signal sent
/// as soon as it does is never lost to the default action.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = signal(SignalKind::interrupt()).and_then(|i| signal(SignalKind::terminate()).map(|t| (i, t)));
        async move {
            match streams {
                Ok((mut interrupt, mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for signals; falling back to Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
