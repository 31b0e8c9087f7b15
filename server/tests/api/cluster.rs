//! Several `chorus` processes sharing rooms through a real three-master Redis
//! Cluster: rooms spread over the shards, each room's traffic on its own shard.

use serde_json::{Value, json};

use crate::helpers::{Client, Node, RedisCluster};

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
            Some("system" | "presence") => {}
            _ => panic!("unexpected frame {frame}"),
        }
    }
    seen
}

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
