//! `RoomPicker`: the active rooms, and a form to name another.

use chorus_protocol::{RoomSummary, validate_room_name};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::session;
use crate::ui::hooks::use_hydrated;

/// The page of a room. Valid room names need no escaping in a path.
pub(crate) fn room_path(room: &str) -> String {
    format!("/room/{room}")
}

/// Join a room by name, or pick one of the active rooms.
#[component]
pub(crate) fn RoomPicker(
    /// The room being shown, if any: highlighted in the list.
    #[prop(optional, into)]
    current: Option<Signal<String>>,
    /// The current room's member count as the page knows it, shown instead of the
    /// fetched one.
    #[prop(optional, into)]
    live_members: Option<Signal<usize>>,
    /// The list is fetched again whenever this changes (e.g. on joining a room).
    #[prop(optional, into)]
    refresh_on: Option<Signal<u32>>,
) -> impl IntoView {
    let refreshes = RwSignal::new(0_u32);
    let rooms = latest_rooms(move || {
        refreshes.track();
        if let Some(trigger) = refresh_on {
            trigger.track();
        }
    });
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let hydrated = use_hydrated();
    let navigate = use_navigate();
    let join = move |ev: SubmitEvent| {
        ev.prevent_default();
        let room = draft.get_untracked().trim().to_owned();
        match validate_room_name(&room) {
            Ok(()) => {
                error.set(None);
                draft.set(String::new());
                navigate(&room_path(&room), Default::default());
            }
            Err(err) => error.set(Some(capitalize(&err.to_string()))),
        }
    };
    // What the last answer was: each note is always there, hidden unless it applies
    // (far less client code than notes that come and go).
    let loading = move || rooms.with(Option::is_none);
    let none_active =
        move || rooms.with(|rooms| matches!(rooms, Some(Ok(rooms)) if rooms.is_empty()));
    let failure = move || {
        rooms.with(|rooms| match rooms {
            Some(Err(err)) => Some(err.to_string()),
            _ => None,
        })
    };
    let links = move || {
        let rooms = match rooms.get() {
            Some(Ok(rooms)) => rooms,
            _ => Vec::new(),
        };
        rooms
            .into_iter()
            .map(|room| room_link(room, current, live_members))
            .collect_view()
    };
    view! {
        <section class="room-picker" aria-labelledby="room-picker-title">
            <h2 id="room-picker-title">"Rooms"</h2>
            <form class="join-room" on:submit=join novalidate>
                <label for="room-name">"Room name"</label>
                <div class="row">
                    <input id="room-name" name="room" type="text" autocomplete="off"
                        placeholder="e.g. general" spellcheck="false"
                        disabled=move || !hydrated.get()
                        aria-describedby="room-name-error"
                        aria-invalid=move || error.with(Option::is_some).to_string()
                        prop:value=move || draft.get()
                        on:input=move |ev| {
                            draft.set(event_target_value(&ev));
                            error.set(None);
                        }/>
                    <button type="submit" disabled=move || !hydrated.get()>"Join"</button>
                </div>
                <p class="field-error" id="room-name-error" role="alert">{move || error.get()}</p>
            </form>
            <div class="active-rooms">
                <div class="row spread">
                    <h3>"Active rooms"</h3>
                    <button type="button" class="link" on:click=move |_| refreshes.update(|n| *n += 1)>
                        "Refresh"
                    </button>
                </div>
                <p class="muted" hidden=move || !loading()>"Loading rooms…"</p>
                <p class="muted" hidden=move || !none_active()>"No active rooms yet: start one above."</p>
                <p class="field-error" hidden=move || failure().is_none()>{failure}</p>
                <ul class="room-list">{links}</ul>
            </div>
        </section>
    }
}

/// The active rooms as last fetched: `None` until the first answer, then the newest
/// answer to the newest fetch, kept on screen while the next one is under way. A
/// fetch starts in the browser whenever what `track` reads changes.
///
/// A signal and an effect rather than a `LocalResource` under a `Transition`: the
/// async-derived machinery those pull in was about 30 KB of the WASM, for one list.
fn latest_rooms(
    track: impl Fn() + 'static,
) -> ReadSignal<Option<Result<Vec<RoomSummary>, session::ApiFailure>>> {
    let (rooms, set_rooms) = signal(None);
    let fetches = StoredValue::new(0_u64);
    Effect::new(move || {
        track();
        let fetch = fetches.get_value() + 1;
        fetches.set_value(fetch);
        leptos::task::spawn_local(async move {
            let answer = session::active_rooms().await;
            // An older fetch that answers late is not shown over a newer one; nor is
            // anything once the picker is gone.
            if fetches.try_get_value() == Some(fetch) {
                set_rooms.try_set(Some(answer));
            }
        });
    });
    rooms
}

fn room_link(
    room: RoomSummary,
    current: Option<Signal<String>>,
    live_members: Option<Signal<usize>>,
) -> impl IntoView {
    let name = room.name.clone();
    let here = Signal::derive(move || {
        current.is_some_and(|current| current.with(|current| *current == name))
    });
    // The room being shown counts its members live; the others as last fetched.
    let members = move || {
        let count = match live_members {
            Some(live) if here.get() => live.get(),
            _ => room.members,
        };
        match count {
            1 => "1 member".to_owned(),
            n => format!("{n} members"),
        }
    };
    let name_shown = room.name.clone();
    let path = room_path(&room.name);
    view! {
        <li class:here=here>
            <a href=path aria-current=move || here.get().then_some("page")>
                <span class="room-name">{name_shown}</span>
                <span class="muted">{members}</span>
            </a>
        </li>
    }
}

pub(crate) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
