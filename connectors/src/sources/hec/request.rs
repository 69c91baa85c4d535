//! Reading a HEC request: token, channel, query string, body size and gzip decoding.

use std::io::{self, Write};
use std::pin::Pin;

use axum::body::{Body, HttpBody};
use axum::extract::Query;
use axum::http::{header, HeaderMap, Uri};
use flate2::write::MultiGzDecoder;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::response::{HecReply, Refusal};

/// Header that carries the client's channel id.
const CHANNEL_HEADER: &str = "x-splunk-request-channel";
/// Longest channel id accepted (Splunk's are 36-character GUIDs).
const MAX_CHANNEL_LEN: usize = 128;

/// The query parameters HEC understands; others are ignored.
#[derive(Debug, Default, Deserialize)]
pub(super) struct HecQuery {
    pub channel: Option<String>,
    pub token: Option<String>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
    pub time: Option<String>,
}

impl HecQuery {
    /// Parses the query string; a malformed one is refused with code 6.
    pub fn from_uri(uri: &Uri) -> Result<HecQuery, Refusal> {
        if uri.query().is_none() {
            return Ok(HecQuery::default());
        }
        Query::<HecQuery>::try_from_uri(uri)
            .map(|Query(query)| query)
            .map_err(|_| Refusal::request(HecReply::INVALID_DATA_FORMAT, "invalid_query"))
    }
}

/// Finds the token in `Authorization: Splunk <token>` among `secrets`, comparing in constant
/// time (every configured secret is compared, whatever matches). Returns its position.
pub(super) fn authorise<'a>(
    headers: &HeaderMap,
    query: &HecQuery,
    secrets: impl IntoIterator<Item = &'a [u8]>,
) -> Result<usize, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        // Splunk only reads `?token=` when a token allows it; none of ours does.
        return Err(match query.token {
            Some(_) => Refusal::request(HecReply::QUERY_TOKEN_DISABLED, "query_token"),
            None => Refusal::request(HecReply::TOKEN_REQUIRED, "no_token"),
        });
    };
    let malformed = || Refusal::request(HecReply::INVALID_AUTHORIZATION, "invalid_authorization");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, presented) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let presented = presented.trim();
    if !scheme.eq_ignore_ascii_case("Splunk") || presented.is_empty() {
        return Err(malformed());
    }
    let mut found = None;
    for (position, secret) in secrets.into_iter().enumerate() {
        if bool::from(secret.ct_eq(presented.as_bytes())) {
            found = Some(position);
        }
    }
    found.ok_or_else(|| Refusal::request(HecReply::INVALID_TOKEN, "invalid_token"))
}

/// The channel from the `X-Splunk-Request-Channel` header, else `?channel=`; `None` when
/// neither is given (tokens with indexer acknowledgement require one).
pub(super) fn channel(headers: &HeaderMap, query: &HecQuery) -> Result<Option<String>, Refusal> {
    let invalid = || Refusal::request(HecReply::INVALID_CHANNEL, "invalid_channel");
    let text = match headers.get(CHANNEL_HEADER) {
        Some(value) => value.to_str().map_err(|_| invalid())?,
        None => query.channel.as_deref().unwrap_or_default(),
    };
    let text = text.trim();
    if text.len() > MAX_CHANNEL_LEN || text.chars().any(char::is_control) {
        return Err(invalid());
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// How the body is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Identity,
    Gzip,
}

/// `Content-Encoding`: absent or `identity` → plain, `gzip` / `x-gzip` → gzip (once); anything
/// else (deflate, br, zstd, gzip twice) → 415.
pub(super) fn content_encoding(headers: &HeaderMap) -> Result<Encoding, Refusal> {
    let unsupported = || Refusal::request(HecReply::UNSUPPORTED_ENCODING, "unsupported_encoding");
    let mut encoding = Encoding::Identity;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| unsupported())?;
        for coding in text.split(',').map(str::trim).filter(|coding| !coding.is_empty()) {
            if coding.eq_ignore_ascii_case("identity") {
                continue;
            }
            let gzip = coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip");
            if !gzip || encoding == Encoding::Gzip {
                return Err(unsupported());
            }
            encoding = Encoding::Gzip;
        }
    }
    Ok(encoding)
}

/// The refusal for a body above the cap.
pub(super) fn too_large() -> Refusal {
    Refusal::request(HecReply::TOO_LARGE, "too_large")
}

/// Reads the body as sent, refusing it (413) as soon as it passes `limit` bytes — at once when
/// `Content-Length` already says so.
pub(super) async fn read_wire_body(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Vec<u8>, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut wire = Vec::with_capacity(declared.map_or(0, |length| length as usize));
    while let Some(frame) =
        std::future::poll_fn(|context| Pin::new(&mut body).poll_frame(context)).await
    {
        let frame =
            frame.map_err(|_| Refusal::request(HecReply::INVALID_DATA_FORMAT, "read_error"))?;
        if let Ok(data) = frame.into_data() {
            if wire.len() + data.len() > limit {
                return Err(too_large().with_bytes(wire.len() + data.len()));
            }
            wire.extend_from_slice(&data);
        }
    }
    Ok(wire)
}

/// Decodes the body (CPU-bound: call it off the async threads). Gzip output is capped at
/// `limit` while it is produced, so a small "gzip bomb" stops at the cap.
pub(super) fn decode(encoding: Encoding, wire: Vec<u8>, limit: usize) -> Result<Vec<u8>, Refusal> {
    if encoding == Encoding::Identity || wire.is_empty() {
        return Ok(wire);
    }
    let corrupt = || Refusal::request(HecReply::INVALID_DATA_FORMAT, "invalid_gzip");
    let mut decoder =
        MultiGzDecoder::new(CappedBuffer { data: Vec::new(), limit, exceeded: false });
    let written = decoder.write_all(&wire).and_then(|()| decoder.try_finish());
    if decoder.get_ref().exceeded {
        return Err(too_large());
    }
    written.map_err(|_| corrupt())?;
    decoder.finish().map(|buffer| buffer.data).map_err(|_| corrupt())
}

/// A writer that refuses to grow past `limit` bytes.
struct CappedBuffer {
    data: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for CappedBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.data.len() + bytes.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("decompressed body exceeds the size cap"));
        }
        self.data.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn gzip_decodes_within_the_cap_and_stops_past_it() {
        let data = vec![b'x'; 10_000];
        assert_eq!(decode(Encoding::Gzip, gzip(&data), 10_000).unwrap(), data);
        let mut two_members = gzip(b"first ");
        two_members.extend(gzip(b"second"));
        assert_eq!(decode(Encoding::Gzip, two_members, 100).unwrap(), b"first second");
        let bomb = gzip(&vec![0; 5_000_000]);
        assert!(bomb.len() < 10_000);
        assert_eq!(decode(Encoding::Gzip, bomb, 65_536).unwrap_err().reason, "too_large");
        let mut truncated = gzip(&data);
        truncated.truncate(truncated.len() - 4);
        assert_eq!(decode(Encoding::Gzip, truncated, 100_000).unwrap_err().reason, "invalid_gzip");
        assert_eq!(
            decode(Encoding::Gzip, b"not gzip".to_vec(), 100).unwrap_err().reason,
            "invalid_gzip"
        );
    }

    #[test]
    fn encodings() {
        let encoding = |values: &[&str]| {
            let pairs: Vec<_> =
                values.iter().map(|value| (header::CONTENT_ENCODING, *value)).collect();
            content_encoding(&headers(&pairs)).map_err(|refusal| refusal.reply.status.as_u16())
        };
        assert_eq!(encoding(&[]), Ok(Encoding::Identity));
        assert_eq!(encoding(&["identity"]), Ok(Encoding::Identity));
        assert_eq!(encoding(&["GZIP"]), Ok(Encoding::Gzip));
        assert_eq!(encoding(&["identity, x-gzip"]), Ok(Encoding::Gzip));
        assert_eq!(encoding(&["deflate"]), Err(415));
        assert_eq!(encoding(&["gzip", "gzip"]), Err(415));
        assert_eq!(encoding(&["br"]), Err(415));
    }

    #[test]
    fn authorisation_forms() {
        let secrets: [&[u8]; 2] = [b"alpha-token", b"beta-token"];
        let check = |pairs: &[(header::HeaderName, &str)], query: HecQuery| {
            authorise(&headers(pairs), &query, secrets).map_err(|refusal| refusal.reply.code)
        };
        let auth = header::AUTHORIZATION;
        assert_eq!(check(&[(auth.clone(), "Splunk beta-token")], HecQuery::default()), Ok(1));
        assert_eq!(check(&[(auth.clone(), "splunk  alpha-token ")], HecQuery::default()), Ok(0));
        assert_eq!(check(&[], HecQuery::default()), Err(2));
        let with_token = HecQuery { token: Some("alpha-token".into()), ..HecQuery::default() };
        assert_eq!(check(&[], with_token), Err(16));
        assert_eq!(check(&[(auth.clone(), "Bearer alpha-token")], HecQuery::default()), Err(3));
        assert_eq!(check(&[(auth.clone(), "alpha-token")], HecQuery::default()), Err(3));
        assert_eq!(check(&[(auth.clone(), "Splunk ")], HecQuery::default()), Err(3));
        assert_eq!(check(&[(auth.clone(), "Splunk alpha")], HecQuery::default()), Err(4));
        assert_eq!(check(&[(auth, "Splunk alpha-token-x")], HecQuery::default()), Err(4));
    }

    #[test]
    fn channels() {
        let query = HecQuery { channel: Some("from-query".into()), ..HecQuery::default() };
        let header_pair = [(header::HeaderName::from_static(CHANNEL_HEADER), "from-header")];
        assert_eq!(
            channel(&headers(&header_pair), &query).unwrap().as_deref(),
            Some("from-header")
        );
        assert_eq!(channel(&HeaderMap::new(), &query).unwrap().as_deref(), Some("from-query"));
        assert_eq!(channel(&HeaderMap::new(), &HecQuery::default()).unwrap(), None);
        let long = HecQuery { channel: Some("c".repeat(200)), ..HecQuery::default() };
        assert_eq!(channel(&HeaderMap::new(), &long).unwrap_err().reply.code, 11);
    }
}
