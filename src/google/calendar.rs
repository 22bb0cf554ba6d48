//! The Calendar API's `freeBusy`, as calendar presence uses it: the busy times of the
//! signed-in user's primary calendar over the next day. The narrowest scope that answers
//! it (`calendar.freebusy`) shows busy times only: no titles, no attendees.

use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::api::{self, Api, ApiError};
use super::http::HttpClient;

pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar.freebusy";
/// The other scopes freeBusy accepts (Google's reference lists four): a grant of one of them
/// (from an earlier consent, kept by `include_granted_scopes`) serves as well.
const WIDER_SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/calendar.events.freebusy",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar",
];

/// Whether a grant of `scopes` may ask for free/busy times.
pub fn grants_free_busy(scopes: &[String]) -> bool {
    scopes
        .iter()
        .any(|s| s == CALENDAR_SCOPE || WIDER_SCOPES.contains(&s.as_str()))
}

/// The window asked for: the next 24 hours.
pub const WINDOW_SECS: i64 = 24 * 3600;
/// More busy periods than a day can hold meetings of a minute each is not Google's answer.
pub const MAX_BUSY_PERIODS: usize = 1440;

/// The busy periods of the user's primary calendar overlapping `[from, from + WINDOW_SECS)`,
/// as Google sent them (unmerged), clipped to the window, in Unix seconds.
pub fn fetch_busy(
    http: &HttpClient,
    calendar_url: &Url,
    access_token: &str,
    from: i64,
) -> Result<Vec<(i64, i64)>, ApiError> {
    let mut url = calendar_url.clone();
    url.set_path(&format!(
        "{}/calendar/v3/freeBusy",
        calendar_url.path().trim_end_matches('/')
    ));
    let until = from + WINDOW_SECS;
    let body = json!({
        "timeMin": crate::clock::rfc3339(from),
        "timeMax": crate::clock::rfc3339(until),
        "items": [{ "id": "primary" }],
    });
    let request = http
        .requests()
        .post(url)
        .bearer_auth(access_token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let reply = api::send(http, Api::Calendar, calendar_url, request)?;
    parse_busy(&reply, from, until)
}

#[derive(Deserialize)]
struct FreeBusyReply {
    calendars: std::collections::HashMap<String, CalendarReply>,
}

#[derive(Deserialize)]
struct CalendarReply {
    /// None when the reply has no list: beside no error, that is not Google's answer (it
    /// sends `"busy": []` for a free day), and must not be read as free.
    #[serde(default)]
    busy: Option<BusyList>,
    #[serde(default)]
    errors: Vec<CalendarError>,
}

/// A reply's busy periods: the first `MAX_BUSY_PERIODS + 1` read, the rest only counted, so
/// that a list longer than any day's costs no memory before it is refused.
struct BusyList {
    periods: Vec<Period>,
    count: usize,
}

impl<'de> Deserialize<'de> for BusyList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Periods;
        impl<'de> serde::de::Visitor<'de> for Periods {
            type Value = BusyList;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of busy periods")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BusyList, A::Error> {
                let mut list = BusyList {
                    periods: Vec::new(),
                    count: 0,
                };
                while list.count <= MAX_BUSY_PERIODS {
                    match seq.next_element::<Period>()? {
                        Some(period) => list.periods.push(period),
                        None => return Ok(list),
                    }
                    list.count += 1;
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    list.count += 1;
                }
                Ok(list)
            }
        }
        deserializer.deserialize_seq(Periods)
    }
}

#[derive(Deserialize)]
struct Period {
    start: String,
    end: String,
}

#[derive(Deserialize)]
struct CalendarError {
    #[serde(default)]
    reason: String,
}

/// Reads a freeBusy reply for the window `[from, until)`. A reply that is not Google's shape
/// is a transient failure (retried, and the presence already known is kept).
pub fn parse_busy(body: &[u8], from: i64, until: i64) -> Result<Vec<(i64, i64)>, ApiError> {
    let malformed = |what: String| {
        ApiError::Transient {
        message: format!("the Google Calendar API sent a freeBusy reply that is not the expected JSON ({what}); the presence already known is kept"),
        retry_after: None,
        quota_exhausted: false,
    }
    };
    let reply: FreeBusyReply =
        serde_json::from_slice(body).map_err(|e| malformed(api::json_fault(&e)))?;
    let primary = reply
        .calendars
        .get("primary")
        .ok_or_else(|| malformed("no \"primary\" calendar in it".into()))?;
    if let Some(error) = primary.errors.first() {
        return Err(match error.reason.as_str() {
            "notFound" => ApiError::Refused(
                "Google Calendar has no primary calendar for this Google user (is Calendar turned on for the user in the Google Admin console?)".into(),
            ),
            reason => ApiError::Transient {
                message: format!("the Google Calendar API could not read the primary calendar ({reason})"),
                retry_after: None,
                quota_exhausted: false,
            },
        });
    }
    let busy = primary
        .busy
        .as_ref()
        .ok_or_else(|| malformed("no \"busy\" list for the primary calendar".into()))?;
    if busy.count > MAX_BUSY_PERIODS {
        return Err(ApiError::Refused(format!(
            "the Google Calendar API sent {} busy periods for one day (at most {MAX_BUSY_PERIODS} make sense); they are not kept. If it persists, something between the PBX and Google alters the replies",
            busy.count
        )));
    }
    let mut periods = Vec::with_capacity(busy.periods.len());
    for period in &busy.periods {
        let start = unix_time(&period.start).ok_or_else(|| {
            malformed(format!(
                "a busy period starts at {:?}",
                truncated(&period.start)
            ))
        })?;
        // Rounded up: a meeting that ends at 13:00:00.5 is still on at 13:00:00.
        let end = unix_time_up(&period.end).ok_or_else(|| {
            malformed(format!(
                "a busy period ends at {:?}",
                truncated(&period.end)
            ))
        })?;
        if end < start {
            return Err(malformed(format!(
                "a busy period ends at {:?}, before it starts",
                truncated(&period.end)
            )));
        }
        let (start, end) = (start.max(from), end.min(until));
        if start < end {
            periods.push((start, end));
        }
    }
    Ok(periods)
}

/// An RFC 3339 time as Unix seconds (a fraction of a second is dropped).
fn unix_time(text: &str) -> Option<i64> {
    parse_rfc3339(text).map(|t| t.unix_timestamp())
}

/// An RFC 3339 time as Unix seconds, a fraction of a second rounded up.
fn unix_time_up(text: &str) -> Option<i64> {
    parse_rfc3339(text).map(|t| t.unix_timestamp() + i64::from(t.nanosecond() > 0))
}

fn parse_rfc3339(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// A hostile reply's text, cut short for a message.
fn truncated(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: i64 = 1_795_953_600; // 2026-11-29T12:00:00Z

    #[test]
    fn every_scope_freebusy_accepts_grants_it() {
        for scope in [
            "calendar.freebusy",
            "calendar.events.freebusy",
            "calendar.readonly",
            "calendar",
        ] {
            let scopes = vec![format!("https://www.googleapis.com/auth/{scope}")];
            assert!(grants_free_busy(&scopes), "{scope}");
        }
        let others = vec!["https://www.googleapis.com/auth/calendar.events.readonly".to_owned()];
        assert!(!grants_free_busy(&others));
    }

    #[test]
    fn busy_periods_are_read_and_clipped_to_the_window() {
        let body = br#"{"kind":"calendar#freeBusy","calendars":{"primary":{"busy":[
            {"start":"2026-11-29T23:00:00Z","end":"2026-11-30T00:30:00+01:00"},
            {"start":"1999-01-01T00:00:00Z","end":"2100-01-01T00:00:00.5Z"}]}}}"#;
        let periods = parse_busy(body, FROM, FROM + WINDOW_SECS).unwrap();
        let start = unix_time("2026-11-29T23:00:00Z").unwrap();
        assert_eq!(periods, [(start, start + 1800), (FROM, FROM + WINDOW_SECS)]);
    }

    #[test]
    fn hostile_replies_are_errors_not_free_time() {
        let window = (FROM, FROM + WINDOW_SECS);
        for body in [
            &br#"{"calendars":"oops"}"#[..],
            br#"{"calendars":{"primary":{"busy":[{"start":"soon","end":"later"}]}}}"#,
            br#"{"calendars":{"other":{"busy":[]}}}"#,
            br#"{"calendars":{"primary":{"busy":[{"start":"2026-11-29T23:00:00Z"}]}}}"#,
            br#"{"calendars":{"primary""#,
            // No list, or a null one: not a free day.
            br#"{"kind":"calendar#freeBusy","calendars":{"primary":{}}}"#,
            br#"{"calendars":{"primary":{"busy":null}}}"#,
            // Ending before it starts.
            br#"{"calendars":{"primary":{"busy":[{"start":"2026-11-29T14:00:00Z","end":"2026-11-29T13:00:00Z"}]}}}"#,
        ] {
            assert!(
                matches!(
                    parse_busy(body, window.0, window.1),
                    Err(ApiError::Transient { .. })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let not_found =
            br#"{"calendars":{"primary":{"errors":[{"domain":"global","reason":"notFound"}]}}}"#;
        assert!(matches!(
            parse_busy(not_found, window.0, window.1),
            Err(ApiError::Refused(_))
        ));
        let many: Vec<String> = (0..MAX_BUSY_PERIODS + 1)
            .map(|_| r#"{"start":"2026-11-29T23:00:00Z","end":"2026-11-29T23:01:00Z"}"#.to_owned())
            .collect();
        let body = format!(
            r#"{{"calendars":{{"primary":{{"busy":[{}]}}}}}}"#,
            many.join(",")
        );
        assert!(matches!(
            parse_busy(body.as_bytes(), window.0, window.1),
            Err(ApiError::Refused(m)) if m.contains(&format!("sent {} busy periods", MAX_BUSY_PERIODS + 1))
        ));
        // A free day is an empty list.
        let free = br#"{"calendars":{"primary":{"busy":[]}}}"#;
        assert_eq!(parse_busy(free, window.0, window.1).unwrap(), []);
    }

    /// A list far longer than a day's is counted, not kept: the reply is refused with its
    /// length, and only `MAX_BUSY_PERIODS + 1` periods were ever read into memory.
    #[test]
    fn an_endless_list_of_periods_is_counted_not_kept() {
        let count = 200_000;
        let body = format!(
            r#"{{"calendars":{{"primary":{{"busy":[{}]}}}}}}"#,
            vec![r#"{"start":"","end":""}"#; count].join(",")
        );
        let reply: FreeBusyReply = serde_json::from_str(&body).unwrap();
        let busy = reply.calendars["primary"].busy.as_ref().unwrap();
        assert_eq!(
            (busy.count, busy.periods.len()),
            (count, MAX_BUSY_PERIODS + 1)
        );
        assert!(matches!(
            parse_busy(body.as_bytes(), FROM, FROM + WINDOW_SECS),
            Err(ApiError::Refused(m)) if m.contains("sent 200000 busy periods")
        ));
    }

    /// Presence flips at the exact end: an end with a fraction of a second is rounded up,
    /// so the meeting is still on at the whole second before it ends.
    #[test]
    fn an_end_with_a_fraction_of_a_second_is_rounded_up() {
        let body = br#"{"calendars":{"primary":{"busy":[{"start":"2026-11-29T13:00:00.250Z","end":"2026-11-29T14:00:00.900Z"}]}}}"#;
        let start = unix_time("2026-11-29T13:00:00Z").unwrap();
        assert_eq!(
            parse_busy(body, FROM, FROM + WINDOW_SECS).unwrap(),
            [(start, start + 3601)]
        );
    }
}
