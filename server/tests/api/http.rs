use std::time::Duration;

use chorus_server::auth::{Auth, sign_hs256, unix_now};
use serde_json::json;

use crate::helpers::{
    API_KEY, EngineApp, PATIENCE, SECRET, http_request_with, spawn_app_with, status_from,
};

crate::both_engines!(healthz_answers_200);
async fn healthz_answers_200(app: EngineApp) {
    let response = app.get("/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ok");
}

crate::both_engines!(a_request_that_is_not_a_websocket_handshake_is_told_what_is_missing);
async fn a_request_that_is_not_a_websocket_handshake_is_told_what_is_missing(app: EngineApp) {
    let plain = app.get("/ws/chat/lobby").await;
    assert_eq!(plain.status, 400);
    assert_eq!(plain.body, "`Connection` must include `upgrade`");
    let upgrade = [("Connection", "Upgrade"), ("Upgrade", "websocket")];
    let old_version = [
        upgrade[0],
        upgrade[1],
        ("Sec-WebSocket-Version", "8"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let refused = http_request_with(app.addr, "GET", "/ws/chat/lobby", &old_version, None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body, "`Sec-WebSocket-Version` must be 13");
    let no_key = [upgrade[0], upgrade[1], ("Sec-WebSocket-Version", "13")];
    let refused = http_request_with(app.addr, "GET", "/ws", &no_key, None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body, "`Sec-WebSocket-Key` is missing");
}

crate::both_engines!(guest_token_is_issued_for_a_trimmed_name_and_opens_a_room);
async fn guest_token_is_issued_for_a_trimmed_name_and_opens_a_room(app: EngineApp) {
    let response = app.post_json("/api/token", r#"{"name":"  alice  "}"#).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.headers.contains("content-type: application/json"));
    let body = response.json();
    let token = body["token"].as_str().expect("token string");
    let expires_at = body["expires_at"].as_str().expect("expires_at string");
    let expires_at =
        time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 expiry");
    assert!(expires_at > time::OffsetDateTime::now_utc());

    let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    let welcome = client.recv().await;
    assert_eq!(welcome["user"], "alice");
}

crate::both_engines!(bad_guest_names_get_400_with_a_json_error);
async fn bad_guest_names_get_400_with_a_json_error(app: EngineApp) {
    let long = format!(r#"{{"name":"{}"}}"#, "x".repeat(33));
    for (body, error) in [
        (r#"{"name":""}"#, "invalid_name"),
        (r#"{"name":"   "}"#, "invalid_name"),
        (long.as_str(), "invalid_name"),
        (r#"{"name":"a\u0007b"}"#, "invalid_name"),
        // Names that pass for another: bidi override, zero-width and odd spaces.
        (r#"{"name":"evil\u202Enimda"}"#, "invalid_name"),
        (r#"{"name":"ad\u200Bmin"}"#, "invalid_name"),
        (r#"{"name":"\uFEFFalice"}"#, "invalid_name"),
        (r#"{"name":"a\u2028b"}"#, "invalid_name"),
        (r#"{"name":"Ben\u00A0Smith"}"#, "invalid_name"),
        (r#"{"name":5}"#, "invalid_json"),
        (r#"{}"#, "invalid_json"),
        ("not json", "invalid_json"),
    ] {
        let response = app.post_json("/api/token", body).await;
        assert_eq!(response.status, 400, "{body}");
        let json = response.json();
        assert_eq!(json["error"], error, "{body}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let at_limit = format!(r#"{{"name":"{}"}}"#, "é".repeat(32));
    assert_eq!(app.post_json("/api/token", &at_limit).await.status, 200);
}

crate::both_engines!(guest_login_can_be_disabled, |config| config
    .guests
    .no_guest_login =
    true);
async fn guest_login_can_be_disabled(app: EngineApp) {
    let response = app.post_json("/api/token", r#"{"name":"alice"}"#).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"], "guest_login_disabled");
}

crate::both_engines!(rooms_lists_active_rooms_with_member_counts);
async fn rooms_lists_active_rooms_with_member_counts(app: EngineApp) {
    assert_eq!(app.rooms().await, json!([]));
    let (_alice, _) = app.join("zeta", "alice").await;
    let (_bob, _) = app.join("alpha", "bob").await;
    let (_bob_again, _) = app.join("alpha", "bob").await;
    let (_carol, _) = app.join("alpha", "carol").await;
    assert_eq!(
        app.rooms().await,
        json!([
            {"name": "alpha", "members": 2, "connections": 3},
            {"name": "zeta", "members": 1, "connections": 1},
        ])
    );
}

crate::both_engines!(rooms_are_listed_only_to_those_who_may_join_them, |config| {
    config.guests.guest_rooms = vec!["public-*".parse().unwrap()];
    config.rooms.public_rooms = vec!["public-*".parse().unwrap()];
});
async fn rooms_are_listed_only_to_those_who_may_join_them(app: EngineApp) {
    let (_alice, _) = app.join("public-lobby", "alice").await;
    let direct = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": "bob", "exp": unix_now() + 600, "rooms": ["dm-alice-bob"]}),
    );
    let mut bob = app
        .connect(&format!("/ws/chat/dm-alice-bob?token={direct}"))
        .await;
    assert_eq!(bob.recv().await["type"], "welcome");
    let names = |response: crate::helpers::HttpResponse| {
        assert_eq!(response.status, 200, "{}", response.body);
        let names: Vec<String> = response
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|room| room["name"].as_str().unwrap().to_owned())
            .collect();
        names
    };
    let everything = ["dm-alice-bob", "public-lobby"];
    assert_eq!(
        names(app.api("GET", "/api/rooms", None).await),
        everything,
        "the backend"
    );
    assert_eq!(
        names(app.get("/api/rooms").await),
        ["public-lobby"],
        "no token"
    );
    let guest = app.guest_token("carol").await;
    assert_eq!(
        names(app.api_as(&guest, "GET", "/api/rooms", None).await),
        ["public-lobby"]
    );
    assert_eq!(
        names(app.api_as(&direct, "GET", "/api/rooms", None).await),
        ["dm-alice-bob"]
    );
    assert_eq!(
        names(
            app.api_as(&app.token("dave"), "GET", "/api/rooms", None)
                .await
        ),
        everything
    );
    // A token that does not verify sees what no token sees.
    let forged = app.api_as("not-a-token", "GET", "/api/rooms", None).await;
    assert_eq!(names(forged), ["public-lobby"]);
    // Without --public-rooms, a caller without a token sees none.
    let closed = spawn_app_with(|_| {}).await;
    let (_erin, _) = closed.join("lobby", "erin").await;
    assert_eq!(names(closed.get("/api/rooms").await), Vec::<String>::new());
    assert_eq!(
        names(closed.api("GET", "/api/rooms", None).await),
        ["lobby"]
    );
}

/// The identity (`sub`, name) a token speaks for, as the server sees it.
fn identity(token: &str) -> (String, String) {
    let identity = Auth::new(SECRET.as_bytes())
        .verify(Some(token))
        .expect("a valid token");
    (identity.id, identity.name)
}

crate::both_engines!(a_guest_token_refreshes_to_the_same_identity);
async fn a_guest_token_refreshes_to_the_same_identity(app: EngineApp) {
    let issued = app
        .post_json("/api/token", r#"{"name":"alice"}"#)
        .await
        .json();
    let token = issued["token"].as_str().unwrap();
    let response = app.post_bearer("/api/token/refresh", token).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let refreshed = response.json();
    let fresh = refreshed["token"].as_str().expect("a token");
    assert!(
        refreshed["expires_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    // The lifetime, for renewing by the client's own clock: the default 24 h.
    assert_eq!(refreshed["expires_in"], 24 * 3600);
    assert_eq!(issued["expires_in"], 24 * 3600);
    assert_eq!(identity(fresh), identity(token));
    assert!(identity(fresh).0.starts_with("guest-"));
    // The refreshed token joins as the same user.
    let mut client = app.connect(&format!("/ws/chat/lobby?token={fresh}")).await;
    assert_eq!(client.recv().await["user"], "alice");
}

#[tokio::test]
async fn an_expired_guest_token_refreshes_within_the_grace_only() {
    let app =
        spawn_app_with(|config| config.guests.guest_refresh_grace = Duration::from_secs(3600))
            .await;
    let guest = |exp: u64| {
        sign_hs256(
            SECRET.as_bytes(),
            &json!({"sub": "guest-00ff", "name": "bob", "exp": exp, "guest": true}),
        )
    };
    let recently = guest(unix_now() - 600);
    let response = app.post_bearer("/api/token/refresh", &recently).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let fresh = response.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(identity(&fresh), ("guest-00ff".into(), "bob".into()));

    let long_ago = guest(unix_now() - 7200);
    let response = app.post_bearer("/api/token/refresh", &long_ago).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"], "invalid_token");
}

crate::both_engines!(forged_missing_and_non_guest_tokens_cannot_be_refreshed);
async fn forged_missing_and_non_guest_tokens_cannot_be_refreshed(app: EngineApp) {
    let forged = sign_hs256(
        b"not-the-secret",
        &json!({"sub": "guest-1", "exp": unix_now() + 600, "guest": true}),
    );
    // Issued by a backend with the shared secret, not by guest login.
    let not_guest = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": "u1", "exp": unix_now() + 600}),
    );
    for token in [forged.as_str(), not_guest.as_str(), "", "garbage"] {
        let response = app.post_bearer("/api/token/refresh", token).await;
        assert_eq!(response.status, 401, "{token}: {}", response.body);
        assert_eq!(response.json()["error"], "invalid_token");
        assert!(
            response.json()["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let response = app.post_json("/api/token/refresh", "").await;
    assert_eq!(response.status, 401, "no Authorization header");
}

crate::both_engines!(refresh_is_404_without_guest_login, |config| config
    .guests
    .no_guest_login =
    true);
async fn refresh_is_404_without_guest_login(app: EngineApp) {
    let token = app.token("alice");
    let response = app.post_bearer("/api/token/refresh", &token).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"], "guest_login_disabled");
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_or_idle_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        spawn_app_with(|config| config.http.http_idle_timeout = Duration::from_millis(300)).await;
    // Headers begun and never finished (slowloris), and a connection that says nothing.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // A keep-alive connection that made one request, then went idle.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for (name, stream) in [
        ("slow", &mut slow),
        ("silent", &mut silent),
        ("idle", &mut idle),
    ] {
        let mut received = Vec::new();
        // The server closes each: the read ends (a timeout here means it never did).
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
            .await
            .unwrap_or_else(|_| panic!("{name}: still open"))
            .ok();
        if name == "idle" {
            assert!(
                received.starts_with(b"HTTP/1.1 200"),
                "{name}: {received:?}"
            );
        }
    }
    // Requests that arrive in time are served as usual.
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn client_files_go_out_precompressed_and_are_revalidated_not_refetched() {
    let site = std::env::temp_dir().join(format!("chorus-site-{}", std::process::id()));
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("chorus.js"), "the plain script").unwrap();
    std::fs::write(pkg.join("chorus.js.br"), "brotli bytes").unwrap();
    std::fs::write(pkg.join("chorus.js.gz"), "gzip bytes").unwrap();
    let root = site.clone();
    let app = spawn_app_with(move |config| config.http.site_root = root).await;
    let fetch = |encoding: &'static str| {
        let addr = app.addr;
        async move {
            crate::helpers::http_request_with(
                addr,
                "GET",
                "/pkg/chorus.js",
                &[("Accept-Encoding", encoding)],
                None,
            )
            .await
        }
    };
    let brotli = fetch("gzip, deflate, br").await;
    assert_eq!(brotli.status, 200);
    assert_eq!(brotli.header("content-encoding"), Some("br"));
    assert_eq!(brotli.body, "brotli bytes");
    assert!(
        brotli
            .header("vary")
            .is_some_and(|vary| vary.contains("accept-encoding"))
    );
    let gzip = fetch("gzip").await;
    assert_eq!(
        (gzip.header("content-encoding"), gzip.body.as_str()),
        (Some("gzip"), "gzip bytes")
    );
    let plain = fetch("identity").await;
    assert_eq!(
        (plain.header("content-encoding"), plain.body.as_str()),
        (None, "the plain script")
    );
    assert_eq!(plain.header("cache-control"), Some("no-cache"));
    // A reload with the copy it has costs nothing but the check.
    let modified = plain
        .header("last-modified")
        .expect("a validator")
        .to_owned();
    let again = crate::helpers::http_request_with(
        app.addr,
        "GET",
        "/pkg/chorus.js",
        &[("If-Modified-Since", &modified)],
        None,
    )
    .await;
    assert_eq!(again.status, 304);
    // Pages are revalidated; API answers (tokens) are never stored.
    assert_eq!(
        app.get("/healthz").await.header("cache-control"),
        Some("no-cache")
    );
    let token = app.post_json("/api/token", r#"{"name":"cached"}"#).await;
    assert_eq!(token.header("cache-control"), Some("no-store"));
    let _ = std::fs::remove_dir_all(&site);
}

/// `GET path` with `Accept-Encoding: encoding`: the status, the `Content-Encoding`,
/// and the body decoded by it.
async fn get_encoded(
    app: &crate::helpers::TestApp,
    path: &str,
    encoding: &str,
) -> (u16, Option<String>, String) {
    use std::io::Read;
    // reqwest without its decompression features hands the body over as sent.
    let response = reqwest::Client::new()
        .get(format!("http://{}{path}", app.addr))
        .header("accept-encoding", encoding)
        // The room list needs one; pages ignore it.
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_encoding = response
        .headers()
        .get("content-encoding")
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.unwrap();
    let mut body = String::new();
    match content_encoding.as_deref() {
        Some("br") => brotli_decompressor::Decompressor::new(&bytes[..], 4096)
            .read_to_string(&mut body)
            .unwrap(),
        Some("gzip") => flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut body)
            .unwrap(),
        None => {
            body = String::from_utf8(bytes.to_vec()).unwrap();
            body.len()
        }
        Some(other) => panic!("unexpected content-encoding {other}"),
    };
    (status, content_encoding, body)
}

crate::both_engines!(pages_and_api_reads_are_compressed_as_the_client_prefers_but_never_tokens);
async fn pages_and_api_reads_are_compressed_as_the_client_prefers_but_never_tokens(app: EngineApp) {
    let rooms: Vec<String> = (0..12).map(|n| format!("room-{n}")).collect();
    let mut clients = Vec::new();
    for room in &rooms {
        clients.push(app.join(room, &format!("member of {room}")).await.0);
    }
    let page = get_encoded(&app, "/", "gzip, deflate, br").await;
    assert_eq!((page.0, page.1.as_deref()), (200, Some("br")));
    assert!(page.2.contains("<h1"), "{}", page.2);
    let (status, encoding, list) = get_encoded(&app, "/api/rooms", "gzip").await;
    assert_eq!((status, encoding.as_deref()), (200, Some("gzip")));
    let listed: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(listed.len(), rooms.len());
    // Asked for nothing, or for what the server does not offer: plain.
    for encoding in ["identity", "compress"] {
        let (status, content_encoding, plain) = get_encoded(&app, "/api/rooms", encoding).await;
        assert_eq!((status, content_encoding), (200, None));
        assert_eq!(plain, list);
    }
    // A token sits beside the name the caller chose: never compressed.
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/token", app.addr))
        .header("accept-encoding", "br, gzip")
        .header("content-type", "application/json")
        .body(format!(r#"{{"name":"{}"}}"#, "a".repeat(30)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-encoding"), None);
    // A browser offers compression on the upgrade too: the chat still upgrades.
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = app
        .ws_url(&format!("/ws/chat/room-0?token={}", app.token("bob")))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("accept-encoding", "gzip, deflate, br".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers().get("content-encoding"), None);
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains(r#""type":"welcome""#));
    drop(clients);
}

/// Sends `head` (a request line and headers, without the blank line) on a new
/// connection, then `drip` one byte at a time, `every` apart, until the server
/// answers; returns what it answered, up to the connection's end.
async fn answer_while_dripping(
    addr: std::net::SocketAddr,
    head: &str,
    drip: bool,
    every: Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let dripping = tokio::spawn(async move {
        if drip {
            loop {
                tokio::time::sleep(every).await;
                if write.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
        // Keeps the writing half open while not dripping.
        std::future::pending::<()>().await;
    });
    let mut received = Vec::new();
    // The server answers and closes: the read ends (a timeout: it never did).
    tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut received))
        .await
        .expect("answered and closed in time")
        .ok();
    dripping.abort();
    String::from_utf8_lossy(&received).into_owned()
}

crate::both_engines!(
    a_body_that_arrives_too_slowly_is_answered_408_and_closed,
    |config| config.http.http_idle_timeout = Duration::from_millis(500)
);
async fn a_body_that_arrives_too_slowly_is_answered_408_and_closed(app: EngineApp) {
    // A byte every 100 ms: never idle for the timeout, but never done either.
    let head = "POST /api/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000";
    let answer = answer_while_dripping(app.addr, head, true, Duration::from_millis(100)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert_eq!(app.get("/healthz").await.status, 200);
}

crate::both_engines!(a_body_over_64_kib_is_refused_413_without_being_read);
async fn a_body_over_64_kib_is_refused_413_without_being_read(app: EngineApp) {
    // Declared: answered at once, before a byte of it is sent.
    for path in ["/api/token", "/api/rooms/lobby/messages"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 2000000",
            API_KEY
        );
        let answer = answer_while_dripping(app.addr, &head, false, Duration::ZERO).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("body_too_large"), "{path}: {answer}");
    }
    // Chunked, so no length is declared: found while reading.
    let chunk = "x".repeat(40_000);
    let body = format!(
        "{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    let answer = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!(
            "POST /api/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
            .await
            .expect("answered in time")
            .ok();
        String::from_utf8_lossy(&received).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A body that fits is read as before.
    let fits = app.post_json("/api/token", r#"{"name":"alice"}"#).await;
    assert_eq!(fits.status, 200, "{}", fits.body);
}

crate::both_engines!(the_key_and_the_rate_are_checked_before_a_body_is_read);
async fn the_key_and_the_rate_are_checked_before_a_body_is_read(app: EngineApp) {
    // Headers only, the body never sent: the answer cannot wait for it.
    for path in ["/api/rooms/lobby/messages", "/api/users/alice/disconnect"] {
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000");
        let answer = answer_while_dripping(app.addr, &head, false, Duration::ZERO).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
    }
}

#[tokio::test]
async fn guest_tokens_over_the_rate_are_refused_before_the_body_is_read() {
    let app = spawn_app_with(|config| {
        config.guests.guest_token_rate_limit = 1;
        config.guests.guest_token_rate_limit_burst = 1;
    })
    .await;
    assert_eq!(
        app.post_json("/api/token", r#"{"name":"alice"}"#)
            .await
            .status,
        200
    );
    let head = "POST /api/token HTTP/1.1\r\nHost: x\r\nContent-Length: 1000";
    let answer = answer_while_dripping(app.addr, head, false, Duration::ZERO).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
}

crate::both_engines!(
    one_address_holds_at_most_its_share_of_http_connections,
    |config| config.http.max_http_connections_per_address = 3
);
async fn one_address_holds_at_most_its_share_of_http_connections(app: EngineApp) {
    use tokio::io::AsyncReadExt;
    let held: Vec<_> =
        futures_util::future::join_all((0..3).map(|_| tokio::net::TcpStream::connect(app.addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    // The fourth is told why and closed, without sending anything.
    let mut refused = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_end(&mut received))
        .await
        .expect("closed")
        .ok();
    let received = String::from_utf8_lossy(&received);
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 429"),
        "{received}"
    );
    // Another address is not affected.
    let other = "127.0.0.2".parse().unwrap();
    assert_eq!(status_from(other, app.addr, "/healthz").await, Some(200));
    // A place comes back once one of the three has closed (the server sees it go).
    drop(held);
    let this = "127.0.0.1".parse().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while status_from(this, app.addr, "/healthz").await != Some(200) {
        assert!(tokio::time::Instant::now() < deadline, "no place came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_from_a_trusted_proxy_are_not_counted_per_address() {
    let app = spawn_app_with(|config| {
        config.http.max_http_connections_per_address = 1;
        config.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let _held = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let _also = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(app.get("/healthz").await.status, 200);
}
