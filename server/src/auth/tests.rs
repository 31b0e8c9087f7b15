//! Token verification, guest tokens and claims, over real tokens signed here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

#[test]
fn exp_near_the_end_of_time_is_long_lived_not_a_panic() {
    let auth = Auth::new(b"secret");
    let a_year = SystemTime::now() + LONGEST_VALIDITY;
    for exp in [1 << 63, u64::MAX, u64::MAX - 1, 1 << 40] {
        let token = sign(b"secret", serde_json::json!({"sub": "alice", "exp": exp}));
        let identity = auth
            .verify(Some(&token))
            .expect("a valid, long-lived token");
        assert!(
            identity.valid_until <= a_year + Duration::from_secs(1),
            "{exp}"
        );
        assert!(identity.valid_until > SystemTime::now() + Duration::from_secs(86_400));
    }
}

#[test]
fn refusals_never_repeat_text_from_the_token() {
    let auth = Auth::new(b"secret");
    let encode = |part: &str| URL_SAFE_NO_PAD.encode(part);
    let hostile = [
        format!(
            "{}.{}.c2ln",
            encode(r#"{"alg":"HS256\nFORGED log line","typ":"JWT"}"#),
            encode(r#"{"sub":"a","exp":99999999999}"#)
        ),
        format!(
            "{}.{}.c2ln",
            encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            encode(r#"{"sub":"a","exp":"FORGED\n"}"#)
        ),
        "FORGED\nline".to_owned(),
        format!("{}.FORGED.x", encode(r#"{"alg":"none"}"#)),
    ];
    for token in hostile {
        let err = auth.verify(Some(&token)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, AuthError::Invalid(_)), "{token}: {err:?}");
        assert!(!text.contains("FORGED") && !text.contains('\n'), "{text:?}");
        let err = auth
            .refresh_guest(&token, Duration::from_secs(60), Duration::from_secs(60))
            .unwrap_err();
        assert!(!err.to_string().contains("FORGED"), "{err}");
    }
}

#[test]
fn the_name_claim_follows_the_display_name_rules() {
    let auth = Auth::new(b"secret");
    let token = |claims: serde_json::Value| sign(b"secret", claims);
    let exp = now() + 600;
    let named = auth
        .verify(Some(&token(
            serde_json::json!({"sub": "u1", "name": " Dana ", "exp": exp}),
        )))
        .unwrap();
    assert_eq!(named.name, "Dana");
    let unnamed = auth
        .verify(Some(&token(serde_json::json!({"sub": "u1", "exp": exp}))))
        .unwrap();
    assert_eq!(unnamed.name, "u1");
    for bad in [
        "",
        "  ",
        "evil\u{202E}nimda",
        "ad\u{200B}min",
        &"x".repeat(33),
    ] {
        let refused = auth.verify(Some(&token(
            serde_json::json!({"sub": "u1", "name": bad, "exp": exp}),
        )));
        assert_eq!(
            refused,
            Err(AuthError::Invalid("`name` is not a valid display name")),
            "{bad:?}"
        );
    }
}

fn sign(secret: &[u8], claims: serde_json::Value) -> String {
    sign_hs256(secret, &claims)
}

fn now() -> u64 {
    unix_now()
}

#[test]
fn issued_tokens_verify() {
    let auth = Auth::new(b"secret");
    let issued = auth.issue_guest("alice", Duration::from_secs(60));
    let identity = auth.verify(Some(&issued.token)).unwrap();
    assert_eq!(identity.name, "alice");
    assert!(identity.id.starts_with("guest-"));
    assert!(issued.expires_at.ends_with('Z'));
}

#[test]
fn name_defaults_to_sub() {
    let auth = Auth::new(b"secret");
    let token = sign(
        b"secret",
        serde_json::json!({"sub": "u1", "exp": now() + 60}),
    );
    assert_eq!(auth.verify(Some(&token)).unwrap().name, "u1");
}

#[test]
fn sub_is_bounded_and_shown_only_as_a_valid_name() {
    let auth = Auth::new(b"secret");
    let verify = |sub: &str| {
        let token = sign(
            b"secret",
            serde_json::json!({"sub": sub, "exp": now() + 60}),
        );
        auth.verify(Some(&token))
    };
    let long = "x".repeat(257);
    assert!(
        matches!(verify(&long), Err(AuthError::Invalid(reason)) if reason.contains("256")),
        "a sub longer than 256 characters"
    );
    assert!(matches!(verify("a\u{7}b"), Err(AuthError::Invalid(_))));
    // Without `name`, the sub is shown, held to the display-name rules.
    let uuid = verify("6f1c2b1e-8a4d-4c1b-9e2f-3a5b7c9d0e1f").unwrap();
    assert_eq!(
        uuid.id, "6f1c2b1e-8a4d-4c1b-9e2f-3a5b7c9d0e1f",
        "the id is whole"
    );
    assert_eq!(uuid.name.chars().count(), 32);
    assert_eq!(
        verify("admin\u{202E}nimda"),
        Err(AuthError::Invalid(
            "no `name`, and `sub` cannot be shown as one"
        ))
    );
}

/// A key file of the integration tests' (`server/tests/keys`).
fn key(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name);
    std::fs::read(path).unwrap()
}

fn rs256(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&key("rsa-1.pem")).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_token_without_kid_is_tried_against_a_few_keys_of_its_type_only() {
    let public = |name: &str| super::signing_keys::VerifyingKey::from_pem(&key(name)).unwrap();
    let token = rs256(&serde_json::json!({"sub": "u1", "exp": now() + 60}));
    let others = || (0..KEYS_TRIED_WITHOUT_KID).map(|_| public("rsa-2.pub.pem"));
    let behind: Vec<_> = others().chain([public("rsa-1.pub.pem")]).collect();
    assert!(
        Auth::new(b"secret")
            .with_public_keys(behind)
            .verify(Some(&token))
            .is_err(),
        "its key comes after the few tried"
    );
    let among: Vec<_> = [public("rsa-1.pub.pem")]
        .into_iter()
        .chain(others())
        .collect();
    assert!(
        Auth::new(b"secret")
            .with_public_keys(among)
            .verify(Some(&token))
            .is_ok()
    );
}

#[test]
fn guest_is_honoured_only_on_tokens_signed_with_the_secret() {
    let public = super::signing_keys::VerifyingKey::from_pem(&key("rsa-1.pub.pem")).unwrap();
    let guest_rooms = super::permissions::RoomPatterns::parse(&["lobby"]).unwrap();
    let auth = Auth::new(b"secret")
        .with_public_keys(vec![public])
        .with_guest_rooms(guest_rooms);
    let claims = serde_json::json!({
        "sub": "u1", "exp": now() + 60, "guest": true, "rooms": ["support-*"],
    });
    let provider = rs256(&claims);
    let support = chorus_protocol::RoomName::parse("support-1").unwrap();
    let lobby = chorus_protocol::RoomName::parse("lobby").unwrap();
    let judged = auth.verify(Some(&provider)).unwrap().permissions;
    assert!(
        judged.may_join(&support) && !judged.may_join(&lobby),
        "the provider's token is judged by its rooms"
    );
    let ours = auth
        .verify(Some(&sign(b"secret", claims)))
        .unwrap()
        .permissions;
    assert!(ours.may_join(&lobby) && !ours.may_join(&support), "a guest");
}

#[test]
fn rejects_bad_tokens() {
    let auth = Auth::new(b"secret");
    assert_eq!(auth.verify(None), Err(AuthError::Missing));
    assert_eq!(auth.verify(Some("")), Err(AuthError::Missing));
    assert!(matches!(
        auth.verify(Some("garbage")),
        Err(AuthError::Invalid(_))
    ));
    let forged = sign(
        b"other",
        serde_json::json!({"sub": "u1", "exp": now() + 60}),
    );
    assert!(matches!(
        auth.verify(Some(&forged)),
        Err(AuthError::Invalid(_))
    ));
    let no_exp = sign(b"secret", serde_json::json!({"sub": "u1"}));
    assert!(matches!(
        auth.verify(Some(&no_exp)),
        Err(AuthError::Invalid(_))
    ));
    let no_sub = sign(b"secret", serde_json::json!({"exp": now() + 60}));
    assert!(matches!(
        auth.verify(Some(&no_sub)),
        Err(AuthError::Invalid(_))
    ));
    let expired = sign(
        b"secret",
        serde_json::json!({"sub": "u1", "exp": now() - 10}),
    );
    assert_eq!(auth.verify(Some(&expired)), Err(AuthError::Expired));
}

#[test]
fn a_guest_token_refreshes_to_the_same_identity_within_the_grace() {
    let auth = Auth::new(b"secret");
    let hour = Duration::from_secs(3600);
    let issued = auth.issue_guest("alice", hour);
    let refreshed = auth.refresh_guest(&issued.token, hour, hour).unwrap();
    let (before, after) = (
        auth.verify(Some(&issued.token)).unwrap(),
        auth.verify(Some(&refreshed.token)).unwrap(),
    );
    assert_eq!((after.id, after.name), (before.id, before.name));

    let guest = |exp: u64| {
        sign(
            b"secret",
            serde_json::json!({"sub": "guest-1", "name": "bob", "exp": exp, "guest": true}),
        )
    };
    let expired = guest(now() - 600);
    assert!(
        auth.refresh_guest(&expired, hour, hour).is_ok(),
        "within the grace"
    );
    assert_eq!(
        auth.refresh_guest(&expired, Duration::from_secs(60), hour),
        Err(AuthError::TooOld)
    );
    let not_guest = sign(
        b"secret",
        serde_json::json!({"sub": "u1", "exp": now() + 60}),
    );
    assert_eq!(
        auth.refresh_guest(&not_guest, hour, hour),
        Err(AuthError::NotGuest)
    );
    let forged = sign(
        b"other",
        serde_json::json!({"sub": "guest-1", "exp": now() + 60, "guest": true}),
    );
    assert!(matches!(
        auth.refresh_guest(&forged, hour, hour),
        Err(AuthError::Invalid(_))
    ));
    assert_eq!(auth.refresh_guest("", hour, hour), Err(AuthError::Missing));
}

#[test]
fn leeway_is_at_most_five_seconds() {
    let auth = Auth::new(b"secret");
    let within = sign(
        b"secret",
        serde_json::json!({"sub": "u1", "exp": now() - 2}),
    );
    assert!(auth.verify(Some(&within)).is_ok());
    let beyond = sign(
        b"secret",
        serde_json::json!({"sub": "u1", "exp": now() - 7}),
    );
    assert_eq!(auth.verify(Some(&beyond)), Err(AuthError::Expired));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_string_is_verified_or_refused_without_panicking(token in any::<String>()) {
            let auth = Auth::new(b"secret");
            let _ = auth.verify(Some(&token));
            let _ = auth.refresh_guest(&token, Duration::from_secs(60), Duration::from_secs(60));
        }

        #[test]
        fn any_well_signed_claims_are_judged_without_panicking(
            sub in proptest::option::of(any::<String>()),
            name in proptest::option::of(any::<String>()),
            exp in prop_oneof![
                any::<u64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(|exp| serde_json::json!(exp)),
                any::<String>().prop_map(serde_json::Value::from),
            ],
            guest in any::<bool>(),
        ) {
            let mut claims = serde_json::json!({"exp": exp, "guest": guest});
            if let Some(sub) = sub {
                claims["sub"] = sub.into();
            }
            if let Some(name) = name {
                claims["name"] = name.into();
            }
            let token = sign_hs256(b"secret", &claims);
            let auth = Auth::new(b"secret");
            if let Ok(identity) = auth.verify(Some(&token)) {
                prop_assert!(!identity.id.is_empty());
                prop_assert!(identity.valid_until <= SystemTime::now() + LONGEST_VALIDITY + Duration::from_secs(1));
            }
            let _ = auth.refresh_guest(&token, Duration::from_secs(u64::MAX / 4), Duration::from_secs(60));
        }
    }
}

mod claims_policy {
    use serde_json::json;

    use super::*;

    fn token(claims: serde_json::Value) -> String {
        sign_hs256(b"secret", &claims)
    }

    #[test]
    fn issuer_and_audience_are_required_and_checked_when_set() {
        let auth = Auth::with_policy(
            b"secret",
            ClaimsPolicy {
                issuer: Some("https://id.example.com".into()),
                audience: Some("chorus".into()),
            },
        );
        let exp = unix_now() + 600;
        let good =
            json!({"sub": "u1", "exp": exp, "iss": "https://id.example.com", "aud": "chorus"});
        assert!(auth.verify(Some(&token(good))).is_ok());
        let listed = json!({"sub": "u1", "exp": exp, "iss": "https://id.example.com", "aud": ["other", "chorus"]});
        assert!(
            auth.verify(Some(&token(listed))).is_ok(),
            "one of several audiences"
        );
        let cases = [
            (
                json!({"sub": "u1", "exp": exp, "aud": "chorus"}),
                "a required claim is missing",
            ),
            (
                json!({"sub": "u1", "exp": exp, "iss": "https://id.example.com"}),
                "a required claim is missing",
            ),
            (
                json!({"sub": "u1", "exp": exp, "iss": "https://evil.example", "aud": "chorus"}),
                "wrong issuer",
            ),
            (
                json!({"sub": "u1", "exp": exp, "iss": "https://id.example.com", "aud": "other"}),
                "wrong audience",
            ),
        ];
        for (claims, reason) in cases {
            assert_eq!(
                auth.verify(Some(&token(claims.clone()))),
                Err(AuthError::Invalid(reason)),
                "{claims}"
            );
        }
        // Guest tokens issued here carry both, so they pass too, and refresh.
        let guest = auth.issue_guest("alice", Duration::from_secs(60));
        assert!(auth.verify(Some(&guest.token)).is_ok());
        let hour = Duration::from_secs(3600);
        assert!(auth.refresh_guest(&guest.token, hour, hour).is_ok());
    }

    #[test]
    fn without_a_policy_iss_and_aud_are_not_checked() {
        let auth = Auth::new(b"secret");
        let exp = unix_now() + 600;
        for claims in [
            json!({"sub": "u1", "exp": exp, "iss": "anyone", "aud": "anything"}),
            json!({"sub": "u1", "exp": exp, "aud": ["a", "b"]}),
        ] {
            assert!(
                auth.verify(Some(&token(claims.clone()))).is_ok(),
                "{claims}"
            );
        }
        let guest = auth.issue_guest("alice", Duration::from_secs(60)).token;
        let payload = guest.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert!(
            claims.get("iss").is_none() && claims.get("aud").is_none(),
            "{claims}"
        );
    }
}

mod room_claims {
    use chorus_protocol::RoomName;
    use serde_json::json;

    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn rooms_and_publish_become_permissions() {
        let auth = Auth::new(b"secret");
        let exp = unix_now() + 600;
        let token = sign_hs256(
            b"secret",
            &json!({"sub": "u1", "exp": exp, "rooms": ["support-*"], "publish": []}),
        );
        let permissions = auth.verify(Some(&token)).unwrap().permissions;
        assert!(permissions.may_join(&room("support-1")));
        assert!(!permissions.may_join(&room("lobby")));
        assert!(!permissions.may_publish(&room("support-1")));
        let open = sign_hs256(b"secret", &json!({"sub": "u1", "exp": exp, "rooms": null}));
        assert_eq!(
            auth.verify(Some(&open)).unwrap().permissions,
            Permissions::everything()
        );
    }

    #[test]
    fn guests_get_the_guest_rooms_whatever_their_token_says() {
        let guest_rooms = RoomPatterns::parse(&["lobby"]).unwrap();
        let auth = Auth::new(b"secret").with_guest_rooms(guest_rooms);
        let guest = auth.issue_guest("visitor", Duration::from_secs(60));
        let permissions = auth.verify(Some(&guest.token)).unwrap().permissions;
        assert!(permissions.may_publish(&room("lobby")));
        assert!(!permissions.may_join(&room("staff")));
        let widened = sign_hs256(
            b"secret",
            &json!({"sub": "guest-1", "exp": unix_now() + 60, "guest": true, "rooms": ["*"]}),
        );
        assert!(
            !auth
                .verify(Some(&widened))
                .unwrap()
                .permissions
                .may_join(&room("staff"))
        );
    }
}
