//! Start-up installation of the index template and the ISM retention policy (idempotent).

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::client::{Client, Request};
use super::config::{FieldsMapping, IndexMode, OpenSearchConfig};
use super::OpenSearchError;

/// The `PUT _index_template/<base name>` body: settings and the mappings of the Event fields.
///
/// Top-level fields are `strict` (a document with another field is refused, never silently
/// widening the mapping); `fields` follows [`FieldsMapping`]. Times are `date`; `severity` is
/// the level name (keyword) and `severity_code` its number (byte, 0 most severe); `message` is
/// full text; `raw` is kept in `_source` but not indexed.
pub fn index_template(config: &OpenSearchConfig) -> Value {
    let pattern = index_pattern(config);
    let keyword = json!({ "type": "keyword" });
    let fields = match config.fields_mapping {
        FieldsMapping::FlatObject => json!({ "type": "flat_object" }),
        FieldsMapping::Object => json!({ "type": "object", "dynamic": true }),
    };
    let mut mappings = json!({
        "dynamic": "strict",
        "properties": {
            "id": keyword,
            "time": { "type": "date" },
            "received": { "type": "date" },
            "source": {
                "properties": { "kind": keyword, "name": keyword, "peer": keyword }
            },
            "tenant": keyword,
            "host": keyword,
            "severity": keyword,
            "severity_code": { "type": "byte" },
            "category": keyword,
            "message": { "type": "text" },
            "fields": fields,
            "raw": { "type": "text", "index": false }
        }
    });
    let mut settings = json!({
        "number_of_shards": config.shards,
        "number_of_replicas": config.replicas
    });
    if config.fields_mapping == FieldsMapping::Object {
        // Every leaf of `fields` is a keyword whatever its JSON type, so an integer in one
        // event and a string in the next under the same key never conflict.
        let as_keyword = |json_type: &str| {
            json!({ format!("fields_{json_type}_as_keyword"): {
                "path_match": "fields.*",
                "match_mapping_type": json_type,
                "mapping": { "type": "keyword", "ignore_above": 4096 }
            }})
        };
        mappings["dynamic_templates"] =
            Value::Array(["string", "long", "double", "boolean"].into_iter().map(as_keyword).collect());
        settings["index.mapping.total_fields.limit"] = json!(10_000);
    }
    let mut template = json!({
        "index_patterns": [pattern],
        "priority": 200,
        "template": { "settings": settings, "mappings": mappings },
        "_meta": { "managed_by": "securewatch" }
    });
    if config.index_mode == IndexMode::DataStream {
        template["data_stream"] = json!({ "timestamp_field": { "name": "time" } });
    }
    template
}

/// The `PUT _plugins/_ism/policies/<base name>-retention` body: delete indices
/// `retention_days` after their creation (data streams: roll the write index over daily first,
/// since the write index itself cannot be deleted). `ism_template` attaches the policy to new
/// indices of the pattern (for a data stream, to its backing indices).
pub fn ism_policy(config: &OpenSearchConfig) -> Value {
    let pattern = index_pattern(config);
    let hot_actions = match config.index_mode {
        IndexMode::Daily => json!([]),
        IndexMode::DataStream => json!([{ "rollover": { "min_index_age": "1d" } }]),
    };
    json!({
        "policy": {
            "description": policy_description(config),
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": hot_actions,
                    "transitions": [{
                        "state_name": "delete",
                        "conditions": { "min_index_age": format!("{}d", config.retention_days) }
                    }]
                },
                { "name": "delete", "actions": [{ "delete": {} }], "transitions": [] }
            ],
            "ism_template": [{ "index_patterns": [pattern], "priority": 200 }]
        }
    })
}

/// The index pattern of the template and the policy: every daily index (per-tenant ones
/// included), the data stream, or every tenant's data stream.
fn index_pattern(config: &OpenSearchConfig) -> String {
    match (config.index_mode, config.index_per_tenant) {
        (IndexMode::Daily, _) => format!("{}-*", config.index_prefix),
        (IndexMode::DataStream, false) => config.data_stream.clone(),
        (IndexMode::DataStream, true) => format!("{}-*", config.data_stream),
    }
}

/// The policy's description doubles as its version: an installed policy with the same
/// description is left alone, a different one is updated.
fn policy_description(config: &OpenSearchConfig) -> String {
    let mode = match config.index_mode {
        IndexMode::Daily => "daily indices",
        IndexMode::DataStream => "data stream",
    };
    format!("SecureWatch retention v1: {mode} deleted {} days after creation", config.retention_days)
}

/// The ISM policy id.
pub(super) fn policy_id(config: &OpenSearchConfig) -> String {
    format!("{}-retention", config.base_name())
}

/// Installs (or replaces) the index template, then creates or updates the ISM policy unless
/// `retention_days` is 0. Safe to run on every start and from several workers at once.
pub(super) async fn install(client: &Client, config: &OpenSearchConfig) -> Result<(), OpenSearchError> {
    let template = index_template(config);
    let path = format!("_index_template/{}", config.base_name());
    let reply = client.send(&put("index template", &path, &template)).await?.0;
    if !reply.status.is_success() {
        return Err(rejected("index template", &reply));
    }
    if config.retention_days > 0 {
        install_policy(client, config).await?;
    }
    tracing::info!(
        template = config.base_name(),
        retention_days = config.retention_days,
        "OpenSearch index template and retention policy installed."
    );
    Ok(())
}

async fn install_policy(client: &Client, config: &OpenSearchConfig) -> Result<(), OpenSearchError> {
    const WHAT: &str = "ISM policy";
    let policy = ism_policy(config);
    let path = format!("_plugins/_ism/policies/{}", policy_id(config));
    let get = Request { what: WHAT, method: Method::GET, path: &path, body: None, documents: None };
    let reply = client.send(&get).await?.0;
    let put_path = match reply.status {
        StatusCode::NOT_FOUND => path.clone(),
        status if status.is_success() => {
            let installed: Value = serde_json::from_slice(&reply.body).map_err(|error| OpenSearchError::Protocol {
                what: WHAT,
                detail: format!("policy is not JSON: {error}"),
            })?;
            if installed["policy"]["description"] == policy["policy"]["description"] {
                return Ok(());
            }
            let (Some(seq_no), Some(primary_term)) =
                (installed["_seq_no"].as_u64(), installed["_primary_term"].as_u64())
            else {
                return Err(OpenSearchError::Protocol {
                    what: WHAT,
                    detail: "policy without _seq_no / _primary_term".into(),
                });
            };
            format!("{path}?if_seq_no={seq_no}&if_primary_term={primary_term}")
        }
        _ => return Err(rejected(WHAT, &reply)),
    };
    let reply = client.send(&put(WHAT, &put_path, &policy)).await?.0;
    match reply.status {
        // 409: another worker created or updated it between our GET and PUT.
        status if status.is_success() || status == StatusCode::CONFLICT => Ok(()),
        _ => Err(rejected(WHAT, &reply)),
    }
}

fn put<'a>(what: &'static str, path: &'a str, body: &Value) -> Request<'a> {
    let body = Bytes::from(serde_json::to_vec(body).expect("JSON values serialise"));
    Request { what, method: Method::PUT, path, body: Some((body, "application/json")), documents: None }
}

fn rejected(what: &'static str, reply: &super::client::Reply) -> OpenSearchError {
    OpenSearchError::Rejected { what, status: reply.status.as_u16(), body: reply.excerpt() }
}
