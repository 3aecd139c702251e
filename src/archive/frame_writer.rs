//! Writes a zstd stream as independent frames, compressed on worker threads.
//!
//! Every [`FRAME_INPUT`] bytes of input start a new frame, compressed on its own (no window
//! shared with the frame before) with its content size and a checksum in its header. The
//! frames go out in order, so the result is one ordinary zstd stream: `zstd -d`, GNU tar and
//! `@actions/cache` read concatenated frames as they read one. What the frames buy is on the
//! other side: a restore cuts the stream at frame boundaries and decodes on every core (see
//! `decode`), where one long frame can only be decoded by one thread.
//!
//! The frames are also the unit of parallel compression: each worker compresses whole frames
//! with its own context, as `zstd -T0` spreads its jobs, and a level change (the governor in
//! `level`) applies from the next frame on.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use zstd::zstd_safe::{CCtx, CParameter};

/// Input per frame. Measured on 300 MB of `bench/make_tree.py`'s package-cache tar at level
/// 3, against one frame (118.9 MB): 1 MiB frames cost 3.2% in size, 2 MiB 1.75%, 4 MiB 0.82%,
/// 8 MiB 0.36%, 16 MiB 0.17%; decoding time was the same for all of them (within noise). Each
/// frame in flight holds its input and its output in memory on both sides, so 4 MiB is where
/// the size cost falls under 1% while a save or a restore stays well under 100 MiB.
pub const FRAME_INPUT: usize = 4 << 20;

/// A frame to compress, and where to send it back.
struct Job {
    input: Vec<u8>,
    output: Vec<u8>,
    level: i32,
    done: mpsc::SyncSender<Done>,
}

/// A compressed frame, with the input buffer back for reuse.
struct Done {
    input: Vec<u8>,
    output: Vec<u8>,
    /// zstd's name for what went wrong.
    result: Result<(), &'static str>,
}

/// A writer that compresses into independent zstd frames; `finish` writes the last frame and
/// hands back the inner writer.
pub struct FrameWriter<W: Write> {
    /// Taken by `finish`.
    inner: Option<W>,
    level: i32,
    /// Input of the frame being filled.
    pending: Vec<u8>,
    /// Frames handed to the workers, oldest first: each is written out when it is done and
    /// every frame before it is written.
    in_flight: VecDeque<mpsc::Receiver<Done>>,
    max_in_flight: usize,
    jobs: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    spare_inputs: Vec<Vec<u8>>,
    spare_outputs: Vec<Vec<u8>>,
    frames: u64,
}

impl<W: Write> FrameWriter<W> {
    /// A writer at `level` with `workers` compressing threads.
    pub fn new(inner: W, level: i32, workers: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let handles = (0..workers)
            .map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name("zstd-frames".into())
                    .spawn(move || compress_frames(&queue))
                    .expect("spawning a compression thread")
            })
            .collect();
        Self {
            inner: Some(inner),
            level,
            pending: Vec::new(),
            in_flight: VecDeque::new(),
            // One frame per worker, and one more each finished or queued so that no worker
            // waits while the oldest frame is written out.
            max_in_flight: workers + 2,
            jobs: Some(jobs),
            workers: handles,
            spare_inputs: Vec::new(),
            spare_outputs: Vec::new(),
            frames: 0,
        }
    }

    /// The level of the frames that start from now on.
    pub fn set_level(&mut self, level: i32) {
        self.level = level;
    }

    /// Frames written or queued so far.
    #[cfg(test)]
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Writes the last frame (an empty one if there was no input at all, so the stream is
    /// still valid zstd) and every frame still in flight.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() || self.frames == 0 {
            self.submit()?;
        }
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.stop_workers();
        let mut inner = self.inner.take().expect("finish runs once");
        inner.flush()?;
        Ok(inner)
    }

    fn inner(&mut self) -> &mut W {
        self.inner.as_mut().expect("the writer is not finished")
    }

    /// Hands the pending input to a worker as one frame.
    fn submit(&mut self) -> io::Result<()> {
        while self.in_flight.len() >= self.max_in_flight {
            self.write_oldest()?;
        }
        let input = std::mem::replace(
            &mut self.pending,
            self.spare_inputs.pop().unwrap_or_default(),
        );
        let (done, receiver) = mpsc::sync_channel(1);
        let job = Job {
            input,
            output: self.spare_outputs.pop().unwrap_or_default(),
            level: self.level,
            done,
        };
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            return Err(io::Error::other("the zstd compression threads stopped"));
        }
        self.in_flight.push_back(receiver);
        self.frames += 1;
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(receiver) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let done = receiver
            .recv()
            .map_err(|_| io::Error::other("a zstd compression thread panicked"))?;
        if let Err(name) = done.result {
            return Err(io::Error::other(format!(
                "zstd could not compress a frame: {name}"
            )));
        }
        self.inner().write_all(&done.output)?;
        let mut input = done.input;
        input.clear();
        self.spare_inputs.push(input);
        self.spare_outputs.push(done.output);
        Ok(())
    }

    fn stop_workers(&mut self) {
        // Closing the queue ends each worker after its current frame.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl<W: Write> Drop for FrameWriter<W> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(FRAME_INPUT);
        }
        let room = FRAME_INPUT - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == FRAME_INPUT {
            self.submit()?;
        }
        Ok(n)
    }

    /// Flushes the inner writer. The frame being filled stays open: ending it early would only
    /// cost size.
    fn flush(&mut self) -> io::Result<()> {
        self.inner().flush()
    }
}

fn compress_frames(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut context = CCtx::create();
    loop {
        let job = match queue.lock().map(|queue| queue.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let Job {
            input,
            mut output,
            level,
            done,
        } = job;
        let result = compress_frame(&mut context, level, &input, &mut output);
        let _ = done.send(Done {
            input,
            output,
            result,
        });
    }
}

/// One frame, with its content size and a checksum in it.
fn compress_frame(
    context: &mut CCtx<'_>,
    level: i32,
    input: &[u8],
    output: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let name = zstd::zstd_safe::get_error_name;
    context
        .set_parameter(CParameter::CompressionLevel(level))
        .map_err(name)?;
    context
        .set_parameter(CParameter::ChecksumFlag(true))
        .map_err(name)?;
    output.clear();
    output.reserve(zstd::zstd_safe::compress_bound(input.len()));
    context.compress2(output, input).map_err(name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::frames::Splitter;
    use std::io::Read;

    fn split(stream: &[u8]) -> Vec<(Option<u64>, Vec<u8>)> {
        let mut splitter = Splitter::new(stream);
        let mut frames = Vec::new();
        while let Some(header) = splitter.next_header().unwrap() {
            let frame = splitter.read_frame(usize::MAX).unwrap().unwrap();
            frames.push((header.content_size, frame.bytes));
        }
        frames
    }

    #[test]
    fn writes_one_frame_per_frame_input_in_order() {
        let data: Vec<u8> = (0..(2 * FRAME_INPUT + 12_345) as u32)
            .map(|i| (i / 3 % 251) as u8)
            .collect();
        let mut writer = FrameWriter::new(Vec::new(), 3, 3);
        // Small writes, as tar hands them over.
        for piece in data.chunks(10_000) {
            writer.write_all(piece).unwrap();
        }
        assert_eq!(writer.frames(), 2);
        let stream = writer.finish().unwrap();
        let frames = split(&stream);
        let sizes: Vec<_> = frames.iter().map(|(size, _)| *size).collect();
        assert_eq!(
            sizes,
            [
                Some(FRAME_INPUT as u64),
                Some(FRAME_INPUT as u64),
                Some(12_345)
            ]
        );
        let mut decoded = Vec::new();
        zstd::stream::read::Decoder::new(&stream[..])
            .unwrap()
            .read_to_end(&mut decoded)
            .unwrap();
        assert!(decoded == data, "the frames decode to the input, in order");
    }

    #[test]
    fn no_input_is_one_empty_frame() {
        let stream = FrameWriter::new(Vec::new(), 3, 1).finish().unwrap();
        assert_eq!(split(&stream).len(), 1);
        assert!(zstd::stream::decode_all(&stream[..]).unwrap().is_empty());
    }

    #[test]
    fn a_level_change_starts_with_the_next_frame() {
        // Words from a small vocabulary: a harder level finds more of the repeats.
        let words = [
            "import ",
            "numpy",
            " as ",
            "np\n",
            "def ",
            "self",
            "(x)",
            ": return ",
        ];
        let mut state = 1u32;
        let mut data = Vec::with_capacity(FRAME_INPUT + 16);
        while data.len() < FRAME_INPUT {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            data.extend_from_slice(words[(state >> 29) as usize].as_bytes());
        }
        data.truncate(FRAME_INPUT);
        let mut writer = FrameWriter::new(Vec::new(), 1, 2);
        writer.write_all(&data).unwrap();
        writer.set_level(19);
        writer.write_all(&data[..1 << 20]).unwrap();
        let frames = split(&writer.finish().unwrap());
        assert_eq!(frames.len(), 2);
        let at = |level| zstd::bulk::compress(&data[..1 << 20], level).unwrap().len();
        // The second frame took level 19: smaller than level 1 makes it.
        assert!(
            frames[1].1.len() < at(1),
            "{} vs {}",
            frames[1].1.len(),
            at(1)
        );
    }
}
