//! The Calendar API's `freebusy.query` (`POST /calendar/v3/freeBusy`): the busy periods of the
//! user's primary calendar within a window; the Calendar API's error bodies, which carry the
//! older `errors` list beside `status` and `details`; RFC 3339 times as that API reads and
//! writes them.

use super::*;

/// The scopes that let `freebusy.query` through: any one of them.
const CALENDAR_SCOPES: &[&str] = &[
    CALENDAR_FREEBUSY,
    CALENDAR_EVENTS_FREEBUSY,
    CALENDAR_READONLY,
    CALENDAR_FULL,
];

// ---------------------------------------------------------------------------------------------
// Error bodies
// ---------------------------------------------------------------------------------------------

/// The ErrorInfo metadata naming `freebusy.query`.
pub(super) fn calendar_metadata() -> Value {
    json!({"service": CALENDAR_SERVICE, "method": FREEBUSY_METHOD})
}

/// A Calendar API error: `{"error": {"code", "message", "errors": [...], "status",
/// "details"}}`, `details` left out when empty.
pub(super) fn calendar_error(
    code: u16,
    status: &str,
    message: &str,
    errors: Vec<Value>,
    details: Vec<Value>,
) -> Reply {
    let mut err = json!({"code": code, "message": message, "errors": errors, "status": status});
    if !details.is_empty() {
        err["details"] = Value::Array(details);
    }
    api_error_value(code, err)
}

/// One entry of a Calendar error's `errors` list.
fn error_item(message: &str, domain: &str, reason: &str) -> Value {
    json!({"message": message, "domain": domain, "reason": reason})
}

/// 400 for a request parameter, as the Calendar API words it (`required`, `invalid`,
/// `timeRangeEmpty`, ...), naming the parameter in `location`.
fn bad_parameter(domain: &str, reason: &str, message: &str, parameter: &str) -> Reply {
    let mut item = error_item(message, domain, reason);
    item["locationType"] = json!("parameter");
    item["location"] = json!(parameter);
    calendar_error(400, "INVALID_ARGUMENT", message, vec![item], vec![])
}

/// 400 `parseError`: the body is not a JSON object.
fn parse_error(message: &str) -> Reply {
    calendar_error(
        400,
        "INVALID_ARGUMENT",
        message,
        vec![error_item(message, "global", "parseError")],
        vec![],
    )
}

/// 403 for a grant without any calendar scope (the user unticked it, or it was never asked).
pub(super) fn calendar_scope_insufficient() -> Reply {
    calendar_error(
        403,
        "PERMISSION_DENIED",
        "Request had insufficient authentication scopes.",
        vec![error_item(
            "Insufficient Permission",
            "global",
            "insufficientPermissions",
        )],
        vec![error_info(
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "googleapis.com",
            calendar_metadata(),
        )],
    )
    .header(
        "WWW-Authenticate",
        &format!(
            "Bearer realm=\"https://accounts.google.com/\", error=\"insufficient_scope\", scope=\"{}\"",
            CALENDAR_SCOPES.join(" ")
        ),
    )
}

/// [`Fault::CalendarDisabled`]: the Google Calendar API is not enabled for the project.
pub(super) fn calendar_disabled() -> Reply {
    let (message, details) = service_disabled(CALENDAR_SERVICE, "Google Calendar API");
    let mut item = error_item(&message, "usageLimits", "accessNotConfigured");
    item["extendedHelp"] = json!("https://console.developers.google.com");
    calendar_error(403, "PERMISSION_DENIED", &message, vec![item], details)
}

/// [`Fault::Status`] on [`Endpoint::Calendar`] (502 and codes under 400 are answered before,
/// as on every endpoint).
pub(super) fn calendar_status_fault(code: u16) -> Reply {
    let (status, message, domain, reason) = match code {
        400 => ("INVALID_ARGUMENT", "Bad Request", "global", "badRequest"),
        401 => return unauthenticated_at(Endpoint::Calendar, true),
        403 => return calendar_scope_insufficient(),
        404 => ("NOT_FOUND", "Not Found", "global", "notFound"),
        409 => (
            "ABORTED",
            "The operation was aborted.",
            "global",
            "conflict",
        ),
        429 => (
            "RESOURCE_EXHAUSTED",
            "Rate Limit Exceeded",
            "usageLimits",
            "rateLimitExceeded",
        ),
        500 => ("INTERNAL", "Backend Error", "global", "backendError"),
        503 => (
            "UNAVAILABLE",
            "The service is currently unavailable.",
            "global",
            "backendError",
        ),
        504 => (
            "DEADLINE_EXCEEDED",
            "The request timed out. Please try again.",
            "global",
            "backendError",
        ),
        _ => ("UNKNOWN", "Unknown Error.", "global", "unknown"),
    };
    calendar_error(
        code,
        status,
        message,
        vec![error_item(message, domain, reason)],
        vec![],
    )
}

// ---------------------------------------------------------------------------------------------
// freebusy.query
// ---------------------------------------------------------------------------------------------

/// `POST /calendar/v3/freeBusy` with `{"timeMin", "timeMax", "items": [{"id"}]}`: for each
/// item, the user's busy periods overlapping `[timeMin, timeMax)`, clipped to it, sorted by
/// start, not merged; `primary` and the user's own address are the user's calendar, any other
/// id gets Google's `notFound` entry (with an empty `busy`, as Google sends it, so a client
/// that skips `errors` reads a free calendar). `timeZone`, `groupExpansionMax` and
/// `calendarExpansionMax` are accepted and change nothing (times are answered in UTC).
pub(super) fn freebusy_endpoint(st: &State, rq: &Request) -> Reply {
    if rq.method != "POST" {
        return not_found(&rq.path);
    }
    let email = match authenticate_for(st, rq, Endpoint::Calendar, CALENDAR_SCOPES) {
        Ok(e) => e,
        Err(r) => return r,
    };
    // Stricter than Google, which guesses: a client must say it sends JSON.
    let json_type = rq
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    if !json_type {
        return parse_error("Parse Error (the fake requires Content-Type: application/json)");
    }
    let body = if rq.body.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(&rq.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return parse_error("Parse Error"),
        }
    };

    let time = |name: &str| -> Result<i64, Reply> {
        match &body[name] {
            Value::Null => Err(bad_parameter(
                "global",
                "required",
                &format!("Missing {name} parameter."),
                name,
            )),
            Value::String(s) => parse_rfc3339_ms(s).ok_or_else(|| {
                bad_parameter(
                    "global",
                    "invalid",
                    &format!("Invalid {name} parameter."),
                    name,
                )
            }),
            _ => Err(bad_parameter(
                "global",
                "invalid",
                &format!("Invalid {name} parameter."),
                name,
            )),
        }
    };
    let (min, max) = match (time("timeMin"), time("timeMax")) {
        (Ok(min), Ok(max)) => (min, max),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if max <= min {
        return bad_parameter(
            "calendar",
            "timeRangeEmpty",
            "The specified time range is empty.",
            "timeMax",
        );
    }
    let items: &[Value] = match &body["items"] {
        Value::Null => &[],
        Value::Array(a) => a,
        _ => return bad_parameter("global", "invalid", "Invalid items parameter.", "items"),
    };

    let mut busy: Vec<(i64, i64)> = st
        .users
        .get(&email)
        .map_or(&[][..], |u| &u.busy[..])
        .iter()
        .map(|&(s, e)| (s.saturating_mul(1000), e.saturating_mul(1000)))
        .filter(|&(s, e)| s < e && s < max && e > min)
        .map(|(s, e)| (s.max(min), e.min(max)))
        .collect();
    busy.sort_unstable();
    let busy: Vec<Value> = busy
        .into_iter()
        .map(|(s, e)| json!({"start": format_ms(s, false), "end": format_ms(e, false)}))
        .collect();

    let mut calendars = Map::new();
    for item in items {
        let Some(id) = item["id"].as_str().filter(|id| !id.is_empty()) else {
            return bad_parameter(
                "global",
                "required",
                "Missing items.id parameter.",
                "items.id",
            );
        };
        let entry = if id == "primary" || id.eq_ignore_ascii_case(&email) {
            json!({"busy": busy})
        } else {
            json!({
                "errors": [{"domain": "global", "reason": "notFound"}],
                "busy": [],
            })
        };
        calendars.insert(id.to_string(), entry);
    }
    Reply::json(
        200,
        &json!({
            "kind": "calendar#freeBusy",
            "timeMin": format_ms(min, true),
            "timeMax": format_ms(max, true),
            "calendars": calendars,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// RFC 3339
// ---------------------------------------------------------------------------------------------

/// Reads an RFC 3339 date-time as Unix milliseconds, as the Calendar API reads `timeMin`:
/// `2026-11-29T20:00:00Z`, `2026-11-29T21:00:00.250+01:00`, `...-05:30`; fractions past the
/// millisecond are dropped. A date alone, a time without an offset, or an impossible date
/// (`2026-02-30`) is `None`.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    // 60 is a leap second (it counts as the next minute's first).
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        for i in 0..3 {
            millis = millis * 10 + if i < digits { num(at + 1 + i, 1)? } else { 0 };
        }
        at += 1 + digits;
    }
    let offset = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    Some(secs * 1000 + i64::from(millis))
}

/// Unix seconds as the Calendar API writes a busy period's bounds: `2026-11-29T20:00:00Z`.
pub fn rfc3339_utc(unix_secs: i64) -> String {
    format_ms(unix_secs.saturating_mul(1000), false)
}

/// Unix milliseconds in UTC; with `millis` always with three decimals (as freeBusy echoes
/// `timeMin` and `timeMax`), else only when the time has a fraction of a second.
fn format_ms(ms: i64, millis: bool) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if millis || frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
    out.push('Z');
    out
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}
