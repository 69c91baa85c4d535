//! A tokio-util [`Decoder`] that cuts a syslog TCP stream into messages (RFC 6587).
//!
//! The framing rules live in [`super::splitter`] as a pure splitter, so the corpus conformance
//! run frames captures exactly as this source does.

use bytes::{Buf, BytesMut};
use super::splitter::{FrameEvent, FrameSplitter};
use tokio_util::codec::Decoder;

/// One item of a syslog stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogFrame {
    /// One message, without framing (no octet count, no LF).
    Message(Vec<u8>),
    /// A frame over `max_message_bytes`, skipped; the stream continues after it.
    TooLarge,
}

/// Octet-counted and LF-terminated framing, detected per frame.
#[derive(Clone, Debug)]
pub struct SyslogDecoder {
    splitter: FrameSplitter,
}

impl SyslogDecoder {
    /// A decoder that skips messages longer than `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        SyslogDecoder { splitter: FrameSplitter::new(max_message_bytes) }
    }

    fn next_frame(&mut self, buffer: &mut BytesMut, at_eof: bool) -> Option<SyslogFrame> {
        let step = self.splitter.next_frame(buffer, at_eof);
        let frame = match step.event {
            Some(FrameEvent::Message(range)) => {
                buffer.get(range).map(|message| SyslogFrame::Message(message.to_vec()))
            }
            Some(FrameEvent::TooLarge) => Some(SyslogFrame::TooLarge),
            None => None,
        };
        buffer.advance(step.consumed.min(buffer.len()));
        frame
    }
}

impl Decoder for SyslogDecoder {
    type Item = SyslogFrame;
    type Error = std::io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<SyslogFrame>, Self::Error> {
        Ok(self.next_frame(buffer, false))
    }

    /// At end of stream an incomplete last frame is delivered as it is; nothing is left over.
    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<SyslogFrame>, Self::Error> {
        Ok(self.next_frame(buffer, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_partial_buffers_and_drains_at_eof() {
        let mut decoder = SyslogDecoder::new(64);
        let mut buffer = BytesMut::from(&b"9 <13>a\nbcd<13>li"[..]);
        assert_eq!(
            decoder.decode(&mut buffer).unwrap(),
            Some(SyslogFrame::Message(b"<13>a\nbcd".to_vec()))
        );
        assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
        assert_eq!(&buffer[..], b"<13>li", "an incomplete frame stays buffered");
        buffer.extend_from_slice(b"ne");
        assert_eq!(
            decoder.decode_eof(&mut buffer).unwrap(),
            Some(SyslogFrame::Message(b"<13>line".to_vec()))
        );
        assert_eq!(decoder.decode_eof(&mut buffer).unwrap(), None);
        assert!(buffer.is_empty());
    }
}
