//! Dataflow operators of SecureWatch on timely / differential dataflow; no I/O, no async.
//!
//! This crate holds all timely/differential code: the [`engine`] (worker threads, bounded
//! inboxes, the draining sink) and the operators it runs. The binary feeds the engine from
//! tokio and writes what it drains to the stores; the operators are pure functions of their
//! input collections, tested deterministically with `timely::execute_directly`.
//!
//! May depend on: `securewatch-schemas`, timely, differential-dataflow, small pure crates.
//! Must not depend on: `securewatch-connectors`, tokio, sockets, files or databases.
//!
//! # Time model
//!
//! * **Logical time is the ingest epoch**: milliseconds since the Unix epoch at which the event
//!   was ingested, rounded to the ticker's tick ([`Epoch`]). One ticker seals epochs on every
//!   worker, so an epoch is complete once the frontier passes it.
//! * **Event time travels as data** ([`RollupInput::event_time_ms`]). Rollups bucket events by
//!   event time into one-minute buckets ([`BUCKET_MS`](securewatch_schemas::BUCKET_MS)), whatever order they arrive in.
//! * **Lateness** is judged per bucket against the epoch, not against the largest event time
//!   seen: the watermark at epoch `t` is `t - L`, and a bucket `[b, b + 1 min)` is open while
//!   `b + 1 min > t - L`, i.e. until its close epoch `b + 1 min + L`
//!   ([`TimeModel::close_epoch`]; `L` defaults to five minutes). Updates ingested while their
//!   bucket is open correct it exactly (the output carries differential diffs). Updates
//!   ingested at or after the close epoch are not merged; they come out on [`Rollups::late`] at
//!   their ingest epoch, for the caller to store and count. The rule uses nothing but an
//!   update's own event time and epoch, so it needs no coordination between workers, and a
//!   clock-skewed event far in the future cannot make everything else late. Once the frontier
//!   passes a bucket's close epoch, its rows are final.
//! * **Retention**: each accepted update is retracted again at its bucket's expiry epoch
//!   `b + 1 min + H` ([`TimeModel::expiry_epoch`], `H >= L`, by default `H = L`). The
//!   bucket's counts then cancel to zero and every arrangement on the path compacts them away:
//!   the operators here hold their traces internally and advance compaction to their input
//!   frontier, so nothing pins old times and memory is bounded by the buckets of the last
//!   `1 min + H` of epochs. The expiry retractions are not changes of the rollups and are kept
//!   off [`Rollups::rows`]; [`Rollups::resident`] shows them.
//!
//! # Rollups
//!
//! [`build_rollups`] computes, per bucket: event counts by (source kind, host, severity), event
//! counts by category, and the number of distinct hosts, as one collection of [`RollupRow`](securewatch_schemas::RollupRow)s.
//! A writer turns the updates of each completed epoch into idempotent upserts with
//! [`changes`](securewatch_schemas::changes). Top hosts by volume over an arbitrary bucket range is a query over the
//! (kind, host, severity) rows ([`top_hosts`](securewatch_schemas::top_hosts), or the same query in SQL over the stored rows):
//! the dashboard's range is chosen per request, so a dataflow operator would have to fix it in
//! advance, while the per-bucket rows already hold everything the query needs.
//!
//! # Enrichment
//!
//! [`build_enrichment`] tags each distinct (bucket, [`LookupKey`](securewatch_schemas::LookupKey)) of the resident buckets with
//! the asset inventory and the network lists, reference collections that change at run time;
//! it shares the rollups' windowing (see the `enrich` module documentation).
//!
//! # Correlations
//!
//! [`build_correlations`] evaluates Sigma correlation rules over event time with the same
//! lateness and retention model (see the [`correlate`] module documentation for the window
//! semantics, suppression and the close and expiry epochs); [`rule_alerts`] maps plain rule
//! matches to alerts. [`correlate_batch`] runs them over a finished batch of matches (rule
//! tests, conformance), with every match in time.

#![warn(missing_docs)]

pub mod backtest;
mod batch;
pub mod correlate;
mod enrich;
pub mod engine;
mod input;
mod rollup;
pub mod telemetry;
mod time;
mod window;

pub use batch::{correlate_batch, correlate_batch_report, BatchAlert, BatchError, BatchReport};
pub use correlate::{build_correlations, rule_alerts, CorrelationConfig, Correlations};
pub use enrich::{build_enrichment, build_enrichment_with_geo, enrich_inputs, EnrichInput, Enrichment};
pub use input::{rollup_input, RollupInput};
pub use rollup::{build_rollups, Rollups};
pub use time::{now_ms, Epoch, EpochClock, TimeModel, TimeModelError, DEFAULT_LATENESS_MS};
