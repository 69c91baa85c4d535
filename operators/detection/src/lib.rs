//! Sigma detection for SecureWatch: rule loading, processing pipelines, log source routing and
//! single-event matching, on top of `rsigma-parser` / `rsigma-eval`.
//!
//! May depend on: `securewatch-schemas` and the Sigma crates. Must not depend on: connectors,
//! timely/differential (the dataflow crate runs these matchers), sockets or databases. It reads
//! rule files, the only I/O an operator crate does, because loading a rule set is its job.
//!
//! # Pieces
//!
//! - [`RuleSet::load`] reads a rules directory (recursively, `.yml` / `.yaml`, multi-document
//!   files) into detection rules, filters and correlation rules. Every document that cannot be
//!   used becomes a [`Rejection`] (file, rule id, title, reason); nothing is dropped silently.
//!   Correlations are checked to reference loaded rules (chains resolve; cycles and dangling
//!   references are rejected). A document lacking only its `title` loads under a stand-in
//!   title with a [`LoadWarning`].
//! - [`CompiledCorrelations::compile`] prepares the correlations for evaluation over event
//!   time (see the [`correlation`] module for the window semantics); [`match_of`] derives the
//!   [`Match`] record the correlation dataflow carries. The dataflow itself is in
//!   `securewatch-dataflow` (`correlate`).
//! - [`Pipelines`] are Sigma processing pipelines in pySigma's YAML format, applied to rules
//!   by rsigma-eval before compilation. Built-ins (YAML under `pipelines/`): `wazuh`,
//!   `syslog`, `hec` (one per SecureWatch source) and `evtx_json` (evtx_dump-style records).
//! - [`Detector::compile`] applies pipelines and filters and compiles each rule with
//!   rsigma-eval (all its modifiers and the full condition grammar). Whatever cannot be
//!   compiled, including an `|expand` placeholder no pipeline resolves, is a rejection at
//!   compile time. [`Detector::matches`] yields the [`RuleMatch`]es of one [`Event`];
//!   [`SourceDetectors`] holds one detector per source kind, each with its built-in pipeline.
//! - [`EventLogSource::of`] derives an event's Sigma log source; the table is on that
//!   function. A rule only sees events whose log source has every key the rule states
//!   (product, category, service); a [`RouteIndex`] groups rules by stated log source so an
//!   event is tried only against the rules that can apply to it.
//! - [`EventView`] is what the matchers see of an event: its `fields` under the source's own
//!   names, the Wazuh spelling of Windows names, then `host`, `message`, `category`,
//!   `severity`, `source.kind`, `source.name`. Values match case-insensitively unless a rule
//!   says `|cased` (Sigma's default, done by rsigma).
//! - [`json_event_time`] reads the event time of a JSON event from a file (the fields are
//!   listed in [`event_time`]), as `rules test` and the corpus runs need it for correlations.
//!
//! [`Event`]: securewatch_schemas::Event

#![warn(missing_docs)]

pub mod correlation;
mod detector;
mod error;
mod expansion;
pub mod event_time;
mod load;
pub mod logsource;
mod pipelines;
mod view;

pub use correlation::{match_of, CompiledCorrelation, CompiledCorrelations, Match, SharedCorrelations, MAX_CHAIN_DEPTH};
pub use detector::{Detector, DetectorRule, Routing, RuleMatch, SharedDetector, SourceDetectors};
pub use error::{DetectionError, LoadWarning, Rejection};
pub use event_time::json_event_time;
pub use load::{Loaded, RuleSet};
pub use logsource::{EventLogSource, RouteIndex};
pub use pipelines::Pipelines;
pub use view::EventView;

/// The Sigma parser and evaluator versions this crate is built on, re-exported so users name
/// the same types (rule ASTs, levels).
pub use rsigma_parser;
