//! The one HTTP client setup every network user shares (the GitHub cache store, heal's index
//! and file downloads): the same timeouts, user agent and proxy handling (`reqwest`'s
//! `system-proxy`, so `HTTPS_PROXY`/`NO_PROXY` work as they do for uv), so that a setting
//! fixed for one is fixed for all. Retries stay with each caller: the cache service and an
//! index fail in different ways and are retried differently.

use anyhow::{Context, Result};
use std::time::Duration;

/// How long a connection may take to open, and a read may wait for bytes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A client with cache-heal's settings; `idle_per_host` is how many idle connections to keep
/// for each host (the blob store's parallel ranged GETs want more than an index does).
pub fn client(idle_per_host: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .pool_max_idle_per_host(idle_per_host)
        .user_agent(concat!("cache-heal/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}
