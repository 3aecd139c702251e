//! The zstd frame format, as far as cutting a stream into frames needs it, without decoding a
//! byte (RFC 8878 §3.1).
//!
//! A zstd stream is a sequence of frames, each decodable on its own. A frame is a header (magic
//! number, descriptor, optional window, dictionary id and content size), then blocks, each
//! behind a 3-byte header that holds its size, then an optional 4-byte checksum. So the length of
//! a frame follows from its headers alone, and a restore can hand whole frames to several
//! decoders at once. Skippable frames (magic `0x184D2A5?`, then a 4-byte length) carry no
//! content and are stepped over.
//!
//! Frames are numbered from 1 in messages, and offsets count from the first byte of the
//! archive, so a corrupt archive can be looked at with `dd` or `xxd`.

use std::io::{self, BufRead, Read};

/// The magic number that opens a zstd frame, as it appears in the stream (little endian).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Skippable frames use the 16 magic numbers `0x184D2A50` to `0x184D2A5F`.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
/// The most a block may hold (`Block_Maximum_Size` is at most 128 KiB; zstd refuses more).
const BLOCK_MAX: usize = 128 << 10;
const BLOCK_HEADER_LEN: usize = 3;
const CHECKSUM_LEN: usize = 4;

/// What is wrong with a stream that claims to be zstd.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("zstd frame {frame} (at byte {offset}) is cut off in {part}")]
    Truncated {
        frame: u64,
        offset: u64,
        part: &'static str,
    },
    #[error("zstd frame {frame} (at byte {offset}) sets the reserved bit of its header")]
    ReservedBit { frame: u64, offset: u64 },
    #[error("zstd frame {frame} (at byte {offset}): block {block} has the reserved block type")]
    ReservedBlockType { frame: u64, offset: u64, block: u64 },
    #[error(
        "zstd frame {frame} (at byte {offset}): block {block} claims {size} bytes, more than the {BLOCK_MAX} a block may hold"
    )]
    BlockTooLarge {
        frame: u64,
        offset: u64,
        block: u64,
        size: usize,
    },
    #[error(
        "the bytes at offset {offset}, after zstd frame {after}, are not a zstd frame: they start with {head:02x?}"
    )]
    NotAFrame {
        after: u64,
        offset: u64,
        head: Vec<u8>,
    },
    #[error("reading the archive at byte {offset}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl From<FrameError> for io::Error {
    fn from(error: FrameError) -> Self {
        let kind = match &error {
            FrameError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            FrameError::Read { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// The facts a frame header gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The header's length, magic number included.
    pub len: usize,
    /// The size of the frame's content, when the writer knew it.
    pub content_size: Option<u64>,
    /// Whether a 4-byte checksum of the content follows the last block.
    pub checksum: bool,
}

/// The header's length from its first five bytes (magic and descriptor).
fn header_len(descriptor: u8) -> usize {
    let single_segment = descriptor & 0x20 != 0;
    let window = usize::from(!single_segment);
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    ZSTD_MAGIC.len() + 1 + window + dictionary + content_size
}

/// Reads a whole header (`bytes` holds exactly `header_len` bytes of it).
fn parse_header(bytes: &[u8]) -> FrameHeader {
    let descriptor = bytes[4];
    let single_segment = descriptor & 0x20 != 0;
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let start = 5 + usize::from(!single_segment) + dictionary;
    let field = &bytes[start..];
    let little = |n: usize| {
        field[..n]
            .iter()
            .rev()
            .fold(0u64, |value, byte| value << 8 | u64::from(*byte))
    };
    let content_size = match descriptor >> 6 {
        0 if single_segment => Some(little(1)),
        0 => None,
        // The 2-byte form is offset by 256, so that it never repeats the 1-byte form.
        1 => Some(little(2) + 256),
        2 => Some(little(4)),
        _ => Some(little(8)),
    };
    FrameHeader {
        len: bytes.len(),
        content_size,
        checksum: descriptor & 0x04 != 0,
    }
}

/// One whole frame, as it was in the stream.
#[derive(Debug)]
pub struct Frame {
    /// Counted from 1.
    pub number: u64,
    /// Where the frame starts in the stream.
    pub offset: u64,
    /// The frame's bytes, header to checksum.
    pub bytes: Vec<u8>,
}

/// Cuts a zstd stream into frames. Call [`Splitter::next_header`], then either
/// [`Splitter::read_frame`] to take the frame whole, or [`Splitter::into_rest`] to hand the
/// rest of the stream (from the start of that frame) to a streaming decoder.
pub struct Splitter<R> {
    reader: R,
    /// The stream offset of the first byte not yet read.
    offset: u64,
    /// Frames whose header was read.
    frames: u64,
    /// Bytes of the current frame read so far.
    pending: Vec<u8>,
    /// The current frame's header, between `next_header` and `read_frame`.
    current: Option<FrameHeader>,
}

impl<R: BufRead> Splitter<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            offset: 0,
            frames: 0,
            pending: Vec::new(),
            current: None,
        }
    }

    /// Steps over skippable frames and reads the next frame's header; `None` at the end of
    /// the stream.
    pub fn next_header(&mut self) -> Result<Option<FrameHeader>, FrameError> {
        loop {
            self.pending.clear();
            self.current = None;
            let start = self.offset;
            let got = self.read_up_to(4)?;
            if got == 0 {
                return Ok(None);
            }
            let number = self.frames + 1;
            if got < 4 {
                return Err(self.truncated(number, start, "its magic number"));
            }
            let magic = u32::from_le_bytes(self.pending[..4].try_into().expect("4 bytes"));
            if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
                self.skip_skippable(start)?;
                continue;
            }
            if self.pending[..4] != ZSTD_MAGIC {
                return Err(FrameError::NotAFrame {
                    after: self.frames,
                    offset: start,
                    head: self.pending.clone(),
                });
            }
            self.frames = number;
            self.take(1, number, start, "its header")?;
            let descriptor = self.pending[4];
            if descriptor & 0x08 != 0 {
                return Err(FrameError::ReservedBit {
                    frame: number,
                    offset: start,
                });
            }
            self.take(header_len(descriptor) - 5, number, start, "its header")?;
            let header = parse_header(&self.pending);
            self.current = Some(header);
            return Ok(Some(header));
        }
    }

    /// Reads the blocks and checksum of the frame whose header `next_header` just read and
    /// returns the whole frame. Once the frame would exceed `limit` bytes it stops and returns
    /// `None`: what was read stays for [`Splitter::into_rest`].
    pub fn read_frame(&mut self, limit: usize) -> Result<Option<Frame>, FrameError> {
        let header = self
            .current
            .expect("read_frame follows a header from next_header");
        let number = self.frames;
        let start = self.offset - self.pending.len() as u64;
        let mut block = 0;
        loop {
            block += 1;
            self.take(BLOCK_HEADER_LEN, number, start, "a block header")?;
            let at = self.pending.len() - BLOCK_HEADER_LEN;
            let raw = u32::from_le_bytes([
                self.pending[at],
                self.pending[at + 1],
                self.pending[at + 2],
                0,
            ]);
            let last = raw & 1 != 0;
            let size = (raw >> 3) as usize;
            let stored = match (raw >> 1) & 3 {
                // Raw and compressed blocks store `size` bytes; an RLE block stores one byte,
                // repeated `size` times.
                0 | 2 => size,
                1 => 1,
                _ => {
                    return Err(FrameError::ReservedBlockType {
                        frame: number,
                        offset: start,
                        block,
                    });
                }
            };
            if size > BLOCK_MAX {
                return Err(FrameError::BlockTooLarge {
                    frame: number,
                    offset: start,
                    block,
                    size,
                });
            }
            let trailer = if last && header.checksum {
                CHECKSUM_LEN
            } else {
                0
            };
            if self.pending.len() + stored + trailer > limit {
                return Ok(None);
            }
            self.take(stored, number, start, "a block")?;
            if last {
                break;
            }
        }
        if header.checksum {
            self.take(CHECKSUM_LEN, number, start, "its checksum")?;
        }
        self.current = None;
        Ok(Some(Frame {
            number,
            offset: start,
            bytes: std::mem::take(&mut self.pending),
        }))
    }

    /// Reads the rest of the current frame into `buffer`, after what was read of it so far: a
    /// buffer with room for the whole frame, handed back from frame to frame, saves growing a
    /// fresh one for each.
    pub fn reuse(&mut self, mut buffer: Vec<u8>) {
        buffer.clear();
        buffer.extend_from_slice(&self.pending);
        self.pending = buffer;
    }

    /// The rest of the stream, starting with what was read of the current frame.
    pub fn into_rest(self) -> io::Chain<io::Cursor<Vec<u8>>, R> {
        io::Cursor::new(self.pending).chain(self.reader)
    }

    fn skip_skippable(&mut self, start: u64) -> Result<(), FrameError> {
        let number = self.frames + 1;
        self.take(4, number, start, "the length of a skippable frame")?;
        let len = u32::from_le_bytes(self.pending[4..8].try_into().expect("4 bytes"));
        let skipped = io::copy(
            &mut self.reader.by_ref().take(u64::from(len)),
            &mut io::sink(),
        )
        .map_err(|source| FrameError::Read {
            offset: self.offset,
            source,
        })?;
        self.offset += skipped;
        if skipped < u64::from(len) {
            return Err(self.truncated(number, start, "a skippable frame"));
        }
        Ok(())
    }

    /// Appends exactly `n` bytes to `pending`; the stream ending first is a truncated frame.
    fn take(
        &mut self,
        n: usize,
        frame: u64,
        start: u64,
        part: &'static str,
    ) -> Result<(), FrameError> {
        if self.read_up_to(n)? < n {
            return Err(self.truncated(frame, start, part));
        }
        Ok(())
    }

    /// Appends up to `n` bytes to `pending`, fewer only at the end of the stream.
    fn read_up_to(&mut self, n: usize) -> Result<usize, FrameError> {
        let before = self.pending.len();
        let read = loop {
            match self
                .reader
                .by_ref()
                .take(n as u64)
                .read_to_end(&mut self.pending)
            {
                Ok(read) => break read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.pending.truncate(before);
                }
                Err(source) => {
                    return Err(FrameError::Read {
                        offset: self.offset,
                        source,
                    });
                }
            }
        };
        self.offset += read as u64;
        Ok(read)
    }

    fn truncated(&self, frame: u64, offset: u64, part: &'static str) -> FrameError {
        FrameError::Truncated {
            frame,
            offset,
            part,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Content that compresses, different for each `seed`.
    fn content(seed: u32, len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| ((i / 7) ^ seed).wrapping_mul(2_654_435_761) as u8 % 16)
            .collect()
    }

    /// One frame with its content size in the header, as the save's frame writer makes them.
    fn sized_frame(seed: u32, len: usize, checksum: bool) -> Vec<u8> {
        let mut context = zstd::zstd_safe::CCtx::create();
        context
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(checksum))
            .unwrap();
        let data = content(seed, len);
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(len));
        context.compress2(&mut out, &data).unwrap();
        out
    }

    /// One frame written by a streaming encoder: no content size, as `zstd` writes from a pipe.
    fn streamed_frame(seed: u32, len: usize) -> Vec<u8> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder.write_all(&content(seed, len)).unwrap();
        encoder.finish().unwrap()
    }

    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut out = 0x184D_2A53u32.to_le_bytes().to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Every frame of `stream`, whole, with its header.
    fn split(stream: &[u8]) -> Result<Vec<(FrameHeader, Frame)>, FrameError> {
        let mut splitter = Splitter::new(stream);
        let mut frames = Vec::new();
        while let Some(header) = splitter.next_header()? {
            frames.push((header, splitter.read_frame(usize::MAX)?.expect("no limit")));
        }
        Ok(frames)
    }

    fn decode(frame: &[u8]) -> Vec<u8> {
        zstd::stream::decode_all(frame).unwrap()
    }

    #[test]
    fn splits_concatenated_frames_at_their_boundaries() {
        let parts = [
            sized_frame(1, 300_000, true),
            sized_frame(2, 1_000, false),
            sized_frame(3, 0, true),
            sized_frame(4, 200, true),
        ];
        let stream = parts.concat();
        let frames = split(&stream).unwrap();
        assert_eq!(frames.len(), 4);
        let mut offset = 0;
        for (i, ((_, frame), part)) in frames.iter().zip(&parts).enumerate() {
            assert_eq!(frame.number, i as u64 + 1);
            assert_eq!(frame.offset, offset);
            assert_eq!(&frame.bytes, part, "frame {} differs", frame.number);
            offset += part.len() as u64;
        }
        assert_eq!(frames[0].0.content_size, Some(300_000));
        assert_eq!(frames[1].0.content_size, Some(1_000));
        assert_eq!(frames[2].0.content_size, Some(0));
        assert_eq!(frames[3].0.content_size, Some(200));
        assert_eq!(decode(&frames[1].1.bytes), content(2, 1_000));
    }

    #[test]
    fn a_single_streamed_frame_has_no_content_size() {
        let frame = streamed_frame(5, 700_000);
        let frames = split(&frame).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0.content_size, None);
        assert!(frames[0].0.checksum);
        assert_eq!(frames[0].1.bytes, frame);
        assert_eq!(decode(&frames[0].1.bytes), content(5, 700_000));
    }

    #[test]
    fn the_content_checksum_flag_adds_four_bytes_to_the_frame() {
        let with = sized_frame(6, 50_000, true);
        let without = sized_frame(6, 50_000, false);
        assert_eq!(with.len(), without.len() + 4);
        let frames = split(&[with.clone(), without.clone()].concat()).unwrap();
        assert!(frames[0].0.checksum);
        assert!(!frames[1].0.checksum);
        assert_eq!(frames[0].1.bytes, with);
        assert_eq!(frames[1].1.bytes, without);
        // Cut inside the checksum: the frame is truncated there.
        let error = split(&with[..with.len() - 2]).unwrap_err();
        assert!(
            error.to_string() == "zstd frame 1 (at byte 0) is cut off in its checksum",
            "{error}"
        );
    }

    #[test]
    fn skippable_frames_are_stepped_over() {
        let first = sized_frame(7, 10_000, true);
        let second = streamed_frame(8, 10_000);
        let stream = [
            skippable(b"seek table"),
            first.clone(),
            skippable(&[]),
            second.clone(),
            skippable(&[0; 100]),
        ]
        .concat();
        let frames = split(&stream).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].1.bytes, first);
        assert_eq!(frames[0].1.offset, 18);
        assert_eq!(frames[1].1.bytes, second);
        // A skippable frame cut short is truncated, too.
        let error = split(&skippable(&[1; 10])[..12]).unwrap_err();
        assert!(
            error.to_string().contains("cut off in a skippable frame"),
            "{error}"
        );
    }

    #[test]
    fn a_truncated_header_is_named() {
        let frame = sized_frame(9, 100_000, true);
        let second = frame.len() as u64;
        for cut in [2, 4, 5] {
            let stream = [&frame[..], &frame[..cut]].concat();
            let error = split(&stream).unwrap_err();
            let part = if cut < 4 {
                "its magic number"
            } else {
                "its header"
            };
            assert_eq!(
                error.to_string(),
                format!("zstd frame 2 (at byte {second}) is cut off in {part}")
            );
            assert_eq!(io::Error::from(error).kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    fn a_truncated_block_is_named() {
        let frame = sized_frame(10, 400_000, false);
        // Inside the first block's content, and inside a later block header.
        let error = split(&frame[..100]).unwrap_err();
        assert!(
            error.to_string().ends_with("is cut off in a block"),
            "{error}"
        );
        let header = header_len(frame[4]);
        let error = split(&frame[..header + 1]).unwrap_err();
        assert!(
            error.to_string().ends_with("is cut off in a block header"),
            "{error}"
        );
    }

    #[test]
    fn reserved_bits_and_impossible_blocks_are_refused() {
        let frame = sized_frame(11, 1_000, false);
        let header = header_len(frame[4]);
        let mut reserved_bit = frame.clone();
        reserved_bit[4] |= 0x08;
        let error = split(&reserved_bit).unwrap_err();
        assert!(error.to_string().contains("reserved bit"), "{error}");

        let mut reserved_type = frame.clone();
        reserved_type[header] |= 0b110;
        let error = split(&reserved_type).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("block 1 has the reserved block type"),
            "{error}"
        );

        let mut too_large = frame.clone();
        too_large[header + 2] = 0xff;
        let error = split(&too_large).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("more than the 131072 a block may hold"),
            "{error}"
        );
    }

    #[test]
    fn garbage_after_a_frame_is_not_a_frame() {
        let frame = sized_frame(12, 1_000, true);
        let stream = [&frame[..], b"PK\x03\x04 and more"].concat();
        let error = split(&stream).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the bytes at offset {}, after zstd frame 1, are not a zstd frame: they start with [50, 4b, 03, 04]",
                frame.len()
            )
        );
    }

    #[test]
    fn a_frame_over_the_limit_hands_back_the_rest_of_the_stream() {
        let first = sized_frame(13, 600_000, true);
        let second = sized_frame(14, 1_000, true);
        let stream = [first.clone(), second.clone()].concat();
        let mut splitter = Splitter::new(&stream[..]);
        splitter.next_header().unwrap().unwrap();
        splitter.reuse(vec![7; 100]);
        assert!(splitter.read_frame(first.len() - 1).unwrap().is_none());
        let mut rest = Vec::new();
        splitter.into_rest().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, stream, "nothing lost");
    }
}
