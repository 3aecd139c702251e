//! An axum app served on its own thread and runtime until dropped: what the harness's test
//! cache service and fault proxies run on. Each binds 127.0.0.1 only.

use tokio::sync::oneshot;

/// A running server. Dropping it stops the listener and lets requests in flight finish on
/// their own thread; it does not wait for them, since a fault that holds a response open on
/// purpose would never finish.
pub struct Served {
    pub port: u16,
    _shutdown: oneshot::Sender<()>,
}

impl Served {
    /// A listener on a free port of 127.0.0.1, ready for [`Served::start`]; bind first when the
    /// app must know its own port.
    pub fn listener() -> std::net::TcpListener {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    }

    /// Serves `app` on `listener` (see [`Served::listener`]) with two worker threads.
    pub fn start(listener: std::net::TcpListener, app: axum::Router) -> Self {
        let port = listener.local_addr().unwrap().port();
        let (shutdown, stop) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        // Dropping the sender ends `stop`, which starts the graceful shutdown.
        Self {
            port,
            _shutdown: shutdown,
        }
    }
}
