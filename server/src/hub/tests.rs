use chorus_protocol::Member;
use serde_json::{Value, json};

use super::memory::MemoryHub;
use super::*;

/// A hub keeping `history_size` messages per room, with member queues of `queue_bytes`.
fn hub(history_size: usize, queue_bytes: usize) -> MemoryHub {
    MemoryHub::new(HubSettings {
        history_size,
        queue_bytes,
        max_rooms: usize::MAX,
        history_memory: usize::MAX,
        presence_grace: std::time::Duration::ZERO,
        presence_burst: 16,
        write_delay: Duration::ZERO,
        metrics: Default::default(),
    })
}

fn who(name: &str) -> Participant {
    Participant {
        id: format!("id-{name}"),
        name: name.into(),
    }
}

fn member(name: &str) -> Member {
    Member {
        user_id: format!("id-{name}"),
        name: name.into(),
    }
}

fn lobby() -> RoomName {
    RoomName::parse("lobby").unwrap()
}

fn parse(frame: &FrameBytes) -> Value {
    serde_json::from_str(frame.as_str()).unwrap()
}

/// What one queued item carries, as the client reads it.
fn values(queued: &Outbound) -> Vec<Value> {
    let texts = queued.texts();
    texts
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect()
}

/// Member queues that never fill in these tests.
const ROOMY: usize = 1 << 20;

fn drain(queue: &mut MemberQueue) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Ok(queued) = queue.try_recv() {
        frames.extend(values(&queued));
    }
    frames
}

fn message_ids(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn join_welcomes_with_those_present_then_announces_to_everyone() {
    let hub = hub(10, ROOMY);
    let mut alice = hub.join(&lobby(), who("alice"), None).unwrap();
    assert_eq!(
        alice.welcome,
        Welcome {
            room: "lobby".into(),
            user_id: "id-alice".into(),
            user: "alice".into(),
            users: UserList::default(),
            recovered: true,
            last_id: alice.welcome.last_id,
        }
    );
    assert!(alice.backlog.is_empty());
    assert_eq!(drain(&mut alice.queue)[0]["event"], "join");

    let mut bob = hub.join(&lobby(), who("bob"), None).unwrap();
    assert_eq!(bob.welcome.users.members(), [member("alice")]);
    let bob_joined = json!({"type":"system","message":"bob joined the room","event":"join",
                            "user_id":"id-bob","user":"bob"});
    assert_eq!(drain(&mut bob.queue), std::slice::from_ref(&bob_joined));
    assert_eq!(drain(&mut alice.queue), [bob_joined]);

    drop(bob.membership);
    assert_eq!(drain(&mut alice.queue)[0]["event"], "leave");
}

#[test]
fn every_member_gets_the_same_bytes_in_id_order() {
    let hub = hub(100, ROOMY);
    let mut alice = hub.join(&lobby(), who("alice"), None).unwrap();
    let mut bob = hub.join(&lobby(), who("bob"), None).unwrap();
    drain(&mut alice.queue);
    drain(&mut bob.queue);
    let first = alice.membership.publish("one".into()).unwrap();
    let second = bob.membership.publish("two".into()).unwrap();
    assert_eq!(second, first + 1);
    let to_alice: Vec<Outbound> = std::iter::from_fn(|| alice.queue.try_recv().ok()).collect();
    let to_bob: Vec<Outbound> = std::iter::from_fn(|| bob.queue.try_recv().ok()).collect();
    assert_eq!(to_alice, to_bob);
    // Shared, not copied: both queues hold the same allocation.
    assert_eq!(to_alice[0].text().as_ptr(), to_bob[0].text().as_ptr());
    let frames: Vec<Value> = to_alice.iter().flat_map(values).collect();
    assert_eq!(message_ids(&frames), [first, second]);
}

#[test]
fn history_is_bounded_and_since_recovers() {
    let hub = hub(5, ROOMY);
    let alice = hub.join(&lobby(), who("alice"), None).unwrap();
    let ids: Vec<u64> = (0..8)
        .map(|n| alice.membership.publish(format!("m{n}")).unwrap())
        .collect();

    let latest = hub.join(&lobby(), who("bob"), None).unwrap();
    let backlog: Vec<Value> = latest.backlog.iter().map(parse).collect();
    assert_eq!(message_ids(&backlog), ids[3..]);

    let recent = hub.join(&lobby(), who("carol"), Some(ids[5])).unwrap();
    assert!(recent.welcome.recovered);
    assert_eq!(
        message_ids(&recent.backlog.iter().map(parse).collect::<Vec<_>>()),
        ids[6..]
    );

    let stale = hub.join(&lobby(), who("dave"), Some(ids[0])).unwrap();
    assert!(!stale.welcome.recovered);
    assert_eq!(
        message_ids(&stale.backlog.iter().map(parse).collect::<Vec<_>>()),
        ids[3..]
    );

    let up_to_date = hub.join(&lobby(), who("erin"), Some(ids[7])).unwrap();
    assert!(up_to_date.welcome.recovered);
    assert!(up_to_date.backlog.is_empty());

    let from_the_future = hub
        .join(&lobby(), who("frank"), Some(ids[7] + 1000))
        .unwrap();
    assert!(!from_the_future.welcome.recovered);
}

#[test]
fn since_zero_means_everything_still_retained() {
    let hub = hub(5, ROOMY);
    let alice = hub.join(&lobby(), who("alice"), None).unwrap();
    alice.membership.publish("a".into()).unwrap();
    let bob = hub.join(&lobby(), who("bob"), Some(0)).unwrap();
    assert!(bob.welcome.recovered);
    assert_eq!(bob.backlog.len(), 1);
}

#[test]
fn join_history_is_capped_at_fifty() {
    let hub = hub(100, ROOMY);
    let alice = hub.join(&lobby(), who("alice"), None).unwrap();
    for n in 0..70 {
        alice.membership.publish(format!("m{n}")).unwrap();
    }
    let bob = hub.join(&lobby(), who("bob"), None).unwrap();
    assert_eq!(bob.backlog.len(), chorus_protocol::JOIN_HISTORY);
    assert_eq!(parse(bob.backlog.last().unwrap())["content"], "m69");
}

#[test]
fn a_full_queue_evicts_only_that_member() {
    // Two joins (about 90 bytes each) and two messages (about 430 bytes each) fit; a
    // third message does not.
    let hub = hub(100, 1200);
    let slow = hub.join(&lobby(), who("slow"), None).unwrap();
    let mut fast = hub.join(&lobby(), who("fast"), None).unwrap();
    let mut slow_queue = slow.queue;
    let mut fast_frames = drain(&mut fast.queue);
    for n in 0..10 {
        fast.membership
            .publish(format!("m{n} {}", "x".repeat(300)))
            .unwrap();
        fast_frames.extend(drain(&mut fast.queue));
    }
    assert_eq!(
        message_ids(&fast_frames).len(),
        10,
        "the fast member lost nothing"
    );
    assert!(fast_frames.contains(
        &json!({"type":"system","message":"slow left the room","event":"leave","user_id":"id-slow","user":"slow"})
    ));
    assert_eq!(
        slow.membership.publish("too late".into()),
        Err(PublishError::NotMember)
    );

    // The evicted queue holds an in-order prefix, then ends.
    let mut slow_frames = Vec::new();
    while let Ok(queued) = slow_queue.try_recv() {
        slow_frames.extend(values(&queued));
    }
    assert_eq!(slow_queue.try_recv(), Err(true), "the queue has ended");
    assert_eq!(slow_frames.len(), 4);
    assert_eq!(
        message_ids(&slow_frames),
        message_ids(&fast_frames)[..2].to_vec()
    );
    assert_eq!(hub.rooms()[0].connections, 1);
}

#[test]
fn presence_counts_users_not_tabs() {
    let hub = hub(10, ROOMY);
    let mut first = hub.join(&lobby(), who("alice"), None).unwrap();
    let second = hub.join(&lobby(), who("alice"), None).unwrap();
    assert_eq!(second.welcome.users.members(), [member("alice")]);
    assert_eq!(
        drain(&mut first.queue).len(),
        1,
        "only the first tab is announced"
    );
    assert_eq!(
        hub.rooms(),
        [RoomSummary {
            name: "lobby".into(),
            members: 1,
            connections: 2
        }]
    );
    drop(second);
    assert!(
        drain(&mut first.queue).is_empty(),
        "closing one tab is not a leave"
    );
}

#[test]
fn a_room_nobody_is_in_keeps_its_history_and_ids() {
    let hub = hub(10, ROOMY);
    let alice = hub.join(&lobby(), who("alice"), None).unwrap();
    let first = alice.membership.publish("hello".into()).unwrap();
    drop(alice);
    assert_eq!(hub.room_count(), 1, "kept for its history");
    assert!(hub.rooms().is_empty(), "but not listed as active");

    let bob = hub.join(&lobby(), who("bob"), Some(first - 1)).unwrap();
    assert!(bob.welcome.recovered);
    assert_eq!(
        bob.backlog.iter().map(parse).collect::<Vec<_>>()[0]["content"],
        "hello"
    );
    assert_eq!(bob.membership.publish("again".into()).unwrap(), first + 1);
}

#[test]
fn rooms_without_members_or_history_are_removed_and_recreated_with_higher_ids() {
    let hub = hub(0, ROOMY);
    let alice = hub.join(&lobby(), who("alice"), None).unwrap();
    let first = alice.membership.publish("hello".into()).unwrap();
    assert_eq!(hub.room_count(), 1);
    drop(alice);
    assert_eq!(hub.room_count(), 0);

    let bob = hub.join(&lobby(), who("bob"), Some(first)).unwrap();
    assert!(bob.backlog.is_empty());
    assert!(bob.membership.publish("again".into()).unwrap() > first);
}

#[test]
fn at_max_rooms_the_least_recently_active_room_nobody_is_in_makes_way() {
    let hub = MemoryHub::new(HubSettings {
        history_size: 10,
        queue_bytes: ROOMY,
        max_rooms: 3,
        history_memory: usize::MAX,
        presence_grace: std::time::Duration::ZERO,
        presence_burst: 16,
        write_delay: Duration::ZERO,
        metrics: Default::default(),
    });
    let room = |name: &str| RoomName::parse(name).unwrap();
    for name in ["older", "newer"] {
        let member = hub.join(&room(name), who("alice"), None).unwrap();
        member.membership.publish(format!("in {name}")).unwrap();
    }
    let _busy = hub.join(&room("busy"), who("bob"), None).unwrap();
    let history_before = hub.history_bytes();
    let _fresh = hub.join(&room("fresh"), who("carol"), None).unwrap();
    assert_eq!(hub.room_count(), 3);
    assert!(
        hub.history_bytes() < history_before,
        "the evicted room's history is freed"
    );
    assert!(
        hub.history(&room("older"), None, 10).messages.is_empty(),
        "older went"
    );
    assert_eq!(hub.history(&room("newer"), None, 10).messages.len(), 1);
    // Rooms with members never make way.
    let _more = hub.join(&room("more"), who("dave"), None).unwrap();
    assert!(matches!(
        hub.join(&room("again"), who("erin"), None),
        Err(Unavailable::TooManyRooms)
    ));
}

#[test]
fn the_api_publishes_into_rooms_nobody_is_in_and_pages_their_history() {
    let hub = hub(10, ROOMY);
    let room = |name: &str| RoomName::parse(name).unwrap();
    let author = Participant {
        id: "server".into(),
        name: "Server".into(),
    };
    let ids: Vec<u64> = (0..5)
        .map(|n| {
            hub.publish(&lobby(), author.clone(), format!("m{n}"), None)
                .unwrap()
                .id
        })
        .collect();
    assert_eq!(ids, (ids[0]..ids[0] + 5).collect::<Vec<_>>());
    let repeat = hub
        .publish(&lobby(), author.clone(), "once".into(), Some("k1"))
        .unwrap();
    let again = hub
        .publish(&lobby(), author.clone(), "twice".into(), Some("k1"))
        .unwrap();
    assert_eq!((again.id, again.repeated), (repeat.id, true));
    let contents = |page: &HistoryPage| {
        page.messages
            .iter()
            .map(|frame| parse(frame)["content"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let newest = hub.history(&lobby(), None, 2);
    assert_eq!(contents(&newest), ["m4", "once"]);
    assert!(newest.has_more);
    let older = hub.history(&lobby(), Some(ids[4]), 3);
    assert_eq!(contents(&older), ["m1", "m2", "m3"]);
    assert!(older.has_more);
    let oldest = hub.history(&lobby(), Some(ids[1]), 3);
    assert_eq!(contents(&oldest), ["m0"]);
    assert!(!oldest.has_more);
    assert!(hub.history(&lobby(), Some(ids[0]), 3).messages.is_empty());
    assert!(hub.history(&room("unknown"), None, 3).messages.is_empty());
    // A member joining later gets it all as history.
    let bob = hub.join(&lobby(), who("bob"), None).unwrap();
    assert_eq!(bob.backlog.len(), 6);
}

#[test]
fn a_member_whose_connection_is_gone_is_removed_on_the_next_broadcast() {
    let hub = hub(10, ROOMY);
    let alice = hub.join(&lobby(), who("alice"), None).unwrap();
    let bob = hub.join(&lobby(), who("bob"), None).unwrap();
    let mut alice_queue = alice.queue;
    drain(&mut alice_queue);
    drop(bob.queue);
    alice.membership.publish("anyone?".into()).unwrap();
    let frames = drain(&mut alice_queue);
    assert_eq!(frames[0]["type"], "message");
    assert_eq!(frames[1]["event"], "leave");
    // Dropping the membership afterwards does not announce the leave twice.
    drop(bob.membership);
    assert!(drain(&mut alice_queue).is_empty());
}

#[test]
fn last_id_is_a_resume_point_even_before_the_first_message() {
    let hub = hub(100, ROOMY);
    let alice = hub.join(&lobby(), who("alice"), None).unwrap();
    let before_any = alice.welcome.last_id;
    let sender = hub.join(&lobby(), who("bob"), None).unwrap();
    let first = sender.membership.publish("one".into()).unwrap();
    assert_eq!(first, before_any + 1, "the first message gets the next id");
    let second = sender.membership.publish("two".into()).unwrap();

    // Alice saw no message; resuming from her welcome's last_id misses nothing.
    let back = hub.join(&lobby(), who("alice"), Some(before_any)).unwrap();
    assert!(back.welcome.recovered);
    let ids: Vec<u64> = back
        .backlog
        .iter()
        .map(|frame| parse(frame)["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [first, second]);
    assert_eq!(back.welcome.last_id, second);
}

#[test]
fn a_join_that_would_create_a_room_beyond_the_limit_is_refused() {
    let hub = MemoryHub::new(HubSettings {
        history_size: 10,
        queue_bytes: ROOMY,
        max_rooms: 2,
        history_memory: usize::MAX,
        presence_grace: std::time::Duration::ZERO,
        presence_burst: 16,
        write_delay: Duration::ZERO,
        metrics: Default::default(),
    });
    let room = |name: &str| RoomName::parse(name).unwrap();
    let first = hub.join(&room("a"), who("alice"), None).unwrap();
    let _second = hub.join(&room("b"), who("bob"), None).unwrap();
    assert!(matches!(
        hub.join(&room("c"), who("carol"), None),
        Err(Unavailable::TooManyRooms)
    ));
    // Existing rooms keep admitting.
    let _again = hub.join(&room("a"), who("carol"), None).unwrap();
    drop((first, _again));
    // Once a room is gone, another may be created.
    assert!(hub.join(&room("c"), who("carol"), None).is_ok());
}

#[test]
fn over_the_history_budget_the_least_recently_active_room_loses_its_oldest_first() {
    let hub = MemoryHub::new(HubSettings {
        history_size: 100,
        queue_bytes: ROOMY,
        max_rooms: usize::MAX,
        history_memory: 3000,
        presence_grace: std::time::Duration::ZERO,
        presence_burst: 16,
        write_delay: Duration::ZERO,
        metrics: Default::default(),
    });
    let room = |name: &str| RoomName::parse(name).unwrap();
    let old = hub.join(&room("old"), who("alice"), None).unwrap();
    let new = hub.join(&room("new"), who("bob"), None).unwrap();
    let old_ids: Vec<u64> = (0..6)
        .map(|n| {
            old.membership
                .publish(format!("old {n} {}", "x".repeat(100)))
                .unwrap()
        })
        .collect();
    let new_ids: Vec<u64> = (0..6)
        .map(|n| {
            new.membership
                .publish(format!("new {n} {}", "x".repeat(100)))
                .unwrap()
        })
        .collect();
    assert!(hub.history_bytes() <= 3000, "{}", hub.history_bytes());

    // The old room lost its oldest messages: a since into them is not recovered...
    let late = hub
        .join(&room("old"), who("carol"), Some(old_ids[0]))
        .unwrap();
    assert!(!late.welcome.recovered);
    let kept = message_ids(&late.backlog.iter().map(parse).collect::<Vec<_>>());
    assert!(!kept.is_empty() && kept.len() < 5, "{kept:?}");
    assert_eq!(
        kept,
        old_ids[old_ids.len() - kept.len()..],
        "the newest are kept"
    );
    // ...while the recently active room kept everything.
    let reader = hub
        .join(&room("new"), who("dave"), Some(new_ids[0] - 1))
        .unwrap();
    assert!(reader.welcome.recovered);
    assert_eq!(
        message_ids(&reader.backlog.iter().map(parse).collect::<Vec<_>>()),
        new_ids
    );

    // Rooms nobody is in keep their history, still within the budget.
    drop((old, new, late, reader));
    assert_eq!(hub.room_count(), 2);
    assert!(hub.history_bytes() <= 3000, "{}", hub.history_bytes());
}

#[test]
fn a_busy_room_does_not_stall_joins_to_other_rooms() {
    let hub = Arc::new(hub(10, ROOMY));
    let room = |name: &str| RoomName::parse(name).unwrap();
    let _alice = hub.join(&room("busy"), who("alice"), None).unwrap();
    let busy = hub.busy("busy");
    // A join to the busy room waits for it...
    let waiting = std::thread::spawn({
        let hub = hub.clone();
        move || drop(hub.join(&room("busy"), who("bob"), None).unwrap())
    });
    // ...(given a moment to start waiting; if it has not, this test only proves less)...
    std::thread::sleep(std::time::Duration::from_millis(50));
    // ...while a join elsewhere goes straight in.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn({
        let hub = hub.clone();
        move || {
            let joined = hub.join(&room("quiet"), who("carol"), None).unwrap();
            done.send(()).unwrap();
            drop(joined);
        }
    });
    assert!(
        finished
            .recv_timeout(std::time::Duration::from_secs(5))
            .is_ok(),
        "a join to another room waited for the busy one"
    );
    drop(busy);
    waiting.join().unwrap();
}

#[test]
fn a_room_emptied_while_someone_joins_is_not_lost() {
    let hub = hub(10, ROOMY);
    let room = RoomName::parse("churn").unwrap();
    for n in 0..200 {
        let first = hub.join(&room, who(&format!("a{n}")), None).unwrap();
        drop(first);
        let second = hub.join(&room, who(&format!("b{n}")), None).unwrap();
        assert_eq!(hub.room_count(), 1);
        assert_eq!(hub.rooms()[0].connections, 1);
        drop(second);
        assert_eq!(hub.room_count(), 0);
    }
}
