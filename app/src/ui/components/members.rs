//! `MemberList`: who is in the room, this member marked by user id.

use chorus_protocol::Member;
use leptos::prelude::*;

/// Who is in the room; this member (by user id, not name) is marked.
#[component]
pub(crate) fn MemberList(users: Signal<Vec<Member>>, me: Signal<Option<Member>>) -> impl IntoView {
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
                        .map(|member| {
                            let own = me.as_ref().is_some_and(|me| me.user_id == member.user_id);
                            view! {
                                <li class:own=own>
                                    {member.name} {own.then_some(view! { <span class="you">" (you)"</span> })}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
        </section>
    }
}
