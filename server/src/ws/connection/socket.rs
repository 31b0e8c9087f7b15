//! The socket under a connection: every write with a deadline, framed batches
//! written straight through, reads bounded in size, and the close handshake.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use chorus_protocol::{CloseCode, ServerFrame};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::AsyncWrite;
use tokio::time::timeout;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tungstenite::{Message, Utf8Bytes};

use crate::hub::Outbound;
use crate::limits::token_bucket::TokenBucket;

/// How long a close handshake may take before the socket is dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);
/// WebSocket pings and pongs a client may send per second, and at once: far more
/// than any keepalive needs, far fewer than a flood. Each ping costs a pong the
/// server must write, so a client that pings and never reads would otherwise grow
/// the server's write buffer as fast as it uploads.
const CONTROL_FRAMES_PER_SECOND: u32 = 5;
const CONTROL_FRAME_BURST: u32 = 20;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The server closed it with this code.
    Closed(CloseCode),
    /// The client closed it or the socket broke.
    ClientGone,
    /// A write did not complete in time; the socket was dropped without a close frame.
    WriteStalled,
}

#[derive(Debug)]
pub(super) enum WriteError {
    Socket,
    TimedOut,
}

impl From<WriteError> for Ended {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Socket => Ended::ClientGone,
            WriteError::TimedOut => Ended::WriteStalled,
        }
    }
}

/// A WebSocket: a real one (`ws::handshake::WebSocket`), or a pair of channels in unit
/// tests.
///
/// Kept whole, not split into halves: a connection reads and writes from one task,
/// never at once (a write happens after `select!` has dropped the pending read), and
/// split halves would take a lock on every read and write.
pub(crate) trait MessageSocket:
    Sink<Message, Error = tungstenite::Error>
    + Stream<Item = Result<Message, tungstenite::Error>>
    + Unpin
{
    /// Writes bytes that are complete WebSocket frames already (a busy room's batch,
    /// `Outbound::Framed`) straight to the connection; returns how many were taken,
    /// as `AsyncWrite` does. Whatever the `Sink` holds must have been flushed first.
    fn poll_write_framed(&mut self, cx: &mut Context<'_>, framed: &[u8])
    -> Poll<io::Result<usize>>;
}

impl MessageSocket for crate::ws::handshake::WebSocket {
    fn poll_write_framed(
        &mut self,
        cx: &mut Context<'_>,
        framed: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(self.get_mut()).poll_write(cx, framed)
    }
}

/// One WebSocket, with a deadline on every write and a rate limit on the client's
/// pings and pongs.
pub(crate) struct Socket<T> {
    socket: T,
    write_timeout: Duration,
    control_frames: TokenBucket,
}

impl<T: MessageSocket> Socket<T> {
    pub(crate) fn new(socket: T, write_timeout: Duration) -> Self {
        Socket {
            socket,
            write_timeout,
            control_frames: TokenBucket::new(CONTROL_FRAMES_PER_SECOND, CONTROL_FRAME_BURST),
        }
    }

    // The writes are plain fns returning their future rather than `async fn`s: an
    // async fn would hold its arguments once more, and the connection's loop keeps
    // room for its largest write for its whole life.

    pub(super) fn send(
        &mut self,
        message: Message,
    ) -> Within<impl Future<Output = WriteResult> + '_> {
        within(self.write_timeout, self.socket.send(message))
    }

    pub(super) fn send_frame(
        &mut self,
        frame: &ServerFrame,
    ) -> Within<impl Future<Output = WriteResult> + '_> {
        self.send(Message::Text(frame.to_json().into()))
    }

    /// Writes `frames` in order and flushes, all within one deadline. Batches already
    /// framed go straight to the connection, after everything the `Sink` holds:
    /// what was fed here, and what it may have queued by itself (a pong to the
    /// client's ping, perhaps half written), which must never be cut by other bytes.
    pub(super) fn send_batch<I: IntoIterator<Item = Outbound>>(
        &mut self,
        frames: I,
    ) -> Within<impl Future<Output = WriteResult> + use<'_, T, I>> {
        let socket = &mut self.socket;
        within(self.write_timeout, async move {
            let mut fed = false;
            for frame in frames {
                match frame {
                    Outbound::Text(text) => {
                        socket.feed(Message::Text(text)).await?;
                        fed = true;
                    }
                    Outbound::Framed(framed) => {
                        socket.flush().await?;
                        fed = false;
                        write_framed(socket, &framed).await?;
                    }
                }
            }
            if fed {
                socket.flush().await?;
            }
            Ok(())
        })
    }

    /// The next read, judged by the rules every socket reads by; a ping or pong
    /// flood ends the connection with 1008.
    pub(super) async fn receive(&mut self, max_message_bytes: usize) -> Result<Message, Ended> {
        let message = message_or_end(self.socket.next().await, max_message_bytes)?;
        if matches!(message, Message::Ping(_) | Message::Pong(_)) && !self.control_frames.try_take()
        {
            return Err(Ended::Closed(CloseCode::PolicyViolation));
        }
        Ok(message)
    }

    /// Sends a close frame with `code`, then waits (briefly) for the client's close
    /// reply so the close frame is not lost to a TCP reset.
    pub(crate) async fn close(self, code: CloseCode) {
        self.close_with(code, code.reason()).await
    }

    /// [`Self::close`] with a reason of the caller's (at most 123 bytes, as a close
    /// frame allows).
    pub(crate) async fn close_with(mut self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code: WireCloseCode::from(code.code()),
            reason: Utf8Bytes::from(reason),
        };
        if self.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        let stream = &mut self.socket;
        let _ = timeout(CLOSE_HANDSHAKE, async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Sends the close frame when the server ended the connection; returns why it ended.
    pub(super) async fn finish(self, ended: Ended) -> Ended {
        if let Ended::Closed(code) = ended {
            self.close(code).await;
        }
        ended
    }
}

pub(super) type WriteResult = Result<(), tungstenite::Error>;

/// Writes all of `framed` (complete frames) to the connection.
async fn write_framed<T: MessageSocket>(socket: &mut T, mut framed: &[u8]) -> WriteResult {
    while !framed.is_empty() {
        let written = poll_fn(|cx| socket.poll_write_framed(cx, framed)).await?;
        if written == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero).into());
        }
        framed = &framed[written..];
    }
    Ok(())
}

pin_project_lite::pin_project! {
    /// A write that fails with [`WriteError::TimedOut`] unless done within `limit`.
    ///
    /// Most writes complete at once; the deadline's timer is made (boxed) only for a
    /// write that has to wait, so a connection's future holds no timer for its writes.
    pub(super) struct Within<F> {
        #[pin]
        write: F,
        limit: Duration,
        deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    }
}

fn within<F: Future<Output = WriteResult>>(limit: Duration, write: F) -> Within<F> {
    Within {
        write,
        limit,
        deadline: None,
    }
}

impl<F: Future<Output = WriteResult>> Future for Within<F> {
    type Output = Result<(), WriteError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if let std::task::Poll::Ready(written) = this.write.poll(cx) {
            return std::task::Poll::Ready(written.map_err(|_| WriteError::Socket));
        }
        let limit = *this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        deadline
            .as_mut()
            .poll(cx)
            .map(|()| Err(WriteError::TimedOut))
    }
}

/// The rules every socket reads by: a message to handle, or why the connection ends
/// (the stream's end, a client close or a broken read; 1009 for a message over the
/// size limit).
pub(super) fn message_or_end(
    incoming: Option<Result<Message, tungstenite::Error>>,
    max_message_bytes: usize,
) -> Result<Message, Ended> {
    match incoming {
        None | Some(Ok(Message::Close(_))) => Err(Ended::ClientGone),
        Some(Err(tungstenite::Error::Capacity(_))) => Err(Ended::Closed(CloseCode::TooBig)),
        Some(Err(_)) => Err(Ended::ClientGone),
        Some(Ok(Message::Text(text))) if text.len() > max_message_bytes => {
            Err(Ended::Closed(CloseCode::TooBig))
        }
        Some(Ok(message)) => Ok(message),
    }
}
