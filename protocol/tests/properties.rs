//! Properties of the protocol's parsing and validation, over generated input:
//! nothing a client sends can panic the parser, and each validator accepts exactly
//! what its documentation says; and every frame the server writes in pieces reads
//! back as the frame it stands for, whatever the names and text in it.

use chorus_protocol::{
    ChatMessage, ClientFrame, ErrorCode, MAX_CONTENT_CHARS, MAX_DISPLAY_NAME_CHARS, MAX_REF_CHARS,
    MAX_ROOM_NAME_CHARS, Member, ServerFrame, WelcomeHead, is_hidden_in_names, member_entry,
    message_around_id, normalize_display_name, token_from_subprotocols, users_frame,
    validate_content, validate_ref, validate_room_name,
};
use proptest::prelude::*;

/// Text mixing ordinary characters with the troublesome kinds: controls, format
/// characters, odd spaces, astral characters, JSON's special characters.
fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => Just(' '),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => proptest::char::range('\u{7f}', '\u{9f}'),
        1 => prop_oneof![Just('\u{200b}'), Just('\u{202e}'), Just('\u{feff}'), Just('\u{2028}'), Just('\u{a0}')],
        1 => prop_oneof![Just('"'), Just('\\'), Just('{'), Just('}')],
        1 => proptest::char::range('\u{1f300}', '\u{1f3ff}'),
        1 => any::<char>(),
    ];
    proptest::collection::vec(chars, 0..max).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_text_frame_parses_or_is_refused_without_panicking(text in any::<String>()) {
        let _ = ClientFrame::parse(&text);
    }

    #[test]
    fn json_shaped_frames_parse_or_are_refused_without_panicking(
        kind in prop_oneof![Just("message"), Just("pong"), Just("refresh"), Just("typing"), Just("shout"), Just("")],
        content in tricky_text(64),
        reference in proptest::option::of(tricky_text(80)),
        extra in any::<bool>(),
    ) {
        let mut frame = serde_json::json!({"type": kind, "content": content, "token": content});
        if let Some(reference) = &reference {
            frame["ref"] = serde_json::Value::String(reference.clone());
        }
        if extra {
            frame["extra"] = serde_json::json!([1, {"nested": null}]);
        }
        match ClientFrame::parse(&frame.to_string()) {
            Ok(ClientFrame::Message { content: parsed, reference: parsed_ref }) => {
                prop_assert_eq!(kind, "message");
                prop_assert_eq!(&parsed, &content);
                prop_assert!(validate_content(&parsed).is_ok());
                prop_assert_eq!(parsed_ref, reference);
            }
            Ok(ClientFrame::Pong) => prop_assert_eq!(kind, "pong"),
            Ok(ClientFrame::Typing) => prop_assert_eq!(kind, "typing"),
            Ok(ClientFrame::Refresh { token }) => {
                prop_assert_eq!(kind, "refresh");
                prop_assert_eq!(token, content);
            }
            Err(err) => {
                // An error names the message's ref only when that ref is usable.
                if let Some(named) = &err.reference {
                    prop_assert!(validate_ref(named).is_ok());
                }
                if kind == "shout" || kind.is_empty() {
                    prop_assert_eq!(err.code, ErrorCode::UnknownType);
                }
            }
        }
    }

    #[test]
    fn content_is_accepted_exactly_by_its_rules(content in tricky_text(MAX_CONTENT_CHARS / 50)) {
        let expected = !content.trim().is_empty()
            && content.chars().count() <= MAX_CONTENT_CHARS
            && !content.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
        prop_assert_eq!(validate_content(&content).is_ok(), expected, "{:?}", content);
    }

    #[test]
    fn long_content_is_refused_by_length(extra in 1usize..50) {
        let content = "é".repeat(MAX_CONTENT_CHARS + extra);
        prop_assert_eq!(validate_content(&content).unwrap_err().code, ErrorCode::MessageTooLong);
    }

    #[test]
    fn display_names_are_accepted_exactly_by_their_rules(name in tricky_text(40)) {
        let trimmed = name.trim();
        let expected = !trimmed.is_empty()
            && trimmed.chars().count() <= MAX_DISPLAY_NAME_CHARS
            && !trimmed.chars().any(|c| c.is_control() || is_hidden_in_names(c));
        match normalize_display_name(&name) {
            Ok(normalized) => {
                prop_assert!(expected, "{:?} accepted", name);
                prop_assert_eq!(normalized, trimmed);
            }
            Err(_) => prop_assert!(!expected, "{:?} refused", name),
        }
    }

    #[test]
    fn room_names_are_accepted_exactly_by_their_rules(
        name in prop_oneof![
            "[A-Za-z0-9_.-]{0,70}",
            "[._-]{1,5}",
            any::<String>(),
        ]
    ) {
        let expected = !name.is_empty()
            && name.len() <= MAX_ROOM_NAME_CHARS
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && name.chars().any(|c| c.is_ascii_alphanumeric());
        prop_assert_eq!(validate_room_name(&name).is_ok(), expected, "{:?}", name);
    }

    #[test]
    fn refs_are_accepted_exactly_by_their_rules(reference in tricky_text(MAX_REF_CHARS + 8)) {
        let chars = reference.chars().count();
        let expected = (1..=MAX_REF_CHARS).contains(&chars) && !reference.chars().any(char::is_control);
        prop_assert_eq!(validate_ref(&reference).is_ok(), expected, "{:?}", reference);
    }

    #[test]
    fn valid_messages_survive_a_round_trip(
        content in "[a-zA-Z0-9 \"\\\\é🎉\n\t]{1,200}".prop_filter("not blank", |c| !c.trim().is_empty()),
        reference in proptest::option::of("[a-z0-9-]{1,64}"),
    ) {
        let frame = ClientFrame::Message { content, reference };
        prop_assert_eq!(ClientFrame::parse(&frame.to_json()).unwrap(), frame);
    }

    #[test]
    fn subprotocol_headers_never_panic_and_yield_a_nonempty_token(header in any::<String>()) {
        if let Some(token) = token_from_subprotocols([header.as_str()]) {
            prop_assert!(!token.is_empty());
            let expected = format!("chorus.token.{token}");
            prop_assert!(header.contains(&expected));
        }
    }

    #[test]
    fn a_message_split_around_its_id_reads_back_whatever_it_says(
        user_id in tricky_text(40),
        user in tricky_text(40),
        content in tricky_text(200),
        id in any::<u64>(),
    ) {
        let timestamp = "2026-12-07T12:00:00.000Z".to_owned();
        let (prefix, suffix) = message_around_id(&user_id, &user, content.clone(), timestamp.clone());
        let expected = ServerFrame::Message(ChatMessage { id, user_id, user, content, timestamp });
        prop_assert_eq!(ServerFrame::from_json(&format!("{prefix}{id}{suffix}")).unwrap(), expected);
    }

    #[test]
    fn a_spliced_member_list_reads_back_whatever_the_names(
        names in proptest::collection::vec((tricky_text(20), tricky_text(20)), 0..12),
        room in tricky_text(20),
    ) {
        let members: Vec<Member> = names
            .into_iter()
            .map(|(user_id, name)| Member { user_id, name })
            .collect();
        let (first, rest) = members.split_at(members.len() / 2);
        let share = |members: &[Member]| {
            members.iter().map(|m| member_entry(&m.user_id, &m.name)).collect::<Vec<_>>().join(",")
        };
        let head = WelcomeHead {
            room: &room,
            user_id: "me",
            user: "me",
            recovered: true,
            last_id: 7,
            heartbeat_interval_ms: 1,
            heartbeat_timeout_ms: 2,
        };
        match ServerFrame::from_json(&head.frame(&share(first))).unwrap() {
            ServerFrame::Welcome { room: read, users, .. } => {
                prop_assert_eq!(read, room.clone());
                prop_assert_eq!(users, first.to_vec());
            }
            other => prop_assert!(false, "not a welcome: {other:?}"),
        }
        prop_assert_eq!(
            ServerFrame::from_json(&users_frame(&share(rest))).unwrap(),
            ServerFrame::Users { users: rest.to_vec() }
        );
    }
}
