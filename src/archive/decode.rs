//! The decompression pipeline of a restore: from the store's bytes to a tar stream, on threads
//! of its own, handed to the unpacker in order.
//!
//! One thread reads the archive ahead (a store may hash it as it goes). Another detects the
//! codec and decodes. gzip, plain tar, and zstd frames that do not say how large they are
//! (what `zstd` writes from a pipe, so every archive actions/cache writes) decode on that one
//! thread as a stream, the way `zstd -d | tar -x` runs. zstd frames that carry their content
//! size, as cache-heal writes them (`frame_writer`), are cut apart without decoding
//! (`frames::Splitter`) and decoded whole on one worker per core; a decoded frame is handed
//! over once every frame before it has been, so the unpacker reads one ordered stream, and a
//! worker never waits for another: it files its frame and takes the next. Once a frame comes
//! that cannot be decoded whole within the memory bound, the rest of the stream goes to the
//! streaming decoder, after the frames already in flight.
//!
//! Memory stays bounded: decoded frames count against a budget (see [`decoded_in_flight`])
//! from the moment they are read until the unpacker hands their buffer back, and nothing is
//! read ahead while the budget is spent.

use std::io::{self, BufRead, Read};
use std::sync::{Condvar, Mutex, mpsc};

use super::codec::{self, Detected};
use super::frames::{Frame, FrameError, Splitter};

/// Bytes travel between the pipeline's threads in chunks of this size (decoded frames travel
/// whole).
const CHUNK_SIZE: usize = 1 << 20;
/// Chunks in flight between two threads: bounds the memory of each hand-off.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Frames with at most this much content are decoded whole on a worker (cache-heal writes
/// 4 MiB); a larger one, such as the single frame `zstd FILE` writes with the file's size in
/// it, goes to the streaming decoder.
const WHOLE_FRAME_MAX: u64 = 16 << 20;
/// The size of the frames cache-heal writes, which the budget is counted in.
const FRAME: u64 = super::frame_writer::FRAME_INPUT as u64;

/// Decoded bytes of whole frames that may exist at once (being decoded, waiting for their turn,
/// queued for the unpacker or held by it), with `workers` decoding: a frame for each worker,
/// one the unpacker holds and one ready for it, so no worker waits for the unpacker to make room
/// while it keeps up. 16 MiB on two cores, 40 MiB with the most workers (8). Measured on two
/// cores, a restore of `bench/archive.sh`'s package tree peaked at 53 MiB RSS with this budget,
/// 82 MiB with 32 MiB, and 41 MiB with the streaming decoder alone.
fn decoded_in_flight(workers: usize) -> u64 {
    (workers as u64 + 2) * FRAME
}

/// A channel end carrying chunks of a stream, or the error that ended it.
type Chunks = mpsc::SyncSender<io::Result<Vec<u8>>>;

/// Starts reading and decoding `archive` on threads of `scope`; returns the tar stream.
pub fn tar_stream<'scope, R>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    archive: R,
) -> ChunkReader
where
    R: Read + Send + 'scope,
{
    // Errors of the store's reader are marked as the store's, so a restore can tell a store
    // that failed from an archive that is damaged.
    let compressed = read_ahead(scope, move || Ok(super::unpack::StoreReader(archive)));
    let (chunks, received) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (recycle, recycled) = mpsc::channel();
    scope.spawn(move || decode(compressed, &chunks, &recycled));
    ChunkReader::new(received, recycle)
}

/// Detects the codec and decodes with what fits it.
fn decode(mut compressed: ChunkReader, chunks: &Chunks, recycled: &mpsc::Receiver<Vec<u8>>) {
    match codec::detect(&mut compressed) {
        Ok(Detected::Zstd) => decode_frames(compressed, chunks, recycled),
        Ok(_) => match codec::decoder(compressed) {
            Ok(mut decoder) => pump_chunks(&mut decoder, chunks, recycled),
            Err(e) => {
                let _ = chunks.send(Err(e));
            }
        },
        Err(e) => {
            let _ = chunks.send(Err(e));
        }
    }
}

/// Decoded frames waiting for the frames before them, and the next one the unpacker gets.
/// Whichever worker finishes the next frame hands it over, with every frame after it that is
/// ready, so no worker ever waits for another: it goes on to the next frame.
#[derive(Default)]
struct Reorder {
    state: Mutex<ReorderState>,
    /// Signalled whenever `next` moves or the pipeline stops.
    moved: Condvar,
}

#[derive(Default)]
struct ReorderState {
    next: u64,
    ready: std::collections::BTreeMap<u64, io::Result<Vec<u8>>>,
    /// Set when the unpacker hung up or an error was handed over: everyone stops.
    stopped: bool,
}

impl Reorder {
    /// Files frame `turn`'s result and hands over every frame that is now next in line. False
    /// once the pipeline stopped.
    fn finish(
        &self,
        turn: u64,
        result: io::Result<Vec<u8>>,
        chunks: &Chunks,
        spare: &Mutex<Vec<Vec<u8>>>,
    ) -> bool {
        let mut state = self.state.lock().expect("reorder lock");
        state.ready.insert(turn, result);
        let mut moved = false;
        while !state.stopped {
            let next = state.next;
            let Some(result) = state.ready.remove(&next) else {
                break;
            };
            // Sending while holding the lock keeps the order; the channel holds more frames
            // than the budget lets exist, so it does not block unless the unpacker is behind.
            let handed = match result {
                // An empty frame sends nothing: an empty chunk would read as the end of the
                // stream.
                Ok(output) if output.is_empty() => {
                    spare.lock().expect("spare lock").push(output);
                    true
                }
                Ok(output) => chunks.send(Ok(output)).is_ok(),
                Err(e) => {
                    let _ = chunks.send(Err(e));
                    false
                }
            };
            state.next += 1;
            state.stopped = !handed;
            moved = true;
        }
        if state.stopped {
            state.ready.clear();
        }
        let going = !state.stopped;
        drop(state);
        if moved {
            self.moved.notify_all();
        }
        going
    }

    /// Waits until every frame before `turn` was handed over; false if the pipeline stopped.
    fn wait_for(&self, turn: u64) -> bool {
        let mut state = self.state.lock().expect("reorder lock");
        while state.next != turn && !state.stopped {
            state = self.moved.wait(state).expect("reorder lock");
        }
        !state.stopped
    }

    fn is_stopped(&self) -> bool {
        self.state.lock().expect("reorder lock").stopped
    }
}

/// A frame to decode, with its place in the output.
struct Job {
    turn: u64,
    frame: Frame,
    /// What the frame's header says it holds.
    content_size: usize,
}

/// Splits a zstd stream into frames and decodes them on one worker per core (see the module
/// doc), falling back to streaming for the rest of the stream when a frame does not fit.
fn decode_frames(compressed: ChunkReader, chunks: &Chunks, recycled: &mpsc::Receiver<Vec<u8>>) {
    let reorder = Reorder::default();
    // Buffers for decoded frames and for compressed ones, handed back for reuse: a fresh
    // buffer costs a page fault every 4 KiB.
    let spare: Mutex<Vec<Vec<u8>>> = Mutex::default();
    let spare_compressed: Mutex<Vec<Vec<u8>>> = Mutex::default();
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Mutex::new(queue);
    std::thread::scope(|scope| {
        let workers = codec::zstd_workers();
        let budget = decoded_in_flight(workers);
        for _ in 0..workers {
            scope.spawn(|| decode_jobs(&queue, &reorder, chunks, &spare, &spare_compressed));
        }
        let mut splitter = Splitter::new(compressed);
        let mut turn = 0;
        let mut outstanding = 0u64;
        let ending = loop {
            let header = match splitter.next_header() {
                Ok(Some(header)) => header,
                Ok(None) => break Ending::Done,
                Err(e) => break Ending::Failed(e),
            };
            let Some(size) = header.content_size.filter(|s| *s <= WHOLE_FRAME_MAX) else {
                break Ending::Stream;
            };
            // Take back the buffers the unpacker is done with, waiting for them while this
            // frame does not fit the budget.
            let hung_up = loop {
                let must_wait = outstanding > 0 && outstanding + size > budget;
                let buffer = if must_wait {
                    recycled.recv().map_err(|_| true)
                } else {
                    recycled
                        .try_recv()
                        .map_err(|e| e == mpsc::TryRecvError::Disconnected)
                };
                match buffer {
                    Ok(buffer) => {
                        outstanding = outstanding.saturating_sub(buffer.len() as u64);
                        spare.lock().expect("spare lock").push(buffer);
                    }
                    Err(disconnected) => break disconnected,
                }
            };
            // The unpacker finished or failed, or a worker handed over an error: nothing more
            // is wanted.
            if hung_up || reorder.is_stopped() {
                break Ending::Stopped;
            }
            // A frame's compressed bytes are at most its content plus a 3-byte header per
            // block, a few bytes of frame header and a checksum; more means empty blocks
            // padding it out, which the streaming decoder copes with in constant memory.
            let limit = size as usize + size as usize / 1024 + 1024;
            let mut buffer = spare_compressed
                .lock()
                .expect("spare lock")
                .pop()
                .unwrap_or_default();
            buffer.clear();
            buffer.reserve(limit);
            splitter.reuse(buffer);
            let frame = match splitter.read_frame(limit) {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ending::Stream,
                Err(e) => break Ending::Failed(e),
            };
            outstanding += size;
            let job = Job {
                turn,
                frame,
                content_size: size as usize,
            };
            // The queue's receiving end lives as long as this function: sending cannot fail.
            let _ = jobs.send(job);
            turn += 1;
        };
        // The workers end once the queue is empty; the frames they hold still go first.
        drop(jobs);
        if !reorder.wait_for(turn) {
            return;
        }
        match ending {
            Ending::Done | Ending::Stopped => {}
            Ending::Failed(e) => {
                let _ = chunks.send(Err(e.into()));
            }
            Ending::Stream => match codec::zstd_decoder(splitter.into_rest()) {
                Ok(mut decoder) => pump_chunks(&mut decoder, chunks, recycled),
                Err(e) => {
                    let _ = chunks.send(Err(e));
                }
            },
        }
    });
}

/// How the splitting loop ended.
enum Ending {
    /// The stream ended after a whole frame.
    Done,
    /// A frame cannot be decoded whole: stream the rest.
    Stream,
    Failed(FrameError),
    /// The unpacker hung up, or a worker handed over an error.
    Stopped,
}

fn decode_jobs(
    queue: &Mutex<mpsc::Receiver<Job>>,
    reorder: &Reorder,
    chunks: &Chunks,
    spare: &Mutex<Vec<Vec<u8>>>,
    spare_compressed: &Mutex<Vec<Vec<u8>>>,
) {
    let mut context = zstd::zstd_safe::DCtx::create();
    // As the streaming decoder: any window a frame asks for (whole frames are small anyway).
    let _ = context.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(31));
    loop {
        let job = match queue.lock().map(|queue| queue.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let mut output = spare.lock().expect("spare lock").pop().unwrap_or_default();
        let result = decode_frame(&mut context, &job, &mut output).map(|()| output);
        spare_compressed
            .lock()
            .expect("spare lock")
            .push(job.frame.bytes);
        // After an error, the worker stops: its context may be mid-frame.
        let failed = result.is_err();
        if !reorder.finish(job.turn, result, chunks, spare) || failed {
            return;
        }
    }
}

/// Decodes one whole frame, checking its checksum and that it holds what its header says.
fn decode_frame(
    context: &mut zstd::zstd_safe::DCtx<'_>,
    job: &Job,
    output: &mut Vec<u8>,
) -> io::Result<()> {
    output.clear();
    output.reserve_exact(job.content_size);
    let frame = &job.frame;
    match context.decompress(output, &frame.bytes) {
        Ok(n) if n == job.content_size => Ok(()),
        Ok(n) => Err(corrupt(
            frame,
            &format!("it holds {n} bytes, its header says {}", job.content_size),
        )),
        Err(code) => Err(corrupt(frame, zstd::zstd_safe::get_error_name(code))),
    }
}

fn corrupt(frame: &Frame, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "zstd frame {} (at byte {}) does not decode: {what}",
            frame.number, frame.offset
        ),
    )
}

/// Runs a reader on its own thread, handing its bytes over in chunks. The reader is opened
/// on that thread too, and an error opening it arrives as the first read's error.
fn read_ahead<'scope, R, F>(scope: &'scope std::thread::Scope<'scope, '_>, open: F) -> ChunkReader
where
    R: Read,
    F: FnOnce() -> io::Result<R> + Send + 'scope,
{
    let (chunks, received) = mpsc::sync_channel::<io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
    let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
    scope.spawn(move || match open() {
        Ok(mut reader) => pump_chunks(&mut reader, &chunks, &recycled),
        Err(e) => {
            let _ = chunks.send(Err(e));
        }
    });
    ChunkReader::new(received, recycle)
}

fn pump_chunks(reader: &mut dyn Read, chunks: &Chunks, recycled: &mpsc::Receiver<Vec<u8>>) {
    loop {
        if let Err(e) = crate::interrupt::check_io() {
            let _ = chunks.send(Err(e));
            return;
        }
        // Reuse a chunk the consumer is done with: it is already initialized, so no memset.
        let mut chunk = recycled.try_recv().unwrap_or_default();
        chunk.resize(CHUNK_SIZE, 0);
        let filled = match fill(reader, &mut chunk) {
            Ok(filled) => filled,
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
        };
        chunk.truncate(filled);
        // The consumer hung up (it failed or finished): stop reading.
        if filled == 0 || chunks.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Reads until `buffer` is full or the stream ends; returns how much was read.
fn fill(reader: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The consuming end of a pipeline stage: a `BufRead` over the chunks it sends, so a decoder
/// can work straight from them without another copy. Chunks it is done with go back to the
/// stage for reuse.
pub struct ChunkReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
}

impl ChunkReader {
    fn new(chunks: mpsc::Receiver<io::Result<Vec<u8>>>, recycle: mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            chunks,
            recycle,
            current: Vec::new(),
            position: 0,
        }
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.position == self.current.len() {
            // A short timeout, so that a signal is noticed while the producer is stuck (a
            // stalled download).
            let chunk = loop {
                crate::interrupt::check_io()?;
                match self.chunks.recv_timeout(crate::interrupt::POLL) {
                    Ok(chunk) => break chunk?,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    // The producer finished: the stream ended.
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(&[]),
                }
            };
            let done = std::mem::replace(&mut self.current, chunk);
            let _ = self.recycle.send(done);
            self.position = 0;
        }
        Ok(&self.current[self.position..])
    }

    fn consume(&mut self, amount: usize) {
        self.position = (self.position + amount).min(self.current.len());
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Content that compresses, different for each `seed`.
    fn content(seed: u32, len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| ((i / 5) ^ seed).wrapping_mul(2_654_435_761).rotate_left(7) as u8 % 32)
            .collect()
    }

    /// `data` as cache-heal writes it: independent frames of `frame` bytes with their sizes
    /// and checksums.
    fn sized_frames(data: &[u8], frame: usize) -> Vec<u8> {
        let mut context = zstd::zstd_safe::CCtx::create();
        context
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .unwrap();
        let mut out = Vec::new();
        for chunk in data.chunks(frame) {
            let mut compressed = Vec::with_capacity(zstd::zstd_safe::compress_bound(chunk.len()));
            context.compress2(&mut compressed, chunk).unwrap();
            out.extend(compressed);
        }
        out
    }

    /// `data` as `zstd` writes it from a pipe: one frame, no content size.
    fn streamed(data: &[u8]) -> Vec<u8> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Runs the pipeline over `archive`; returns what it decoded before the end or the error.
    fn run(archive: &[u8]) -> (Vec<u8>, Option<io::Error>) {
        std::thread::scope(|scope| {
            let mut reader = tar_stream(scope, archive);
            let mut out = Vec::new();
            let mut buffer = vec![0; 100_000];
            loop {
                match reader.read(&mut buffer) {
                    Ok(0) => return (out, None),
                    Ok(n) => out.extend_from_slice(&buffer[..n]),
                    Err(e) => return (out, Some(e)),
                }
            }
        })
    }

    #[test]
    fn many_frames_come_out_whole_and_in_order() {
        let data = content(1, 9_000_000);
        // 90 frames: every worker has many, so any reordering would show.
        let (out, error) = run(&sized_frames(&data, 100_000));
        assert!(error.is_none(), "{error:?}");
        assert!(
            out == data,
            "decoded {} bytes, wanted {}",
            out.len(),
            data.len()
        );
    }

    #[test]
    fn a_single_streamed_frame_decodes_as_a_stream() {
        let data = content(2, 3_000_000);
        let (out, error) = run(&streamed(&data));
        assert!(error.is_none(), "{error:?}");
        assert!(out == data);
    }

    #[test]
    fn a_frame_without_its_size_streams_the_rest_after_the_whole_frames() {
        let data = content(3, 2_000_000);
        let (head, tail) = data.split_at(1_200_000);
        let (middle, last) = tail.split_at(500_000);
        let mut archive = sized_frames(head, 300_000);
        archive.extend(streamed(middle));
        archive.extend(sized_frames(last, 100_000));
        // A skippable frame and an empty frame on the way change nothing.
        archive.extend([0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        archive.extend(zstd::bulk::compress(&[], 3).unwrap());
        let (out, error) = run(&archive);
        assert!(error.is_none(), "{error:?}");
        assert!(out == data);
    }

    #[test]
    fn a_corrupt_frame_is_named_after_the_frames_before_it() {
        let data = content(4, 1_000_000);
        let mut archive = sized_frames(&data, 250_000);
        let frames: Vec<usize> = (0..4)
            .scan(0, |at, _| {
                let start = *at;
                *at += zstd::zstd_safe::find_frame_compressed_size(&archive[start..]).unwrap();
                Some(start)
            })
            .collect();
        // Damage the content of the third frame, well past its header.
        archive[frames[2] + 40] ^= 0x55;
        let (out, error) = run(&archive);
        let error = error.expect("a corrupt frame fails");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "zstd frame 3 (at byte {}) does not decode: ",
                frames[2]
            )),
            "{message}"
        );
        assert!(
            out == data[..500_000],
            "the two frames before it arrived whole"
        );
    }

    #[test]
    fn a_truncated_archive_is_an_error_not_a_short_stream() {
        let data = content(5, 1_000_000);
        let archive = sized_frames(&data, 300_000);
        for cut in [archive.len() - 1, archive.len() / 2, 6] {
            let (_, error) = run(&archive[..cut]);
            let error = error.unwrap_or_else(|| panic!("cut at {cut} decoded without an error"));
            assert!(error.to_string().contains("is cut off in"), "{error}");
        }
        // Cut inside a frame that streams: zstd's own error.
        let (_, error) = run(&streamed(&data)[..1000]);
        assert!(error.is_some(), "a truncated stream fails");
    }

    #[test]
    fn an_unpacker_that_stops_early_stops_the_pipeline() {
        let data = content(6, 8_000_000);
        let archive = sized_frames(&data, 100_000);
        std::thread::scope(|scope| {
            let mut reader = tar_stream(scope, &archive[..]);
            let mut first = vec![0; 10];
            reader.read_exact(&mut first).unwrap();
            assert_eq!(first, data[..10]);
            // Dropping the reader here must let every pipeline thread end, or the scope
            // never returns.
        });
    }
}
