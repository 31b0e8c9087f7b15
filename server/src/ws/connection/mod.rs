//! One WebSocket after the upgrade: the read loop, the write loop, heartbeats,
//! rate limiting and close codes.
//!
//! A connection is a single task that `select!`s over the client's frames, its
//! queue from the hub, its timers and the server's shutdown signal. It runs over a
//! [`Socket`], generic over `Sink`/`Stream`, so it runs the same over a real socket
//! or over channels in a unit test. Every write has a deadline: a peer that stops
//! reading cannot pin the task forever.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use chorus_protocol::{
    ClientFrame, CloseCode, ErrorCode, RoomName, ServerFrame, TYPING_MIN_GAP_MS,
};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tungstenite::{Message, Utf8Bytes};

use crate::auth::Auth;
use crate::hub::{FrameBytes, Joined, MemberQueue, Membership, Outbound, PublishError};
use crate::limits::Removal;
use crate::limits::token_bucket::TokenBucket;
use crate::observe::metrics::Metrics;
use gate::{Gate, Stop, Stopped};

mod gate;

/// How long a close handshake may take before the socket is dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);
/// WebSocket pings and pongs a client may send per second, and at once: far more
/// than any keepalive needs, far fewer than a flood. Each ping costs a pong the
/// server must write, so a client that pings and never reads would otherwise grow
/// the server's write buffer as fast as it uploads.
const CONTROL_FRAMES_PER_SECOND: u32 = 5;
const CONTROL_FRAME_BURST: u32 = 20;

/// Per-connection limits and timers.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub max_message_bytes: usize,
    pub rate_limit: u32,
    pub rate_limit_burst: u32,
    /// Longest a single write (or batch of writes) may block.
    pub write_timeout: Duration,
    /// Where refused frames are counted.
    pub metrics: Arc<Metrics>,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The server closed it with this code.
    Closed(CloseCode),
    /// The client closed it or the socket broke.
    ClientGone,
    /// A write did not complete in time; the socket was dropped without a close frame.
    WriteStalled,
}

#[derive(Debug)]
enum WriteError {
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

/// A WebSocket: a real one (`upgrade::WebSocket`), or a pair of channels in unit
/// tests.
///
/// Kept whole, not split into halves: a connection reads and writes from one task,
/// never at once (a write happens after `select!` has dropped the pending read), and
/// split halves would take a lock on every read and write.
pub trait MessageSocket:
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
pub struct Socket<T> {
    socket: T,
    write_timeout: Duration,
    control_frames: TokenBucket,
}

impl<T: MessageSocket> Socket<T> {
    pub fn new(socket: T, write_timeout: Duration) -> Self {
        Socket {
            socket,
            write_timeout,
            control_frames: TokenBucket::new(CONTROL_FRAMES_PER_SECOND, CONTROL_FRAME_BURST),
        }
    }

    // The writes are plain fns returning their future rather than `async fn`s: an
    // async fn would hold its arguments once more, and the connection's loop keeps
    // room for its largest write for its whole life.

    fn send(&mut self, message: Message) -> Within<impl Future<Output = WriteResult> + '_> {
        within(self.write_timeout, self.socket.send(message))
    }

    fn send_frame(
        &mut self,
        frame: &ServerFrame,
    ) -> Within<impl Future<Output = WriteResult> + '_> {
        self.send(Message::Text(frame.to_json().into()))
    }

    /// Writes `frames` in order and flushes, all within one deadline. Batches already
    /// framed go straight to the connection, after everything the `Sink` holds:
    /// what was fed here, and what it may have queued by itself (a pong to the
    /// client's ping, perhaps half written), which must never be cut by other bytes.
    fn send_batch<I: IntoIterator<Item = Outbound>>(
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
    async fn receive(&mut self, max_message_bytes: usize) -> Result<Message, Ended> {
        let message = message_or_end(self.socket.next().await, max_message_bytes)?;
        if matches!(message, Message::Ping(_) | Message::Pong(_)) && !self.control_frames.try_take()
        {
            return Err(Ended::Closed(CloseCode::PolicyViolation));
        }
        Ok(message)
    }

    /// Sends a close frame with `code`, then waits (briefly) for the client's close
    /// reply so the close frame is not lost to a TCP reset.
    pub async fn close(self, code: CloseCode) {
        self.close_with(code, code.reason()).await
    }

    /// [`Self::close`] with a reason of the caller's (at most 123 bytes, as a close
    /// frame allows).
    pub async fn close_with(mut self, code: CloseCode, reason: &str) {
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
    async fn finish(self, ended: Ended) -> Ended {
        if let Ended::Closed(code) = ended {
            self.close(code).await;
        }
        ended
    }
}

type WriteResult = Result<(), tungstenite::Error>;

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
    struct Within<F> {
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

/// The server's side of liveness: a ping every interval, the end of a client silent
/// (no frame of any kind) for the interval plus the timeout, and, for a chat member,
/// the end of its token. One timer serves all three: it is polled on every wake-up of
/// the connection's loop (every delivery), so one is cheaper than three, and a
/// connection keeps one timer entry instead of three.
struct Heartbeat {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    interval: Duration,
    next_ping: Instant,
    last_heard: Instant,
    silence_limit: Duration,
    /// When the connection's token expires (chat members).
    expires: Option<Instant>,
}

/// What the heartbeat asks for next.
enum Beat {
    /// Time to ping the client.
    Ping,
    /// The client has been silent too long: close with 4009.
    Silent,
    /// The token has expired: close with 4002.
    Expired,
}

impl Heartbeat {
    fn new(settings: &ConnectionSettings, expires: Option<Instant>) -> Self {
        let now = Instant::now();
        let next_ping = now + settings.heartbeat_interval;
        let mut heartbeat = Heartbeat {
            timer: Box::pin(sleep_until(next_ping)),
            interval: settings.heartbeat_interval,
            next_ping,
            last_heard: now,
            silence_limit: settings.heartbeat_interval + settings.heartbeat_timeout,
            expires,
        };
        heartbeat.arm();
        heartbeat
    }

    /// The client sent something: it is alive. (The timer is not moved: when it fires
    /// for the old silence limit, it finds the client heard and waits on.)
    fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// The token was renewed: it now expires at `at`.
    fn expires_at(&mut self, at: Instant) {
        self.expires = Some(at);
        self.arm();
    }

    /// Sets the timer for whichever comes first.
    fn arm(&mut self) {
        let silent_at = self.last_heard + self.silence_limit;
        let mut due = self.next_ping.min(silent_at);
        if let Some(expires) = self.expires {
            due = due.min(expires);
        }
        if self.timer.deadline() != due {
            self.timer.as_mut().reset(due);
        }
    }

    /// Waits for the next ping, the silence limit or the token's end. Cancel-safe, for
    /// `select!`.
    async fn next(&mut self) -> Beat {
        loop {
            self.timer.as_mut().await;
            let now = Instant::now();
            if self.expires.is_some_and(|expires| now >= expires) {
                return Beat::Expired;
            }
            if now >= self.last_heard + self.silence_limit {
                return Beat::Silent;
            }
            let ping = now >= self.next_ping;
            if ping {
                // Missed ticks are not made up: the next ping is an interval from now.
                self.next_ping = now + self.interval;
            }
            self.arm();
            if ping {
                return Beat::Ping;
            }
        }
    }
}

/// The rules every socket reads by: a message to handle, or why the connection ends
/// (the stream's end, a client close or a broken read; 1009 for a message over the
/// size limit).
fn message_or_end(
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

/// The token a member connected with: when the connection must end (4002), and how
/// a renewed token sent over the open socket (`refresh`) is judged.
pub struct Credentials<'a> {
    pub auth: &'a Auth,
    /// The connected user: a renewed token must be for the same one.
    pub user_id: String,
    pub valid_until: SystemTime,
    /// Where it is connected: a renewed token must still allow joining it.
    pub room: RoomName,
    /// Whether the token allows posting in that room (its `publish` claim).
    pub may_publish: bool,
    /// When the server API removes the user: the connection closes with 4010.
    pub removal: Removal,
}

/// Runs a chat member's connection until it ends, then closes it with the right code.
///
/// Not an `async fn`: an async fn keeps its arguments for as long as it runs and moves
/// them into locals besides, so whatever is passed by value would be held twice (and
/// again by the loop it calls) for the connection's whole life. Here they are taken
/// apart first, and the future holds each piece once.
pub fn run_chat<'a, T: MessageSocket + 'a>(
    socket: Box<Socket<T>>,
    joined: Joined,
    credentials: Credentials<'a>,
    settings: &'a ConnectionSettings,
    shutdown: &'a CancellationToken,
) -> impl Future<Output = Ended> + 'a {
    let Joined {
        membership,
        welcome,
        backlog,
        queue,
    } = joined;
    let mut first_frames =
        welcome.into_frames(settings.heartbeat_interval, settings.heartbeat_timeout);
    first_frames.extend(backlog);
    let mut member = Member {
        membership,
        credentials,
        metrics: &settings.metrics,
        bucket: TokenBucket::new(settings.rate_limit, settings.rate_limit_burst),
        rate_limit: settings.rate_limit,
        typed_at: None,
    };
    let mut socket = socket;
    let mut queue = queue;
    async move {
        let ended = chat_loop(
            &mut socket,
            &mut member,
            &mut queue,
            first_frames,
            settings,
            shutdown,
        )
        .await;
        if ended == Ended::Closed(CloseCode::Removed)
            && let Some(reason) = member.credentials.removal.reason()
        {
            Box::pin((*socket).close_with(CloseCode::Removed, reason)).await;
            return ended;
        }
        Box::pin((*socket).finish(ended)).await
    }
}

async fn chat_loop<T: MessageSocket>(
    socket: &mut Socket<T>,
    member: &mut Member<'_>,
    queue: &mut MemberQueue,
    first_frames: Vec<FrameBytes>,
    settings: &ConnectionSettings,
    shutdown: &CancellationToken,
) -> Ended {
    // Boxed: once per connection, and it would otherwise make the loop's future (held
    // for the connection's life) larger.
    if let Err(err) =
        Box::pin(socket.send_batch(first_frames.into_iter().map(Outbound::Text))).await
    {
        return err.into();
    }
    let removal = member.credentials.removal.clone();
    let mut stop = Stop::new(async move {
        tokio::select! {
            () = shutdown.cancelled() => Stopped::ShuttingDown,
            () = removal.removed() => Stopped::Removed,
        }
    });

    let expires = deadline_from(member.credentials.valid_until);
    let mut heartbeat = Heartbeat::new(settings, Some(expires));
    let ping_frame = Utf8Bytes::from(ServerFrame::Ping.to_json());

    let reads = Gate::new();

    loop {
        tokio::select! {
            stopped = &mut stop => match stopped {
                // What was queued goes out first: the sender of a message may have
                // its ack already, and counts on seeing the message too.
                Stopped::ShuttingDown => {
                    if let Err(err) = write_queued(socket, queue).await {
                        return err.into();
                    }
                    return Ended::Closed(CloseCode::GoingAway);
                }
                Stopped::Removed => {
                    member.membership.leave_at_once();
                    return Ended::Closed(CloseCode::Removed);
                }
            },
            beat = heartbeat.next() => match beat {
                Beat::Silent => return Ended::Closed(CloseCode::HeartbeatTimeout),
                Beat::Expired => return Ended::Closed(CloseCode::TokenExpired),
                Beat::Ping => {
                    if let Err(err) = socket.send(Message::Text(ping_frame.clone())).await {
                        return err.into();
                    }
                }
            },
            ready = queue.ready() => {
                if !ready {
                    // The hub ended our queue: we fell too far behind.
                    return Ended::Closed(CloseCode::TooSlow);
                }
                if let Err(err) = write_queued(socket, queue).await {
                    return err.into();
                }
            }
            incoming = reads.pass(socket.receive(settings.max_message_bytes)) => {
                let message = match incoming {
                    Ok(message) => message,
                    Err(ended) => return ended,
                };
                heartbeat.heard();
                // Boxed: a publish through Redis is a large future, and only a
                // client's own frames take this path, never a delivery.
                let reply = Box::pin(member.reply_to(message)).await;
                match &reply {
                    Some(ServerFrame::Refreshed) => {
                        heartbeat.expires_at(deadline_from(member.credentials.valid_until));
                    }
                    Some(ServerFrame::Error { code, .. }) => settings.metrics.refused(code.as_str()),
                    _ => {}
                }
                if let Some(reply) = reply
                    && let Err(err) = socket.send_frame(&reply).await
                {
                    return err.into();
                }
            }
        }
    }
}

/// Writes everything queued, under one flush.
async fn write_queued<T: MessageSocket>(
    socket: &mut Socket<T>,
    queue: &mut MemberQueue,
) -> Result<(), WriteError> {
    let mut frames = queue.take_all();
    socket.send_batch(frames.drain(..)).await?;
    queue.give_back(frames);
    Ok(())
}

/// A chat member's side of the conversation: what it may send, and where it goes.
struct Member<'a> {
    membership: Membership,
    credentials: Credentials<'a>,
    metrics: &'a Metrics,
    bucket: TokenBucket,
    rate_limit: u32,
    /// When a `typing` was last passed on.
    typed_at: Option<Instant>,
}

impl Member<'_> {
    /// Handles one message from the client; returns the frame to answer with, if any.
    async fn reply_to(&mut self, message: Message) -> Option<ServerFrame> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return Some(ServerFrame::error(
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not supported; send JSON text frames",
                ));
            }
            // Pings are answered by the WebSocket layer; both count as life. (Raw
            // frames are never read.)
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                return None;
            }
        };
        let (content, reference) = match ClientFrame::parse(&text) {
            Ok(ClientFrame::Message { content, reference }) => (content, reference),
            Ok(ClientFrame::Pong) => return None,
            Ok(ClientFrame::Typing) => {
                self.typing().await;
                return None;
            }
            Ok(ClientFrame::Refresh { token }) => return Some(self.refresh(&token).await),
            Err(err) => return Some(err.into_frame()),
        };
        if !self.credentials.may_publish {
            return Some(ServerFrame::error_for(
                ErrorCode::Forbidden,
                "this token may not post in this room; the message was not sent",
                reference,
            ));
        }
        if !self.bucket.try_take() {
            return Some(ServerFrame::error_for(
                ErrorCode::RateLimited,
                format!(
                    "more than {} messages per second; this one was dropped (retry in {} ms)",
                    self.rate_limit,
                    self.bucket.retry_after().as_millis().max(1)
                ),
                reference,
            ));
        }
        match self
            .membership
            .publish_once(content, reference.as_deref())
            .await
        {
            // The message reaches the sender too, as a broadcast; the ack tells it
            // which of its messages that was (or, for a resend, that it already was).
            Ok(published) => reference.map(|reference| ServerFrame::Ack {
                reference,
                id: published.id,
            }),
            // Evicted: the queue has ended, and the next turn of the loop closes the
            // socket with 4008.
            Err(PublishError::NotMember) => None,
            Err(PublishError::Unavailable) => Some(ServerFrame::error_for(
                ErrorCode::Unavailable,
                "messages cannot be stored right now; this one was not sent",
                reference,
            )),
        }
    }

    /// Passes on that the user is typing: at most every [`TYPING_MIN_GAP_MS`] (more
    /// are dropped, silently: a hint, not a message), and never from a member who
    /// may not post.
    async fn typing(&mut self) {
        let now = Instant::now();
        let gap = Duration::from_millis(TYPING_MIN_GAP_MS);
        if !self.credentials.may_publish
            || self.typed_at.is_some_and(|at| now.duration_since(at) < gap)
        {
            return;
        }
        self.typed_at = Some(now);
        self.membership.typing().await;
    }

    /// Takes a renewed token for the same user: the connection then lasts until it
    /// expires. A refused one changes nothing (the client learns why).
    async fn refresh(&mut self, token: &str) -> ServerFrame {
        let refused = |message: String| {
            // The token itself is never logged.
            tracing::debug!(reason = %message, "refused a token refresh");
            ServerFrame::error(ErrorCode::InvalidToken, message)
        };
        match self.credentials.auth.verify_current(Some(token)).await {
            Ok(identity) if identity.id != self.credentials.user_id => refused(
                "the token is for another user; a connection keeps the user it joined as".into(),
            ),
            Ok(identity) if !identity.permissions.may_join(&self.credentials.room) => {
                tracing::debug!("refused a token refresh: not allowed in this room");
                ServerFrame::error(
                    ErrorCode::Forbidden,
                    "the token may not join this room; the connection keeps its current token",
                )
            }
            Ok(identity) => {
                let credentials = &mut self.credentials;
                credentials.valid_until = identity.valid_until;
                // What the new token allows from now on, also where it allows less.
                credentials.may_publish = identity.permissions.may_publish(&credentials.room);
                tracing::debug!("token refreshed");
                ServerFrame::Refreshed
            }
            Err(err) => {
                self.metrics.auth_failed(err.reason());
                refused(format!("{err}; the connection keeps its current token"))
            }
        }
    }
}

/// Runs the echo endpoint: every text frame `X` is answered with `Echo: X`.
///
/// It has the chat's heartbeat, with WebSocket-level pings (which browsers answer
/// by themselves): an idle echo socket cannot hold a connection slot for ever.
pub async fn run_echo<T: MessageSocket>(
    mut socket: Socket<T>,
    settings: &ConnectionSettings,
    shutdown: &CancellationToken,
) -> Ended {
    let shutting_down = shutdown.cancelled();
    tokio::pin!(shutting_down);
    let mut heartbeat = Heartbeat::new(settings, None);
    let ended = loop {
        let incoming = tokio::select! {
            () = &mut shutting_down => break Ended::Closed(CloseCode::GoingAway),
            beat = heartbeat.next() => match beat {
                Beat::Silent => break Ended::Closed(CloseCode::HeartbeatTimeout),
                // An echo socket has no token and holds no frames.
                Beat::Expired => break Ended::Closed(CloseCode::TokenExpired),
                Beat::Ping => match socket.send(Message::Ping(Default::default())).await {
                    Ok(()) => continue,
                    Err(err) => break err.into(),
                },
            },
            incoming = socket.receive(settings.max_message_bytes) => incoming,
        };
        match incoming {
            Err(ended) => break ended,
            Ok(message) => {
                heartbeat.heard();
                if let Message::Text(text) = message {
                    let echo = Message::Text(format!("Echo: {}", text.as_str()).into());
                    if let Err(err) = socket.send(echo).await {
                        break err.into();
                    }
                }
            }
        }
    };
    socket.finish(ended).await
}

/// Turns a wall-clock deadline into a timer deadline (now, if it has passed).
fn deadline_from(at: SystemTime) -> Instant {
    let remaining = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + remaining
}

#[cfg(test)]
mod tests;
