//! The signed Azure Blob URLs the cache service hands out: uploads and downloads of archive
//! bytes.
//!
//! Upload (docs/gha-cache-protocol.md §4): an archive of at most one block goes up as one Put
//! Blob; a larger one as Put Blocks with Azure-SDK-style block ids (base64 of a 36-character
//! UUID and a 12-digit index, the layout other servers parse), several in flight, then one Put
//! Block List. The archive arrives through `Write` from the compressor, so its size is known
//! only at the end: the first block is held in memory, and only when more arrives does the
//! upload switch to blocks. Blocks are 4 MiB (actions/cache sends 32 to 64 MiB ones), so
//! memory stays bounded by (concurrency + 2) blocks, 24 MiB, at any archive size: with the
//! compressor's own frames, a save stays under 100 MiB. Any block size gives the same blob,
//! which every reader reads alike.
//!
//! Download: ranged GETs, several in flight, each handed to the reader in blocks of 1 MiB as
//! its body arrives, in blob order: unpacking starts with the first block, and later segments
//! are fetched meanwhile. Each segment may hold 8 MiB the reader has not taken (its blocks are
//! copies, so that a waiting block does not keep the client's larger read buffers alive);
//! past that its connection waits for the reader, so at most (concurrency × 8 MiB), 24 MiB,
//! waits in memory whatever the segment size. Segments start at 8 MiB, which a segment's
//! buffer holds whole, so every connection keeps busy while the reader waits on the network.
//! Each time the reader is through with a segment, the next one's size follows how long the
//! reader waited for bytes over the last few segments: hardly at all (at most
//! [`READER_WAIT_SHARE_MAX`] of the time), and it is twice the last, up to 32 MiB, as a connection waiting for the reader
//! costs nothing then and fewer requests cost less (Azurite in `bench/gha.sh` spends CPU per
//! request on the runner's own cores); more, and it is 8 MiB, so that several connections
//! carry the blob (a connection's rate is often what limits a download from Azure). A server
//! that ignores `Range` (answers 200, not 206) gets one plain streamed GET instead.
//!
//! Recovery comes in two kinds. A block or a segment that fails transiently (5xx, reset,
//! timeout, body cut short) is retried: a block whole, a segment from its first byte not yet
//! handed to the reader. A signed URL that expired (403) is renewed through
//! the cache service for downloads; uploads cannot renew (there is no RPC for a fresh upload URL
//! of a reserved key), so the save is abandoned and nothing is finalized.
//!
//! Signed URLs only ever travel as [`SignedUrl`], whose `Display` and `Debug` hide `sig`.

use bytes::Bytes;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use tokio::task::{JoinHandle, JoinSet};

use super::twirp::{TwirpClient, UrlRenewer};
use super::{Error, SECRET_PARAMS, Settings};
use crate::pace::{Pace, SinkGauge};
use crate::store::Published;

/// The Put Block size: what one block in flight costs in memory (see the module doc).
pub const BLOCK_SIZE: usize = 4 << 20;
/// The largest archive sent as one Put Blob: one block, so that holding it costs no more.
pub const SINGLE_SHOT_MAX: usize = BLOCK_SIZE;
/// The first download segments' size, and every segment's while the reader waits on the
/// network (see the module doc).
const SEGMENT_SIZE: u64 = 8 << 20;
/// The largest download segment, asked for while the reader hardly waits for bytes: a 5 GB
/// archive then takes ~160 requests.
const SEGMENT_SIZE_MAX: u64 = 32 << 20;
/// A download segment hands the reader its bytes in blocks of this size.
const BLOCK: usize = 1 << 20;
/// Blocks a download segment may queue for the reader before its connection waits; with the
/// one it is filling, 8 MiB: with the segments in flight, what bounds a restore's memory.
const SEGMENT_BLOCKS: usize = 7;
/// The Blob service version sent with every request.
const AZURE_VERSION: &str = "2024-11-04";

/// A signed URL whose signature never shows when it is displayed or debug-printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedUrl(reqwest::Url);

impl SignedUrl {
    /// Parses a URL from the cache service, and asks the Actions runner to mask its signature.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("is empty".into());
        }
        let url = reqwest::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("has scheme `{}`, expected https", url.scheme()));
        }
        let signed = Self(url);
        for secret in signed.secrets() {
            super::mask(&secret);
        }
        Ok(signed)
    }

    /// The secret query values, as they appear in the URL and decoded.
    fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for part in self.0.query().unwrap_or("").split('&') {
            if let Some((name, value)) = part.split_once('=')
                && SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
            {
                out.push(value.to_string());
            }
        }
        for (name, value) in self.0.query_pairs() {
            if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                out.push(value.into_owned());
            }
        }
        out.dedup();
        out
    }

    /// "The blob store at `host`", for retry lines (on a self-hosted server, its own host).
    fn who(&self) -> String {
        let host = self.0.host_str().unwrap_or("");
        match self.0.port() {
            Some(port) => format!("The blob store at `{host}:{port}`"),
            None => format!("The blob store at `{host}`"),
        }
    }

    fn with_params(&self, params: &[(&str, &str)]) -> reqwest::Url {
        let mut url = self.0.clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in params {
                pairs.append_pair(name, value);
            }
        }
        url
    }
}

impl fmt::Display for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        shown.set_query(None);
        let query: Vec<String> = self
            .0
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|part| match part.split_once('=') {
                Some((name, _)) if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name)) => {
                    format!("{name}=****")
                }
                _ => part.to_string(),
            })
            .collect();
        if !query.is_empty() {
            shown.set_query(Some(&query.join("&")));
        }
        write!(f, "{shown}")
    }
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedUrl({self})")
    }
}

/// Sends and fetches bytes at signed URLs.
#[derive(Clone)]
pub struct BlobClient {
    http: reqwest::Client,
    settings: Settings,
}

impl BlobClient {
    pub fn new(http: reqwest::Client, settings: Settings) -> Self {
        Self { http, settings }
    }

    /// One PUT of `body`, one attempt.
    async fn put(
        &self,
        what: &str,
        url: reqwest::Url,
        body: Bytes,
        content_type: &str,
        blob_type: bool,
    ) -> Result<(), Error> {
        let mut request = self
            .http
            .put(url)
            .header("x-ms-version", AZURE_VERSION)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if blob_type {
            request = request.header("x-ms-blob-type", "BlockBlob");
        }
        let response = request.send().await.map_err(|e| connection(what, e))?;
        let status = response.status();
        if status.is_success() {
            // Read the (empty) body so the connection goes back to the pool.
            let _ = response.bytes().await;
            return Ok(());
        }
        Err(status_error(what, response).await)
    }

    async fn put_retried(
        &self,
        who: &str,
        what: String,
        url: reqwest::Url,
        body: Bytes,
        content_type: &'static str,
        blob_type: bool,
    ) -> Result<(), Error> {
        self.settings
            .retry
            .run(who, &what, false, || {
                self.put(&what, url.clone(), body.clone(), content_type, blob_type)
            })
            .await
    }

    /// GETs `len` bytes at `start`, expecting 206; the body is the caller's to read.
    async fn get_range(
        &self,
        url: &SignedUrl,
        start: u64,
        len: u64,
        what: &str,
    ) -> Result<reqwest::Response, Error> {
        let response = self.send_range(url, start, len, what).await?;
        if response.status() == reqwest::StatusCode::PARTIAL_CONTENT {
            return Ok(response);
        }
        if response.status().is_success() {
            return Err(Error::InvalidResponse {
                what: what.to_string(),
                problem: format!(
                    "HTTP {} to a range request that earlier got 206",
                    response.status()
                ),
            });
        }
        Err(status_error(what, response).await)
    }

    /// Sends a ranged GET for `len` bytes at `start`; the caller judges the status.
    async fn send_range(
        &self,
        url: &SignedUrl,
        start: u64,
        len: u64,
        what: &str,
    ) -> Result<reqwest::Response, Error> {
        self.http
            .get(url.0.clone())
            .header("x-ms-version", AZURE_VERSION)
            .header(
                reqwest::header::RANGE,
                format!("bytes={start}-{}", start + len - 1),
            )
            .send()
            .await
            .map_err(|e| connection(what, e))
    }
}

fn connection(what: &str, source: reqwest::Error) -> Error {
    Error::Connection {
        what: what.to_string(),
        source: source.without_url(),
    }
}

/// Turns a failed blob response into an error with the server's own words (Azure's error code
/// and `<Message>`, or a self-hosted server's JSON or text); a 401/403 is a signature problem
/// (most often an expired URL), the only kind a new URL fixes.
async fn status_error(what: &str, response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let retry_after = super::twirp::retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    let message = super::server_message(&body);
    let detail = match (code, message.is_empty()) {
        (Some(code), true) => format!(", `{code}`"),
        (Some(code), false) if message.starts_with(&code) => format!(": {message}"),
        (Some(code), false) => format!(", `{code}`: {message}"),
        (None, true) => String::new(),
        (None, false) => format!(": {message}"),
    };
    match status {
        401 | 403 => Error::UrlExpired {
            what: what.to_string(),
            status,
            detail,
        },
        429 => Error::RateLimited {
            what: what.to_string(),
            retry_after,
        },
        _ => Error::Status {
            what: what.to_string(),
            status,
            detail,
        },
    }
}

/// An Azure-SDK-style block id: base64 of a 36-character UUID and the zero-padded index.
pub fn block_id(uuid: &str, index: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{uuid}{index:012}"))
}

/// A random version-4 UUID in its 36-character text form.
fn uuid_v4() -> String {
    let b: [u8; 16] = rand::random();
    let hex = hex::encode(b);
    let variant = (u8::from_str_radix(&hex[16..17], 16).unwrap_or(0) & 0x3) | 0x8;
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        variant,
        &hex[17..20],
        &hex[20..32]
    )
}

fn io_error(error: Error) -> io::Error {
    io::Error::other(error)
}

/// The blocks half of an upload, once the archive has outgrown a single Put Blob.
struct Blocks {
    sender: Option<tokio::sync::mpsc::Sender<(u64, Bytes)>>,
    task: Option<JoinHandle<Result<Vec<String>, Error>>>,
    next_index: u64,
}

/// An entry being uploaded; see the module doc for the single-shot/blocks decision.
pub struct Upload {
    runtime: Arc<tokio::runtime::Runtime>,
    blob: BlobClient,
    twirp: TwirpClient,
    key: String,
    version: String,
    url: SignedUrl,
    buffer: Vec<u8>,
    blocks: Option<Blocks>,
    size: u64,
    /// Blocks handed over and not yet sent, for the level governor.
    gauge: SinkGauge,
}

impl Upload {
    pub fn new(
        runtime: Arc<tokio::runtime::Runtime>,
        blob: BlobClient,
        twirp: TwirpClient,
        key: String,
        version: String,
        url: SignedUrl,
    ) -> Self {
        Self {
            runtime,
            blob,
            twirp,
            key,
            version,
            url,
            buffer: Vec::new(),
            blocks: None,
            size: 0,
            gauge: SinkGauge::default(),
        }
    }

    fn start_blocks(&mut self) {
        let (sender, receiver) = tokio::sync::mpsc::channel::<(u64, Bytes)>(1);
        let blob = self.blob.clone();
        let url = self.url.clone();
        let gauge = self.gauge.clone();
        gauge.start_streaming(blob.settings.upload_concurrency.max(1) as u64);
        let task = self
            .runtime
            .spawn(upload_blocks(blob, url, receiver, gauge));
        self.blocks = Some(Blocks {
            sender: Some(sender),
            task: Some(task),
            next_index: 0,
        });
    }

    /// Hands the buffer to the block uploader as the next block.
    fn send_block(&mut self) -> io::Result<()> {
        let data = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(BLOCK_SIZE),
        ));
        let blocks = self.blocks.as_mut().expect("block mode");
        let index = blocks.next_index;
        blocks.next_index += 1;
        self.gauge.queued();
        let sender = blocks.sender.clone().expect("sender lives until finish");
        // Wait for room in short steps, so that a signal is noticed while the blocks ahead are
        // still uploading.
        let permit = loop {
            crate::interrupt::check_io()?;
            // The timer is made inside `block_on`: it needs the runtime's context.
            let reserved = self.runtime.block_on(async {
                tokio::time::timeout(crate::interrupt::POLL, sender.reserve()).await
            });
            match reserved {
                Ok(Ok(permit)) => break permit,
                Ok(Err(_)) => {
                    // The uploader stopped: it failed, and its error says why.
                    return Err(io_error(self.block_failure()));
                }
                Err(_elapsed) => continue,
            }
        };
        permit.send((index, data));
        Ok(())
    }

    fn block_failure(&mut self) -> Error {
        let blocks = self.blocks.as_mut().expect("block mode");
        blocks.sender = None;
        match blocks.task.take().map(|t| self.runtime.block_on(t)) {
            Some(Ok(Err(e))) => e,
            _ => Error::TaskPanicked {
                what: "uploading blocks".into(),
            },
        }
    }

    /// Sends what is left, commits the blocks and finalizes the entry. A signal stops any of
    /// these waits; it is checked once more right before the finalize, the one call that
    /// makes the entry visible, so an interrupted save is never published.
    fn finish_inner(mut self) -> anyhow::Result<u64> {
        let size = self.size;
        if self.blocks.is_none() {
            let body = Bytes::from(std::mem::take(&mut self.buffer));
            let url = self.url.0.clone();
            self.runtime
                .block_on(crate::interrupt::race(self.blob.put_retried(
                    &self.url.who(),
                    "Put Blob".into(),
                    url,
                    body,
                    "application/octet-stream",
                    true,
                )))??;
        } else {
            if !self.buffer.is_empty() {
                // `send_block` fails only with the uploader's own error, an interrupt, or a
                // panic of the uploader.
                self.send_block().map_err(|e| match e.into_inner() {
                    Some(inner) => match inner.downcast::<Error>() {
                        Ok(e) => anyhow::Error::new(*e),
                        Err(other) => match other.downcast::<crate::interrupt::Interrupted>() {
                            Ok(interrupted) => anyhow::Error::new(*interrupted),
                            Err(_) => anyhow::Error::new(Error::TaskPanicked {
                                what: "uploading blocks".into(),
                            }),
                        },
                    },
                    None => anyhow::Error::new(Error::TaskPanicked {
                        what: "uploading blocks".into(),
                    }),
                })?;
            }
            let blocks = self.blocks.as_mut().expect("block mode");
            blocks.sender = None;
            let task = blocks.task.as_mut().expect("task lives until finish");
            // On a signal the task stays in `blocks` and `Drop` aborts it.
            let joined = self.runtime.block_on(crate::interrupt::race(task))?;
            blocks.task = None;
            let ids = match joined {
                Ok(result) => result?,
                Err(_) => {
                    return Err(Error::TaskPanicked {
                        what: "uploading blocks".into(),
                    }
                    .into());
                }
            };
            let mut list = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
            for id in &ids {
                list.push_str("<Latest>");
                list.push_str(id);
                list.push_str("</Latest>");
            }
            list.push_str("</BlockList>");
            let url = self.url.with_params(&[("comp", "blocklist")]);
            self.runtime
                .block_on(crate::interrupt::race(self.blob.put_retried(
                    &self.url.who(),
                    format!("Put Block List ({} blocks)", ids.len()),
                    url,
                    Bytes::from(list),
                    "application/xml",
                    false,
                )))??;
        }
        crate::interrupt::check()?;
        self.runtime
            .block_on(self.twirp.finalize(&self.key, &self.version, size))?;
        Ok(size)
    }
}

/// Puts the blocks the writer sends, several at a time, and returns their ids in order. Each
/// block that is done comes off `gauge`'s backlog (the writer puts it on).
async fn upload_blocks(
    blob: BlobClient,
    url: SignedUrl,
    mut receiver: tokio::sync::mpsc::Receiver<(u64, Bytes)>,
    gauge: SinkGauge,
) -> Result<Vec<String>, Error> {
    let concurrency = blob.settings.upload_concurrency.max(1);
    let uuid = uuid_v4();
    let mut ids = Vec::new();
    let mut in_flight = JoinSet::new();
    loop {
        // Completed blocks are reaped as they finish, not only when all slots are busy, so
        // the backlog the governor reads is current.
        tokio::select! {
            joined = in_flight.join_next(), if !in_flight.is_empty() => {
                gauge.sent();
                joined_block(joined)?;
            }
            message = receiver.recv(), if in_flight.len() < concurrency => {
                let Some((index, data)) = message else { break };
                let id = block_id(&uuid, index);
                ids.push(id.clone());
                let target = url.with_params(&[("comp", "block"), ("blockid", &id)]);
                let blob = blob.clone();
                let who = url.who();
                in_flight.spawn(async move {
                    blob.put_retried(
                        &who,
                        format!("Put Block {index}"),
                        target,
                        data,
                        "application/octet-stream",
                        false,
                    )
                    .await
                });
            }
        }
    }
    while !in_flight.is_empty() {
        join_one(&mut in_flight).await?;
    }
    Ok(ids)
}

async fn join_one(set: &mut JoinSet<Result<(), Error>>) -> Result<(), Error> {
    joined_block(set.join_next().await)
}

fn joined_block(
    joined: Option<Result<Result<(), Error>, tokio::task::JoinError>>,
) -> Result<(), Error> {
    match joined {
        Some(Ok(result)) => result,
        Some(Err(_)) => Err(Error::TaskPanicked {
            what: "uploading a block".into(),
        }),
        None => Ok(()),
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.blocks.is_none() {
            if self.buffer.len() + buf.len() <= SINGLE_SHOT_MAX {
                self.buffer.extend_from_slice(buf);
                self.size += buf.len() as u64;
                return Ok(buf.len());
            }
            // More than a single shot: from here on, blocks. Send what is held as blocks.
            self.start_blocks();
            let held = std::mem::take(&mut self.buffer);
            for chunk in held.chunks(BLOCK_SIZE) {
                self.buffer = Vec::with_capacity(BLOCK_SIZE);
                self.buffer.extend_from_slice(chunk);
                if self.buffer.len() == BLOCK_SIZE {
                    self.send_block()?;
                }
            }
        }
        let take = buf.len().min(BLOCK_SIZE - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..take]);
        self.size += take as u64;
        if self.buffer.len() == BLOCK_SIZE {
            self.send_block()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl crate::store::Upload for Upload {
    fn pace(&self) -> Pace {
        Pace::Network(self.gauge.clone())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Published> {
        let size = (*self).finish_inner()?;
        Ok(Published::Saved { size })
    }
}

impl Drop for Upload {
    /// Abandons an unfinished upload: in-flight blocks stop and nothing is finalized, so the
    /// reservation expires on the service's side and no reader ever sees a partial entry.
    fn drop(&mut self) {
        if let Some(blocks) = &mut self.blocks {
            blocks.sender = None;
            if let Some(task) = blocks.task.take() {
                task.abort();
            }
        }
    }
}

/// What a segment hands the reader: its bytes as they arrive (blocks of a ranged segment, the
/// body's chunks of a plain GET), then how it ended. The channel they travel on is bounded, so
/// a segment's connection waits once the reader falls behind.
enum Piece {
    Data(Bytes),
    End,
    Failed(Error),
}

/// One segment on its way to the reader. It holds a slot among the segments in flight until
/// the reader has taken all of it, which with each segment's buffer bounds the bytes held;
/// dropping it stops its requests.
struct Segment {
    pieces: tokio::sync::mpsc::Receiver<Piece>,
    task: JoinHandle<()>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the driver hands the reader: the segments in blob order, then how the download ended.
enum Next {
    Segment(Segment),
    End,
    Failed(Error),
}

/// Waits for the next value of `channel` from the reader's side: at once when it is there,
/// else in short steps, so that a signal is noticed while the network is stalled. Trying first
/// keeps the runtime out of the common case, a chunk that has already arrived.
fn wait_for<T>(
    runtime: &tokio::runtime::Runtime,
    channel: &mut tokio::sync::mpsc::Receiver<T>,
) -> io::Result<Option<T>> {
    use tokio::sync::mpsc::error::TryRecvError;
    match channel.try_recv() {
        Ok(value) => return Ok(Some(value)),
        Err(TryRecvError::Disconnected) => return Ok(None),
        Err(TryRecvError::Empty) => {}
    }
    loop {
        crate::interrupt::check_io()?;
        // The timer is made inside `block_on`: it needs the runtime's context.
        let received = runtime
            .block_on(async { tokio::time::timeout(crate::interrupt::POLL, channel.recv()).await });
        if let Ok(received) = received {
            return Ok(received);
        }
    }
}

/// A download: a driver task starts the segments in order, several in flight, and this reader
/// hands out each segment's bytes as they arrive, the next segment once one is done.
pub struct Download {
    segments: tokio::sync::mpsc::Receiver<Next>,
    current_segment: Option<Segment>,
    current: Bytes,
    /// Shared with the driver, which sizes segments by it.
    reader_waits: Arc<ReaderWaits>,
    driver: JoinHandle<()>,
    finished: bool,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Download {
    pub fn start(
        runtime: Arc<tokio::runtime::Runtime>,
        blob: BlobClient,
        source: Arc<UrlRenewer>,
    ) -> Self {
        let slots = blob.settings.download_concurrency.max(1);
        let (sender, segments) = tokio::sync::mpsc::channel(slots);
        let reader_waits = Arc::new(ReaderWaits::default());
        let sizer = SegmentSizer::new(Arc::clone(&reader_waits), slots);
        let driver = runtime.spawn(async move {
            let outcome = drive(&blob, &source, sizer, &sender).await;
            let _ = sender
                .send(match outcome {
                    Ok(()) => Next::End,
                    Err(e) => Next::Failed(e),
                })
                .await;
        });
        Self {
            segments,
            current_segment: None,
            current: Bytes::new(),
            reader_waits,
            driver,
            finished: false,
            runtime,
        }
    }

    /// Takes the next piece of the blob into `current`; false at its end.
    fn next_piece(&mut self) -> io::Result<bool> {
        loop {
            if self.finished {
                return Ok(false);
            }
            let Some(segment) = &mut self.current_segment else {
                match wait_for(&self.runtime, &mut self.segments)? {
                    Some(Next::Segment(segment)) => self.current_segment = Some(segment),
                    Some(Next::End) => self.finished = true,
                    Some(Next::Failed(e)) => return Err(io_error(e)),
                    // The driver always sends `End` or `Failed` before it stops, unless it
                    // panicked.
                    None => return Err(panicked("downloading the archive")),
                }
                continue;
            };
            let asked = std::time::Instant::now();
            let piece = wait_for(&self.runtime, &mut segment.pieces)?;
            self.reader_waits.add(asked.elapsed());
            match piece {
                Some(Piece::Data(data)) => {
                    self.current = data;
                    return Ok(true);
                }
                // Dropping the segment frees its slot for the next one.
                Some(Piece::End) => self.current_segment = None,
                Some(Piece::Failed(e)) => return Err(io_error(e)),
                None => return Err(panicked("downloading a segment")),
            }
        }
    }
}

fn panicked(what: &str) -> io::Error {
    io_error(Error::TaskPanicked { what: what.into() })
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if !self.next_piece()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Starts the blob's segments in order into `sender`, at most `download_concurrency` of them
/// not yet read through.
async fn drive(
    blob: &BlobClient,
    source: &Arc<UrlRenewer>,
    mut sizer: SegmentSizer,
    sender: &tokio::sync::mpsc::Sender<Next>,
) -> Result<(), Error> {
    let retry = &blob.settings.retry;
    let who = source.current().await.who();
    // The first request says whether ranges work and how large the blob is. A 404 here means
    // the lookup listed an entry whose archive is gone (a self-hosted server whose storage lost
    // it, or an eviction in between): the entry is damaged, and no retry brings it back.
    let first = retry
        .run(&who, "GET the first segment", true, || async {
            let url = source.current().await;
            let result = first_request(blob, &url).await;
            if let Err(e) = &result
                && e.is_url_expired()
            {
                source.renew(&url).await?;
            }
            result
        })
        .await
        .map_err(|e| match e {
            Error::Status {
                status: status @ (404 | 410),
                detail,
                ..
            } => Error::EntryGone {
                key: source.matched_key.clone(),
                status,
                detail,
            },
            other => other,
        })?;
    let concurrency = blob.settings.download_concurrency.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let slot = || async {
        Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    };
    let (mut opened, total) = match first {
        First::Whole(response) => {
            let (pieces, receiver) = tokio::sync::mpsc::channel(WHOLE_CHUNKS_BUFFERED);
            let segment = Segment {
                pieces: receiver,
                task: tokio::spawn(stream_whole(response, pieces)),
                _slot: slot().await,
            };
            let _ = sender.send(Next::Segment(segment)).await;
            return Ok(());
        }
        First::Ranged { response, total } => (response, total),
    };
    let mut start = 0;
    let mut started = 0;
    while start < total {
        let slot = slot().await;
        // Past the first few, a slot comes free when the reader is through with a segment.
        let len = if started < concurrency {
            SEGMENT_SIZE
        } else {
            sizer.next()
        }
        .min(total - start);
        started += 1;
        let (pieces, receiver) = tokio::sync::mpsc::channel(SEGMENT_BLOCKS);
        let range = SegmentRange {
            blob: blob.clone(),
            source: Arc::clone(source),
            who: who.clone(),
            start,
            len,
        };
        let segment = Segment {
            pieces: receiver,
            task: tokio::spawn(range.fetch(opened.take(), pieces)),
            _slot: slot,
        };
        if sender.send(Next::Segment(segment)).await.is_err() {
            // The reader went away.
            return Ok(());
        }
        start += len;
    }
    Ok(())
}

/// How long the reader has waited for segment bytes that had not arrived yet, in nanoseconds.
#[derive(Default)]
struct ReaderWaits(std::sync::atomic::AtomicU64);

impl ReaderWaits {
    fn add(&self, waited: std::time::Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.0
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The share of its time the reader may spend waiting on the network while segments still
/// grow: a reader that waits more is held back by the connections, and needs more of them.
const READER_WAIT_SHARE_MAX: f64 = 0.05;

/// Sizes each segment after the first few by how much the reader waited while it read the
/// last few (as many as are in flight). One segment alone would mislead: segments that arrived
/// together, as the first ones do, are read in no time without a wait, though the reader
/// waited for all of them.
struct SegmentSizer {
    size: u64,
    waits: Arc<ReaderWaits>,
    /// When the reader finished each of the last few segments, and its waits by then, oldest
    /// first; at first, the download's start.
    marks: std::collections::VecDeque<(std::time::Instant, u64)>,
    window: usize,
}

impl SegmentSizer {
    fn new(waits: Arc<ReaderWaits>, window: usize) -> Self {
        Self {
            size: SEGMENT_SIZE,
            waits,
            marks: [(std::time::Instant::now(), 0)].into(),
            window: window.max(1),
        }
    }

    /// The next segment's size; called each time the reader is through with a segment.
    fn next(&mut self) -> u64 {
        let now = std::time::Instant::now();
        let waited = self.waits.total();
        let (since, waited_by_then) = self.marks[0];
        let elapsed = now.duration_since(since).as_nanos().max(1) as f64;
        let share = waited.saturating_sub(waited_by_then) as f64 / elapsed;
        self.marks.push_back((now, waited));
        if self.marks.len() > self.window {
            self.marks.pop_front();
        }
        self.size = next_segment_size(self.size, share);
        self.size
    }
}

/// The size of the segment after one of `last` bytes, given the share of the time since then
/// that the reader spent waiting on the network: twice `last` while it hardly waited, as a
/// connection waiting for the reader costs nothing and fewer requests cost less; the smallest
/// once it waits, so that several connections carry the blob.
fn next_segment_size(last: u64, reader_waited_share: f64) -> u64 {
    if reader_waited_share <= READER_WAIT_SHARE_MAX {
        (last * 2).min(SEGMENT_SIZE_MAX)
    } else {
        SEGMENT_SIZE
    }
}

/// Chunks of the body of a server that ignores `Range` held for the reader: a few hundred KiB.
const WHOLE_CHUNKS_BUFFERED: usize = 16;

/// One segment of the blob and what it takes to fetch it.
struct SegmentRange {
    blob: BlobClient,
    source: Arc<UrlRenewer>,
    who: String,
    start: u64,
    len: u64,
}

impl SegmentRange {
    /// Fetches the segment into `pieces`, starting from `opened` when the first request's body
    /// is already on its way. An attempt that breaks midway is retried from the first byte not
    /// yet handed out, so the reader gets every byte of the blob exactly once.
    async fn fetch(
        self,
        mut opened: Option<reqwest::Response>,
        pieces: tokio::sync::mpsc::Sender<Piece>,
    ) {
        let sent = std::sync::atomic::AtomicU64::new(0);
        let what = format!("GET bytes {}-{}", self.start, self.start + self.len - 1);
        let this = &self;
        let outcome = self
            .blob
            .settings
            .retry
            .run(&self.who, &what, true, || {
                let opened = opened.take();
                let (sent, pieces) = (&sent, &pieces);
                async move {
                    let url = this.source.current().await;
                    let result = this.attempt(&url, opened, sent, pieces).await;
                    if let Err(e) = &result
                        && e.is_url_expired()
                    {
                        this.source.renew(&url).await?;
                    }
                    result
                }
            })
            .await;
        let _ = pieces
            .send(match outcome {
                Ok(()) => Piece::End,
                Err(e) => Piece::Failed(e),
            })
            .await;
    }

    /// One request for the rest of the segment (past the `sent` bytes), and its body, handed
    /// on in blocks. What arrived before a failure is handed on too, so the next attempt asks
    /// only for what did not. The attempt's time limit counts the network only: waiting for
    /// the reader to take a block does not use it up.
    async fn attempt(
        &self,
        url: &SignedUrl,
        opened: Option<reqwest::Response>,
        sent: &std::sync::atomic::AtomicU64,
        pieces: &tokio::sync::mpsc::Sender<Piece>,
    ) -> Result<(), Error> {
        let mut clock = NetworkClock::start(self.blob.settings.segment_timeout);
        let mut blocks = SegmentBlocks {
            filling: bytes::BytesMut::new(),
            pieces,
            sent,
        };
        let received = self.receive(url, opened, &mut blocks, &mut clock).await;
        blocks.hand_on(&mut clock).await;
        received
    }

    /// Reads the body of a request for the rest of the segment into `blocks`.
    async fn receive(
        &self,
        url: &SignedUrl,
        opened: Option<reqwest::Response>,
        blocks: &mut SegmentBlocks<'_>,
        clock: &mut NetworkClock,
    ) -> Result<(), Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let from = self.start + blocks.sent.load(Relaxed);
        let asked = self.start + self.len - from;
        let what = format!("GET bytes {from}-{}", self.start + self.len - 1);
        let mut response = match opened {
            Some(response) => response,
            None => {
                let request = self.blob.get_range(url, from, asked, &what);
                clock.bound(&what, request).await?
            }
        };
        let mut got = 0u64;
        loop {
            let next = async { response.chunk().await.map_err(|e| connection(&what, e)) };
            let Some(chunk) = clock.bound(&what, next).await? else {
                break;
            };
            got += chunk.len() as u64;
            if got > asked {
                return Err(Error::InvalidResponse {
                    what: what.clone(),
                    problem: format!("more than the {asked} bytes asked for"),
                });
            }
            if !blocks.push(&chunk, clock).await {
                // The reader went away; nothing more is needed.
                return Ok(());
            }
        }
        if got < asked {
            return Err(Error::Truncated {
                what: what.clone(),
                got,
                expected: asked,
            });
        }
        Ok(())
    }
}

/// Hands a segment's bytes to the reader in blocks of [`BLOCK`] (copies, so that a block
/// waiting for the reader keeps only itself alive, not the client's read buffer), counting
/// what it handed on in `sent`.
struct SegmentBlocks<'a> {
    filling: bytes::BytesMut,
    pieces: &'a tokio::sync::mpsc::Sender<Piece>,
    sent: &'a std::sync::atomic::AtomicU64,
}

impl SegmentBlocks<'_> {
    /// Adds `chunk`, handing on each block it fills; false once the reader has gone.
    async fn push(&mut self, mut chunk: &[u8], clock: &mut NetworkClock) -> bool {
        while !chunk.is_empty() {
            if self.filling.is_empty() {
                self.filling.reserve(BLOCK);
            }
            let take = chunk.len().min(BLOCK - self.filling.len());
            self.filling.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.filling.len() == BLOCK && !self.hand_on(clock).await {
                return false;
            }
        }
        true
    }

    /// Hands on the block being filled, if it holds anything, leaving the time spent waiting
    /// for room off `clock`; false once the reader has gone.
    async fn hand_on(&mut self, clock: &mut NetworkClock) -> bool {
        if self.filling.is_empty() {
            return true;
        }
        let block = std::mem::take(&mut self.filling).freeze();
        let len = block.len() as u64;
        let waiting = tokio::time::Instant::now();
        let handed = self.pieces.send(Piece::Data(block)).await.is_ok();
        clock.leave_out(waiting.elapsed());
        if handed {
            self.sent
                .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        }
        handed
    }
}

/// The time limit of one attempt at a segment (`SEGMENT_DOWNLOAD_TIMEOUT_MINS`), counting only
/// the time spent waiting on the network.
struct NetworkClock {
    deadline: tokio::time::Instant,
    limit: std::time::Duration,
}

impl NetworkClock {
    fn start(limit: std::time::Duration) -> Self {
        Self {
            deadline: tokio::time::Instant::now() + limit,
            limit,
        }
    }

    /// Runs `step` (a request, or the next chunk of a body) within what is left of the limit.
    async fn bound<T>(
        &self,
        what: &str,
        step: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout_at(self.deadline, step).await {
            Ok(result) => result,
            Err(_) => Err(Error::TimedOut {
                what: what.to_string(),
                after: self.limit,
            }),
        }
    }

    /// Gives back time spent waiting on something other than the network.
    fn leave_out(&mut self, waited: std::time::Duration) {
        self.deadline += waited;
    }
}

enum First {
    /// The server honoured `Range`: the first segment's response (its body not yet read) and
    /// the blob's total size.
    Ranged {
        response: Option<reqwest::Response>,
        total: u64,
    },
    /// The server ignored `Range` and is sending everything.
    Whole(reqwest::Response),
}

async fn first_request(blob: &BlobClient, url: &SignedUrl) -> Result<First, Error> {
    let what = format!("GET bytes 0-{}", SEGMENT_SIZE - 1);
    let clock = NetworkClock::start(blob.settings.segment_timeout);
    clock
        .bound(&what, async {
            let response = blob.send_range(url, 0, SEGMENT_SIZE, &what).await?;
            match response.status().as_u16() {
                206 => {
                    let total = content_range_total(response.headers()).ok_or_else(|| {
                        Error::InvalidResponse {
                            what: what.clone(),
                            problem: "206 without a `Content-Range` total".into(),
                        }
                    })?;
                    Ok(First::Ranged {
                        response: Some(response),
                        total,
                    })
                }
                200 => Ok(First::Whole(response)),
                // An empty blob cannot satisfy any range.
                416 => Ok(First::Ranged {
                    response: None,
                    total: 0,
                }),
                _ => Err(status_error(&what, response).await),
            }
        })
        .await
}

/// `bytes 0-16777215/123456789` → 123456789.
fn content_range_total(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    value.rsplit_once('/')?.1.trim().parse().ok()
}

/// The fallback for servers that ignore `Range`: one streamed GET, checked against
/// `Content-Length`. A failure midway cannot be retried (the reader already has bytes), so it
/// fails the restore, which the command reports as a miss.
async fn stream_whole(response: reqwest::Response, pieces: tokio::sync::mpsc::Sender<Piece>) {
    let outcome = stream_whole_body(response, &pieces).await;
    let _ = pieces
        .send(match outcome {
            Ok(()) => Piece::End,
            Err(e) => Piece::Failed(e),
        })
        .await;
}

async fn stream_whole_body(
    mut response: reqwest::Response,
    pieces: &tokio::sync::mpsc::Sender<Piece>,
) -> Result<(), Error> {
    let what = "GET the whole archive (the server ignores `Range`)";
    let expected = response.content_length();
    let mut got = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| connection(what, e))? {
        got += chunk.len() as u64;
        if pieces.send(Piece::Data(chunk)).await.is_err() {
            return Ok(());
        }
    }
    match expected {
        Some(expected) if got != expected => Err(Error::Truncated {
            what: what.into(),
            got,
            expected,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_grow_while_the_reader_hardly_waits_and_shrink_once_it_does() {
        let mib = |n: u64| n << 20;
        assert_eq!(next_segment_size(mib(8), 0.0), mib(16));
        assert_eq!(next_segment_size(mib(16), READER_WAIT_SHARE_MAX), mib(32));
        assert_eq!(next_segment_size(mib(32), 0.01), SEGMENT_SIZE_MAX);
        assert_eq!(next_segment_size(mib(32), 0.5), SEGMENT_SIZE);
        assert_eq!(next_segment_size(mib(16), 1.0), SEGMENT_SIZE);
        // A segment of the smallest size fits what it may queue whole, so while the network is
        // the limit no connection ever waits for the reader.
        assert!(SEGMENT_SIZE <= ((SEGMENT_BLOCKS + 1) * BLOCK) as u64);
    }

    #[test]
    fn the_sizer_reads_the_reader_waits_over_the_last_few_segments() {
        let pause = || std::thread::sleep(std::time::Duration::from_millis(5));
        let waits = Arc::new(ReaderWaits::default());
        let mut sizer = SegmentSizer::new(Arc::clone(&waits), 3);
        pause();
        // The reader waited for the first segment, then read the two that had arrived with it
        // at once: the wait still counts for both.
        waits.add(std::time::Duration::from_secs(1));
        assert_eq!(sizer.next(), SEGMENT_SIZE);
        assert_eq!(sizer.next(), SEGMENT_SIZE);
        assert_eq!(sizer.next(), SEGMENT_SIZE);
        // Three segments later without a wait, the wait has left the window: segments grow.
        pause();
        assert_eq!(sizer.next(), 2 * SEGMENT_SIZE);
        pause();
        assert_eq!(sizer.next(), 4 * SEGMENT_SIZE);
        waits.add(std::time::Duration::from_secs(1));
        assert_eq!(sizer.next(), SEGMENT_SIZE);
    }

    #[test]
    fn a_segment_time_limit_leaves_out_waiting_for_the_reader() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let step = || async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Ok::<_, Error>(())
        };
        runtime.block_on(async {
            let limit = std::time::Duration::from_millis(100);
            let clock = NetworkClock::start(limit);
            let over = clock.bound("GET bytes 0-9", step()).await;
            assert!(
                matches!(&over, Err(Error::TimedOut { what, after }) if what == "GET bytes 0-9" && *after == limit),
                "{over:?}"
            );
            let mut clock = NetworkClock::start(limit);
            clock.leave_out(std::time::Duration::from_secs(30));
            clock.bound("GET bytes 0-9", step()).await.unwrap();
        });
    }

    #[test]
    fn block_ids_have_the_azure_sdk_layout() {
        use base64::Engine;
        let uuid = uuid_v4();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        let id = block_id(&uuid, 3);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&id)
            .unwrap();
        let text = String::from_utf8(decoded).unwrap();
        assert_eq!(text.len(), 48);
        assert_eq!(&text[36..], "000000000003");
        assert_eq!(block_id(&uuid, 0).len(), block_id(&uuid, 49_999).len());
    }

    #[test]
    fn signed_urls_hide_their_signature() {
        let url = SignedUrl::parse(
            "https://acct.blob.core.windows.net/c/b?sv=2024-11-04&sp=r&sig=abc%2Bdef%3D&se=2026",
        )
        .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("abc"), "{shown}");
        assert!(
            shown.contains("sig=****") && shown.contains("sp=r"),
            "{shown}"
        );
        assert_eq!(
            url.secrets(),
            vec!["abc%2Bdef%3D".to_string(), "abc+def=".to_string()]
        );
    }

    #[test]
    fn content_range_gives_the_total() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_RANGE,
            "bytes 0-9/1234".parse().unwrap(),
        );
        assert_eq!(content_range_total(&headers), Some(1234));
    }
}
