//! One serve loop for the HTTP listeners (HEC, the API): header, body and idle timeouts, a connection limit that closes the idlest connection first, and a shutdown bounded by a grace.
//!
//! `axum::serve` offers none of these, so [`HttpListener`] drives hyper's HTTP/1 connections
//! itself:
//! - a request's headers must arrive within `header_read_timeout` of the connection opening or
//!   of the previous answer (hyper's timer), which is also how long an idle keep-alive
//!   connection stays open, and how long an answer may wait for a client that stopped reading;
//! - a request body must arrive within `body_read_timeout`, extended by one second for every
//!   `body_min_bytes_per_sec` bytes received, so a client sending a trickle is cut off while any
//!   client sending at that rate never is;
//! - at `max_connections`, a new connection closes the open one idle longest (no request in
//!   flight) or, when every connection is busy, is refused;
//! - on shutdown, connections without a request in flight close at once, the others finish
//!   their request within `shutdown_grace`, then are closed.
//!
//! Every closing for a limit is counted in [`CONNECTIONS_CLOSED`] by `listener` and `reason`.
//! A [`StreamAcceptor`] wraps each accepted TCP stream before hyper sees it (TLS, later).

mod body;
mod limits;
mod registry;
mod serve;
mod stall;

pub use limits::{HttpLimits, HttpSettings, MAX_CONNECTIONS, MAX_TIMEOUT_MS};
pub use serve::{HttpListener, PlainTcp, StreamAcceptor};

/// Counter: connections an HTTP listener closed or refused, by `listener` and `reason`
/// (`header_timeout`, `body_timeout`, `write_timeout`, `idle_evicted`, `connection_limit`,
/// `shutdown_grace`).
pub const CONNECTIONS_CLOSED: &str = "securewatch_http_connections_closed_total";

/// Gauge: connections an HTTP listener has open, by `listener`.
pub const CONNECTIONS_OPEN: &str = "securewatch_http_connections_open";

#[cfg(test)]
mod tests;
