//! hec source (in progress).
