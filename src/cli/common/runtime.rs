//! The Tokio runtime a command runs on, and the shutdown signal of long-running commands.

use crate::cli::common::error::CliError;

/// A multi-threaded runtime for one command.
///
/// # Errors
/// [`CliError::Runtime`] if the runtime's threads or I/O driver cannot start.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Runtime { source })
}

/// Sets up a server's log (`serve`, `witness serve`) on standard error, as text or JSON.
///
/// # Errors
/// [`CliError::Usage`] for an unknown format, [`CliError::Logging`].
pub(crate) fn init_logging(format: &str) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "text" => builder.try_init(),
        "json" => builder.json().try_init(),
        other => {
            return Err(CliError::Usage {
                message: format!("unknown log format {other:?}"),
                hint: "use --log-format text or --log-format json".into(),
            });
        }
    }
    .map_err(|source| CliError::Logging { source })
}

/// Binds a server's listener on `addr`; the listener and the address it got (the port, for
/// `:0`).
///
/// # Errors
/// [`CliError::Listen`].
pub(crate) async fn bind(
    addr: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), CliError> {
    let listen = |source| CliError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    let local = listener.local_addr().map_err(listen)?;
    Ok((listener, local))
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight appends");
}
