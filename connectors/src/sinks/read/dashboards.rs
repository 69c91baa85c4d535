//! Dashboard questions over the rollups: time series and top-N, and their answers.

use std::collections::BTreeMap;

/// Milliseconds in a minute and in an hour.
pub const MINUTE_MS: u64 = 60_000;
/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 3_600_000;

/// Width of the points of a time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BucketWidth {
    /// One point per one-minute rollup bucket.
    Minute,
    /// One point per hour: the sum of the hour's minute buckets.
    Hour,
}

impl BucketWidth {
    /// The width in milliseconds.
    pub fn millis(self) -> u64 {
        match self {
            BucketWidth::Minute => MINUTE_MS,
            BucketWidth::Hour => HOUR_MS,
        }
    }

    /// The API spelling: `1m` or `1h`.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketWidth::Minute => "1m",
            BucketWidth::Hour => "1h",
        }
    }

    /// Inverse of [`BucketWidth::as_str`].
    pub fn parse(text: &str) -> Option<BucketWidth> {
        [BucketWidth::Minute, BucketWidth::Hour].into_iter().find(|width| width.as_str() == text)
    }
}

/// What a time series is split by; each names one key part of the series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeriesBy {
    /// One series per source kind; key part `source_kind`.
    Source,
    /// One series per host; key part `host` (`None` for events without a host).
    Host,
    /// One series per severity, by name; key part `severity`.
    Severity,
    /// One series per category; key part `category` (`None` for events without a category).
    Category,
}

impl SeriesBy {
    /// The API spelling: `source`, `host`, `severity` or `category`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesBy::Source => "source",
            SeriesBy::Host => "host",
            SeriesBy::Severity => "severity",
            SeriesBy::Category => "category",
        }
    }

    /// Inverse of [`SeriesBy::as_str`].
    pub fn parse(text: &str) -> Option<SeriesBy> {
        [SeriesBy::Source, SeriesBy::Host, SeriesBy::Severity, SeriesBy::Category]
            .into_iter()
            .find(|by| by.as_str() == text)
    }

    /// The name of the key part in [`Series::key`].
    pub fn key_name(self) -> &'static str {
        match self {
            SeriesBy::Source => "source_kind",
            SeriesBy::Host => "host",
            SeriesBy::Severity => "severity",
            SeriesBy::Category => "category",
        }
    }
}

/// A time-series query over the rollups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeseriesQuery {
    /// Minute buckets starting at or after this time count (ms since the Unix epoch).
    pub from_ms: u64,
    /// Minute buckets starting before this time count (ms since the Unix epoch).
    pub to_ms: u64,
    /// Width of the points.
    pub bucket: BucketWidth,
    /// What the series are split by.
    pub by: SeriesBy,
}

/// One time series: its key and its non-zero points, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// The key parts, e.g. `{"host": Some("web-1")}`; `None` where the events had no value.
    pub key: BTreeMap<String, Option<String>>,
    /// Points in time order.
    pub points: Vec<Point>,
}

/// One point of a [`Series`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// Start of the point's bucket (ms since the Unix epoch), a multiple of its width.
    pub bucket_start_ms: u64,
    /// Events in the bucket.
    pub count: i64,
}

/// What a top-N query ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopField {
    /// Hosts by event count (events without a host are left out).
    Host,
    /// Categories by event count (events without a category are left out).
    Category,
    /// Severities by event count, by name.
    Severity,
    /// Source kinds by event count.
    Source,
}

impl TopField {
    /// The API spelling: `host`, `category`, `severity` or `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            TopField::Host => "host",
            TopField::Category => "category",
            TopField::Severity => "severity",
            TopField::Source => "source",
        }
    }

    /// Inverse of [`TopField::as_str`].
    pub fn parse(text: &str) -> Option<TopField> {
        [TopField::Host, TopField::Category, TopField::Severity, TopField::Source]
            .into_iter()
            .find(|field| field.as_str() == text)
    }
}

/// A top-N query over the rollups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopQuery {
    /// What is ranked.
    pub field: TopField,
    /// Minute buckets starting at or after this time count (ms since the Unix epoch).
    pub from_ms: u64,
    /// Minute buckets starting before this time count (ms since the Unix epoch).
    pub to_ms: u64,
    /// Most entries returned.
    pub n: usize,
}

/// One entry of a top-N answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopEntry {
    /// The host, category, severity name or source kind.
    pub value: String,
    /// Events with that value in the range.
    pub count: i64,
}
