//! syslog source (in progress).
