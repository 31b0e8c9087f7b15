use leptos::prelude::*;

/// Who is in the room; the member's own name is marked.
#[component]
pub fn MemberList(users: Signal<Vec<String>>, me: Signal<Option<String>>) -> impl IntoView {
    view! {
        <section class="members" aria-labelledby="members-title">
            <h2 id="members-title">
                "Members " <span class="count">{move || users.with(Vec::len)}</span>
            </h2>
            <ul>
                {move || {
                    let me = me.get();
                    users
                        .get()
                        .into_iter()
                        .map(|name| {
                            let own = me.as_deref() == Some(name.as_str());
                            view! {
                                <li class:own=own>
                                    {name} {own.then_some(view! { <span class="you">" (you)"</span> })}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
        </section>
    }
    .into_any()
}
