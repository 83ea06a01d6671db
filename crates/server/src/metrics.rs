//! Prometheus metrics (owned by the serve helper).

/// Handle to the process-wide metrics recorder.
#[derive(Clone, Default)]
pub struct Metrics {}

impl Metrics {
    pub fn global() -> Self {
        Self {}
    }
}
