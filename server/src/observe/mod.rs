//! What an operator sees: log lines (`tracing`, text or JSON) and Prometheus metrics.

pub mod logs;
pub mod metrics;
