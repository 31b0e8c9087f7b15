//! The scenarios of one server (or N on Redis, one room): fanout, storm, idle,
//! rooms.

use std::time::Duration;

use crate::args::{Args, Scenario};
use crate::load;
use crate::measure::{cpu_time, percentile, rss_bytes};
use crate::servers::{start_peer, start_server};

/// Runs the scenario `args` names and prints its figures.
pub(crate) async fn run(args: &Args) {
    assert!(
        args.nodes == 1 || (args.redis_url.is_some() && args.url.is_none()),
        "--nodes needs --redis-url (servers share rooms through Redis)"
    );
    let mut servers = Vec::new();
    if let Some(peer) = args.peer {
        servers.push(start_peer(peer, &args.secret).await);
    } else if args.url.is_none() {
        for _ in 0..args.nodes {
            servers.push(start_server(args).await);
        }
    }
    let bases: Vec<String> = match &args.url {
        Some(url) => vec![url.clone()],
        None => servers.iter().map(|server| server.base.clone()).collect(),
    };
    let pids: Vec<u32> = match &args.url {
        Some(_) => args.pid.into_iter().collect(),
        None => servers
            .iter()
            .filter_map(|server| server.child.id())
            .collect(),
    };
    // Every server's resident memory and CPU time, summed.
    let measured = !pids.is_empty();
    let rss = || -> Option<u64> {
        let total: Option<u64> = pids.iter().map(|pid| rss_bytes(*pid)).sum();
        total.filter(|_| measured)
    };
    let cpu = || -> Option<Duration> {
        let total: Option<Duration> = pids.iter().map(|pid| cpu_time(*pid)).sum();
        total.filter(|_| measured)
    };
    let target = load::Target {
        bases,
        secret: args.secret.clone(),
        room: "bench".into(),
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = rss();
    if args.scenario == Scenario::Idle {
        let (still_open, connected_rss) = load::idle(&target, args.members, args.hold, rss).await;
        println!("chorus idle connections");
        println!(
            "  members            {} held {:?}, {} still open at the end",
            args.members, args.hold, still_open
        );
        if let (Some(base), Some(connected)) = (baseline, connected_rss) {
            println!(
                "  server memory      {:.1} MiB idle, {:.1} MiB connected: {:.1} KiB per connection",
                base as f64 / 1048576.0,
                connected as f64 / 1048576.0,
                connected.saturating_sub(base) as f64 / 1024.0 / args.members.max(1) as f64
            );
        }
        if let Some(after) = rss() {
            println!("  after the hold     {:.1} MiB", after as f64 / 1048576.0);
        }
        return;
    }
    if args.scenario == Scenario::Storm {
        let cpu_before = cpu();
        // The peers send no member list: only their join texts say who is there.
        let report = load::storm(&target, args.members, args.peer.is_none()).await;
        let cpu_used = cpu().zip(cpu_before).map(|(after, before)| after - before);
        // Every member still connected: what the room costs once the storm is over.
        let settled_rss = rss();
        match args.peer {
            Some(peer) => println!("join storm (reference peer {peer:?})"),
            None => println!("chorus join storm"),
        }
        println!("  members            {}", report.members);
        println!(
            "  all welcomed       {:.2} s",
            report.all_welcomed.as_secs_f64()
        );
        println!(
            "  all settled        {:.2} s ({} never did{})",
            report.all_settled.as_secs_f64(),
            report.unsettled,
            if args.peer.is_some() {
                "; settled: every member saw its own and every later join"
            } else {
                ""
            }
        );
        println!(
            "  presence frames    {} ({:.1} per member)",
            report.presence_frames,
            report.presence_frames as f64 / report.members.max(1) as f64
        );
        if let Some(cpu) = cpu_used {
            println!("  server CPU         {:.2} s", cpu.as_secs_f64());
        }
        if let (Some(base), Some(settled)) = (baseline, settled_rss) {
            println!(
                "  server RSS         {:.1} MiB after ({:.1} KiB per member)",
                settled as f64 / 1048576.0,
                settled.saturating_sub(base) as f64 / 1024.0 / report.members.max(1) as f64
            );
        }
        return;
    }
    let (report, (connected_rss, cpu_before)) = if args.scenario == Scenario::Rooms {
        let per_room = (args.members / args.rooms.max(1)).max(1);
        load::rooms(
            &target,
            args.rooms,
            per_room,
            args.messages,
            f64::from(args.rate),
            || (rss(), cpu()),
        )
        .await
    } else {
        load::fanout(
            &target,
            args.members,
            args.messages,
            args.rate,
            args.size,
            || (rss(), cpu()),
        )
        .await
    };
    let delivered = report.delivered;
    let connect_time = report.connect_time;
    let latencies = &report.latencies_us;
    let elapsed = report.elapsed;
    let cpu_used = cpu().zip(cpu_before).map(|(after, before)| after - before);

    let expected = report.members * args.messages;
    let engine = match (&args.url, &args.redis_url) {
        _ if args.peer.is_some() => format!("reference peer {:?}", args.peer.unwrap()),
        (Some(url), _) => url.clone(),
        (None, Some(_)) => format!("release binary × {} on Redis", args.nodes),
        (None, None) => "release binary, in-memory rooms".to_owned(),
    };
    if args.scenario == Scenario::Rooms {
        println!("chorus many-rooms benchmark ({engine})");
        println!(
            "  members            {} in {} rooms",
            report.members, args.rooms
        );
        println!(
            "  messages           {} per room at {}/s in every room",
            args.messages, args.rate
        );
    } else {
        println!("chorus fan-out benchmark ({engine})");
        println!("  members            {}", report.members);
        println!(
            "  messages           {} × {} bytes at {}/s",
            args.messages, args.size, args.rate
        );
    }
    println!(
        "  connect            {:.2} s ({:.0} connections/s)",
        connect_time.as_secs_f64(),
        args.members as f64 / connect_time.as_secs_f64()
    );
    println!(
        "  delivered          {delivered} of {expected} ({:.2} %)",
        delivered as f64 * 100.0 / expected as f64
    );
    println!(
        "  closed             {} evicted (4008), {} with other codes",
        report.evicted, report.other_closes
    );
    println!(
        "  errors             {} duplicates, {} out of order, {} lost by members still open",
        report.duplicates,
        report.out_of_order,
        report.lost_by_members_still_open()
    );
    println!(
        "  throughput         {:.0} deliveries/s over {:.2} s",
        delivered as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency (ms)       p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(latencies, 0.5),
        percentile(latencies, 0.9),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0)
    );
    if let (Some(base_rss), Some(rss)) = (baseline, connected_rss) {
        println!(
            "  server memory      {:.1} MiB idle, {:.1} MiB connected: {:.1} KiB per connection",
            base_rss as f64 / 1048576.0,
            rss as f64 / 1048576.0,
            (rss.saturating_sub(base_rss)) as f64 / 1024.0 / args.members as f64
        );
    }
    if let Some(cpu) = cpu_used {
        println!(
            "  server CPU         {:.2} s for the broadcast ({:.1} µs per delivery)",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64
        );
    }
}
