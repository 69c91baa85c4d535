//! Splunk's HEC answers: HTTP status plus `{"text":..,"code":..}` JSON bodies.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use super::split::HecBodyError;
use serde::Serialize;

/// One HEC answer. The JSON body keeps Splunk's key order: `text`, `code`, then
/// `invalid-event-number` when an envelope is at fault, or `ackId` on a token with acks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HecReply {
    #[serde(skip)]
    pub status: StatusCode,
    pub text: &'static str,
    pub code: u16,
    #[serde(rename = "invalid-event-number", skip_serializing_if = "Option::is_none")]
    pub invalid_event_number: Option<usize>,
    #[serde(rename = "ackId", skip_serializing_if = "Option::is_none")]
    pub ack_id: Option<u64>,
}

impl HecReply {
    const fn new(status: StatusCode, text: &'static str, code: u16) -> Self {
        HecReply { status, text, code, invalid_event_number: None, ack_id: None }
    }

    /// Success with the request's indexer-acknowledgement id.
    pub fn success_with_ack(ack_id: u64) -> HecReply {
        HecReply { ack_id: Some(ack_id), ..HecReply::SUCCESS }
    }

    pub const SUCCESS: HecReply = HecReply::new(StatusCode::OK, "Success", 0);
    pub const TOKEN_REQUIRED: HecReply =
        HecReply::new(StatusCode::UNAUTHORIZED, "Token is required", 2);
    pub const INVALID_AUTHORIZATION: HecReply =
        HecReply::new(StatusCode::UNAUTHORIZED, "Invalid authorization", 3);
    pub const INVALID_TOKEN: HecReply = HecReply::new(StatusCode::FORBIDDEN, "Invalid token", 4);
    pub const NO_DATA: HecReply = HecReply::new(StatusCode::BAD_REQUEST, "No data", 5);
    pub const INVALID_DATA_FORMAT: HecReply =
        HecReply::new(StatusCode::BAD_REQUEST, "Invalid data format", 6);
    pub const INTERNAL_ERROR: HecReply =
        HecReply::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error", 8);
    pub const SERVER_BUSY: HecReply =
        HecReply::new(StatusCode::SERVICE_UNAVAILABLE, "Server is busy", 9);
    pub const CHANNEL_MISSING: HecReply =
        HecReply::new(StatusCode::BAD_REQUEST, "Data channel is missing", 10);
    pub const INVALID_CHANNEL: HecReply =
        HecReply::new(StatusCode::BAD_REQUEST, "Invalid data channel", 11);
    pub const ACK_DISABLED: HecReply =
        HecReply::new(StatusCode::BAD_REQUEST, "ACK is disabled", 14);
    pub const QUERY_TOKEN_DISABLED: HecReply =
        HecReply::new(StatusCode::BAD_REQUEST, "Query string authorization is not enabled", 16);
    pub const HEALTHY: HecReply = HecReply::new(StatusCode::OK, "HEC is healthy", 17);
    pub const QUEUES_FULL: HecReply =
        HecReply::new(StatusCode::SERVICE_UNAVAILABLE, "HEC is unhealthy, queues are full", 18);
    /// Not in Splunk's table (Splunk closes such requests with a bare 413); same JSON shape.
    pub const TOO_LARGE: HecReply =
        HecReply::new(StatusCode::PAYLOAD_TOO_LARGE, "Content too large", 27);
    /// Splunk answers 415 for encodings it cannot read; the body reuses code 6.
    pub const UNSUPPORTED_ENCODING: HecReply =
        HecReply::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported content encoding", 6);
    pub const NOT_FOUND: HecReply = HecReply::new(
        StatusCode::NOT_FOUND,
        "The requested URL was not found on this server.",
        404,
    );

    /// The 400 answer for a refused body, naming the envelope at fault.
    pub fn body_error(error: &HecBodyError) -> HecReply {
        HecReply {
            invalid_event_number: error.invalid_event_number(),
            ..HecReply::new(StatusCode::BAD_REQUEST, error.text(), error.code())
        }
    }
}

impl IntoResponse for HecReply {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        if self.code == HecReply::SERVER_BUSY.code {
            // Clients that honour it back off for a second instead of retrying at once.
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Why a request was refused: the answer, the metrics reason, how many records it held and
/// how many bytes of it were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub reply: HecReply,
    pub reason: &'static str,
    pub records: u64,
    pub bytes: u64,
}

impl Refusal {
    /// A refusal before the body was cut into records: it counts as one record.
    pub fn request(reply: HecReply, reason: &'static str) -> Self {
        Refusal { reply, reason, records: 1, bytes: 0 }
    }

    /// The same refusal, noting how many bytes of the request were read.
    pub fn with_bytes(self, bytes: usize) -> Self {
        Refusal { bytes: bytes as u64, ..self }
    }
}

#[cfg(test)]
mod tests {
    use crate::sources::hec::split::HecBodyErrorKind;

    use super::*;

    async fn body_text(reply: HecReply) -> (StatusCode, String, Option<HeaderValue>) {
        let response = reply.into_response();
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap(), retry_after)
    }

    #[tokio::test]
    async fn bodies_follow_splunk_key_order() {
        let (status, body, retry) = body_text(HecReply::SUCCESS).await;
        assert_eq!(
            (status, body.as_str(), retry),
            (StatusCode::OK, r#"{"text":"Success","code":0}"#, None)
        );
        let error = HecBodyError { index: 2, kind: HecBodyErrorKind::EventBlank };
        let (status, body, _) = body_text(HecReply::body_error(&error)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            r#"{"text":"Event field cannot be blank","code":13,"invalid-event-number":2}"#
        );
        let (_, body, _) = body_text(HecReply::success_with_ack(7)).await;
        assert_eq!(body, r#"{"text":"Success","code":0,"ackId":7}"#);
        let (status, body, retry) = body_text(HecReply::SERVER_BUSY).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, r#"{"text":"Server is busy","code":9}"#);
        assert_eq!(retry, Some(HeaderValue::from_static("1")));
    }
}
