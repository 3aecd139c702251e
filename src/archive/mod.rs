//! Archives in actions/cache's format: pax tar, compressed with zstd (no long mode; the level
//! adapts to the upload, see `level`) or gzip, member names relative to the workspace.
//!
//! `pack` walks the paths to save and streams a compressed tar into any writer; `unpack` reads
//! one from any reader into staging directories and checks every member before anything is
//! swapped into place. Neither knows where the bytes come from or go: stores do that.
//!
//! zstd is written as independent frames of 4 MiB of tar each (`frame_writer`), one ordinary
//! zstd stream to every other reader; a restore cuts it at frame boundaries (`frames`) and
//! decodes the frames on every core (`decode`).

pub mod codec;
mod decode;
mod frame_writer;
mod frames;
pub mod level;
pub mod pack;
pub mod unpack;

/// Files up to this size are read whole and handed between threads; larger ones are streamed.
/// Together with the channel depths it bounds memory: at most a few dozen of these in flight.
pub(crate) const SMALL_FILE_LIMIT: u64 = 256 * 1024;
