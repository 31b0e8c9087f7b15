//! Token verification over arbitrary input: refused or accepted, never a panic, and
//! a refusal never repeats text from the token.

#![no_main]

use std::time::Duration;

use chorus_server::auth::{Auth, AuthError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let auth = Auth::new(b"fuzzing-secret-of-at-least-32-bytes");
    match auth.verify(Some(token)) {
        Ok(identity) => assert!(!identity.id.is_empty()),
        Err(AuthError::Invalid(reason)) => assert!(!reason.contains('\n')),
        Err(_) => {}
    }
    let _ = auth.refresh_guest(token, Duration::from_secs(60), Duration::from_secs(60));
});
