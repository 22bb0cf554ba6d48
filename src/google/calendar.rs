//! The Calendar API's `freeBusy`, as calendar presence uses it: the busy times of the
//! signed-in user's primary calendar over the next day. The narrowest scope that answers
//! it (`calendar.freebusy`) shows busy times only: no titles, no attendees.

use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::api::{self, Api, ApiError};
use super::http::HttpClient;

pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar.freebusy";
/// Scopes that also answer freeBusy: a grant of a wider calendar scope (from an earlier
/// consent, kept by `include_granted_scopes`) serves as well.
const WIDER_SCOPES: [&str; 2] = [
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
        "timeMin": crate::core::rfc3339(from),
        "timeMax": crate::core::rfc3339(until),
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
    #[serde(default)]
    busy: Vec<Period>,
    #[serde(default)]
    errors: Vec<CalendarError>,
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
        serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
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
    if primary.busy.len() > MAX_BUSY_PERIODS {
        return Err(ApiError::Refused(format!(
            "the Google Calendar API sent {} busy periods for one day (at most {MAX_BUSY_PERIODS} make sense); they are not kept. If it persists, something between the PBX and Google alters the replies",
            primary.busy.len()
        )));
    }
    let mut periods = Vec::with_capacity(primary.busy.len());
    for period in &primary.busy {
        let start = unix_time(&period.start).ok_or_else(|| {
            malformed(format!(
                "a busy period starts at {:?}",
                truncated(&period.start)
            ))
        })?;
        let end = unix_time(&period.end).ok_or_else(|| {
            malformed(format!(
                "a busy period ends at {:?}",
                truncated(&period.end)
            ))
        })?;
        let (start, end) = (start.max(from), end.min(until));
        if start < end {
            periods.push((start, end));
        }
    }
    Ok(periods)
}

/// An RFC 3339 time as Unix seconds (a fraction of a second is dropped).
fn unix_time(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
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
            Err(ApiError::Refused(_))
        ));
    }
}
