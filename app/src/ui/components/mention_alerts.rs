//! `MentionAlerts`: desktop notifications of messages that mention the reader,
//! asked for only when the button is pressed, kept across reloads.

use leptos::prelude::*;

use crate::model::mentions::{Alerts, alerts, body};
use crate::room::ChatSocket;

/// Where the reader's choice is kept, so it holds across reloads and rooms.
#[cfg(feature = "hydrate")]
const CHOICE_KEY: &str = "chorus.mention-alerts";

/// A button to be notified when someone mentions the reader while the tab is
/// hidden. The browser is asked for permission only when it is pressed, never on
/// load; pressed again, it turns them off. When the site's notifications are
/// blocked it says where to allow them. Hidden where the browser has none.
#[component]
pub(crate) fn MentionAlerts(socket: ChatSocket, room: Signal<String>) -> impl IntoView {
    // Where `Alerts` stands, as the view shows it. Nothing is offered until the
    // browser says (the server renders it hidden).
    let offered = RwSignal::new(false);
    let on = RwSignal::new(false);
    let blocked = RwSignal::new(false);
    let show = move |now: Alerts| {
        offered.try_set(now != Alerts::Unsupported);
        on.try_set(now == Alerts::On);
        blocked.try_set(now == Alerts::Blocked);
    };
    // One effect for both (each costs client code): its first run, after
    // hydration, reads where notifications stand; each later run is a mention.
    Effect::new(move |ran: Option<()>| {
        socket.mentioned().with(|mention| match (ran, mention) {
            (None, _) => show(browser::current()),
            (Some(()), Some(text)) if on.get_untracked() && document().hidden() => {
                let room = room.get_untracked();
                browser::notify(
                    &format!("You were mentioned in #{room}"),
                    &body(text),
                    &room,
                );
            }
            _ => {}
        });
    });
    let press = move |_| {
        if on.get_untracked() {
            browser::choose(false);
            show(Alerts::Off);
        } else {
            leptos::task::spawn_local(async move {
                let now = alerts(true, true, &browser::ask().await);
                browser::choose(now == Alerts::On);
                show(now);
            });
        }
    };
    view! {
        <p class="mention-alerts" hidden=move || !offered.get()>
            <button type="button" class="link" on:click=press
                aria-pressed=move || on.get().to_string()>
                "Notify me of mentions"
            </button>
            <span class="muted" hidden=move || !blocked.get()>
                " Blocked for this site: allow notifications in the browser's site settings."
            </span>
        </p>
    }
}

/// The browser's notifications and the stored choice.
#[cfg(feature = "hydrate")]
mod browser {
    use leptos::wasm_bindgen::JsValue;
    use leptos::web_sys::{self, Notification, NotificationOptions};

    use super::CHOICE_KEY;
    use crate::model::mentions::{Alerts, alerts};

    fn supported() -> bool {
        js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str("Notification")).unwrap_or(false)
    }

    fn permission() -> String {
        // The enum's string, as the browser names it.
        let permission: JsValue = Notification::permission().into();
        permission.as_string().unwrap_or_default()
    }

    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok().flatten()
    }

    pub(crate) fn current() -> Alerts {
        if !supported() {
            return Alerts::Unsupported;
        }
        let chosen = storage()
            .and_then(|storage| storage.get_item(CHOICE_KEY).ok().flatten())
            .is_some();
        alerts(true, chosen, &permission())
    }

    pub(crate) fn choose(on: bool) {
        if let Some(storage) = storage() {
            let _ = if on {
                storage.set_item(CHOICE_KEY, "on")
            } else {
                storage.remove_item(CHOICE_KEY)
            };
        }
    }

    /// Asks for permission unless the browser already gave or refused it; its answer.
    pub(crate) async fn ask() -> String {
        if permission() == "default"
            && let Ok(asked) = Notification::request_permission()
        {
            let _ = wasm_bindgen_futures::JsFuture::from(asked).await;
        }
        permission()
    }

    /// Shows a notification; one per room at a time (a newer replaces it), and a
    /// click brings the page forward.
    pub(crate) fn notify(title: &str, body: &str, room: &str) {
        let options = NotificationOptions::new();
        options.set_body(body);
        options.set_tag(room);
        if let Ok(notification) = Notification::new_with_options(title, &options) {
            let shown = notification.clone();
            gloo_events::EventListener::once(&notification, "click", move |_| {
                let _ = web_sys::window().map(|window| window.focus());
                shown.close();
            })
            .forget();
        }
    }
}

/// On the server nothing is offered: the page is rendered without the button.
#[cfg(not(feature = "hydrate"))]
mod browser {
    use crate::model::mentions::Alerts;

    pub(crate) fn current() -> Alerts {
        Alerts::Unsupported
    }

    pub(crate) fn choose(_on: bool) {}

    pub(crate) async fn ask() -> String {
        String::new()
    }

    pub(crate) fn notify(_title: &str, _body: &str, _room: &str) {}
}
