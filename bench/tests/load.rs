//! The benchmark's load generator (`bench/src/load/`), once at tiny
//! scale against a real server: every member gets every message once and in order.
//! A correctness check of the generator and the fan-out, never a speed.

use chorus_bench::load;
use chorus_server::config::Config;
use chorus_server::startup::Application;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_every_message_once_and_in_order() {
    let secret = "load-test-secret-of-at-least-32-bytes";
    let mut config = Config::defaults();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.tokens.jwt_secret = Some(secret.into());
    config.http.site_root = "target/no-site-in-load-test".into();
    // One sender on loopback, as fast as it can: every publish rate lifted.
    let connections = &mut config.connections;
    connections.rate_limit = 1_000_000;
    connections.rate_limit_burst = 1_000_000;
    connections.user_rate_limit = 1_000_000;
    connections.user_rate_limit_burst = 1_000_000;
    connections.address_rate_limit = 1_000_000;
    connections.address_rate_limit_burst = 1_000_000;
    let app = Application::build(config).await.expect("server builds");
    let base = format!("ws://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until(std::future::pending()));

    let target = load::Target {
        bases: vec![base],
        secret: secret.into(),
        room: "load".into(),
    };
    let (report, ()) = load::fanout(&target, 20, 100, 1000, 64, || ()).await;
    assert_eq!(report.delivered, 20 * 100, "{report:?}");
    assert_eq!(
        (
            report.duplicates,
            report.out_of_order,
            report.evicted,
            report.other_closes
        ),
        (0, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.lost_by_members_still_open(), 0);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
