//! Message buses between `securewatch ingest` and `securewatch worker`: raw records go on the bus
//! unchanged and are normalised in the workers (DESIGN §5, issue 3 item 3).

pub mod redis;
