//! Syslog: framing of a TCP stream (octet-counted and newline), whole and chunk by chunk, then RFC 3164 / 5424 parsing of every frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securewatch_connectors::sources::syslog::splitter::{split_frames, Frame, FrameEvent, FrameSplitter};
use securewatch_fuzz::record;
use securewatch_schemas::{RecordMeta, SourceKind};

const MAX_MESSAGE: usize = 256;

/// The frames of `input` read `chunk` bytes at a time, as the TCP source reads a socket.
fn frames_in_chunks(input: &[u8], chunk: usize) -> Vec<Option<Vec<u8>>> {
    let (mut splitter, mut buffer, mut frames) = (FrameSplitter::new(MAX_MESSAGE), Vec::new(), Vec::new());
    let mut chunks = input.chunks(chunk).peekable();
    loop {
        let at_eof = chunks.peek().is_none();
        loop {
            let step = splitter.next_frame(&buffer, at_eof);
            match step.event {
                Some(FrameEvent::Message(range)) => frames.push(Some(buffer[range].to_vec())),
                Some(FrameEvent::TooLarge) => frames.push(None),
                None => {
                    buffer.drain(..step.consumed);
                    break;
                }
            }
            buffer.drain(..step.consumed);
        }
        match chunks.next() {
            Some(bytes) => buffer.extend_from_slice(bytes),
            None => return frames,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let whole: Vec<Option<Vec<u8>>> = split_frames(input, MAX_MESSAGE)
        .into_iter()
        .map(|frame| match frame {
            Frame::Message(bytes) => Some(bytes.to_vec()),
            Frame::TooLarge => None,
        })
        .collect();
    assert_eq!(frames_in_chunks(input, usize::from(chunk % 64) + 1), whole, "chunked reads frame like one read");
    for message in whole.iter().flatten() {
        let event = securewatch_parse::normalise(&record(SourceKind::Syslog, message, RecordMeta::None));
        assert!(event.is_ok(), "syslog never fails: an unparseable message is kept with parse_error");
    }
});
