//! The room list (`GET /api/rooms`) from a cache: recomputed at most once a second
//! however often it is asked for (with Redis each computation reads every room), and
//! at once after a member joins or leaves on this server, so a member always finds
//! its own room. Changes made on other servers show within a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chorus_protocol::RoomSummary;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The oldest a served list may be.
pub(super) const MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Listing {
    /// Bumped by every join and leave on this server.
    changes: AtomicU64,
    /// The last list, when it was made and at which `changes`. Held while a new one is
    /// made, so concurrent requests wait for that one instead of each making theirs.
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    at: Instant,
    changes: u64,
    rooms: Arc<Vec<RoomSummary>>,
}

impl Listing {
    pub(super) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// The cached list if it is fresh, else the one `make` returns (then cached).
    pub(super) async fn get<E>(
        &self,
        make: impl Future<Output = Result<Vec<RoomSummary>, E>>,
    ) -> Result<Arc<Vec<RoomSummary>>, E> {
        let mut cached = self.cached.lock().await;
        let changes = self.changes.load(Ordering::Acquire);
        if let Some(fresh) = cached
            .as_ref()
            .filter(|cached| cached.changes == changes && cached.at.elapsed() < MAX_AGE)
        {
            return Ok(fresh.rooms.clone());
        }
        let rooms = Arc::new(make.await?);
        *cached = Some(Cached {
            at: Instant::now(),
            changes,
            rooms: rooms.clone(),
        });
        Ok(rooms)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn room(name: &str) -> RoomSummary {
        RoomSummary {
            name: name.into(),
            members: 1,
            connections: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn recomputed_at_most_once_a_second_or_after_a_local_change() {
        let listing = Listing::default();
        let made = AtomicUsize::new(0);
        let make = |name: &'static str| {
            made.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(vec![room(name)]) }
        };
        assert_eq!(listing.get(make("a")).await.unwrap()[0].name, "a");
        assert_eq!(listing.get(make("b")).await.unwrap()[0].name, "a", "cached");
        listing.changed();
        assert_eq!(
            listing.get(make("c")).await.unwrap()[0].name,
            "c",
            "a join here"
        );
        tokio::time::advance(MAX_AGE).await;
        assert_eq!(
            listing.get(make("d")).await.unwrap()[0].name,
            "d",
            "a second old"
        );
        assert_eq!(
            made.load(Ordering::SeqCst),
            4,
            "every call builds its future"
        );
    }

    #[tokio::test]
    async fn a_failure_is_not_cached() {
        let listing = Listing::default();
        assert!(
            listing
                .get(async { Err::<Vec<RoomSummary>, _>("down") })
                .await
                .is_err()
        );
        let rooms = listing.get(async { Ok::<_, &str>(vec![room("up")]) }).await;
        assert_eq!(rooms.unwrap()[0].name, "up");
    }
}
