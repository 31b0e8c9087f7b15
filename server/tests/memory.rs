//! Rooms are freed when evicted: with `--max-rooms` rooms kept for their history,
//! each round of new rooms evicts the last round's, and the hub's live heap returns
//! to its baseline.
//!
//! A counting global allocator measures the bytes in use, counted per thread: only
//! what this test's own thread allocates and frees is measured, so the test
//! harness's other threads cannot show up as a leak or hide one. The hub under test
//! is synchronous, so all of its allocations happen on this thread.
//!
//! One-time allocations (thread-locals, lazily grown statics, the rooms map's
//! first growth) are made by a warm-up round of the very same workload before the
//! baseline is taken; then several rounds must each give back everything they took.
//! A real leak of even one allocation per room costs at least `ROOMS` bytes a round,
//! so it cannot hide below the tolerance.

// A global allocator is an unsafe trait to implement: counting is the test.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use chorus_server::hub::memory::MemoryHub;
use chorus_server::hub::{HubSettings, Participant, RoomName};

struct Counting;

thread_local! {
    /// Bytes this thread has allocated and not yet freed. `const`-initialised and
    /// without a destructor, so reading it never allocates (no recursion into the
    /// allocator) and it stays usable while a thread shuts down.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: a thread being torn down may still free memory.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

const ROOMS: usize = 2000;
const ROUNDS: usize = 3;

/// Fills `rooms` rooms (named for `round`) with three members and a message each,
/// then empties them all; they stay for their history, in place of the last round's.
/// Returns the bytes in use at the busiest point.
fn busy_rooms(hub: &MemoryHub, round: usize, rooms: usize) -> isize {
    let mut members = Vec::new();
    for room in 0..rooms {
        for user in 0..3 {
            let who = Participant {
                id: format!("user-{user}"),
                name: format!("User {user}"),
            };
            let room = RoomName::parse(&format!("room-{round}-{room}")).unwrap();
            members.push(hub.join(&room, who, None).unwrap());
        }
    }
    for (n, joined) in members.iter().enumerate() {
        joined
            .membership
            .publish(format!("message {n} with some text in it"))
            .unwrap();
    }
    assert_eq!(hub.room_count(), rooms);
    let busiest = live_bytes();
    drop(members);
    assert_eq!(hub.room_count(), rooms, "kept for their history");
    busiest
}

#[test]
fn memory_returns_to_baseline_when_rooms_are_evicted() {
    let hub = MemoryHub::new(HubSettings {
        history_size: 100,
        queue_bytes: 1 << 20,
        max_rooms: ROOMS,
        history_memory: usize::MAX,
        presence_grace: std::time::Duration::ZERO,
        presence_burst: 16,
        write_delay: std::time::Duration::ZERO,
        metrics: Default::default(),
    });
    // The same workload once, so whatever is allocated only the first time is in
    // the baseline.
    busy_rooms(&hub, 0, ROOMS);
    let baseline = live_bytes();

    for round in 1..=ROUNDS {
        let busiest = busy_rooms(&hub, round, ROOMS);
        // The measurement sees the rooms: a round holds well over a kilobyte per room.
        assert!(
            busiest - baseline > (ROOMS * 1000) as isize,
            "round {round}: only {} bytes in use with {ROOMS} busy rooms",
            busiest - baseline
        );
        let held = live_bytes() - baseline;
        assert!(
            held < ROOMS as isize,
            "round {round}: {held} bytes more held after {ROOMS} rooms replaced as many \
             (a leak of one allocation per room holds at least {ROOMS})"
        );
    }
}
