//! What every Google API call has in common: one request through the bounded client, and
//! Google's failures sorted by what the caller does next (refresh the token, retry later,
//! start over, or tell an administrator what to fix). The People API and the Calendar API
//! answer failures in the same shape; only the fixes an administrator is told differ.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use url::Url;

use super::http::{error_chain, Failure, HttpClient};

/// The Google API a request went to, for messages that name it and its fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// The People API's contacts and contact groups.
    People,
    /// The People API's `otherContacts`.
    OtherContacts,
    /// The People API's Workspace directory (`people:listDirectoryPeople`).
    Directory,
    Calendar,
}

impl Api {
    /// Whether the API's lists take sync tokens, which Google expires (400
    /// EXPIRED_SYNC_TOKEN, or 410): the People API's do; freeBusy has none.
    pub fn takes_sync_tokens(self) -> bool {
        self != Api::Calendar
    }

    /// The API's name as the Google Cloud console's library lists it.
    pub fn name(self) -> &'static str {
        match self {
            Api::People | Api::OtherContacts | Api::Directory => "Google People API",
            Api::Calendar => "Google Calendar API",
        }
    }

    /// What a user does when the grant lacks this API's scope.
    pub fn scope_fix(self) -> &'static str {
        match self {
            Api::People => "the Google user did not grant access to contacts: click \"Get auth code\" again and tick \"See and download your contacts\"",
            Api::OtherContacts => "the Google user did not grant access to other contacts: click \"Get auth code\" to grant access to other contacts (tick \"See and download contact info automatically saved in your 'Other contacts'\" on Google's consent screen)",
            Api::Directory => "the Google user did not grant access to the directory: click \"Get auth code\" to grant access to the directory (tick \"See and download your organization's Google Workspace directory\" on Google's consent screen)",
            Api::Calendar => "the Google user did not grant calendar access: click \"Get auth code\" to grant calendar access (tick the calendar box on Google's consent screen)",
        }
    }

    /// What Google denies when it answers 403 for another reason.
    fn denied(self) -> &'static str {
        match self {
            Api::People => "Google denied access to the contacts: check that the Google People API is enabled and that the user may share contacts",
            Api::OtherContacts => "Google denied access to the other contacts: check that the Google People API is enabled and that the user may share contacts",
            Api::Directory => "Google denied access to the Workspace directory: check that the Google People API is enabled and that the Workspace administrator lets users see the directory (Admin console > Directory > Directory settings > Sharing settings)",
            Api::Calendar => "Google denied access to the calendar: check that the Google Calendar API is enabled and that the user may share free/busy times",
        }
    }
}

/// Why a call failed, sorted by what the caller does next.
#[derive(Debug)]
pub enum ApiError {
    /// 401: the access token is expired or revoked; refresh it once and retry.
    Unauthorized,
    /// The stored sync token is too old (400 FAILED_PRECONDITION / EXPIRED_SYNC_TOKEN, or 410):
    /// start one clean full sync.
    ExpiredSyncToken,
    /// 403: the API is disabled for the client, or Google denies the user. An
    /// administrator must act; retrying does not help.
    Forbidden(String),
    /// 403 `ACCESS_TOKEN_SCOPE_INSUFFICIENT`: the grant does not cover this API (unticked
    /// at consent, or cut down at Google since). The user must grant it again.
    NotGranted(String),
    /// 429, 5xx, a network failure or a broken reply: worth retrying after a pause.
    Transient {
        message: String,
        retry_after: Option<Duration>,
        /// A 429: the OAuth client's quota is spent, for every account of that client.
        quota_exhausted: bool,
    },
    /// Any other refusal (4xx): retrying the same request will not help.
    Refused(String),
}

impl ApiError {
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthorized => {
                "Google rejected the access token (HTTP 401) even after a refresh".into()
            }
            ApiError::ExpiredSyncToken => "Google expired the sync token".into(),
            ApiError::Forbidden(m) | ApiError::NotGranted(m) | ApiError::Refused(m) => m.clone(),
            ApiError::Transient { message, .. } => message.clone(),
        }
    }
}

/// Sends one request through the bounded client: the body of a 200, or the failure sorted
/// by what to do next. `base_url` is named in messages (never the request's query).
pub fn send(
    http: &HttpClient,
    api: Api,
    base_url: &Url,
    request: reqwest::blocking::RequestBuilder,
) -> Result<Vec<u8>, ApiError> {
    let name = api.name();
    let request = request.build().map_err(|e| {
        ApiError::Refused(format!(
            "cannot build the {name} request ({})",
            error_chain(&e)
        ))
    })?;
    let reply = http.execute(request).map_err(|e| match e.failure {
        Failure::TooLarge => ApiError::Refused(format!(
            "the {name} at {base_url} sent {}; nothing was changed",
            e.message
        )),
        _ => ApiError::Transient {
            message: format!("cannot reach the {name} at {base_url}: {}", e.message),
            retry_after: None,
            quota_exhausted: false,
        },
    })?;
    if reply.status == 200 {
        return Ok(reply.body);
    }
    let retry_after = reply
        .headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    Err(classify_failure(
        api,
        reply.status,
        &String::from_utf8_lossy(&reply.body),
        retry_after,
    ))
}

/// Where and how a reply from Google is not the JSON expected, without what it holds there:
/// serde's own message quotes the value it did not expect (`invalid type: string "Jürgen
/// Müller"`, `integer 4155550100`), someone's contact data, and these messages go to the log
/// and to the status the PBX's page shows.
pub fn json_fault(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Data => "a field of the wrong type or value",
        Category::Eof => "cut short",
        Category::Syntax | Category::Io => "not JSON",
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
}

/// The longest wait a `Retry-After` is taken for. Google asks for seconds, or a minute; a
/// longer ask (a header written by something between the PBX and Google, or a date years
/// ahead) is read as an hour, so that it cannot park an account's syncs for good while it
/// looks green, nor overflow the schedule's clock: `Retry-After: 18446744073709551615` put
/// the account's next run an `Instant` past the clock's end, and the sync worker that
/// computed it panicked and was gone (four such replies, and no account synced again).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as Google may send it: a number of seconds, or an HTTP date (a date in the
/// past means at once); at most `MAX_RETRY_AFTER`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Google's JSON error: `{"error":{"code","message","status","details":[{"reason"}]}}`, and
/// the older shape the Calendar API still sends, `"errors":[{"domain","reason"}]`.
#[derive(Deserialize, Default)]
struct GoogleErrorBody {
    #[serde(default)]
    error: GoogleError,
}

#[derive(Deserialize, Default)]
struct GoogleError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<GoogleErrorDetail>,
    #[serde(default)]
    errors: Vec<GoogleErrorDetail>,
}

#[derive(Deserialize)]
struct GoogleErrorDetail {
    reason: Option<String>,
}

/// The reasons of a 403 that is a rate limit, not a denial: Google documents them for the
/// Calendar API ("usageLimits") and answers them with exponential backoff.
const RATE_LIMIT_REASONS: [&str; 3] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "RATE_LIMIT_EXCEEDED",
];

/// At most `max` characters of `text`, without control or bidirectional-text characters: for
/// text from a reply or a redirect that a message quotes.
pub(super) fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Whether Google's message is about the sync token ("sync token", "syncToken").
fn mentions_sync_token(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("sync token") || message.contains("synctoken")
}

fn classify_failure(api: Api, status: u16, body: &str, retry_after: Option<Duration>) -> ApiError {
    let parsed: GoogleErrorBody = serde_json::from_str(body).unwrap_or_default();
    let error = parsed.error;
    let reasons: Vec<&str> = error
        .details
        .iter()
        .chain(&error.errors)
        .filter_map(|d| d.reason.as_deref())
        .collect();
    // A 403 that says "slow down" (the Calendar API's usage limits): retried like a 429.
    let rate_limited = RATE_LIMIT_REASONS.iter().any(|r| reasons.contains(r));
    // Google's own words go into the reason, the log and the store: from a hostile reply they
    // could be 64 KiB long, or carry control characters (a NUL, which PostgreSQL's text
    // refuses, or terminal escapes), so they are cut and cleaned.
    let google_says = if error.message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!(
            "HTTP {status} {}: {}",
            printable(&error.status, 40),
            printable(&error.message, 300)
        )
    };
    let name = api.name();
    match status {
        401 => ApiError::Unauthorized,
        // Without a sync token to expire, a 410 is a failure like a 5xx (retried, then
        // yellow naming the API).
        410 if api.takes_sync_tokens() => ApiError::ExpiredSyncToken,
        400 if reasons.contains(&"EXPIRED_SYNC_TOKEN") => ApiError::ExpiredSyncToken,
        // The same refusal without its ErrorInfo ("Sync token is expired. Clear local cache
        // and retry call without the sync token."): taken as any other 400, the token was
        // kept and sent again at every sync, failing each time, the source stale for good
        // (and on the directory, read as an account outside Workspace).
        400 if api.takes_sync_tokens() && mentions_sync_token(&error.message) => {
            ApiError::ExpiredSyncToken
        }
        // Google's answer to a directory request from an account outside Workspace ("Must be
        // a G Suite domain user."): no retry helps, the configuration must change.
        400 if api == Api::Directory && error.status == "FAILED_PRECONDITION" => {
            ApiError::Forbidden(format!(
                "the directory source needs a Google Workspace account, and this Google account is not in a Workspace organisation: connect a Workspace account, or remove \"directory\" from sources for this domain in the PBX's configuration ({google_says})"
            ))
        }
        403 if reasons.contains(&"SERVICE_DISABLED") || error.message.contains("has not been used") => {
            ApiError::Forbidden(format!(
                "the {name} is not enabled for this Google Cloud project: enable the {name} in the Google Cloud console (APIs & Services > Library > \"{name}\"), then press Sync now ({google_says})"
            ))
        }
        403 if reasons.contains(&"ACCESS_TOKEN_SCOPE_INSUFFICIENT") => {
            ApiError::NotGranted(format!("{} ({google_says})", api.scope_fix()))
        }
        403 if rate_limited => ApiError::Transient {
            message: format!("the {name} asks to slow down ({google_says})"),
            retry_after,
            quota_exhausted: true,
        },
        403 => ApiError::Forbidden(format!("{} ({google_says})", api.denied())),
        429 | 410 | 500..=599 => ApiError::Transient {
            message: format!("the {name} is busy or failing ({google_says})"),
            retry_after,
            quota_exhausted: status == 429,
        },
        _ => ApiError::Refused(format!("the {name} refused the request ({google_says})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_token_refused_without_its_reason_is_expired_too() {
        let body = r#"{"error":{"code":400,"message":"Sync token is expired. Clear local cache and retry call without the sync token.","status":"FAILED_PRECONDITION"}}"#;
        for api in [Api::People, Api::OtherContacts, Api::Directory] {
            assert!(
                matches!(
                    classify_failure(api, 400, body, None),
                    ApiError::ExpiredSyncToken
                ),
                "{api:?}"
            );
        }
        // Outside Workspace, the directory's precondition is still that.
        let consumer = r#"{"error":{"code":400,"message":"Must be a G Suite domain user.","status":"FAILED_PRECONDITION"}}"#;
        assert!(matches!(
            classify_failure(Api::Directory, 400, consumer, None),
            ApiError::Forbidden(_)
        ));
    }

    #[test]
    fn googles_words_in_a_failure_are_cut_and_cleaned() {
        let message = format!("bad\u{0}\u{1b}[31m{}", "x".repeat(60_000));
        let body = serde_json::json!({"error": {"code": 500, "message": message, "status": "INTERNAL\u{0}"}})
            .to_string();
        let error = classify_failure(Api::People, 500, &body, None).message();
        assert!(!error.chars().any(|c| c.is_control()), "{error:?}");
        assert!(error.len() < 1_000, "{} bytes", error.len());
        assert!(error.contains("HTTP 500 INTERNAL: bad[31mxxx"), "{error}");
    }

    #[test]
    fn an_expired_sync_token_is_recognised_by_its_reason() {
        let body = r#"{"error":{"code":400,"message":"Sync token is expired. Clear local cache and retry call without the sync token.","status":"FAILED_PRECONDITION","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"EXPIRED_SYNC_TOKEN","domain":"people.googleapis.com"}]}}"#;
        assert!(matches!(
            classify_failure(Api::People, 400, body, None),
            ApiError::ExpiredSyncToken
        ));
        // Another 400 is not an expired token, whatever its status text.
        let other = r#"{"error":{"code":400,"message":"Invalid personFields mask path","status":"INVALID_ARGUMENT"}}"#;
        assert!(matches!(
            classify_failure(Api::People, 400, other, None),
            ApiError::Refused(_)
        ));
        assert!(matches!(
            classify_failure(Api::People, 410, "", None),
            ApiError::ExpiredSyncToken
        ));
    }

    #[test]
    fn failures_are_sorted_by_what_to_do() {
        assert!(matches!(
            classify_failure(Api::People, 401, "{}", None),
            ApiError::Unauthorized
        ));
        let disabled = r#"{"error":{"code":403,"message":"People API has not been used in project 1 before or it is disabled.","status":"PERMISSION_DENIED","details":[{"reason":"SERVICE_DISABLED"}]}}"#;
        match classify_failure(Api::People, 403, disabled, None) {
            ApiError::Forbidden(m) => assert!(m.contains("not enabled"), "{m}"),
            _ => panic!("403 SERVICE_DISABLED must be Forbidden"),
        }
        match classify_failure(Api::People, 429, "not json", Some(Duration::from_secs(7))) {
            ApiError::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            _ => panic!("429 must be transient"),
        }
        assert!(matches!(
            classify_failure(Api::People, 503, "", None),
            ApiError::Transient { .. }
        ));
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 12:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_json_fault_says_where_not_what() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Person {
            names: Vec<String>,
        }
        let fault = |body: &str| json_fault(&serde_json::from_str::<Person>(body).unwrap_err());
        let wrong = fault(r#"{"names": "Jürgen Müller"}"#);
        assert_eq!(
            wrong,
            "a field of the wrong type or value at line 1, column 27"
        );
        assert!(!fault(r#"{"names": [4155550100]}"#).contains("4155550100"));
        assert_eq!(fault(r#"{"names": ["#), "cut short at line 1, column 11");
        assert_eq!(fault("<html>"), "not JSON at line 1, column 1");
    }

    #[test]
    fn a_retry_after_longer_than_an_hour_is_read_as_an_hour() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 12:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("3600", now), Some(MAX_RETRY_AFTER));
        for endless in [
            "3601",
            "18446744073709551615",
            "Mon, 30 Nov 2026 12:00:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                parse_retry_after(endless, now),
                Some(MAX_RETRY_AFTER),
                "{endless}"
            );
        }
        // What the schedule does with it: no overflow.
        assert!(std::time::Instant::now()
            .checked_add(parse_retry_after("18446744073709551615", now).unwrap())
            .is_some());
    }
    #[test]
    fn a_directory_outside_workspace_says_so_and_a_missing_scope_names_the_source() {
        let consumer = r#"{"error":{"code":400,"message":"Must be a G Suite domain user.","status":"FAILED_PRECONDITION"}}"#;
        match classify_failure(Api::Directory, 400, consumer, None) {
            ApiError::Forbidden(m) => assert!(
                m.contains("needs a Google Workspace account")
                    && m.contains("remove \"directory\""),
                "{m}"
            ),
            other => panic!("a consumer account's directory must be Forbidden: {other:?}"),
        }
        // The same status elsewhere is not about Workspace.
        assert!(matches!(
            classify_failure(Api::People, 400, consumer, None),
            ApiError::Refused(_)
        ));
        let scope = r#"{"error":{"code":403,"status":"PERMISSION_DENIED","message":"Request had insufficient authentication scopes.","details":[{"reason":"ACCESS_TOKEN_SCOPE_INSUFFICIENT"}]}}"#;
        for (api, names) in [
            (Api::OtherContacts, "other contacts"),
            (Api::Directory, "the directory"),
        ] {
            match classify_failure(api, 403, scope, None) {
                ApiError::NotGranted(m) => {
                    assert!(m.contains(&format!("grant access to {names}")), "{m}")
                }
                other => panic!("a missing scope must be NotGranted: {other:?}"),
            }
        }
    }

    #[test]
    fn a_disabled_calendar_api_names_the_calendar_api() {
        let disabled = r#"{"error":{"code":403,"message":"Google Calendar API has not been used in project 1 before or it is disabled.","status":"PERMISSION_DENIED","details":[{"reason":"SERVICE_DISABLED"}]}}"#;
        match classify_failure(Api::Calendar, 403, disabled, None) {
            ApiError::Forbidden(m) => assert!(
                m.contains("enable the Google Calendar API in the Google Cloud console"),
                "{m}"
            ),
            _ => panic!("403 SERVICE_DISABLED must be Forbidden"),
        }
        let scope = r#"{"error":{"code":403,"status":"PERMISSION_DENIED","message":"Request had insufficient authentication scopes.","details":[{"reason":"ACCESS_TOKEN_SCOPE_INSUFFICIENT"}]}}"#;
        match classify_failure(Api::Calendar, 403, scope, None) {
            ApiError::NotGranted(m) => assert!(m.contains("grant calendar access"), "{m}"),
            _ => panic!("a missing scope must be NotGranted"),
        }
    }

    /// Google documents a 403 with `errors[].reason` `rateLimitExceeded` for the Calendar
    /// API, to be retried with backoff: it is not a denial an administrator must act on. A
    /// 410 on freeBusy (which has no sync token) is retried too.
    #[test]
    fn a_calendar_rate_limit_is_retried_not_a_denial() {
        for reason in ["rateLimitExceeded", "userRateLimitExceeded"] {
            let body = format!(
                r#"{{"error":{{"code":403,"message":"Rate Limit Exceeded","errors":[{{"domain":"usageLimits","reason":"{reason}"}}],"status":"PERMISSION_DENIED"}}}}"#
            );
            match classify_failure(Api::Calendar, 403, &body, None) {
                ApiError::Transient {
                    quota_exhausted, ..
                } => assert!(quota_exhausted),
                other => panic!("{reason} must be retried: {other:?}"),
            }
        }
        let denied = r#"{"error":{"code":403,"message":"The caller does not have permission","errors":[{"domain":"global","reason":"forbidden"}],"status":"PERMISSION_DENIED"}}"#;
        assert!(matches!(
            classify_failure(Api::Calendar, 403, denied, None),
            ApiError::Forbidden(_)
        ));
        assert!(matches!(
            classify_failure(Api::Calendar, 410, "", None),
            ApiError::Transient { .. }
        ));
        assert!(matches!(
            classify_failure(Api::People, 410, "", None),
            ApiError::ExpiredSyncToken
        ));
    }
}
