//! What the fuzz targets share: raw records built from fuzzed bytes, as the sources build them.

use std::sync::Arc;

use securewatch_schemas::{HecMeta, RawRecord, RecordMeta, SourceKind, Tenant};

/// A record of `kind` with `body` and `meta`, received now from a loopback peer, of the tenant
/// `acme` (a tenant other than `default`, whose name goes into the event ids).
pub fn record(kind: SourceKind, body: &[u8], meta: RecordMeta) -> RawRecord {
    RawRecord {
        kind,
        source_name: Arc::from("fuzz"),
        peer: Some("127.0.0.1:5514".into()),
        received: chrono::Utc::now(),
        body: body.to_vec(),
        meta,
        tenant: Tenant::parse("acme").expect("a valid tenant name"),
    }
}

/// HEC request metadata as a token with no defaults gives it.
pub fn hec_meta() -> Arc<HecMeta> {
    Arc::new(HecMeta { token_name: "fuzz".into(), ..HecMeta::default() })
}
