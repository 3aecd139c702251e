//! Compression codecs: which one a stream uses, and how to write each.
//!
//! Readers detect the codec from the magic bytes rather than trusting a file name or a store's
//! metadata, so an entry saved by actions/cache with gzip (no `zstd` on that runner) still
//! restores. zstd is decoded with `window_log_max(31)`: archives written with `--long=30` by
//! older toolkits need a 1 GiB window, which the library refuses by default.
//!
//! zstd is written as independent frames (`frame_writer`), which any zstd decoder reads as one
//! stream and a restore decodes in parallel (`decode`); gzip as one member, as `tar -z` does.

use std::io::{self, BufRead, Read, Write};

use super::frame_writer::FrameWriter;
use super::frames::ZSTD_MAGIC;
use crate::key::Compression;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The codec a stream starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    Zstd,
    Gzip,
    /// No compression: a bare tar stream (`ustar` magic at offset 257).
    Tar,
}

/// Looks at the first bytes of a stream without consuming them.
pub fn detect(reader: &mut impl BufRead) -> io::Result<Detected> {
    let head = fill_at_least(reader, 512)?;
    if head.starts_with(&ZSTD_MAGIC) {
        Ok(Detected::Zstd)
    } else if head.starts_with(&GZIP_MAGIC) {
        Ok(Detected::Gzip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok(Detected::Tar)
    } else if head.is_empty() {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the archive is empty",
        ))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the archive starts with bytes {:02x?}, which is neither zstd, gzip nor tar",
                &head[..head.len().min(4)]
            ),
        ))
    }
}

/// Peeks up to `want` bytes; a `BufReader` may hand out fewer per `fill_buf`, so this returns
/// what one fill gives, which with our 1 MiB buffers is always enough.
fn fill_at_least(reader: &mut impl BufRead, want: usize) -> io::Result<&[u8]> {
    let buf = reader.fill_buf()?;
    Ok(&buf[..buf.len().min(want)])
}

/// A decompressing reader for whatever codec the stream uses, decoding on the calling thread.
pub fn decoder<'a, R: BufRead + Send + 'a>(mut reader: R) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match detect(&mut reader)? {
        Detected::Zstd => Box::new(zstd_decoder(reader)?),
        Detected::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Detected::Tar => Box::new(reader),
    })
}

/// A streaming zstd decoder: every frame in turn, skippable frames skipped, any window size.
pub fn zstd_decoder<'a, R: BufRead + 'a>(
    reader: R,
) -> io::Result<zstd::stream::read::Decoder<'a, R>> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(reader)?;
    decoder.window_log_max(31)?;
    Ok(decoder)
}

/// A compressing writer; `finish` writes the codec's trailer and hands back the inner writer.
pub enum Encoder<W: Write> {
    Zstd(FrameWriter<W>),
    Gzip(flate2::write::GzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    /// An encoder at `level` (see [`super::level`] for the ranges and defaults).
    pub fn new(inner: W, compression: Compression, level: i32) -> io::Result<Self> {
        Ok(match compression {
            Compression::Zstd => Encoder::Zstd(FrameWriter::new(inner, level, zstd_workers())),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
        })
    }

    /// Changes the zstd level from the next frame on. gzip keeps its level.
    pub fn set_level(&mut self, level: i32) {
        if let Encoder::Zstd(e) = self {
            e.set_level(level);
        }
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
        }
    }
}

/// One zstd worker per core, as `zstdmt` (`zstd -T0`) uses, and at most 8: each holds a frame's
/// input and output (up to 8 MiB), and eight already outrun any disk or network a runner has
/// (about 1 GB/s of decoded tar each).
pub(crate) fn zstd_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(compression: Compression) {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut encoder = Encoder::new(Vec::new(), compression, 3).unwrap();
        encoder.write_all(&data).unwrap();
        let packed = encoder.finish().unwrap();
        let mut out = Vec::new();
        decoder(io::BufReader::new(&packed[..]))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn zstd_and_gzip_round_trip() {
        round_trip(Compression::Zstd);
        round_trip(Compression::Gzip);
    }

    #[test]
    fn a_zstd_level_changed_midway_decodes_as_one_stream() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 7919).to_le_bytes())
            .collect();
        let mut encoder = Encoder::new(Vec::new(), Compression::Zstd, 3).unwrap();
        let (first, rest) = data.split_at(data.len() / 3);
        encoder.write_all(first).unwrap();
        encoder.set_level(1);
        encoder.write_all(rest).unwrap();
        let packed = encoder.finish().unwrap();
        let mut out = Vec::new();
        decoder(io::BufReader::new(&packed[..]))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == data);
    }

    #[test]
    fn unknown_magic_is_named() {
        let err = detect(&mut io::BufReader::new(&b"PK\x03\x04 zip file"[..])).unwrap_err();
        assert!(
            err.to_string().contains("neither zstd, gzip nor tar"),
            "{err}"
        );
    }
}
