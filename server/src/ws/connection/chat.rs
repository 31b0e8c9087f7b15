//! A chat member's connection: the loop over its frames, its queue, its timers and
//! the server's shutdown.

use std::time::{Duration, SystemTime};

use chorus_protocol::{CloseCode, ServerFrame};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tungstenite::{Message, Utf8Bytes};

use super::gate::{Gate, Stop, Stopped};
use super::heartbeat::{Beat, Heartbeat};
use super::replies::{ChatMember, Credentials};
use super::settings::ConnectionSettings;
use super::socket::{Ended, MessageSocket, Socket, WriteError};
use crate::hub::{FrameBytes, Joined, MemberQueue, Outbound};
use crate::limits::token_bucket::TokenBucket;

/// Runs a chat member's connection until it ends, then closes it with the right code.
///
/// Not an `async fn`: an async fn keeps its arguments for as long as it runs and moves
/// them into locals besides, so whatever is passed by value would be held twice (and
/// again by the loop it calls) for the connection's whole life. Here they are taken
/// apart first, and the future holds each piece once.
pub(crate) fn run_chat<'a, T: MessageSocket + 'a>(
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
    let mut member = ChatMember {
        membership,
        credentials,
        metrics: &settings.metrics,
        publish_limits: &settings.publish_limits,
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
    member: &mut ChatMember<'_>,
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

/// Turns a wall-clock deadline into a timer deadline (now, if it has passed).
pub(super) fn deadline_from(at: SystemTime) -> Instant {
    let remaining = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + remaining
}
