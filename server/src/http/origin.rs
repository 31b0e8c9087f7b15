//! Which web pages may open sockets here: the `Origin` check on every upgrade,
//! against cross-site WebSocket hijacking (a page elsewhere riding on a visitor's
//! browser). Pure, unit-tested.
//!
//! Browsers always send `Origin` on WebSocket upgrades; other clients (servers,
//! scripts) usually do not, and are allowed: they could write any `Origin` anyway.

/// Whether a socket opened from `origin` may be accepted by a request for `host`:
/// with `allowed` empty, when the origin's host (and port) is the request's host,
/// whatever the scheme; otherwise when the origin is one of `allowed`.
pub(crate) fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/');
    if !allowed.is_empty() {
        return allowed.iter().any(|entry| {
            entry
                .trim()
                .trim_end_matches('/')
                .eq_ignore_ascii_case(origin)
        });
    }
    let Some((_, authority)) = origin.split_once("://") else {
        // `null` (sandboxed frames, files) and anything else that is not an origin.
        return false;
    };
    host.is_some_and(|host| same_authority(authority, host.trim()))
}

/// `host[:port]` equality, ignoring case and a default port on either side.
fn same_authority(a: &str, b: &str) -> bool {
    let strip = |authority: &str| {
        let lower = authority.to_ascii_lowercase();
        for default in [":80", ":443"] {
            if let Some(bare) = lower.strip_suffix(default) {
                return bare.to_owned();
            }
        }
        lower
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_pages_of_this_host_may_connect() {
        let host = Some("chat.example.com:3000");
        assert!(origin_allowed(None, host, &[]), "non-browser clients");
        assert!(origin_allowed(
            Some("http://chat.example.com:3000"),
            host,
            &[]
        ));
        assert!(
            origin_allowed(Some("https://CHAT.example.com:3000/"), host, &[]),
            "any scheme, any case"
        );
        assert!(!origin_allowed(Some("https://evil.example"), host, &[]));
        assert!(
            !origin_allowed(Some("http://chat.example.com:3001"), host, &[]),
            "another port"
        );
        assert!(!origin_allowed(
            Some("http://chat.example.com.evil.example:3000"),
            host,
            &[]
        ));
        assert!(!origin_allowed(Some("null"), host, &[]));
        assert!(
            !origin_allowed(Some("http://chat.example.com:3000"), None, &[]),
            "no Host to match"
        );
        // Default ports may be written or not.
        assert!(origin_allowed(
            Some("https://chat.example.com"),
            Some("chat.example.com:443"),
            &[]
        ));
        assert!(origin_allowed(
            Some("http://chat.example.com:80"),
            Some("chat.example.com"),
            &[]
        ));
    }

    #[test]
    fn a_configured_list_replaces_the_default() {
        let allowed = [
            "https://app.example.com".to_owned(),
            "http://localhost:8080/".to_owned(),
        ];
        let host = Some("chat.internal:3000");
        assert!(origin_allowed(
            Some("https://app.example.com"),
            host,
            &allowed
        ));
        assert!(origin_allowed(
            Some("http://localhost:8080"),
            host,
            &allowed
        ));
        assert!(
            !origin_allowed(Some("http://app.example.com"), host, &allowed),
            "scheme counts here"
        );
        assert!(
            !origin_allowed(Some("http://chat.internal:3000"), host, &allowed),
            "the host alone no longer"
        );
        assert!(origin_allowed(None, host, &allowed));
    }
}
