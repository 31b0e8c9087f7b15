//! Several real `chorus` processes sharing rooms through a real `redis-server`
//! (Debian's package), each test with its own Redis on a free port.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{
    Client, Node, PATIENCE, RedisCluster, RedisServer, RedisUrl, SECRET, every_room, free_port,
};

/// Who `welcome.users` lists when every token's `sub` is its name.
fn present(names: &[impl AsRef<str>]) -> Value {
    names
        .iter()
        .map(|name| json!({"user_id": name.as_ref(), "name": name.as_ref()}))
        .collect()
}

/// `on_every_redis!(name)`: a module `name` with tests `single` and `cluster`, each
/// calling `name(redis)` with a `redis-server` or a three-master Redis Cluster of
/// its own.
macro_rules! on_every_redis {
    ($name:ident) => {
        mod $name {
            use crate::helpers::{RedisCluster, RedisServer};

            #[tokio::test]
            async fn single() {
                super::$name(RedisServer::start().await).await;
            }

            #[tokio::test]
            async fn cluster() {
                super::$name(RedisCluster::start().await).await;
            }
        }
    };
}

/// The next `count` chat messages, as (id, content), skipping join/leave events.
async fn messages(client: &mut Client, count: usize) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("message") => seen.push((
                frame["id"].as_u64().expect("an id"),
                frame["content"].as_str().expect("content").to_owned(),
            )),
            Some("system") => {}
            _ => panic!("unexpected frame {frame}"),
        }
    }
    seen
}

/// Waits for a frame matching `wanted`, skipping others.
/// Says `text` until Redis stores it (sends fail with `unavailable` while it cannot),
/// for up to 15 s.
async fn say_until_stored(client: &mut Client, text: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        client.say(text).await;
        let frame = wait_for(client, |frame| frame["type"] != "system").await;
        match frame["type"].as_str() {
            Some("message") => return,
            Some("error") if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => panic!("Redis did not take messages again in time: {frame}"),
        }
    }
}

async fn wait_for(client: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let frame = client.recv().await;
        if wanted(&frame) {
            return frame;
        }
    }
}

/// The next `event` (`join`, `leave`) `client` hears, within `limit`; `why` names
/// what it would mean if none came.
async fn announced(client: &mut Client, event: &str, limit: Duration, why: &str) -> Value {
    tokio::time::timeout(limit, wait_for(client, |frame| frame["event"] == event))
        .await
        .expect(why)
}

fn strictly_increasing(ids: &[u64]) -> bool {
    ids.windows(2).all(|pair| pair[0] < pair[1])
}

#[tokio::test]
async fn members_on_three_nodes_see_every_message_once_in_the_same_order() {
    let redis = RedisServer::start().await;
    let nodes = [
        Node::start(&redis).await,
        Node::start(&redis).await,
        Node::start(&redis).await,
    ];
    assert_eq!(nodes[0].rooms().await, json!([]));
    let mut members = Vec::new();
    let mut names = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for seat in 0..2 {
            let name = format!("user-{n}{seat}");
            let (client, welcome) = node.join("lobby", &name, None).await;
            // Presence covers every node: everyone who joined before, wherever.
            assert_eq!(welcome["users"], present(&names), "welcome on node {n}");
            names.push(name);
            members.push(client);
        }
    }
    assert_eq!(
        nodes[2].rooms().await,
        json!([{"name": "lobby", "members": 6, "connections": 6}])
    );

    for (m, member) in members.iter_mut().enumerate() {
        for n in 0..5 {
            member.say(&format!("{m}:{n}")).await;
        }
    }
    let mut orders = Vec::new();
    for member in &mut members {
        orders.push(messages(member, 30).await);
    }
    let first = &orders[0];
    let ids: Vec<u64> = first.iter().map(|(id, _)| *id).collect();
    assert!(strictly_increasing(&ids), "ids in order: {ids:?}");
    let mut contents: Vec<&str> = first.iter().map(|(_, text)| text.as_str()).collect();
    contents.sort();
    contents.dedup();
    assert_eq!(contents.len(), 30, "every message once");
    for (m, order) in orders.iter().enumerate() {
        assert_eq!(order, first, "member {m} saw another order");
    }
    for member in &mut members {
        member.expect_silence(Duration::from_millis(200)).await;
    }

    // One subscription per room per node, not per member; none once a node's
    // members are gone.
    let subscribers = || async {
        let numsub = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("chorus:room:{lobby}")
            .clone();
        redis.query::<(String, usize)>(&numsub).await.1
    };
    assert_eq!(subscribers().await, 3);
    for member in members.drain(..2) {
        member.close().await;
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while subscribers().await != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} subscribers",
            subscribers().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_every_redis!(a_client_moving_to_another_node_with_since_gets_exactly_what_it_missed);
async fn a_client_moving_to_another_node_with_since_gets_exactly_what_it_missed(
    redis: impl RedisUrl,
) {
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut writer, _) = a.join("moves", "writer", None).await;
    let (mut mover, _) = a.join("moves", "mover", None).await;
    for n in 1..=3 {
        writer.say(&format!("seen {n}")).await;
    }
    let seen = messages(&mut mover, 3).await;
    mover.close().await;
    for n in 1..=3 {
        writer.say(&format!("missed {n}")).await;
    }
    let missed = messages(&mut writer, 6).await.split_off(3);

    let (mut moved, welcome) = b.join("moves", "mover", Some(seen[2].0)).await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(welcome["users"], present(&["writer"]));
    assert_eq!(messages(&mut moved, 3).await, missed);
    let joined = moved.recv().await;
    assert_eq!(joined["event"], "join", "then its own join: {joined}");
    moved.expect_silence(Duration::from_millis(200)).await;

    // History on join works on any node too.
    let (mut late, _) = b.join("moves", "late", None).await;
    let history = messages(&mut late, 6).await;
    assert_eq!(history[..3], seen[..]);
    assert_eq!(history[3..], missed[..]);
}

on_every_redis!(a_killed_node_loses_nothing_and_its_members_leave_presence);
async fn a_killed_node_loses_nothing_and_its_members_leave_presence(redis: impl RedisUrl) {
    let (mut doomed, survivor) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut alice, _) = doomed.join("crash", "alice", None).await;
    let (_carol, _) = doomed.join("crash", "carol", None).await;
    let (mut bob, _) = survivor.join("crash", "bob", None).await;
    bob.say("before").await;
    let before = messages(&mut alice, 1).await;

    doomed.child.kill().await.expect("SIGKILL");
    bob.say("after 1").await;
    bob.say("after 2").await;
    let after = messages(&mut bob, 3).await.split_off(1);

    // Alice's client reconnects to the surviving node and resumes.
    let (mut alice, welcome) = survivor.join("crash", "alice", Some(before[0].0)).await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(messages(&mut alice, 2).await, after);

    // Carol never comes back: the dead node's presence is reaped and her leave announced.
    let left = announced(
        &mut bob,
        "leave",
        Duration::from_secs(10),
        "the dead node's members leave within a few seconds",
    )
    .await;
    assert_eq!(left["user"], "carol");
    assert_eq!(
        left["user_id"], "carol",
        "a reaped leave names the user id too"
    );
    assert_eq!(
        survivor.rooms().await,
        json!([{"name": "crash", "members": 2, "connections": 2}])
    );
}

#[tokio::test]
async fn a_redis_restart_keeps_members_connected_and_loses_nothing() {
    let mut redis = RedisServer::start().await;
    // With the default presence grace, as operators run it: writing presence back
    // after the outage then goes through the grace's bookkeeping too (an empty
    // pipeline there once failed every catch-up, and the nodes never resubscribed).
    let with_grace = ["--presence-grace", "5s"];
    let (a, b) = (
        Node::start_with(&redis, &with_grace).await,
        Node::start_with(&redis, &with_grace).await,
    );
    let (mut alice, _) = a.join("outage", "alice", None).await;
    let (mut bob, _) = b.join("outage", "bob", None).await;
    alice.say("one").await;
    let mut bob_saw = messages(&mut bob, 1).await;
    assert_eq!(messages(&mut alice, 1).await, bob_saw);

    redis.kill().await;
    alice.say("while down").await;
    let refused = wait_for(&mut alice, |frame| frame["type"] != "system").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "unavailable");

    redis.run().await;
    // Senders retry until Redis takes messages again; nobody was disconnected.
    say_until_stored(&mut alice, "after").await;
    bob.say("bob after").await;
    let alice_saw = messages(&mut alice, 1).await;
    bob_saw.extend(messages(&mut bob, 2).await);
    let contents: Vec<&str> = bob_saw.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(contents, ["one", "after", "bob after"]);
    let ids: Vec<u64> = bob_saw.iter().map(|(id, _)| *id).collect();
    // Refused messages took no id: the sequence has no gap.
    assert_eq!(ids, [ids[0], ids[0] + 1, ids[0] + 2], "{ids:?}");
    assert_eq!(alice_saw, bob_saw[2..]);
    // The stored history has no gap or repeat either.
    let (mut reader, _) = b.join("outage", "reader", None).await;
    assert_eq!(messages(&mut reader, 3).await, bob_saw);
}

#[tokio::test]
async fn messages_sent_while_a_node_lost_its_subscription_are_caught_up_in_order() {
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut alice, _) = a.join("gaps", "alice", None).await;
    let (mut bob, _) = b.join("gaps", "bob", None).await;
    // A second room where nothing was said yet: its gap starts at the beginning.
    let (mut alice_quiet, _) = a.join("quiet", "alice", None).await;
    let (mut bob_quiet, _) = b.join("quiet", "bob", None).await;
    alice.say("before").await;
    let mut bob_saw = messages(&mut bob, 1).await;

    // Every node's Pub/Sub connection drops; commands keep working, so this message
    // is stored while nobody is subscribed, and must come from the stream.
    let kill_subscribers = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .clone();
    let killed: usize = redis.query(&kill_subscribers).await;
    assert_eq!(killed, 2, "both nodes were subscribed");
    alice_quiet.say("first words").await;
    alice.say("in the gap").await;
    bob_saw.extend(messages(&mut bob, 1).await);
    alice.say("after").await;
    bob_saw.extend(messages(&mut bob, 1).await);

    let contents: Vec<&str> = bob_saw.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(contents, ["before", "in the gap", "after"]);
    assert_eq!(messages(&mut alice, 3).await, bob_saw);
    bob.expect_silence(Duration::from_millis(300)).await;
    let quiet = messages(&mut bob_quiet, 1).await;
    assert_eq!(quiet[0].1, "first words");
    assert_eq!(messages(&mut alice_quiet, 1).await, quiet);
}

/// Waits until `node` lists `rooms` (the server API's room list).
async fn until_rooms(node: &Node, rooms: Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while node.rooms().await != rooms {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rooms: {}, not {rooms}",
            node.rooms().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_redis_that_comes_back_empty_gets_presence_back_and_ids_keep_increasing() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut alice, _) = a.join("amnesia", "alice", None).await;
    let (mut bob, _) = b.join("amnesia", "bob", None).await;
    alice.say("before").await;
    let before = messages(&mut bob, 1).await;

    redis.kill().await;
    redis.forget_everything();
    redis.run().await;

    // Each node writes its members back as it reconnects.
    until_rooms(
        &a,
        json!([{"name": "amnesia", "members": 2, "connections": 2}]),
    )
    .await;
    let (_carol, welcome) = b.join("amnesia", "carol", None).await;
    assert_eq!(welcome["users"], present(&["alice", "bob"]));
    alice.say("after").await;
    let after = messages(&mut bob, 1).await;
    assert!(
        after[0].0 > before[0].0,
        "ids keep increasing: {before:?} then {after:?}"
    );
}

on_every_redis!(a_node_taken_for_dead_while_it_stalled_writes_its_members_back);
async fn a_node_taken_for_dead_while_it_stalled_writes_its_members_back(redis: impl RedisUrl) {
    let (a, stalling) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut alice, _) = a.join("stall", "alice", None).await;
    let (_bob, _) = stalling.join("stall", "bob", None).await;
    wait_for(&mut alice, |frame| {
        frame["event"] == "join" && frame["user_id"] == "bob"
    })
    .await;

    // Stalled past its liveness key's 1 s: the other node reaps it.
    stalling.signal("STOP").await;
    let within = Duration::from_secs(15);
    let stall =
        |members: u32| json!([{"name": "stall", "members": members, "connections": members}]);
    let left = announced(&mut alice, "leave", within, "the stalled node is reaped").await;
    assert_eq!(left["user_id"], "bob");
    until_rooms(&a, stall(1)).await;

    // Back, with bob still connected: his node finds it was reaped and writes him
    // back, announced again.
    stalling.signal("CONT").await;
    let back = announced(
        &mut alice,
        "join",
        within,
        "the reaped node writes its members back",
    )
    .await;
    assert_eq!(back["user_id"], "bob");
    until_rooms(&a, stall(2)).await;
}

on_every_redis!(a_node_stopped_gracefully_leaves_presence_at_once);
async fn a_node_stopped_gracefully_leaves_presence_at_once(redis: impl RedisUrl) {
    // Reaping would take a minute: only a graceful leave can be this quick.
    let leaving = Node::start_with_ttl(&redis, "60s").await;
    let staying = Node::start_with_ttl(&redis, "60s").await;
    let (mut alice, _) = leaving.join("farewell", "alice", None).await;
    let (mut bob, _) = staying.join("farewell", "bob", None).await;
    wait_for(&mut alice, |frame| frame["user"] == "bob").await;

    leaving.terminate().await;
    alice.expect_close(1001).await;
    let left = wait_for(&mut bob, |frame| frame["event"] == "leave").await;
    assert_eq!(left["user"], "alice");
    assert_eq!(
        staying.rooms().await,
        json!([{"name": "farewell", "members": 1, "connections": 1}])
    );
}

on_every_redis!(after_a_graceful_stop_only_those_who_do_not_come_back_within_the_grace_leave);
async fn after_a_graceful_stop_only_those_who_do_not_come_back_within_the_grace_leave(
    redis: impl RedisUrl,
) {
    let args = ["--redis-node-ttl", "60s", "--presence-grace", "3s"];
    let leaving = Node::start_with(&redis, &args).await;
    let staying = Node::start_with(&redis, &args).await;
    let (mut alice, _) = leaving.join("farewell", "alice", None).await;
    let (mut carol, _) = leaving.join("farewell", "carol", None).await;
    let (mut bob, _) = staying.join("farewell", "bob", None).await;
    wait_for(&mut alice, |frame| frame["user"] == "bob").await;
    wait_for(&mut carol, |frame| frame["user"] == "bob").await;

    leaving.terminate().await;
    alice.expect_close(1001).await;
    carol.expect_close(1001).await;
    // Alice's client lands on the other node within the grace; Carol's never comes back.
    let (_alice, welcome) = staying.join("farewell", "alice", None).await;
    // Both are still listed, within the grace.
    assert_eq!(welcome["users"], present(&["alice", "bob", "carol"]));
    let left = wait_for(&mut bob, |frame| frame["event"] == "leave").await;
    assert_eq!(left["user"], "carol");
    bob.expect_silence(Duration::from_millis(1500)).await;
    assert_eq!(
        staying.rooms().await,
        json!([{"name": "farewell", "members": 2, "connections": 2}])
    );
}

#[tokio::test]
async fn a_quiet_rooms_history_expires_and_its_ids_still_increase() {
    let redis = RedisServer::start().await;
    let node = Node::start_with(&redis, &["--redis-retention", "1s"]).await;
    let (mut alice, _) = node.join("ephemeral", "alice", None).await;
    alice.say("soon gone").await;
    let first = messages(&mut alice, 1).await;
    let exists = redis::cmd("EXISTS")
        .arg("chorus:room:{ephemeral}:log")
        .arg("chorus:room:{ephemeral}:seq")
        .clone();
    let stored = || redis.query::<usize>(&exists);
    assert_eq!(stored().await, 2);

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stored().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut bob, welcome) = node.join("ephemeral", "bob", Some(first[0].0)).await;
    // The server can no longer tell what came after that id: it says so.
    assert_eq!(welcome["recovered"], false);
    alice.say("new sequence").await;
    let next = messages(&mut bob, 1).await;
    assert!(next[0].0 > first[0].0, "{first:?} then {next:?}");
}

#[tokio::test]
async fn an_unreachable_redis_stops_the_server_from_starting() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--jwt-secret",
                SECRET,
                "--redis-url",
                &url,
            ])
            .output(),
    )
    .await
    .expect("gives up in time")
    .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot use Redis at {url}")),
        "stderr: {stderr}"
    );
}

on_every_redis!(last_id_from_an_empty_room_resumes_on_another_node_without_loss);
async fn last_id_from_an_empty_room_resumes_on_another_node_without_loss(redis: impl RedisUrl) {
    let burst = [
        "--rate-limit-burst",
        "100",
        "--user-rate-limit-burst",
        "100",
    ];
    let (a, b) = (
        Node::start_with(&redis, &burst).await,
        Node::start_with(&redis, &burst).await,
    );
    let (alice, welcome) = a.join("quiet", "alice", None).await;
    let last_id = welcome["last_id"].as_u64().expect("last_id");
    assert!(welcome["heartbeat_interval_ms"].as_u64().is_some());
    alice.close().await;

    let (mut bob, _) = b.join("quiet", "bob", None).await;
    for n in 0..60 {
        bob.say(&format!("while away {n}")).await;
    }
    let sent = messages(&mut bob, 60).await;
    assert_eq!(sent[0].0, last_id + 1, "the first message gets the next id");
    let (mut alice, welcome) = b.join("quiet", "alice", Some(last_id)).await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(welcome["last_id"], sent[59].0);
    assert_eq!(messages(&mut alice, 60).await, sent);
}

on_every_redis!(a_resend_with_the_same_ref_on_another_node_is_acked_not_published);
async fn a_resend_with_the_same_ref_on_another_node_is_acked_not_published(redis: impl RedisUrl) {
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut bob, _) = b.join("refs", "bob", None).await;
    let (mut alice, _) = a.join("refs", "alice", None).await;
    wait_for(&mut bob, |frame| frame["event"] == "join").await;
    let once = r#"{"type":"message","content":"once","ref":"r-1"}"#;
    alice.send_text(once).await;
    let ack = wait_for(&mut alice, |frame| frame["type"] == "ack").await;
    let seen = messages(&mut bob, 1).await;
    assert_eq!(ack, json!({"type": "ack", "ref": "r-1", "id": seen[0].0}));

    // Alice comes back through the other server and sends the same message again.
    alice.close().await;
    let (mut alice, _) = b.join("refs", "alice", Some(seen[0].0)).await;
    alice.send_text(once).await;
    assert_eq!(
        wait_for(&mut alice, |frame| frame["type"] != "system").await,
        ack
    );
    bob.say("after").await;
    let next = messages(&mut bob, 1).await;
    assert_eq!(next[0].1, "after", "nothing was published in between");
    assert_eq!(next[0].0, seen[0].0 + 1);
}

/// How many times Redis ran `command`, from `INFO commandstats`.
fn calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

#[tokio::test]
async fn under_churn_the_room_list_reads_again_only_the_rooms_that_changed() {
    let redis = RedisServer::start().await;
    let node = Node::start(&redis).await;
    let addr: std::net::SocketAddr = node.addr.parse().unwrap();
    let mut quiet = Vec::new();
    for n in 0..20 {
        quiet.push(
            node.join(&format!("quiet-{n}"), &format!("user-{n}"), None)
                .await,
        );
    }
    let listed = every_room(addr).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 20, "{listed}");
    let stats = || async {
        redis
            .query::<String>(redis::cmd("INFO").arg("commandstats"))
            .await
    };
    let before = calls(&stats().await, "hvals");
    let started = tokio::time::Instant::now();
    // One member coming and going in one room, the list read after each step.
    for _ in 0..10 {
        let (churner, _) = node.join("busy", "churner", None).await;
        let listed = every_room(addr).await.json();
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|room| room["name"] == "busy"),
            "a member finds its own room at once: {listed}"
        );
        churner.close().await;
        every_room(addr).await;
    }
    let reads = calls(&stats().await, "hvals") - before;
    // Each list after a change reads that room again; the whole list (21 rooms) is
    // read at most once a second. Reading everything after every change was 420.
    let seconds = started.elapsed().as_secs() + 1;
    assert!(
        reads <= 20 + (seconds + 1) * 21,
        "{reads} room reads in {seconds} s"
    );
}

#[tokio::test]
async fn the_room_list_is_cached_and_its_outage_answer_says_nothing_of_redis() {
    let mut redis = RedisServer::start().await;
    let node = Node::start(&redis).await;
    let (_alice, _) = node.join("listed", "alice", None).await;
    let addr: std::net::SocketAddr = node.addr.parse().unwrap();
    let smembers = |info: String| calls(&info, "smembers");
    let before = smembers(redis.query(redis::cmd("INFO").arg("commandstats")).await);
    let started = tokio::time::Instant::now();
    for _ in 0..50 {
        let rooms = every_room(addr).await.json();
        assert_eq!(
            rooms,
            json!([{"name": "listed", "members": 1, "connections": 1}])
        );
    }
    let after = smembers(redis.query(redis::cmd("INFO").arg("commandstats")).await);
    // One read of the room set per second at most: fifty requests are not fifty
    // reads. (One more is the liveness task reading the set of servers.)
    let seconds = started.elapsed().as_secs() + 1;
    assert!(
        after - before <= seconds + 1,
        "{} reads in {seconds} s",
        after - before
    );

    redis.kill().await;
    // Served from the cache until it is a second old, then refused.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let response = loop {
        let response = every_room(addr).await;
        if response.status != 200 || tokio::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status, 503, "{}", response.body);
    let body = response.json();
    assert_eq!(body["error"], "unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(
        !message.to_lowercase().contains("redis") && !message.contains("refused"),
        "{message}"
    );
}

#[tokio::test]
async fn a_redis_that_refuses_writes_is_retried_with_backoff_not_in_a_loop() {
    let redis = RedisServer::start().await;
    let node = Node::start(&redis).await;
    let (mut alice, _) = node.join("steady", "alice", None).await;
    // Redis keeps accepting connections and reads, but refuses every write.
    let _: () = redis
        .query(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("min-replicas-to-write")
                .arg("1"),
        )
        .await;
    let connections = |info: String| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix("total_connections_received:"))
            .map_or(0, |count| count.trim().parse().unwrap())
    };
    let before = connections(redis.query(redis::cmd("INFO").arg("stats")).await);
    let started = tokio::time::Instant::now();
    // The subscriber loses its connection; resuming needs writes, which fail.
    let _: u64 = redis
        .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"))
        .await;
    // Watch how often it tries again over three seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = connections(redis.query(redis::cmd("INFO").arg("stats")).await);
    let window = started.elapsed().as_secs_f64();
    // With backoff from 100 ms doubling, about log2(window / 0.1) + 1 attempts (plus
    // this test's own three connections); without, one every 100 ms.
    let allowed = (window / 0.1).log2().ceil() as u64 + 1 + 3;
    assert!(
        after - before <= allowed,
        "{} connections in {window:.1} s",
        after - before
    );

    // Meanwhile a send fails cleanly, with a reason, and is not half-published.
    // (A join needs writes too: it would be refused with 1013.)
    alice.say("refused").await;
    let refused = wait_for(&mut alice, |frame| frame["type"] != "system").await;
    assert_eq!(
        (&refused["type"], &refused["code"]),
        (&json!("error"), &json!("unavailable"))
    );

    // Writes accepted again: it catches up, and the room works.
    let _: () = redis
        .query(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("min-replicas-to-write")
                .arg("0"),
        )
        .await;
    say_until_stored(&mut alice, "after").await;
}

#[tokio::test]
async fn a_hung_redis_refuses_new_joins_with_1013_instead_of_hanging_them() {
    let redis = RedisServer::start().await;
    let node = Node::start(&redis).await;
    // Redis stops answering anyone for four seconds.
    let _: () = redis
        .query(redis::cmd("CLIENT").arg("PAUSE").arg(4000).arg("ALL"))
        .await;
    let token = chorus_server::auth::Auth::new(SECRET.as_bytes())
        .issue("alice", Some("alice"), Duration::from_secs(600))
        .token;
    let url = format!("ws://{}/ws/chat/paused?token={token}", node.addr);
    let mut refused = Client::connect(&url).await;
    refused.expect_close(1013).await;
    // Once Redis answers again, so do joins.
    Client::connect_when_admitted(&url).await;
}

on_every_redis!(max_rooms_counts_the_rooms_of_every_server);
async fn max_rooms_counts_the_rooms_of_every_server(redis: impl RedisUrl) {
    let a = Node::start_with(&redis, &["--max-rooms", "1"]).await;
    let b = Node::start_with(&redis, &["--max-rooms", "1"]).await;
    let (_alice, _) = a.join("first", "alice", None).await;
    let token = chorus_server::auth::Auth::new(SECRET.as_bytes())
        .issue("bob", Some("bob"), Duration::from_secs(600))
        .token;
    let mut refused =
        Client::connect(&format!("ws://{}/ws/chat/second?token={token}", b.addr)).await;
    refused.expect_close(1013).await;
    // The existing room admits on any server, and the refusal left nothing behind.
    let (_bob, welcome) = b.join("first", "bob", None).await;
    assert_eq!(
        welcome["users"],
        json!([{"user_id": "alice", "name": "alice"}])
    );
    assert_eq!(
        b.rooms().await,
        json!([{"name": "first", "members": 2, "connections": 2}])
    );
}

#[tokio::test]
async fn room_keys_from_before_hash_tags_carry_over_an_upgrade() {
    let redis = RedisServer::start().await;
    // A room as an earlier version left it: ids, its first id and history under
    // `chorus:room:<room>:...`.
    for id in 1..=3_u64 {
        let frame = json!({"type": "message", "id": id, "user_id": "old", "user": "old",
            "content": format!("before the upgrade {id}"), "timestamp": "2026-11-28T10:00:00.000Z"});
        let _: String = redis
            .query(
                redis::cmd("XADD")
                    .arg("chorus:room:legacy:log")
                    .arg(format!("{id}-0"))
                    .arg("f")
                    .arg(frame.to_string()),
            )
            .await;
    }
    let _: () = redis
        .query(
            redis::cmd("MSET")
                .arg("chorus:room:legacy:seq")
                .arg(3)
                .arg("chorus:room:legacy:first")
                .arg(1),
        )
        .await;

    let node = Node::start(&redis).await;
    let (mut alice, welcome) = node.join("legacy", "alice", Some(1)).await;
    assert_eq!(welcome["recovered"], true, "{welcome}");
    assert_eq!(welcome["last_id"], 3);
    assert_eq!(
        messages(&mut alice, 2).await,
        [
            (2, "before the upgrade 2".to_owned()),
            (3, "before the upgrade 3".to_owned())
        ]
    );
    alice.say("after the upgrade").await;
    assert_eq!(
        messages(&mut alice, 1).await,
        [(4, "after the upgrade".to_owned())]
    );
    let left: usize = redis
        .query(
            redis::cmd("EXISTS")
                .arg("chorus:room:legacy:log")
                .arg("chorus:room:legacy:seq"),
        )
        .await;
    assert_eq!(left, 0, "the old names are gone");
}

// On a Redis Cluster: rooms spread over the shards, each room's traffic on its own.

/// Rooms whose keys live on each of the three masters, in master order.
async fn a_room_per_master(cluster: &RedisCluster) -> Vec<String> {
    let mut rooms = vec![String::new(); 3];
    for n in 0.. {
        let room = format!("room-{n}");
        let master = cluster
            .master_of(&format!("chorus:room:{{{room}}}:log"))
            .await;
        if rooms[master].is_empty() {
            rooms[master] = room;
        }
        if rooms.iter().all(|room| !room.is_empty()) {
            return rooms;
        }
    }
    unreachable!()
}

#[tokio::test]
async fn rooms_on_every_shard_reach_members_on_every_server_once_and_in_order() {
    let cluster = RedisCluster::start().await;
    let nodes = [Node::start(&cluster).await, Node::start(&cluster).await];
    let rooms = a_room_per_master(&cluster).await;
    let mut connected = Vec::new();
    for room in &rooms {
        let (mut alice, _) = nodes[0].join(room, "alice", None).await;
        let (mut bob, welcome) = nodes[1].join(room, "bob", None).await;
        assert_eq!(
            welcome["users"],
            json!([{"user_id": "alice", "name": "alice"}])
        );
        for n in 0..5 {
            alice.say(&format!("{room} from alice {n}")).await;
            bob.say(&format!("{room} from bob {n}")).await;
        }
        let seen_by_alice = messages(&mut alice, 10).await;
        let seen_by_bob = messages(&mut bob, 10).await;
        assert_eq!(seen_by_alice, seen_by_bob, "one order on both servers");
        let ids: Vec<u64> = seen_by_alice.iter().map(|(id, _)| *id).collect();
        assert!(ids.windows(2).all(|pair| pair[1] == pair[0] + 1), "{ids:?}");
        // History is the room's stream, on its shard.
        let (mut carol, welcome) = nodes[1].join(room, "carol", Some(ids[4])).await;
        assert_eq!(welcome["recovered"], true);
        assert_eq!(messages(&mut carol, 5).await, seen_by_alice[5..]);
        connected.extend([alice, bob, carol]);
    }
    let mut sorted = rooms.clone();
    sorted.sort();
    assert_eq!(
        nodes[0].rooms().await,
        Value::Array(
            sorted
                .iter()
                .map(|room| json!({"name": room, "members": 3, "connections": 3}))
                .collect()
        )
    );
}

#[tokio::test]
async fn one_rooms_traffic_touches_its_own_shard_only() {
    let cluster = RedisCluster::start().await;
    let nodes = [Node::start(&cluster).await, Node::start(&cluster).await];
    let rooms = a_room_per_master(&cluster).await;
    let (mut alice, _) = nodes[0].join(&rooms[1], "alice", None).await;
    let (mut bob, _) = nodes[1].join(&rooms[1], "bob", None).await;
    let before = cluster.calls("spublish").await;
    let scripts_before = cluster.calls("evalsha").await;
    for n in 0..20 {
        alice.say(&format!("message {n}")).await;
    }
    assert_eq!(messages(&mut bob, 20).await.len(), 20);
    let after = cluster.calls("spublish").await;
    let scripts_after = cluster.calls("evalsha").await;
    let published: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let scripted: Vec<u64> = scripts_after
        .iter()
        .zip(&scripts_before)
        .map(|(a, b)| a - b)
        .collect();
    // Every message is one script on the room's master, published there with
    // SPUBLISH (inside the script, so it counts as a call of its own): nothing on
    // the other two, and no classic PUBLISH that every node would pass on.
    assert!(published[1] >= 20, "{published:?}");
    assert_eq!((published[0], published[2]), (0, 0), "{published:?}");
    assert!(scripted[1] >= 20, "{scripted:?}");
    assert_eq!(cluster.calls("publish").await, [0, 0, 0]);
}

#[tokio::test]
async fn a_restarted_shard_master_serves_its_rooms_again_without_a_gap() {
    let mut cluster = RedisCluster::start().await;
    // Liveness keys that outlast the outage: a node whose key is on the restarted
    // shard is not reaped meanwhile (that has a test of its own).
    let nodes = [
        Node::start_with_ttl(&cluster, "60s").await,
        Node::start_with_ttl(&cluster, "60s").await,
    ];
    let rooms = a_room_per_master(&cluster).await;
    let (mut alice, _) = nodes[0].join(&rooms[1], "alice", None).await;
    let (mut bob, _) = nodes[1].join(&rooms[1], "bob", None).await;
    let (mut carol, _) = nodes[0].join(&rooms[2], "carol", None).await;
    let (mut dave, _) = nodes[1].join(&rooms[2], "dave", None).await;
    alice.say("before").await;
    let before = messages(&mut bob, 1).await;

    cluster.masters[1].kill().await;
    // The other shards go on serving their rooms.
    carol.say("elsewhere, meanwhile").await;
    assert_eq!(messages(&mut dave, 1).await[0].1, "elsewhere, meanwhile");
    cluster.masters[1].run().await;
    cluster.wait_until_ok().await;

    // Sends fail while the room's shard is down, then go through; both servers
    // subscribed again, and the ids go on where they were.
    say_until_stored(&mut alice, "after").await;
    let after = messages(&mut bob, 1).await;
    assert_eq!(after[0], (before[0].0 + 1, "after".to_owned()));
    // The restarted master came back empty: each server writes its members back,
    // beside the messages, which may come first.
    let mut occupied = [&rooms[1], &rooms[2]];
    occupied.sort();
    let listed: Vec<Value> = occupied
        .iter()
        .map(|room| json!({"name": room, "members": 2, "connections": 2}))
        .collect();
    until_rooms(&nodes[1], Value::Array(listed)).await;
    let (mut erin, welcome) = nodes[1].join(&rooms[1], "erin", Some(before[0].0)).await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(messages(&mut erin, 1).await, after);
    assert_eq!(
        welcome["users"].as_array().map(Vec::len),
        Some(2),
        "{welcome}"
    );
}

#[tokio::test]
async fn messages_sent_while_a_shard_dropped_the_subscriptions_are_caught_up_in_order() {
    let cluster = RedisCluster::start().await;
    let (a, b) = (Node::start(&cluster).await, Node::start(&cluster).await);
    let room = &a_room_per_master(&cluster).await[0];
    let (mut alice, _) = a.join(room, "alice", None).await;
    let (mut bob, _) = b.join(room, "bob", None).await;
    alice.say("before").await;
    let mut bob_saw = messages(&mut bob, 1).await;

    // The shard drops both servers' subscriber connections; the cluster client
    // reconnects and subscribes again, and what was published meanwhile comes
    // from the room's stream.
    let kill_subscribers = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .clone();
    let killed: usize = cluster.masters[0].query(&kill_subscribers).await;
    assert_eq!(
        killed, 2,
        "both servers were subscribed on the room's shard"
    );
    alice.say("in the gap").await;
    bob_saw.extend(messages(&mut bob, 1).await);
    alice.say("after").await;
    bob_saw.extend(messages(&mut bob, 1).await);

    let contents: Vec<&str> = bob_saw.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(contents, ["before", "in the gap", "after"]);
    assert_eq!(messages(&mut alice, 3).await, bob_saw);
    bob.expect_silence(Duration::from_millis(300)).await;
}
