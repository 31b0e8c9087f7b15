//! `/`: sign in with a display name, then pick a room.

use chorus_protocol::{MAX_DISPLAY_NAME_CHARS, normalize_display_name, validate_room_name};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::session::{self, Session};
use crate::ui::components::capitalize;
use crate::ui::components::{RoomPicker, StorageNote, room_path};
use crate::ui::eager::IntoEagerAny;
use crate::ui::hooks::{focus_soon, use_hydrated};
use crate::ui::title::{SITE_TITLE, use_title};

/// `/`: sign in with a display name, then pick a room.
///
/// `?room=NAME` continues to that room after signing in; `?reason=unauthorized`
/// explains why the room page sent the reader here.
#[component]
pub(crate) fn HomePage() -> AnyView {
    let query = use_query_map();
    use_title(|| SITE_TITLE.to_owned());
    // Read after hydration (the server renders every page signed out), and again
    // whenever it changes, here or in another tab.
    let signed_in = RwSignal::new(None::<Session>);
    Effect::new(move |_| {
        session::track();
        signed_in.set(session::load());
    });
    let next_room = Signal::derive(move || {
        query
            .read()
            .get("room")
            .filter(|room| validate_room_name(room).is_ok())
    });
    let unauthorized = move || query.read().get("reason").as_deref() == Some("unauthorized");
    // Drawn again only when the name changes: a renewed token is the same session,
    // and must not reset what is being typed in the room picker.
    let signed_in_as = Memo::new(move |_| signed_in.with(|s| s.as_ref().map(|s| s.name.clone())));
    let sign_out = move |_| {
        session::clear();
        signed_in.set(None);
    };
    view! {
        <section class="home">
            <header class="brand">
                <h1>"Chorus"</h1>
                <p class="tagline">"Real-time rooms for everyone in the conversation."</p>
            </header>
            <p class="notice" role="alert" hidden=move || !unauthorized()>
                "Your session is no longer valid. Choose a name to sign in again."
            </p>
            {move || match signed_in_as.get() {
                None => view! { <SignIn signed_in next_room/> }.into_eager_any(),
                Some(name) => view! {
                    <div class="card signed-in">
                        <p>
                            "Signed in as "
                            <strong class="me">{name}</strong>
                            " · "
                            <button type="button" class="link" on:click=sign_out>"Sign out"</button>
                        </p>
                        <StorageNote/>
                    </div>
                    <div class="card">
                        <RoomPicker/>
                    </div>
                }
                .into_eager_any(),
            }}
        </section>
    }
    .into_eager_any()
}

#[component]
fn SignIn(
    signed_in: RwSignal<Option<Session>>,
    next_room: Signal<Option<String>>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let hydrated = use_hydrated();
    let navigate = use_navigate();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let typed = name.get_untracked();
        let chosen = match normalize_display_name(&typed) {
            Ok(chosen) => chosen.to_owned(),
            Err(err) => {
                error.set(Some(capitalize(&err.to_string())));
                return;
            }
        };
        pending.set(true);
        error.set(None);
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            let result = session::sign_in(&chosen).await;
            pending.try_set(false);
            match result {
                Ok(session) => {
                    signed_in.try_set(Some(session));
                    match next_room.try_get_untracked().flatten() {
                        // The room's page puts focus in its composer.
                        Some(room) => navigate(&room_path(&room), Default::default()),
                        // The form that had focus is gone: on to the next step.
                        None => focus_soon("room-name", false),
                    }
                }
                Err(err) => {
                    error.try_set(Some(err.to_string()));
                }
            }
        });
    };
    view! {
        <form class="card sign-in" on:submit=submit novalidate>
            <h2>"Sign in"</h2>
            <label for="display-name">"Display name"</label>
            <div class="row">
                <input id="display-name" name="name" type="text" autocomplete="nickname"
                    required maxlength=MAX_DISPLAY_NAME_CHARS.to_string()
                    placeholder="How others will see you"
                    disabled=move || !hydrated.get()
                    aria-describedby="display-name-error"
                    aria-invalid=move || error.with(Option::is_some).to_string()
                    prop:value=move || name.get()
                    on:input=move |ev| {
                        name.set(event_target_value(&ev));
                        error.set(None);
                    }/>
                <button type="submit" disabled=move || pending.get() || !hydrated.get()>"Continue"</button>
            </div>
            <p class="field-error" id="display-name-error" role="alert">{move || error.get()}</p>
        </form>
    }
    .into_eager_any()
}
