//! How hard a save compresses, and the governor that picks the zstd level while it runs.
//!
//! A save is a pipeline: the compressor feeds the upload. Whichever is slower sets the pace,
//! and time spent making the faster one wait is wasted. When the network is slow, a harder
//! level costs nothing (the upload is waiting anyway) and every byte saved is a byte less to
//! send; when the network is fast (a local store, a runner next to the cache), the compressor
//! is the bottleneck and a faster level finishes sooner. So by default (`auto`) the governor
//! watches the upload's backlog (blocks handed over but not yet sent) and steps the
//! zstd level between [`AUTO_MIN`] and [`AUTO_MAX`]: a backlog that builds up means the network
//! is the slower side, so compress harder; an upload that keeps up means the compressor is, so
//! compress faster. It starts at 3, what actions/cache writes. While an upload only buffers
//! (an archive small enough for one Put Blob is compressed before anything is sent) nothing
//! waits on the network, so that counts as keeping up.
//!
//! The level is not part of the entry version, and a new level takes effect at the next frame
//! boundary (the stream is written as independent frames, see `frame_writer`), where every
//! decoder expects a new frame anyway: the choice never affects who can restore the entry.

use std::fmt;

use crate::key::Compression;
use crate::pace::Pace;

/// The zstd level `auto` starts at: what `zstdmt`, and so actions/cache, uses.
pub const AUTO_START: i32 = 3;
/// The fastest level `auto` steps down to.
pub const AUTO_MIN: i32 = 1;
/// The hardest level `auto` steps up to: beyond 3, each level buys a few percent of size for
/// much more time, which rarely pays on CI.
pub const AUTO_MAX: i32 = 3;
/// gzip's level when none is given: GNU gzip's default, what `tar -z` writes.
pub const GZIP_DEFAULT: u32 = 6;
/// How much input the governor lets through between two decisions: short enough to adapt
/// several times within a few hundred megabytes (`KEEP` smooths the readings).
pub const DECIDE_EVERY: u64 = 16 << 20;
/// The upload's running backlog, as a share of its slots, at or below which the compressor is
/// the slower side: go faster. One block of four in flight is 0.25.
const BACKLOG_GO_FASTER: f64 = 0.3;
/// The running backlog share at or above which the network is the slower side: compress harder.
/// Nearly every slot busy, so the compressor is about to wait: a backlog that comes and goes
/// (a block or two) only means both sides run at about the same speed.
const BACKLOG_GO_HARDER: f64 = 0.9;
/// How much of the running backlog each decision keeps: the backlog moves a block (tens of
/// megabytes) at a time, so one reading alone is coarse; the running value covers about the
/// last eight.
const KEEP: f64 = 0.875;

/// The `--compression-level` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// zstd: adapt between [`AUTO_MIN`] and [`AUTO_MAX`]; gzip: level 6.
    Auto,
    Fixed(i32),
}

impl Level {
    /// Checks a fixed level against the codec's range.
    pub fn check(self, compression: Compression) -> Result<(), String> {
        let Level::Fixed(level) = self else {
            return Ok(());
        };
        let (low, high) = match compression {
            Compression::Zstd => (1, 19),
            Compression::Gzip => (1, 9),
        };
        if (low..=high).contains(&level) {
            Ok(())
        } else {
            Err(format!(
                "compression level {level} is out of range for {compression}: use {low} to {high}, or `auto`"
            ))
        }
    }

    /// The level the stream starts at.
    pub fn initial(self, compression: Compression) -> i32 {
        match (self, compression) {
            (Level::Fixed(level), _) => level,
            (Level::Auto, Compression::Zstd) => AUTO_START,
            (Level::Auto, Compression::Gzip) => GZIP_DEFAULT as i32,
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("auto") {
            return Ok(Level::Auto);
        }
        text.trim().parse().map(Level::Fixed).map_err(|_| {
            format!("`{text}` is not a compression level: give a number such as 3, or `auto`")
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Auto => f.write_str("auto"),
            Level::Fixed(level) => write!(f, "{level}"),
        }
    }
}

/// Picks the zstd level as a pack runs; see the module doc.
pub struct Governor {
    level: i32,
    adaptive: bool,
    pace: Pace,
    next_decision: u64,
    /// The decayed sum of backlog readings and of their weights: their ratio is the running
    /// backlog.
    backlog_sum: f64,
    weight_sum: f64,
    /// Input bytes compressed at each level, for the report.
    bytes_at: Vec<(i32, u64)>,
    last_input: u64,
}

impl Governor {
    pub fn new(level: Level, compression: Compression, pace: Pace) -> Self {
        Self {
            level: level.initial(compression),
            adaptive: level == Level::Auto && compression == Compression::Zstd,
            pace,
            next_decision: DECIDE_EVERY,
            backlog_sum: 0.0,
            weight_sum: 0.0,
            bytes_at: Vec::new(),
            last_input: 0,
        }
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Told the total input so far; returns a new level when it is time to change.
    pub fn observe(&mut self, input: u64) -> Option<i32> {
        self.account(input);
        if !self.adaptive || input < self.next_decision {
            return None;
        }
        self.next_decision = input + DECIDE_EVERY;
        let backlog = self.pace.backlog();
        self.backlog_sum = self.backlog_sum * KEEP + backlog;
        self.weight_sum = self.weight_sum * KEEP + 1.0;
        let wanted = step(self.level, self.backlog_sum / self.weight_sum);
        (wanted != self.level).then(|| {
            self.level = wanted;
            wanted
        })
    }

    fn account(&mut self, input: u64) {
        let delta = input.saturating_sub(self.last_input);
        self.last_input = input;
        match self.bytes_at.iter_mut().find(|(l, _)| *l == self.level) {
            Some((_, bytes)) => *bytes += delta,
            None => self.bytes_at.push((self.level, delta)),
        }
    }

    /// Input bytes per level, in the order the levels were first used, without empty ones.
    pub fn report(&self) -> Vec<(i32, u64)> {
        self.bytes_at
            .iter()
            .copied()
            .filter(|(_, bytes)| *bytes > 0)
            .collect()
    }
}

/// The next level, from the upload's running backlog share.
fn step(level: i32, backlog: f64) -> i32 {
    if backlog <= BACKLOG_GO_FASTER {
        (level - 1).max(AUTO_MIN)
    } else if backlog >= BACKLOG_GO_HARDER {
        (level + 1).min(AUTO_MAX)
    } else {
        level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::SinkGauge;

    #[test]
    fn parses_auto_and_numbers_and_checks_ranges() {
        assert_eq!("auto".parse::<Level>(), Ok(Level::Auto));
        assert_eq!("7".parse::<Level>(), Ok(Level::Fixed(7)));
        assert!("fast".parse::<Level>().unwrap_err().contains("`fast`"));
        assert!(Level::Fixed(19).check(Compression::Zstd).is_ok());
        let error = Level::Fixed(12).check(Compression::Gzip).unwrap_err();
        assert!(error.contains("1 to 9"), "{error}");
        assert!(Level::Fixed(0).check(Compression::Zstd).is_err());
        assert_eq!(Level::Auto.initial(Compression::Gzip), 6);
        assert_eq!(Level::Auto.initial(Compression::Zstd), 3);
    }

    #[test]
    fn steps_by_the_upload_backlog() {
        // Nothing waiting to be sent: the compressor is the slower side.
        assert_eq!(step(3, 0.0), 2);
        assert_eq!(step(1, 0.25), 1);
        // Every slot busy: the network is the slower side.
        assert_eq!(step(2, 1.0), 3);
        assert_eq!(step(3, 1.25), 3);
        // In between: stay.
        assert_eq!(step(2, 0.5), 2);
    }

    #[test]
    fn a_local_sink_steps_down_to_the_fastest_level() {
        let mut governor = Governor::new(Level::Auto, Compression::Zstd, Pace::Local);
        assert_eq!(governor.observe(DECIDE_EVERY - 1), None);
        assert_eq!(governor.observe(DECIDE_EVERY), Some(2));
        assert_eq!(governor.observe(2 * DECIDE_EVERY), Some(1));
        assert_eq!(governor.observe(3 * DECIDE_EVERY), None);
        assert_eq!(
            governor.report(),
            vec![(3, DECIDE_EVERY), (2, DECIDE_EVERY), (1, DECIDE_EVERY)]
        );
    }

    #[test]
    fn a_network_sink_follows_its_backlog() {
        let gauge = SinkGauge::default();
        let mut governor =
            Governor::new(Level::Auto, Compression::Zstd, Pace::Network(gauge.clone()));
        // Buffering for one Put Blob: nothing waits on the network, faster.
        assert_eq!(governor.observe(DECIDE_EVERY), Some(2));
        gauge.start_streaming(4);
        // One block of four in flight: the upload keeps up, faster still.
        gauge.queued();
        assert_eq!(governor.observe(2 * DECIDE_EVERY), Some(1));
        // The backlog builds up to every slot: once the running value follows, harder again.
        for _ in 0..4 {
            gauge.queued();
        }
        let climbed = (3..30).any(|i| governor.observe(i * DECIDE_EVERY) == Some(3));
        assert!(climbed, "stayed at level {}", governor.level());
        for _ in 0..5 {
            gauge.sent();
        }
        gauge.sent(); // one too many is ignored
        let fell = (30..60).any(|i| governor.observe(i * DECIDE_EVERY) == Some(1));
        assert!(fell, "stayed at level {}", governor.level());
    }

    #[test]
    fn fixed_levels_and_gzip_never_change() {
        let mut fixed = Governor::new(Level::Fixed(9), Compression::Zstd, Pace::Local);
        let mut gzip = Governor::new(Level::Auto, Compression::Gzip, Pace::Local);
        for i in 1..5 {
            assert_eq!(fixed.observe(i * DECIDE_EVERY), None);
            assert_eq!(gzip.observe(i * DECIDE_EVERY), None);
        }
        assert_eq!(fixed.level(), 9);
        assert_eq!(gzip.level(), 6);
    }
}
