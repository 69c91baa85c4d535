//! Parsers of the reference files: the asset inventory CSV and the IP/CIDR lists.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use securewatch_schemas::{Asset, LookupKey};

/// Columns of the asset inventory; `key` is required, the others may be left out.
const ASSET_COLUMNS: [&str; 4] = ["key", "owner", "criticality", "tags"];

/// A reference file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrichmentError {
    /// The file cannot be read (missing, unreadable).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The GeoIP database cannot be opened.
    #[error("{}: not a GeoIP database: {reason}", path.display())]
    GeoIp {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file's content is invalid at `line` (1-based).
    #[error("{}:{line}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line of the problem.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(path: &Path, line: u64, reason: impl Into<String>) -> EnrichmentError {
    EnrichmentError::Invalid { path: path.to_path_buf(), line, reason: reason.into() }
}

/// Parses an asset inventory: a CSV header naming `key` and any of `owner`, `criticality`,
/// `tags` (in any order), then one asset per row. A key that is an IP address is an IP key,
/// anything else a host name (lowercased); tags are separated by `;`; empty cells are absent
/// values; tags keep their order, without repeats. Lines starting with `#` and blank lines are
/// skipped. A key listed twice is an error.
pub fn parse_assets(path: &Path, text: &[u8]) -> Result<BTreeMap<LookupKey, Asset>, EnrichmentError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(false)
        .from_reader(text);
    let csv_error = |error: csv::Error| {
        let line = error.position().map_or(1, |position| position.line());
        let reason = match error.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("{len} columns where the header has {expected_len}")
            }
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
            _ => error.to_string(),
        };
        invalid(path, line, reason)
    };
    let headers = reader.headers().map_err(csv_error)?.clone();
    let mut columns: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, name) in headers.iter().enumerate() {
        let name = ASSET_COLUMNS
            .iter()
            .find(|column| column.eq_ignore_ascii_case(name))
            .ok_or_else(|| invalid(path, 1, format!("unknown column {name:?}; expected {}", ASSET_COLUMNS.join(","))))?;
        if columns.insert(name, index).is_some() {
            return Err(invalid(path, 1, format!("column {name:?} appears twice")));
        }
    }
    let key_column = *columns
        .get("key")
        .ok_or_else(|| invalid(path, 1, format!("the header must name a key column ({})", ASSET_COLUMNS.join(","))))?;
    let mut assets = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |position| position.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cell = |column: &str| {
            columns.get(column).and_then(|index| record.get(*index)).filter(|value| !value.is_empty())
        };
        let key_text = record.get(key_column).unwrap_or_default();
        let key = LookupKey::parse_asset_key(key_text).ok_or_else(|| invalid(path, line, "empty key"))?;
        let asset = Asset {
            owner: cell("owner").map(str::to_string),
            criticality: cell("criticality").map(str::to_string),
            tags: cell("tags")
                .map(|tags| {
                    let mut unique: Vec<String> = Vec::new();
                    for tag in tags.split(';').map(str::trim).filter(|tag| !tag.is_empty()) {
                        if !unique.iter().any(|seen| seen == tag) {
                            unique.push(tag.to_string());
                        }
                    }
                    unique
                })
                .unwrap_or_default(),
        };
        if assets.insert(key.clone(), asset).is_some() {
            return Err(invalid(path, line, format!("key {key_text:?} ({key}) is listed twice")));
        }
    }
    Ok(assets)
}

/// Parses an IP/CIDR list: one address (a `/32` or `/128`) or network per line; `#` starts a
/// comment; blank lines are skipped. Host bits of a network are cleared (`10.1.2.3/8` is
/// `10.0.0.0/8`); duplicates collapse.
pub fn parse_network_list(path: &Path, text: &[u8]) -> Result<BTreeSet<IpNet>, EnrichmentError> {
    let text = std::str::from_utf8(text).map_err(|error| {
        let line = text[..error.valid_up_to()].iter().filter(|byte| **byte == b'\n').count() as u64 + 1;
        invalid(path, line, "not valid UTF-8")
    })?;
    let mut networks = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let net = entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<IpAddr>().map(|ip| IpNet::from(ip.to_canonical())))
            .map_err(|_| invalid(path, index as u64 + 1, format!("{entry:?} is not an IP address or CIDR network")))?;
        networks.insert(net.trunc());
    }
    Ok(networks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> LookupKey {
        LookupKey::parse_asset_key(text).unwrap()
    }

    #[test]
    fn enrichment_assets_parse_with_lowercase_hosts_and_tags() {
        let text = "key,owner,criticality,tags\n\
                    Web-01, web-team ,high,pci; internet-facing ;\n\
                    # a comment\n\
                    \n\
                    10.0.0.5,dba,,\n\
                    ::ffff:10.0.0.6,,low,db\n";
        let assets = parse_assets(Path::new("a.csv"), text.as_bytes()).unwrap();
        assert_eq!(assets.len(), 3);
        assert_eq!(
            assets[&key("web-01")],
            Asset {
                owner: Some("web-team".into()),
                criticality: Some("high".into()),
                tags: vec!["pci".into(), "internet-facing".into()],
            }
        );
        assert_eq!(assets[&key("10.0.0.5")], Asset { owner: Some("dba".into()), ..Asset::default() });
        assert_eq!(assets[&key("10.0.0.6")].criticality.as_deref(), Some("low"));
        // Columns in another order, some left out.
        let reordered = parse_assets(Path::new("a.csv"), b"tags,KEY\nx;y,db-1\n").unwrap();
        assert_eq!(reordered[&key("db-1")].tags, ["x", "y"]);
    }

    #[test]
    fn enrichment_asset_errors_name_file_and_line() {
        let error = |text: &str| parse_assets(Path::new("dir/assets.csv"), text.as_bytes()).unwrap_err().to_string();
        assert_eq!(error("key,owner\na,b\nc,d,e\n"), "dir/assets.csv:3: 3 columns where the header has 2");
        assert_eq!(error("key,owner\nweb,a\nWEB,b\n"), "dir/assets.csv:3: key \"WEB\" (host:web) is listed twice");
        assert!(error("host,owner\n").starts_with("dir/assets.csv:1: unknown column \"host\""));
        assert!(error("owner\nx\n").starts_with("dir/assets.csv:1: the header must name a key column"));
        assert_eq!(error("key,owner\n,x\n"), "dir/assets.csv:2: empty key");
    }

    #[test]
    fn enrichment_network_lists_parse_and_report_bad_lines() {
        let text = "# internal ranges\n10.0.0.0/8\n\n  192.168.1.7   # a single host\n10.1.2.3/8\n2001:db8::/32\n::ffff:10.9.9.9\n";
        let networks = parse_network_list(Path::new("n.txt"), text.as_bytes()).unwrap();
        let expected: BTreeSet<IpNet> = ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32", "10.9.9.9/32"]
            .iter()
            .map(|net| net.parse().unwrap())
            .collect();
        assert_eq!(networks, expected);
        let error = parse_network_list(Path::new("n.txt"), b"10.0.0.0/8\n\n10.0.0.0/33\n").unwrap_err();
        assert_eq!(error.to_string(), "n.txt:3: \"10.0.0.0/33\" is not an IP address or CIDR network");
        let error = parse_network_list(Path::new("n.txt"), b"10.0.0.1\n\xff\n").unwrap_err();
        assert_eq!(error.to_string(), "n.txt:2: not valid UTF-8");
    }
}
