//! GeoIP: a MaxMind GeoIP2/GeoLite2 City database as the dataflow's static location lookup.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use maxminddb::{geoip2, Reader};
use securewatch_schemas::{Geo, GeoLookup};

use super::files::EnrichmentError;

/// Opens a MaxMind City (or Country) database and returns the lookup for
/// [`securewatch_dataflow::build_enrichment_with_geo`]: country ISO code, English city name
/// and coordinates of an address, `None` when the database does not know it. The database is
/// read into memory once and shared by every worker; it is not reloaded.
pub fn open_geoip(path: &Path) -> Result<GeoLookup, EnrichmentError> {
    let reader = Reader::open_readfile(path).map_err(|error| EnrichmentError::GeoIp {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let reader = Arc::new(reader);
    Ok(Arc::new(move |address: IpAddr| locate(&reader, address)))
}

fn locate(reader: &Reader<Vec<u8>>, address: IpAddr) -> Option<Geo> {
    let city: geoip2::City = reader.lookup(address).ok()?.decode().ok()??;
    let geo = Geo {
        country: city.country.iso_code.map(str::to_string),
        city: city.city.names.english.map(str::to_string),
        latitude_e6: city.location.latitude.and_then(Geo::to_e6),
        longitude_e6: city.location.longitude.and_then(Geo::to_e6),
    };
    (!geo.is_empty()).then_some(geo)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Writes a two-network City database with the PyPI package `mmdb-writer` (tests/run.sh
    /// installs it); `None` (and a printed reason) when python3 or the package is missing,
    /// unless `SECUREWATCH_REQUIRE_GEOIP_TEST` is set (tests/run.sh sets it): then it fails.
    fn write_test_database(path: &Path) -> Option<()> {
        let required = std::env::var_os("SECUREWATCH_REQUIRE_GEOIP_TEST").is_some();
        let script = r#"
import sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
writer.insert_network(IPSet(["203.0.113.0/24"]), {
    "country": {"iso_code": "NL", "names": {"en": "Netherlands"}},
    "city": {"names": {"en": "Amsterdam"}},
    "location": {"latitude": 52.374, "longitude": 4.8897},
})
writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "JP"}})
writer.to_db_file(sys.argv[1])
"#;
        match Command::new("python3").arg("-c").arg(script).arg(path).output() {
            Ok(output) if output.status.success() => Some(()),
            Ok(output) => {
                assert!(!required, "mmdb-writer is required: {}", String::from_utf8_lossy(&output.stderr));
                println!(
                    "skipped: cannot write a test database (pip install mmdb-writer): {}",
                    String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default()
                );
                None
            }
            Err(error) => {
                assert!(!required, "python3 is required: {error}");
                println!("skipped: python3 is not available: {error}");
                None
            }
        }
    }

    #[test]
    fn enrichment_geoip_locates_v4_and_v6_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("city.mmdb");
        if write_test_database(&path).is_none() {
            return;
        }
        let lookup = open_geoip(&path).unwrap();
        let amsterdam = lookup("203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!(amsterdam.country.as_deref(), Some("NL"));
        assert_eq!(amsterdam.city.as_deref(), Some("Amsterdam"));
        assert_eq!((amsterdam.latitude(), amsterdam.longitude()), (Some(52.374), Some(4.8897)));
        let japan = lookup("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!((japan.country.as_deref(), japan.city.as_deref(), japan.latitude_e6), (Some("JP"), None, None));
        assert_eq!(lookup("198.51.100.1".parse().unwrap()), None);
    }

    #[test]
    fn enrichment_geoip_rejects_a_file_that_is_no_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not.mmdb");
        std::fs::write(&path, b"not a database").unwrap();
        let error = open_geoip(&path).err().unwrap().to_string();
        assert!(error.starts_with(&format!("{}: not a GeoIP database: ", path.display())), "{error}");
        let error = open_geoip(&dir.path().join("missing.mmdb")).err().unwrap().to_string();
        assert!(error.contains("missing.mmdb"), "{error}");
    }
}
