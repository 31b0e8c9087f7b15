//! Type-erased views without a second, asynchronous copy of their hydration code.
//!
//! An [`AnyView`] keeps a pointer to every way its view can be mounted, among them
//! `hydrate_async`: hydration that may wait, for lazily loaded routes. This app loads
//! no route lazily and hydrates the page in one synchronous pass, so that code never
//! runs; but the pointer keeps it in the WASM, and for a page's view it is a copy of
//! the page's whole hydration code (about 100 KB of the client before compression).
//! [`Eager`] hands every mounting method through to its view except `hydrate_async`,
//! for which it keeps the trait's own default: hydrate synchronously, from the code
//! the page already has.

use std::future::Future;

use leptos::prelude::*;
use leptos::tachys::html::attribute::Attribute;
use leptos::tachys::html::attribute::any_attribute::AnyAttribute;
use leptos::tachys::hydration::Cursor;
use leptos::tachys::ssr::StreamBuilder;
use leptos::tachys::view::add_attr::AddAnyAttr;
use leptos::tachys::view::{Position, PositionState, Render, RenderHtml};

/// A view that hydrates only synchronously; see the module's notes.
pub(crate) struct Eager<T>(T);

/// [`IntoAny::into_any`] through [`Eager`].
pub(crate) trait IntoEagerAny: RenderHtml + Sized {
    fn into_eager_any(self) -> AnyView {
        Eager(self).into_any()
    }
}

impl<T: RenderHtml> IntoEagerAny for T {}

impl<T: Render> Render for Eager<T> {
    type State = T::State;

    fn build(self) -> Self::State {
        self.0.build()
    }

    fn rebuild(self, state: &mut Self::State) {
        self.0.rebuild(state)
    }
}

impl<T: AddAnyAttr> AddAnyAttr for Eager<T> {
    type Output<SomeNewAttr: Attribute> = Eager<T::Output<SomeNewAttr>>;

    fn add_any_attr<NewAttr: Attribute>(self, attr: NewAttr) -> Self::Output<NewAttr>
    where
        Self::Output<NewAttr>: RenderHtml,
    {
        Eager(self.0.add_any_attr(attr))
    }
}

impl<T: RenderHtml> RenderHtml for Eager<T> {
    type AsyncOutput = T::AsyncOutput;
    type Owned = Eager<T::Owned>;

    const MIN_LENGTH: usize = T::MIN_LENGTH;
    const EXISTS: bool = T::EXISTS;

    fn dry_resolve(&mut self) {
        self.0.dry_resolve()
    }

    fn resolve(self) -> impl Future<Output = Self::AsyncOutput> + Send {
        self.0.resolve()
    }

    fn html_len(&self) -> usize {
        self.0.html_len()
    }

    fn to_html_with_buf(
        self,
        buf: &mut String,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) {
        self.0
            .to_html_with_buf(buf, position, escape, mark_branches, extra_attrs)
    }

    fn to_html_async_with_buf<const OUT_OF_ORDER: bool>(
        self,
        buf: &mut StreamBuilder,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) where
        Self: Sized,
    {
        self.0.to_html_async_with_buf::<OUT_OF_ORDER>(
            buf,
            position,
            escape,
            mark_branches,
            extra_attrs,
        )
    }

    fn hydrate<const FROM_SERVER: bool>(
        self,
        cursor: &Cursor,
        position: &PositionState,
    ) -> Self::State {
        self.0.hydrate::<FROM_SERVER>(cursor, position)
    }

    fn into_owned(self) -> Self::Owned {
        Eager(self.0.into_owned())
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    fn page(name: &'static str) -> impl IntoView {
        view! { <section class="room"><h1>{name}</h1><p>"Hello, " {name}</p></section> }
    }

    #[test]
    fn an_eager_view_renders_the_same_html_as_the_view_itself() {
        let owner = Owner::new();
        owner.with(|| {
            assert_eq!(
                page("<Alice>").into_eager_any().to_html(),
                page("<Alice>").into_any().to_html()
            );
            assert!(
                page("<Alice>")
                    .into_eager_any()
                    .to_html()
                    .contains("&lt;Alice&gt;")
            );
        });
    }

    #[test]
    fn attributes_added_to_an_eager_view_reach_its_element() {
        let owner = Owner::new();
        owner.with(|| {
            let html = page("Bob")
                .into_eager_any()
                .add_any_attr(leptos::tachys::html::attribute::id("main"))
                .to_html();
            assert!(
                html.starts_with(r#"<section id="main" class="room">"#),
                "{html}"
            );
        });
    }
}
