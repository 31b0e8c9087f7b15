//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::auth::api_keys::ApiKeys;
use crate::auth::permissions::RoomPatterns;
use crate::hub::Hub;
use crate::limits::{AddressLimits, UserSockets};
use crate::ws::connection::ConnectionSettings;

/// How guest tokens are issued and refreshed.
#[derive(Debug, Clone, Copy)]
pub struct GuestTokens {
    pub ttl: Duration,
    /// How long after expiring a guest token may still be refreshed.
    pub refresh_grace: Duration,
}

/// State shared by every request handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub auth: Arc<Auth>,
    /// `--api-key`s, for the server API.
    pub api_keys: Arc<ApiKeys>,
    pub connection: Arc<ConnectionSettings>,
    /// `None` when guest login is disabled.
    pub guests: Option<GuestTokens>,
    /// One permit per open chat socket.
    pub permits: Arc<Semaphore>,
    /// One permit per open echo socket (`None`: the echo endpoint is off).
    pub echo_permits: Option<Arc<Semaphore>>,
    /// Chat sockets per user.
    pub user_sockets: Arc<UserSockets>,
    /// Upgrades and guest tokens per client address.
    pub address_limits: Arc<AddressLimits>,
    /// `--public-rooms`: what the room list shows a caller without a token.
    pub public_rooms: Arc<RoomPatterns>,
    /// `--allowed-origins`; empty: pages of the request's own host.
    pub allowed_origins: Arc<Vec<String>>,
    /// Cancelled when the server shuts down; every socket then closes with 1001.
    pub shutdown: CancellationToken,
    /// Tracks socket tasks so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
    /// How long a request's body may take to arrive (`--http-idle-timeout`).
    pub body_timeout: Duration,
    pub leptos_options: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
