//! The echo endpoint's connection.

use chorus_protocol::CloseCode;
use tokio_util::sync::CancellationToken;
use tungstenite::Message;

use super::heartbeat::{Beat, Heartbeat};
use super::settings::ConnectionSettings;
use super::socket::{Ended, MessageSocket, Socket};

/// Runs the echo endpoint: every text frame `X` is answered with `Echo: X`.
///
/// It has the chat's heartbeat, with WebSocket-level pings (which browsers answer
/// by themselves): an idle echo socket cannot hold a connection slot for ever.
pub(crate) async fn run_echo<T: MessageSocket>(
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
