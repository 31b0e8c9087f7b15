//! The room list (`GET /api/rooms`) from a cache: made whole at most once a second
//! however often it is asked for (with Redis that reads every room), and patched
//! in between for the rooms a member joined or left on this server, so a member
//! always finds its own room while churn costs a read per changed room, not one per
//! room. Changes made on other servers show within a second.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chorus_protocol::RoomSummary;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::sync::lock;

/// The oldest a served list may be.
pub(super) const MAX_AGE: Duration = Duration::from_secs(1);

/// What a room is now, read again for a patch: its summary, or `None` when nobody
/// is in it.
pub(super) type Reread = (String, Option<RoomSummary>);

#[derive(Default)]
pub(super) struct Listing {
    /// Rooms a member joined or left on this server since the list was last made or
    /// patched.
    changed: std::sync::Mutex<HashSet<String>>,
    /// The last list, and when it was made whole. Held while a list is made or
    /// patched, so concurrent requests wait for that one instead of each making theirs.
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    at: Instant,
    rooms: Arc<Vec<RoomSummary>>,
}

impl Listing {
    /// A member joined or left `room` on this server.
    pub(super) fn changed(&self, room: &str) {
        lock(&self.changed).insert(room.to_owned());
    }

    /// The cached list while it is fresh, with the rooms changed here since read
    /// again by `reread`; the one `whole` makes once it is a second old (or there is
    /// none). A failure changes nothing: the next call tries again.
    pub(super) async fn get<E, Whole, Patch>(
        &self,
        whole: impl FnOnce() -> Whole,
        reread: impl FnOnce(Vec<String>) -> Patch,
    ) -> Result<Arc<Vec<RoomSummary>>, E>
    where
        Whole: Future<Output = Result<Vec<RoomSummary>, E>>,
        Patch: Future<Output = Result<Vec<Reread>, E>>,
    {
        let mut cached = self.cached.lock().await;
        // Taken now: a change while this list is made is for the next one.
        let changed: Vec<String> = std::mem::take(&mut *lock(&self.changed))
            .into_iter()
            .collect();
        let made = match cached.as_ref() {
            Some(fresh) if fresh.at.elapsed() < MAX_AGE => {
                if changed.is_empty() {
                    return Ok(fresh.rooms.clone());
                }
                reread(changed.clone())
                    .await
                    .map(|rooms| (fresh.at, patched(&fresh.rooms, rooms)))
            }
            _ => {
                let at = Instant::now();
                whole().await.map(|rooms| (at, rooms))
            }
        };
        match made {
            Ok((at, rooms)) => {
                let rooms = Arc::new(rooms);
                *cached = Some(Cached {
                    at,
                    rooms: rooms.clone(),
                });
                Ok(rooms)
            }
            Err(err) => {
                lock(&self.changed).extend(changed);
                Err(err)
            }
        }
    }
}

/// `rooms` (sorted by name) with each reread room put in its place: its summary
/// where someone is in it, nothing where nobody is.
fn patched(rooms: &[RoomSummary], reread: Vec<Reread>) -> Vec<RoomSummary> {
    let mut rooms = rooms.to_vec();
    for (name, summary) in reread {
        match (
            rooms.binary_search_by(|room| room.name.as_str().cmp(&name)),
            summary,
        ) {
            (Ok(at), Some(summary)) => rooms[at] = summary,
            (Ok(at), None) => {
                rooms.remove(at);
            }
            (Err(at), Some(summary)) => rooms.insert(at, summary),
            (Err(_), None) => {}
        }
    }
    rooms
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn room(name: &str, members: usize) -> RoomSummary {
        RoomSummary {
            name: name.into(),
            members,
            connections: members,
        }
    }

    fn names(rooms: &[RoomSummary]) -> Vec<(&str, usize)> {
        rooms
            .iter()
            .map(|room| (room.name.as_str(), room.members))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn made_whole_once_a_second_and_patched_for_local_changes_between() {
        let listing = Listing::default();
        let wholes = AtomicUsize::new(0);
        let whole = |rooms: Vec<RoomSummary>| {
            wholes.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(rooms) }
        };
        let unused = |_: Vec<String>| async { panic!("nothing changed here") };
        let first = listing
            .get(|| whole(vec![room("a", 1), room("c", 1)]), unused)
            .await
            .unwrap();
        assert_eq!(names(&first), [("a", 1), ("c", 1)]);
        let cached = listing.get(|| whole(vec![]), unused).await.unwrap();
        assert_eq!(names(&cached), [("a", 1), ("c", 1)], "cached");
        // A join in `b` and a leave that emptied `c`, here: only those are read again.
        listing.changed("b");
        listing.changed("c");
        let patched = listing
            .get(
                || whole(vec![]),
                |mut changed: Vec<String>| async move {
                    changed.sort();
                    assert_eq!(changed, ["b", "c"]);
                    Ok::<_, Infallible>(vec![("b".into(), Some(room("b", 2))), ("c".into(), None)])
                },
            )
            .await
            .unwrap();
        assert_eq!(names(&patched), [("a", 1), ("b", 2)]);
        assert_eq!(wholes.load(Ordering::SeqCst), 1, "patched, not made again");
        tokio::time::advance(MAX_AGE).await;
        let again = listing
            .get(|| whole(vec![room("d", 1)]), unused)
            .await
            .unwrap();
        assert_eq!(names(&again), [("d", 1)], "a second old: made whole");
        assert_eq!(wholes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failure_is_not_cached_and_its_changes_are_read_next_time() {
        let listing = Listing::default();
        let fails = || async { Err::<Vec<RoomSummary>, _>("down") };
        let no_patch = |_: Vec<String>| async { Err::<Vec<Reread>, _>("down") };
        assert!(listing.get(fails, no_patch).await.is_err());
        let up = || async { Ok::<_, &str>(vec![room("up", 1)]) };
        let rooms = listing.get(up, no_patch).await.unwrap();
        assert_eq!(names(&rooms), [("up", 1)]);
        listing.changed("new");
        assert!(listing.get(up, no_patch).await.is_err(), "the patch failed");
        let rooms = listing
            .get(up, |changed: Vec<String>| async move {
                assert_eq!(changed, ["new"], "still to be read");
                Ok::<_, &str>(vec![("new".into(), Some(room("new", 1)))])
            })
            .await
            .unwrap();
        assert_eq!(names(&rooms), [("new", 1), ("up", 1)]);
    }
}
