//! RFC 6587 framing of syslog over a byte stream: octet counting and LF-terminated frames.
//!
//! The framing is detected per frame, so one connection may mix both: a frame that starts with
//! a digit run (no leading zero, at most nine digits) and a space is octet-counted
//! (`<len> <msg>`); anything else ends at the next LF. A non-transparent message that itself
//! starts with digits and a space is therefore read as octet-counted; syslog messages start
//! with `<PRI>`, so this only affects headerless senders. Frame lengths are bounded: a longer
//! frame is skipped and reported once, and buffering never exceeds the limit plus one read.

use std::ops::Range;

/// Octet counts with more digits than this are not read as a length (≥ 1 GB).
const MAX_LENGTH_DIGITS: usize = 9;

/// What [`FrameSplitter::next_frame`] found at the front of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameEvent {
    /// One message: its byte range within the buffer that was passed in.
    Message(Range<usize>),
    /// A frame longer than the limit; it is skipped (now or over the next calls).
    TooLarge,
}

/// The result of one [`FrameSplitter::next_frame`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameStep {
    /// Bytes at the front of the buffer that are done with and must be dropped before the
    /// next call.
    pub consumed: usize,
    /// The frame found, or `None` when more input is needed (at end of input: all consumed).
    pub event: Option<FrameEvent>,
}

/// A stateful RFC 6587 frame splitter over a growing buffer (the caller owns the bytes).
#[derive(Clone, Debug)]
pub struct FrameSplitter {
    max_message_bytes: usize,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a frame.
    FrameStart,
    /// Skipping the rest of an oversized octet-counted frame.
    SkipBytes(usize),
    /// Skipping an oversized LF-terminated frame up to its LF.
    SkipLine,
}

enum OctetHeader {
    /// `<len> `: the message length and the header's own length.
    Length { length: usize, header_length: usize },
    /// Only digits so far: the header may continue in the next read.
    Incomplete,
    /// Not an octet-counted frame.
    Absent,
}

impl FrameSplitter {
    /// A splitter that skips messages longer than `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        FrameSplitter { max_message_bytes, state: State::FrameStart }
    }

    /// Finds the next frame at the front of `buffer`. With `at_eof`, an incomplete last frame
    /// is delivered as it is (when non-empty) and every byte is eventually consumed.
    pub fn next_frame(&mut self, buffer: &[u8], at_eof: bool) -> FrameStep {
        let mut position = 0;
        loop {
            let rest = buffer.get(position..).unwrap_or_default();
            match self.state {
                State::SkipBytes(remaining) => {
                    let skipped = remaining.min(rest.len());
                    position += skipped;
                    if skipped < remaining {
                        self.state = State::SkipBytes(remaining - skipped);
                        return FrameStep { consumed: position, event: None };
                    }
                    self.state = State::FrameStart;
                }
                State::SkipLine => match rest.iter().position(|byte| *byte == b'\n') {
                    Some(newline) => {
                        position += newline + 1;
                        self.state = State::FrameStart;
                    }
                    None => {
                        if at_eof {
                            self.state = State::FrameStart;
                        }
                        return FrameStep { consumed: position + rest.len(), event: None };
                    }
                },
                State::FrameStart => {
                    // Blank lines and NUL trailers between frames carry no message.
                    let separators = rest
                        .iter()
                        .take_while(|byte| matches!(byte, b'\n' | b'\r' | b'\0'))
                        .count();
                    position += separators;
                    let rest = rest.get(separators..).unwrap_or_default();
                    if rest.is_empty() {
                        return FrameStep { consumed: position, event: None };
                    }
                    return match octet_header(rest, at_eof) {
                        OctetHeader::Length { length, header_length } => {
                            self.octet_counted(position, rest, length, header_length, at_eof)
                        }
                        OctetHeader::Incomplete => FrameStep { consumed: position, event: None },
                        OctetHeader::Absent => self.line(position, rest, at_eof),
                    };
                }
            }
        }
    }

    fn octet_counted(
        &mut self,
        position: usize,
        rest: &[u8],
        length: usize,
        header_length: usize,
        at_eof: bool,
    ) -> FrameStep {
        let start = position + header_length;
        if length > self.max_message_bytes {
            self.state = State::SkipBytes(length);
            return FrameStep { consumed: start, event: Some(FrameEvent::TooLarge) };
        }
        let available = rest.len() - header_length;
        if available >= length {
            let end = start + length;
            return FrameStep { consumed: end, event: Some(FrameEvent::Message(start..end)) };
        }
        if at_eof {
            // The sender closed mid-frame: deliver what arrived rather than lose it.
            let end = start + available;
            let event = (available > 0).then_some(FrameEvent::Message(start..end));
            return FrameStep { consumed: end, event };
        }
        FrameStep { consumed: position, event: None }
    }

    fn line(&mut self, position: usize, rest: &[u8], at_eof: bool) -> FrameStep {
        let newline = rest.iter().position(|byte| *byte == b'\n');
        let line = &rest[..newline.unwrap_or(rest.len())];
        let content_length = trim_trailer(line).len();
        if content_length > self.max_message_bytes {
            return match newline {
                Some(newline) => FrameStep {
                    consumed: position + newline + 1,
                    event: Some(FrameEvent::TooLarge),
                },
                None => {
                    if !at_eof {
                        self.state = State::SkipLine;
                    }
                    FrameStep { consumed: position + rest.len(), event: Some(FrameEvent::TooLarge) }
                }
            };
        }
        let message = Some(FrameEvent::Message(position..position + content_length));
        match newline {
            Some(newline) => FrameStep { consumed: position + newline + 1, event: message },
            None if at_eof => FrameStep { consumed: position + rest.len(), event: message },
            None => FrameStep { consumed: position, event: None },
        }
    }
}

fn octet_header(frame: &[u8], at_eof: bool) -> OctetHeader {
    let digits = frame.iter().take_while(|byte| byte.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_LENGTH_DIGITS || frame[0] == b'0' {
        return OctetHeader::Absent;
    }
    match frame.get(digits) {
        Some(b' ') => {
            let length = frame[..digits]
                .iter()
                .fold(0usize, |length, digit| length * 10 + usize::from(digit - b'0'));
            OctetHeader::Length { length, header_length: digits + 1 }
        }
        Some(_) => OctetHeader::Absent,
        None if at_eof => OctetHeader::Absent,
        None => OctetHeader::Incomplete,
    }
}

/// A line without its trailing CR and NUL bytes.
fn trim_trailer(line: &[u8]) -> &[u8] {
    let kept =
        line.iter().rposition(|byte| !matches!(byte, b'\r' | b'\0')).map_or(0, |last| last + 1);
    &line[..kept]
}

/// One frame of a complete input, as [`split_frames`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A message's bytes.
    Message(&'a [u8]),
    /// A frame over the limit, skipped.
    TooLarge,
}

/// Splits a complete byte stream (e.g. a capture file) into frames, as the TCP source does.
pub fn split_frames(input: &[u8], max_message_bytes: usize) -> Vec<Frame<'_>> {
    let mut splitter = FrameSplitter::new(max_message_bytes);
    let mut frames = Vec::new();
    let mut position = 0;
    loop {
        let rest = input.get(position..).unwrap_or_default();
        let step = splitter.next_frame(rest, true);
        match step.event {
            Some(FrameEvent::Message(range)) => {
                if let Some(message) = rest.get(range) {
                    frames.push(Frame::Message(message));
                }
            }
            Some(FrameEvent::TooLarge) => frames.push(Frame::TooLarge),
            // At end of input `None` means everything is consumed.
            None => return frames,
        }
        position += step.consumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(input: &[u8], max: usize) -> Vec<String> {
        split_frames(input, max)
            .into_iter()
            .map(|frame| match frame {
                Frame::Message(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Frame::TooLarge => "<too large>".to_string(),
            })
            .collect()
    }

    #[test]
    fn lf_frames_with_crlf_blank_lines_and_partial_tail() {
        let input = b"<13>one\r\n\n<13>two\n\0<13>three";
        assert_eq!(messages(input, 100), ["<13>one", "<13>two", "<13>three"]);
    }

    #[test]
    fn octet_counted_frames_may_hold_newlines_and_mix_with_lf() {
        let input = b"11 <13>a\nb c d8 <13>efgh<13>lf line\n5 <13>x\n";
        assert_eq!(messages(input, 100), ["<13>a\nb c d", "<13>efgh", "<13>lf line", "<13>x"]);
    }

    #[test]
    fn oversized_frames_are_skipped_and_reported_once() {
        let input = b"<13>far too long line\n<13>ok\n30 <13>abcdefghijklmnopqrstuvwxyz<13>after\n";
        assert_eq!(messages(input, 10), ["<too large>", "<13>ok", "<too large>", "<13>after"]);
    }

    #[test]
    fn digits_that_are_not_a_length_frame_as_lines() {
        assert_eq!(
            messages(b"2024-01-01 x\n0 zero\n1234567890 ten\n42", 100),
            ["2024-01-01 x", "0 zero", "1234567890 ten", "42"]
        );
    }

    #[test]
    fn incremental_reads_wait_for_complete_frames() {
        let mut splitter = FrameSplitter::new(100);
        assert_eq!(splitter.next_frame(b"1", false), FrameStep { consumed: 0, event: None });
        assert_eq!(
            splitter.next_frame(b"12 <13>hel", false),
            FrameStep { consumed: 0, event: None }
        );
        let step = splitter.next_frame(b"12 <13>hello!!!<13>n", false);
        assert_eq!(step, FrameStep { consumed: 15, event: Some(FrameEvent::Message(3..15)) });
        assert_eq!(splitter.next_frame(b"<13>n", false), FrameStep { consumed: 0, event: None });
        let step = splitter.next_frame(b"<13>next\n", false);
        assert_eq!(step, FrameStep { consumed: 9, event: Some(FrameEvent::Message(0..8)) });
    }

    #[test]
    fn oversized_frames_are_skipped_across_reads() {
        let mut splitter = FrameSplitter::new(4);
        let step = splitter.next_frame(b"<13>long", false);
        assert_eq!(step, FrameStep { consumed: 8, event: Some(FrameEvent::TooLarge) });
        assert_eq!(splitter.next_frame(b"er still", false), FrameStep { consumed: 8, event: None });
        let step = splitter.next_frame(b" end\nabc\n", false);
        assert_eq!(step, FrameStep { consumed: 9, event: Some(FrameEvent::Message(5..8)) });
        let step = splitter.next_frame(b"9 <13>", false);
        assert_eq!(step, FrameStep { consumed: 2, event: Some(FrameEvent::TooLarge) });
        assert_eq!(splitter.next_frame(b"<13>", false), FrameStep { consumed: 4, event: None });
        let step = splitter.next_frame(b"12345ok\n", false);
        assert_eq!(step, FrameStep { consumed: 8, event: Some(FrameEvent::Message(5..7)) });
    }

    #[test]
    fn truncated_octet_frame_at_eof_is_delivered() {
        assert_eq!(messages(b"20 <13>short", 100), ["<13>short"]);
        assert!(messages(b"20 ", 100).is_empty());
        assert!(messages(b"\n\r\n", 100).is_empty());
    }
}
