//! Renewing the guest token before it expires, so an open room never has to
//! reconnect for a new one.
//!
//! Each token is renewed at 80 % of its lifetime (earlier by up to 5 % of it, drawn
//! once per tab, so tabs sharing a session rarely renew together) through
//! [`session::refresh`](crate::session::refresh), which keeps the user's identity. A renewal stored by one tab
//! reaches the others through the `storage` event; every open room then hands the
//! new token to the server over its socket (a `refresh` frame), so its connection
//! outlives the old token. A failed renewal is retried with backoff and never signs
//! the user out: if it cannot be had in time, the server closes with 4002 and the
//! room renews (or signs in again under the same name) before it reconnects.
//!
//! [`renew_at`] is plain arithmetic, unit-tested natively; [`use_token_renewal`]
//! runs it in the browser.

/// The share of a token's lifetime after which it is renewed.
pub const RENEW_AT_FRACTION: f64 = 0.8;
/// Up to this share of the lifetime earlier, at random.
pub const JITTER_FRACTION: f64 = 0.05;

/// When (Unix ms, by the browser's clock) to renew a token received at `received_ms`
/// that lives `lifetime_secs` from then; `jitter` is uniform in `[0, 1)`.
pub fn renew_at(received_ms: u64, lifetime_secs: u64, jitter: f64) -> u64 {
    let lifetime_ms = lifetime_secs.saturating_mul(1000) as f64;
    let share = RENEW_AT_FRACTION - JITTER_FRACTION * jitter.clamp(0.0, 1.0);
    received_ms.saturating_add((lifetime_ms * share) as u64)
}

/// Keeps the session's token fresh for as long as the app runs; call once, at its root.
pub fn use_token_renewal() {
    #[cfg(feature = "hydrate")]
    browser::start();
}

#[cfg(feature = "hydrate")]
mod browser {
    use gloo_events::EventListener;
    use gloo_timers::callback::Timeout;
    use leptos::prelude::*;
    use leptos::wasm_bindgen::JsCast;

    use crate::model::backoff::Backoff;
    use crate::session::{self, ApiFailure};

    /// The longest delay `setTimeout` takes; longer ones would fire at once.
    const MAX_TIMEOUT_MS: f64 = 2_147_483_647.0;

    thread_local! {
        /// This tab's share of the jitter: the first tab due renews, and the others
        /// find the renewed session before their turn.
        static JITTER: f64 = js_sys::Math::random();
    }

    /// When this tab renews `session`'s token (Unix ms).
    fn due(session: &session::Session) -> f64 {
        let jitter = JITTER.with(|jitter| *jitter);
        super::renew_at(session.received_at_ms, session.lifetime_secs, jitter) as f64
    }

    #[derive(Clone, Copy)]
    struct Renewer {
        timer: StoredValue<Option<Timeout>, LocalStorage>,
        backoff: StoredValue<Backoff>,
    }

    pub(super) fn start() {
        let renewer = Renewer {
            timer: StoredValue::new_local(None),
            backoff: StoredValue::new(Backoff::new()),
        };
        // Another tab renewed, signed in or signed out.
        let listener = EventListener::new(&window(), "storage", |event| {
            let key = event
                .dyn_ref::<web_sys::StorageEvent>()
                .and_then(web_sys::StorageEvent::key);
            // `None`: the whole storage was cleared.
            if key.as_deref().is_none_or(|key| key == session::STORAGE_KEY) {
                session::changed();
            }
        });
        StoredValue::new_local(listener);
        Effect::new(move |_| {
            session::track();
            renewer.backoff.set_value(Backoff::new());
            renewer.arm();
        });
    }

    impl Renewer {
        /// Sets the timer for the stored session's renewal (none when signed out).
        fn arm(self) {
            let due = session::load().map(|session| due(&session));
            self.set_timer(due.map(|due| due - js_sys::Date::now()));
        }

        fn set_timer(self, delay_ms: Option<f64>) {
            let timer = delay_ms.map(|delay| {
                let delay = delay.clamp(0.0, MAX_TIMEOUT_MS) as u32;
                Timeout::new(delay, move || leptos::task::spawn_local(self.renew()))
            });
            // Replacing the old timer cancels it.
            self.timer.try_set_value(timer);
        }

        async fn renew(self) {
            let Some(current) = session::load() else {
                return;
            };
            if due(&current) > js_sys::Date::now() + 1000.0 {
                // Not due yet: renewed by another tab, or a very long timer.
                return self.arm();
            }
            match session::refresh(&current).await {
                // Stored: the effect above arms the timer for the new token.
                Ok(_) => {}
                Err(ApiFailure::Unreachable(detail)) => {
                    leptos::logging::log!("token renewal failed, retrying: {detail}");
                    let delay = self
                        .backoff
                        .try_update_value(|backoff| backoff.next_delay(js_sys::Math::random()));
                    self.set_timer(delay.map(|delay| delay.as_millis() as f64));
                }
                // Refused (expired too long ago): left to the room's 4002 handling.
                Err(ApiFailure::Rejected { message, .. }) => {
                    leptos::logging::log!("token renewal refused: {message}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_eighty_percent_of_the_lifetime_minus_jitter() {
        let hour = 3600;
        assert_eq!(renew_at(1_000, hour, 0.0), 1_000 + 2_880_000);
        assert_eq!(renew_at(1_000, hour, 1.0), 1_000 + 2_700_000);
        let halfway = renew_at(1_000, hour, 0.5);
        assert!(halfway > 1_000 + 2_700_000 && halfway < 1_000 + 2_880_000);
        assert_eq!(renew_at(1_000, hour, 7.0), renew_at(1_000, hour, 1.0));
        assert_eq!(renew_at(1_000, 0, 0.3), 1_000, "already due");
        assert_eq!(renew_at(u64::MAX, hour, 0.0), u64::MAX, "no overflow");
    }
}
