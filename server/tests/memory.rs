//! Rooms are freed when empty: the hub's live heap returns to its baseline.
//!
//! A counting global allocator measures bytes in use; this file is its own test
//! binary with a single test so nothing else allocates concurrently.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use chorus_server::hub::memory::MemoryHub;
use chorus_server::hub::{HubSettings, Participant};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn busy_rooms(hub: &MemoryHub, rooms: usize) {
    let mut members = Vec::new();
    for room in 0..rooms {
        for user in 0..3 {
            let who = Participant {
                id: format!("user-{user}"),
                name: format!("User {user}"),
            };
            members.push(hub.join(&format!("room-{room}"), who, None));
        }
    }
    for (n, joined) in members.iter().enumerate() {
        joined
            .membership
            .publish(format!("message {n} with some text in it"))
            .unwrap();
    }
    assert_eq!(hub.room_count(), rooms);
    drop(members);
    assert_eq!(hub.room_count(), 0);
}

#[test]
fn memory_returns_to_baseline_when_rooms_empty() {
    let hub = MemoryHub::new(HubSettings {
        history_size: 100,
        queue_capacity: 64,
    });
    // Warm up lazily allocated state (thread-locals, tracing) before the baseline.
    busy_rooms(&hub, 1);
    let baseline = LIVE_BYTES.load(Ordering::Relaxed);

    busy_rooms(&hub, 2000);
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    assert!(
        after - baseline <= 0,
        "{} bytes still held after 2000 rooms were emptied",
        after - baseline
    );

    // And it did hold memory while busy: the measurement can see rooms.
    let members: Vec<_> = (0..100)
        .map(|n| {
            hub.join(
                &format!("held-{n}"),
                Participant {
                    id: "u".into(),
                    name: "u".into(),
                },
                None,
            )
        })
        .collect();
    assert!(LIVE_BYTES.load(Ordering::Relaxed) - baseline > 10_000);
    drop(members);
    assert_eq!(LIVE_BYTES.load(Ordering::Relaxed) - baseline, 0);
}
