//! `RawSocket`: a WebSocket spoken byte by byte over TCP, for clients no library
//! would be: one that never answers pings, or that floods without reading.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::PATIENCE;

pub(super) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;

pub(crate) struct RawSocket {
    pub tcp: TcpStream,
    /// Read but not yet parsed into frames.
    buffer: Vec<u8>,
}

impl RawSocket {
    /// Opens `path` with a hand-written upgrade request; panics unless answered 101.
    pub(crate) async fn connect(addr: SocketAddr, path: &str) -> RawSocket {
        let mut tcp = TcpStream::connect(addr).await.expect("server listening");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") {
            let read = tokio::time::timeout(PATIENCE, tcp.read(&mut byte))
                .await
                .expect("upgrade answered in time")
                .unwrap();
            assert_eq!(read, 1, "connection closed during the upgrade");
            response.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&response);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawSocket {
            tcp,
            buffer: Vec::new(),
        }
    }

    /// A client frame (masked with a zero mask, which leaves the payload as is).
    pub(crate) fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126, "short frames only");
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    }

    /// The next frame from the server (opcode, payload); `None` once the server has
    /// closed the TCP connection.
    pub(crate) async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((frame, used)) = parse(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(PATIENCE, self.tcp.read(&mut chunk))
                .await
                .expect("a frame or the end in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
            }
        }
    }

    /// Reads frames until the server's close frame; returns its code.
    pub(crate) async fn close_code(&mut self) -> u16 {
        loop {
            match self.read_frame().await {
                Some((OP_CLOSE, payload)) => return u16::from_be_bytes([payload[0], payload[1]]),
                Some(_) => {}
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

/// One unmasked server frame from the front of `bytes`, and how many bytes it took.
fn parse(bytes: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    let [first, second, ..] = *bytes else {
        return None;
    };
    let (length, header) = match second & 0x7f {
        126 => (
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        short => (short as usize, 2),
    };
    let payload = bytes.get(header..header + length)?;
    Some(((first & 0x0f, payload.to_vec()), header + length))
}
