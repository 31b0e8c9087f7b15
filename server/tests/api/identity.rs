//! Tokens from an identity provider: RS256 through a JWKS that this test serves and
//! rotates, ES256 and EdDSA from PEM files, and algorithm confusion refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chorus_server::auth::unix_now;
use chorus_server::config::Config;
use chorus_server::startup::Application;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{EngineApp, PATIENCE, TestApp, spawn_app_with};

fn key_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn private(name: &str) -> Vec<u8> {
    std::fs::read(key_file(name)).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "name": sub, "exp": unix_now() + 600})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&private(name)).unwrap()
}

/// A JWKS of the given RSA private keys' public halves, under the given key ids.
fn jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Jwk> = keys
        .iter()
        .map(|(kid, file)| {
            let mut jwk = Jwk::from_encoding_key(&rsa(file), Algorithm::RS256).unwrap();
            jwk.common.key_id = Some((*kid).to_owned());
            // The public half only: a JWKS never carries private parameters.
            jwk
        })
        .collect();
    json!({"keys": keys}).to_string()
}

/// The identity provider's JWKS endpoint: serves `document`, counts fetches, and
/// answers only while open; `/moved` redirects to it.
struct Provider {
    url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    open: tokio::sync::watch::Sender<bool>,
}

/// What the provider's handler shares with the test.
type Shared = (
    Arc<Mutex<String>>,
    Arc<AtomicUsize>,
    tokio::sync::watch::Receiver<bool>,
);

impl Provider {
    async fn start(document: String) -> Provider {
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (open, is_open) = tokio::sync::watch::channel(true);
        let router = Router::new()
            .route(
                "/.well-known/jwks.json",
                get(
                    |State((document, fetches, mut is_open)): State<Shared>| async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let _ = is_open.wait_for(|open| *open).await;
                        let body = document.lock().unwrap().clone();
                        ([("content-type", "application/json")], body)
                    },
                ),
            )
            .route(
                "/moved",
                get(|| async { axum::response::Redirect::temporary("/.well-known/jwks.json") }),
            )
            .with_state((document.clone(), fetches.clone(), is_open));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Provider {
            url: format!("http://{addr}/.well-known/jwks.json"),
            document,
            fetches,
            open,
        }
    }

    /// Holds every answer back until [`Self::answer`] (a provider that hangs).
    fn hold(&self) {
        self.open.send_replace(false);
    }

    fn answer(&self) {
        self.open.send_replace(true);
    }

    fn publish(&self, document: String) {
        *self.document.lock().unwrap() = document;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn welcomed(app: &TestApp, token: &str) -> Value {
    let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    welcome
}

async fn refused(app: &TestApp, token: &str) {
    let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    client.expect_close(4001).await;
}

#[tokio::test]
async fn rs256_through_a_jwks_survives_a_key_rotation_without_a_restart() {
    let provider = Provider::start(jwks(&[("k1", "rsa-1.pem")])).await;
    let url = provider.url.clone();
    let app = spawn_app_with(move |config| config.tokens.jwks_url = Some(url)).await;
    assert_eq!(provider.fetches(), 1, "fetched at start");

    let first = sign(
        Algorithm::RS256,
        Some("k1"),
        &rsa("rsa-1.pem"),
        &claims("ann"),
    );
    assert_eq!(welcomed(&app, &first).await["user_id"], "ann");
    // The same key id with a signature of another key: refused, no refetch.
    let forged = sign(
        Algorithm::RS256,
        Some("k1"),
        &rsa("rsa-2.pem"),
        &claims("eve"),
    );
    refused(&app, &forged).await;
    assert_eq!(provider.fetches(), 1);

    // The provider rotates to k2; a token with k2 makes the server fetch at once.
    provider.publish(jwks(&[("k2", "rsa-2.pem")]));
    let rotated = sign(
        Algorithm::RS256,
        Some("k2"),
        &rsa("rsa-2.pem"),
        &claims("bea"),
    );
    assert_eq!(welcomed(&app, &rotated).await["user_id"], "bea");
    assert_eq!(provider.fetches(), 2);
    // k1 is gone now.
    refused(&app, &first).await;
    // Unknown key ids do not make the server fetch again within 30 s, however many.
    for n in 0..5 {
        let unknown = sign(
            Algorithm::RS256,
            Some(&format!("k-unknown-{n}")),
            &rsa("rsa-1.pem"),
            &claims("eve"),
        );
        refused(&app, &unknown).await;
    }
    assert_eq!(provider.fetches(), 2);
    // PS256 with the same RSA key: its JWK says RS256 only.
    let other_alg = sign(
        Algorithm::PS256,
        Some("k2"),
        &rsa("rsa-2.pem"),
        &claims("bea"),
    );
    refused(&app, &other_alg).await;
    // The server's own HS256 tokens keep working beside the provider's.
    assert_eq!(
        welcomed(&app, &app.token("guest")).await["user_id"],
        "guest"
    );
}

#[tokio::test]
async fn the_jwks_is_refreshed_periodically() {
    let provider = Provider::start(jwks(&[("k1", "rsa-1.pem")])).await;
    let url = provider.url.clone();
    let app = spawn_app_with(move |config| {
        config.tokens.jwks_url = Some(url);
        config.tokens.jwks_refresh = Duration::from_millis(200);
    })
    .await;
    provider.publish(jwks(&[("k1", "rsa-1.pem"), ("k2", "rsa-2.pem")]));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while provider.fetches() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no periodic refresh"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Already known when the token comes: no unknown-kid fetch needed.
    let before = provider.fetches();
    let token = sign(
        Algorithm::RS256,
        Some("k2"),
        &rsa("rsa-2.pem"),
        &claims("cy"),
    );
    welcomed(&app, &token).await;
    assert!(
        provider.fetches() - before <= 1,
        "at most the periodic one meanwhile"
    );
}

both_engines!(
    es256_and_eddsa_from_pem_files_and_no_algorithm_confusion,
    |config| {
        config.tokens.jwt_public_keys = ["ec-p256.pub.pem", "ed25519.pub.pem", "rsa-1.pub.pem"]
            .into_iter()
            .map(|name| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/keys")
                    .join(name)
            })
            .collect();
    }
);
async fn es256_and_eddsa_from_pem_files_and_no_algorithm_confusion(app: EngineApp) {
    let es256 = sign(
        Algorithm::ES256,
        None,
        &EncodingKey::from_ec_pem(&private("ec-p256.pem")).unwrap(),
        &claims("ecdsa-user"),
    );
    assert_eq!(welcomed(&app, &es256).await["user_id"], "ecdsa-user");
    let eddsa = sign(
        Algorithm::EdDSA,
        None,
        &EncodingKey::from_ed_pem(&private("ed25519.pem")).unwrap(),
        &claims("ed-user"),
    );
    assert_eq!(welcomed(&app, &eddsa).await["user_id"], "ed-user");
    let rs512 = sign(
        Algorithm::RS512,
        None,
        &rsa("rsa-1.pem"),
        &claims("rsa-user"),
    );
    assert_eq!(welcomed(&app, &rs512).await["user_id"], "rsa-user");

    // A key this server does not have (P-384) and one it does not trust (rsa-2).
    let es384 = sign(
        Algorithm::ES384,
        None,
        &EncodingKey::from_ec_pem(&private("ec-p384.pem")).unwrap(),
        &claims("eve"),
    );
    refused(&app, &es384).await;
    refused(
        &app,
        &sign(Algorithm::RS256, None, &rsa("rsa-2.pem"), &claims("eve")),
    )
    .await;

    // Algorithm confusion: HS256 "signed" with a public key's PEM as the secret.
    for public in ["ec-p256.pub.pem", "ed25519.pub.pem", "rsa-1.pub.pem"] {
        let pem = std::fs::read(key_file(public)).unwrap();
        let confused = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(&pem),
            &claims("eve"),
        );
        refused(&app, &confused).await;
    }
    // `alg: none` and a header naming one algorithm over another's signature.
    let unsigned = {
        use base64::Engine;
        let encode = |value: Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
        };
        format!(
            "{}.{}.",
            encode(json!({"alg": "none"})),
            encode(claims("eve"))
        )
    };
    refused(&app, &unsigned).await;
    let mut swapped: Vec<&str> = es256.split('.').collect();
    let header = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#)
    };
    swapped[0] = &header;
    refused(&app, &swapped.join(".")).await;
}

#[tokio::test]
async fn a_jwks_file_works_like_a_url() {
    let path = std::env::temp_dir().join(format!("chorus-jwks-{}.json", std::process::id()));
    std::fs::write(&path, jwks(&[("file-key", "rsa-2.pem")])).unwrap();
    let file = path.clone();
    let app = spawn_app_with(move |config| config.tokens.jwks_file = Some(file)).await;
    let token = sign(
        Algorithm::RS256,
        Some("file-key"),
        &rsa("rsa-2.pem"),
        &claims("fay"),
    );
    assert_eq!(welcomed(&app, &token).await["user_id"], "fay");
    // A key added to the file later is read when a token names it.
    std::fs::write(
        &path,
        jwks(&[("file-key", "rsa-2.pem"), ("added", "rsa-1.pem")]),
    )
    .unwrap();
    let added = sign(
        Algorithm::RS256,
        Some("added"),
        &rsa("rsa-1.pem"),
        &claims("gus"),
    );
    assert_eq!(welcomed(&app, &added).await["user_id"], "gus");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_issuer_and_audience_apply_to_provider_tokens_too() {
    let app = spawn_app_with(|config| {
        config.tokens.jwt_public_keys = vec![key_file("rsa-1.pub.pem")];
        config.tokens.jwt_issuer = Some("https://id.example.com".into());
        config.tokens.jwt_audience = Some("chorus".into());
    })
    .await;
    let mut good = claims("ivy");
    good["iss"] = "https://id.example.com".into();
    good["aud"] = json!(["chorus", "other"]);
    welcomed(
        &app,
        &sign(Algorithm::RS256, None, &rsa("rsa-1.pem"), &good),
    )
    .await;
    let mut wrong = good.clone();
    wrong["aud"] = "someone-else".into();
    refused(
        &app,
        &sign(Algorithm::RS256, None, &rsa("rsa-1.pem"), &wrong),
    )
    .await;
}

#[tokio::test]
async fn a_server_that_cannot_have_its_keys_refuses_to_start() {
    let start = |configure: Box<dyn FnOnce(&mut Config)>| async move {
        let mut config = Config::defaults();
        config.http.addr = "127.0.0.1:0".parse().unwrap();
        config.http.site_root = "target/no-site-in-api-tests".into();
        configure(&mut config);
        match Application::build(config).await {
            Ok(_) => panic!("started without its keys"),
            Err(err) => chorus_server::observe::logs::ErrorChain(&err).to_string(),
        }
    };
    // Nothing listens on port 9 of this host.
    let unreachable = start(Box::new(|config| {
        config.tokens.jwks_url = Some("http://127.0.0.1:9/jwks.json".into());
    }))
    .await;
    assert!(
        unreachable.contains("cannot fetch the JWKS from http://127.0.0.1:9/jwks.json"),
        "{unreachable}"
    );
    let provider = Provider::start("<html>not a key set</html>".into()).await;
    let url = provider.url.clone();
    let not_jwks = start(Box::new(move |config| config.tokens.jwks_url = Some(url))).await;
    assert!(not_jwks.contains("is not a JWKS"), "{not_jwks}");
    // Keys over plain HTTP from another host could be swapped on the way: refused
    // before any request. Redirects are not followed.
    let insecure = start(Box::new(|config| {
        config.tokens.jwks_url = Some("http://idp.example.com/jwks.json".into());
    }))
    .await;
    assert!(insecure.contains("must be https://"), "{insecure}");
    let moved = provider.url.replace("/.well-known/jwks.json", "/moved");
    let redirected = start(Box::new(move |config| config.tokens.jwks_url = Some(moved))).await;
    assert!(
        redirected.contains("answered HTTP 307, a redirect, which is not followed"),
        "{redirected}"
    );
    let private_key = start(Box::new(|config| {
        config.tokens.jwt_public_keys = vec![key_file("rsa-1.pem")];
    }))
    .await;
    assert!(
        private_key.contains("rsa-1.pem cannot be used") && private_key.contains("private key"),
        "{private_key}"
    );
    let missing = start(Box::new(|config| {
        config.tokens.jwt_public_keys = vec![key_file("no-such.pem")];
    }))
    .await;
    assert!(
        missing.contains("cannot read --jwt-public-key"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_socket_waiting_for_the_providers_keys_holds_no_place() {
    let provider = Provider::start(jwks(&[("k1", "rsa-1.pem")])).await;
    let url = provider.url.clone();
    let app = Arc::new(
        spawn_app_with(move |config| {
            config.tokens.jwks_url = Some(url);
            config.connections.max_connections = 1;
        })
        .await,
    );
    // A token with a key id the server has not seen: it fetches the keys again,
    // and the provider hangs.
    provider.hold();
    let fetched = provider.fetches();
    let rotated = sign(
        Algorithm::RS256,
        Some("k2"),
        &rsa("rsa-2.pem"),
        &claims("carol"),
    );
    let waiting = tokio::spawn({
        let app = app.clone();
        async move {
            let mut carol = app
                .connect(&format!("/ws/chat/lobby?token={rotated}"))
                .await;
            carol.expect_close(1013).await;
        }
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while provider.fetches() == fetched {
        assert!(tokio::time::Instant::now() < deadline, "no refetch");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Meanwhile the server's only place is still free for a member.
    let (_bob, _) = app.join("lobby", "bob").await;
    // The provider answers with the new key: the waiting token is now valid (not
    // 4001), and only then does it look for a place, which bob has (1013).
    provider.publish(jwks(&[("k1", "rsa-1.pem"), ("k2", "rsa-2.pem")]));
    provider.answer();
    tokio::time::timeout(PATIENCE * 3, waiting)
        .await
        .expect("answered once the keys came")
        .unwrap();
}
