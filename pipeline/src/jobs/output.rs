//! Where a running job puts its rows and progress: the rows file (flushed at least every
//! 250 ms, so readers see rows while it runs), the preview, the counters and the row cap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use securewatch_connectors::sinks::read::search::SearchSink;
use serde_json::Value as Json;

use super::results::RowsWriter;
use super::{Job, JobLimits};

/// How often rows written become visible and the status is published while rows stream.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// A running job's output.
pub struct JobOutput {
    job: Arc<Job>,
    writer: RowsWriter,
    row_cap: u64,
    byte_cap: u64,
    preview_rows: usize,
    rows: u64,
    bytes: u64,
    last_publish: Instant,
    /// The first write error; the job fails with it.
    failure: Option<std::io::Error>,
}

impl JobOutput {
    pub(super) fn new(job: Arc<Job>, limits: &JobLimits) -> std::io::Result<JobOutput> {
        let writer = RowsWriter::create(&job.folder)?;
        Ok(JobOutput {
            job,
            writer,
            row_cap: limits.row_cap,
            byte_cap: limits.byte_cap,
            preview_rows: limits.preview_rows,
            rows: 0,
            bytes: 0,
            last_publish: Instant::now(),
            failure: None,
        })
    }

    /// Makes the rows written so far visible and publishes the counters.
    fn publish(&mut self) {
        match self.writer.flush() {
            Ok(visible) => *self.job.visible.lock().expect("job results") = visible,
            Err(error) => {
                self.failure.get_or_insert(error);
            }
        }
        let rows = self.rows;
        self.job.update(|status| status.rows_matched = rows);
        self.last_publish = Instant::now();
    }

    /// Whether the job was asked to stop (kinds that [`super::JobKind::ends_on_cancel`]).
    pub fn cancelled(&self) -> bool {
        *self.job.cancel.borrow()
    }

    /// Publishes a backtest's progress and the share of its range read.
    pub fn backtest_progress(&mut self, progress: super::record::BacktestProgress, share: f64) {
        let scanned = progress.events_read;
        self.job.update(|status| {
            status.progress = share.clamp(0.0, 1.0);
            status.rows_scanned = Some(scanned);
            status.backtest = Some(progress);
        });
    }

    /// Flushes the rest; the first write error if any happened.
    pub(super) fn finish(&mut self) -> std::io::Result<()> {
        self.publish();
        match self.failure.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl SearchSink for JobOutput {
    fn row(&mut self, row: Vec<Json>) -> bool {
        if self.failure.is_some() {
            return false;
        }
        if self.rows >= self.row_cap || self.bytes >= self.byte_cap {
            self.job.update(|status| status.truncated = true);
            return false;
        }
        match self.writer.append(&row) {
            Ok(size) => {
                self.rows += 1;
                self.bytes += size;
            }
            Err(error) => {
                self.failure = Some(error);
                return false;
            }
        }
        {
            let mut preview = self.job.preview.lock().expect("job preview");
            if preview.len() < self.preview_rows {
                preview.push(row);
            }
        }
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish();
        }
        true
    }

    fn progress(&mut self, scanned: f64) {
        self.job.update(|status| status.progress = scanned.clamp(0.0, 1.0));
        self.publish();
    }

    fn wants_scanned(&self) -> bool {
        true
    }

    fn scanned(&mut self, rows: u64) {
        self.job.update(|status| status.rows_scanned = Some(rows));
    }
}
