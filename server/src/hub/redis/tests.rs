//! The engine against a real redis-server started for the test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use super::*;
use crate::hub::Participant;

/// A `redis-server` of the test's own on a free port, gone when dropped.
pub(super) struct TestRedis {
    child: Child,
    pub(super) url: String,
}

impl TestRedis {
    pub(super) fn start() -> TestRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/setup.sh --test)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TestRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn who(name: &str) -> Participant {
    Participant {
        id: name.into(),
        name: name.into(),
    }
}

/// A connection to `redis`, for a test to look at or change what it holds.
pub(super) async fn connection(redis: &TestRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A hub on `redis` that announces leaves at once.
pub(super) async fn connect(redis: &TestRedis) -> Arc<RedisHub> {
    let settings = HubSettings {
        history_size: 10,
        queue_bytes: 64 * 1024,
        max_rooms: usize::MAX,
        history_memory: usize::MAX,
        presence_grace: Duration::ZERO,
        presence_burst: 16,
        write_delay: Duration::ZERO,
        metrics: Default::default(),
    };
    let options = RedisOptions {
        url: redis.url.clone(),
        node_ttl: Duration::from_secs(10),
        retention: Duration::from_secs(3600),
    };
    Arc::new(
        RedisHub::connect(settings, options, Removals::default())
            .await
            .unwrap(),
    )
}

/// Runs `join` on a thread of its own: a join stuck on a lock blocks its thread,
/// and must not block the test's. Reports when the member is in.
fn join_on_a_thread(
    hub: &Arc<RedisHub>,
    room: &'static str,
    name: &'static str,
) -> std::sync::mpsc::Receiver<()> {
    let (done, finished) = std::sync::mpsc::channel();
    let hub = hub.clone();
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let joined = runtime.block_on(hub.join(&RoomName::parse(room).unwrap(), who(name), None));
        assert!(joined.is_ok(), "{name} could not join {room}");
        let _ = done.send(());
        drop(joined);
    });
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_room_does_not_stall_joins_to_other_rooms() {
    let redis = TestRedis::start();
    let hub = connect(&redis).await;
    let mut alice = hub
        .join(&RoomName::parse("busy").unwrap(), who("alice"), None)
        .await
        .unwrap();
    // Her own join comes back through Pub/Sub: once it is in, nothing more is on
    // its way to the busy room, whose lock would hold up the subscriber (and with
    // it every other room's subscription) in a way no real room does.
    let own_join = alice.queue.recv().await.expect("alice's own join");
    assert!(
        own_join.text().contains("\"event\":\"join\""),
        "{own_join:?}"
    );
    let busy = hub.busy("busy");
    // A join to the busy room waits for it...
    let waiting = join_on_a_thread(&hub, "busy", "bob");
    // ...(given a moment to start waiting; if it has not, this proves less)...
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...while a join elsewhere goes straight in.
    let elsewhere = join_on_a_thread(&hub, "quiet", "carol");
    let in_time = |finished: std::sync::mpsc::Receiver<()>| {
        tokio::task::spawn_blocking(move || finished.recv_timeout(Duration::from_secs(5)).is_ok())
    };
    assert!(
        in_time(elsewhere).await.unwrap(),
        "a join to another room waited for the busy one"
    );
    drop(busy);
    assert!(
        in_time(waiting).await.unwrap(),
        "the busy room admits once free"
    );
}

#[test]
fn urls_are_redacted() {
    assert_eq!(
        redact("redis://:secret@host:6379/0"),
        "redis://:***@host:6379/0"
    );
    assert_eq!(redact("redis://user:pw@host"), "redis://user:***@host");
    assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
}
