//! What a chat member's frames lead to: publish, typing, refresh, and the replies.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use chorus_protocol::{ClientFrame, ErrorCode, RoomName, ServerFrame, TYPING_MIN_GAP_MS};
use tokio::time::Instant;
use tungstenite::Message;

use crate::auth::Auth;
use crate::hub::{Membership, PublishError};
use crate::limits::token_bucket::TokenBucket;
use crate::limits::{PublishLimits, PublishRefused, Removal};
use crate::observe::metrics::Metrics;

/// The token a member connected with: when the connection must end (4002), and how
/// a renewed token sent over the open socket (`refresh`) is judged.
pub(crate) struct Credentials<'a> {
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
    /// The client address it connected from, for the per-address publish rate.
    pub client: IpAddr,
}

/// A chat member's side of the conversation: what it may send, and where it goes.
pub(super) struct ChatMember<'a> {
    pub(super) membership: Membership,
    pub(super) credentials: Credentials<'a>,
    pub(super) metrics: &'a Metrics,
    /// The rates shared by a user's sockets and by an address's.
    pub(super) publish_limits: &'a PublishLimits,
    pub(super) bucket: TokenBucket,
    pub(super) rate_limit: u32,
    /// When a `typing` was last passed on.
    pub(super) typed_at: Option<Instant>,
}

impl ChatMember<'_> {
    /// Handles one message from the client; returns the frame to answer with, if any.
    ///
    /// Every frame that gets an answer (a message, a `refresh`, a refused frame)
    /// takes from the connection's rate: past it the answer is `rate_limited`, and a
    /// `refresh` is not even verified. Pongs and typing have limits of their own.
    pub(super) async fn reply_to(&mut self, message: Message) -> Option<ServerFrame> {
        let parsed = match message {
            Message::Text(text) => ClientFrame::parse(&text),
            Message::Binary(_) => {
                return Some(self.over_rate(None).unwrap_or_else(|| {
                    ServerFrame::error(
                        ErrorCode::BinaryNotSupported,
                        "binary frames are not supported; send JSON text frames",
                    )
                }));
            }
            // Pings are answered by the WebSocket layer; both count as life. (Raw
            // frames are never read.)
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                return None;
            }
        };
        match parsed {
            Ok(ClientFrame::Pong) => None,
            Ok(ClientFrame::Typing) => {
                self.typing().await;
                None
            }
            Ok(ClientFrame::Refresh { token }) => Some(match self.over_rate(None) {
                Some(limited) => limited,
                None => self.refresh(&token).await,
            }),
            Ok(ClientFrame::Message { content, reference }) => {
                if let Some(limited) = self.over_rate(reference.clone()) {
                    return Some(limited);
                }
                self.publish(content, reference).await
            }
            Err(err) => Some(
                self.over_rate(err.reference.clone())
                    .unwrap_or_else(|| err.into_frame()),
            ),
        }
    }

    /// Takes one frame's worth of the rate; the `rate_limited` answer (with the
    /// frame's `ref`) when none is left.
    fn over_rate(&mut self, reference: Option<String>) -> Option<ServerFrame> {
        if self.bucket.try_take() {
            return None;
        }
        Some(ServerFrame::error_for(
            ErrorCode::RateLimited,
            format!(
                "more than {} frames per second; this one was dropped (retry in {} ms)",
                self.rate_limit,
                self.bucket.retry_after().as_millis().max(1)
            ),
            reference,
        ))
    }

    /// Publishes a message the rate allowed: the `ack` (when it has a `ref`), or why
    /// it was not sent.
    async fn publish(&mut self, content: String, reference: Option<String>) -> Option<ServerFrame> {
        if !self.credentials.may_publish {
            return Some(ServerFrame::error_for(
                ErrorCode::Forbidden,
                "this token may not post in this room; the message was not sent",
                reference,
            ));
        }
        let credentials = &self.credentials;
        if let Err(refused) = self
            .publish_limits
            .check(&credentials.user_id, credentials.client)
        {
            let (wait, whose, per_second) = match refused {
                PublishRefused::User { wait, per_second } => (wait, "this user", per_second),
                PublishRefused::Address { wait, per_second } => (wait, "this address", per_second),
            };
            return Some(ServerFrame::error_for(
                ErrorCode::RateLimited,
                format!(
                    "more than {per_second} messages per second from {whose}, across its \
                     connections; this one was dropped (retry in {} ms)",
                    wait.as_millis().max(1)
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
    pub(super) async fn typing(&mut self) {
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
    pub(super) async fn refresh(&mut self, token: &str) -> ServerFrame {
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
