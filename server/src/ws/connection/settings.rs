//! What every connection is configured with.

use std::sync::Arc;
use std::time::Duration;

use crate::limits::PublishLimits;
use crate::observe::metrics::Metrics;

/// Per-connection limits and timers.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub max_message_bytes: usize,
    pub rate_limit: u32,
    pub rate_limit_burst: u32,
    /// Longest a single write (or batch of writes) may block.
    pub write_timeout: Duration,
    /// Messages per user and per client address, across their sockets.
    pub publish_limits: Arc<PublishLimits>,
    /// Where refused frames are counted.
    pub metrics: Arc<Metrics>,
}
