//! The upload backlog gauge: how a sink tells whoever feeds it whether it keeps up.
//!
//! A store's upload counts the blocks it holds but has not sent yet; the archive's level
//! governor (`archive::level`) reads that count to decide whether the network or the
//! compressor is the slower side. This module sits between the two so that neither knows the
//! other: the store says how it paces, the archive reads it, and `store/` never imports
//! `archive/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a network sink reports: how many of its upload slots hold data that is not sent yet.
/// Shared between the sink (which counts) and the reader (the level governor).
#[derive(Clone, Debug, Default)]
pub struct SinkGauge(Arc<GaugeInner>);

#[derive(Debug, Default)]
struct GaugeInner {
    /// Set once the sink sends as it receives; before that it only buffers, nothing waits on
    /// the network, and the backlog is nil.
    streaming: AtomicBool,
    slots: AtomicU64,
    waiting: AtomicU64,
}

impl SinkGauge {
    /// The sink now sends as it receives, with `slots` units (blocks) in flight at most.
    pub fn start_streaming(&self, slots: u64) {
        self.0.slots.store(slots.max(1), Ordering::Relaxed);
        self.0.streaming.store(true, Ordering::Relaxed);
    }

    /// A unit was handed to the sink.
    pub fn queued(&self) {
        self.0.waiting.fetch_add(1, Ordering::Relaxed);
    }

    /// A unit was sent (or given up on).
    pub fn sent(&self) {
        let _ = self
            .0
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// The backlog as a share of the slots: 0 while the sink only buffers.
    pub fn backlog(&self) -> f64 {
        if !self.0.streaming.load(Ordering::Relaxed) {
            return 0.0;
        }
        self.0.waiting.load(Ordering::Relaxed) as f64 / self.0.slots.load(Ordering::Relaxed) as f64
    }
}

/// How a sink paces whatever writes into it.
#[derive(Clone, Debug)]
pub enum Pace {
    /// A local file: it takes bytes as fast as they come, so the writer is always the slower
    /// side.
    Local,
    /// A network upload that reports its backlog.
    Network(SinkGauge),
}

impl Pace {
    /// The sink's backlog as a share of its slots; a local sink never has one.
    pub fn backlog(&self) -> f64 {
        match self {
            Pace::Local => 0.0,
            Pace::Network(gauge) => gauge.backlog(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_counts_only_while_streaming() {
        let gauge = SinkGauge::default();
        gauge.queued();
        assert_eq!(
            Pace::Network(gauge.clone()).backlog(),
            0.0,
            "only buffering"
        );
        gauge.start_streaming(4);
        assert_eq!(gauge.backlog(), 0.25);
        gauge.sent();
        gauge.sent(); // one too many is ignored
        assert_eq!(gauge.backlog(), 0.0);
        assert_eq!(Pace::Local.backlog(), 0.0);
    }
}
