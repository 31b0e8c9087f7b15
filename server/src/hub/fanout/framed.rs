//! Server frames already framed for the wire (RFC 6455 §5.2): a busy room's frames
//! are gathered into one buffer of complete WebSocket text frames, built once and
//! written as it is by every member's connection. A server's frames are never
//! masked, so the bytes are the same for every member.

use super::FrameBytes;

/// A final text frame's first byte: FIN, opcode 1.
const FINAL_TEXT: u8 = 0x81;

/// Appends `text` to `out` as one final, unmasked text frame.
pub(crate) fn push_text_frame(out: &mut Vec<u8>, text: &FrameBytes) {
    let len = text.len();
    out.push(FINAL_TEXT);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(text.as_bytes());
}

/// The most a frame of `len` bytes takes framed.
pub(crate) fn framed_len(len: usize) -> usize {
    len + 10
}

/// Frames `frames` into one shared buffer.
#[cfg(test)]
fn frame_all<'a>(frames: impl IntoIterator<Item = &'a FrameBytes>) -> tungstenite::Bytes {
    let mut out = Vec::new();
    for frame in frames {
        push_text_frame(&mut out, frame);
    }
    tungstenite::Bytes::from(out)
}

/// The texts a real client reads from `bytes` (tungstenite's own reader).
#[cfg(test)]
pub(crate) fn read_as_client(bytes: &[u8]) -> Vec<String> {
    use tungstenite::{Message, WebSocket, protocol::Role};
    let cursor = std::io::Cursor::new(bytes.to_vec());
    let mut socket = WebSocket::from_raw_socket(cursor, Role::Client, None);
    let mut texts = Vec::new();
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => texts.push(text.as_str().to_owned()),
            Ok(other) => panic!("not a text frame: {other:?}"),
            // The end of the bytes.
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => return texts,
            Err(err) => panic!("{err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_reads_every_frame_of_every_length_class() {
        let texts: Vec<String> = [0_usize, 1, 125, 126, 127, 65_535, 65_536, 200_000]
            .into_iter()
            .enumerate()
            .map(|(n, len)| {
                let mut text = format!("{n}é");
                text.extend(std::iter::repeat_n('x', len.saturating_sub(text.len())));
                text
            })
            .collect();
        let frames: Vec<FrameBytes> = texts.iter().map(|text| text.as_str().into()).collect();
        let framed = frame_all(&frames);
        let overhead: usize = frames
            .iter()
            .map(|frame| framed_len(frame.len()) - frame.len())
            .sum();
        assert!(framed.len() <= texts.iter().map(String::len).sum::<usize>() + overhead);
        assert_eq!(read_as_client(&framed), texts);
    }

    #[test]
    fn headers_use_the_shortest_length_encoding() {
        let frame = |len: usize| frame_all([&FrameBytes::from("x".repeat(len))]);
        assert_eq!(frame(125)[..2], [0x81, 125]);
        assert_eq!(frame(126)[..4], [0x81, 126, 0, 126]);
        assert_eq!(frame(65_536)[..10], [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
