//! Times in the reader's time zone and locale, as the browser knows them (12 or 24
//! hours, names of days and months). On the server, which never renders a message
//! (they come over the socket), the timestamp's own UTC text.

#[cfg(feature = "hydrate")]
use leptos::wasm_bindgen::JsValue;

#[cfg(feature = "hydrate")]
const DAY_MS: f64 = 86_400_000.0;

#[cfg(feature = "hydrate")]
fn parse(timestamp: &str) -> Option<js_sys::Date> {
    let date = js_sys::Date::new(&JsValue::from_str(timestamp));
    (!date.get_time().is_nan()).then_some(date)
}

/// `Intl.DateTimeFormat` options, written as JSON.
#[cfg(feature = "hydrate")]
fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap_or(JsValue::UNDEFINED)
}

/// Milliseconds since the epoch, moved by the time zone's offset at that time.
#[cfg(feature = "hydrate")]
fn local(date: &js_sys::Date) -> i64 {
    (date.get_time() - date.get_timezone_offset() * 60_000.0) as i64
}

/// When a message was sent, in local milliseconds (see [`crate::model::grouping`]).
pub(crate) fn local_ms(timestamp: &str) -> Option<i64> {
    #[cfg(feature = "hydrate")]
    return parse(timestamp).map(|date| local(&date));
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = timestamp;
        None
    }
}

/// The reader's local day.
pub(crate) fn today() -> i64 {
    #[cfg(feature = "hydrate")]
    return crate::model::grouping::local_day(local(&js_sys::Date::new_0()));
    #[cfg(not(feature = "hydrate"))]
    0
}

/// A message's time as a list shows it ("3:04 PM", "15:04"), and its full date
/// and time.
pub(crate) fn time(timestamp: &str) -> (String, String) {
    #[cfg(feature = "hydrate")]
    if let Some(date) = parse(timestamp) {
        return (
            date.to_locale_time_string_with_options(
                "default",
                &options(r#"{"hour":"numeric","minute":"2-digit"}"#),
            )
            .into(),
            date.to_locale_string(
                "default",
                &options(r#"{"dateStyle":"full","timeStyle":"short"}"#),
            )
            .into(),
        );
    }
    let time = timestamp.get(11..16).unwrap_or(timestamp);
    (time.to_owned(), timestamp.to_owned())
}

/// A local day's date, in full.
pub(crate) fn date(day: i64) -> String {
    #[cfg(feature = "hydrate")]
    {
        // Noon UTC of that day, written in UTC: the very date, whatever the zone.
        let noon = js_sys::Date::new(&JsValue::from_f64(day as f64 * DAY_MS + DAY_MS / 2.0));
        noon.to_locale_date_string(
            "default",
            &options(r#"{"dateStyle":"full","timeZone":"UTC"}"#),
        )
        .into()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        // The proleptic Gregorian date of a day count (Howard Hinnant's
        // `civil_from_days`), as ISO 8601.
        let z = day + 719_468;
        let era = z.div_euclid(146_097);
        let of_era = z.rem_euclid(146_097);
        let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
        let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * of_year + 2) / 153;
        let day_of_month = of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        format!("{year:04}-{month:02}-{day_of_month:02}")
    }
}

#[cfg(all(test, not(feature = "hydrate")))]
mod tests {
    #[test]
    fn a_day_count_is_its_iso_date() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(20_420), "2025-11-28");
        assert_eq!(super::date(20_785), "2026-11-28");
        assert_eq!(super::date(-1), "1969-12-31");
        assert_eq!(super::date(11_016), "2000-02-29");
    }
}
