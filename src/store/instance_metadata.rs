//! One quick question to a cloud's instance metadata service, asked before a store is opened
//! with credentials from it.
//!
//! EC2's and Azure's both answer at `http://169.254.169.254`, over plain HTTP. The credential
//! providers of `object_store` ask them only at the first request, and retry with backoff: on
//! a machine without such a service (a laptop), or with another cloud's (a GitHub-hosted runner
//! is an Azure VM), a missing credential would surface late, slowly and vaguely. So the stores
//! ask once, with [`PATIENCE`] to connect and to answer, and either use the service or say in
//! one line why not.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where both clouds' instance metadata answers.
pub const ADDRESS: &str = "http://169.254.169.254";

/// How long the service gets to connect and to answer: on a cloud VM it answers within
/// milliseconds, and elsewhere the link-local address usually does not answer at all.
pub const PATIENCE: Duration = Duration::from_secs(1);

/// Sends one request with no body to `url` (`http://HOST[:PORT]/PATH[?QUERY]`) over HTTP/1.1
/// and returns the status code of the answer; else what went wrong, in words that follow the
/// URL ("did not answer (…)").
pub fn status(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
    let url = reqwest::Url::parse(url).map_err(|_| "is not a URL".to_string())?;
    if url.scheme() != "http" {
        return Err("is not an http:// URL (instance metadata is plain HTTP)".into());
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err("is not an http://HOST[:PORT] URL".into());
    };
    let address = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut all| all.next())
        .ok_or_else(|| "does not resolve".to_string())?;
    let mut stream = TcpStream::connect_timeout(&address, PATIENCE)
        .map_err(|e| format!("did not answer ({e})"))?;
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let _ = stream.set_write_timeout(Some(PATIENCE));
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\n",
        url.authority()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("did not take a request ({e})"))?;
    let mut head = [0u8; 32];
    let n = stream
        .read(&mut head)
        .map_err(|e| format!("did not answer ({e})"))?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "did not answer in HTTP".to_string())
}
