//! The one HTTP client every call to Google goes through (token endpoint, People API,
//! revocation). Google's replies are untrusted input: a reply body is read with a cap
//! (32 MiB), every request has an overall deadline (60 s), and no error it makes carries a
//! URL, since URLs carry sync and page tokens. The deadline is set on each request (reqwest
//! 0.12 carries it into the body reads too) and checked again between chunks here, so it
//! holds whatever a reqwest upgrade changes; the chunk loop also abandons a reply when the
//! plugin closes.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::budget::Budget;
use crate::error::{Error, ErrorKind, Result};

/// The most bytes of a reply body the plugin reads (the contract's 32 MiB).
pub const MAX_REPLY_BYTES: usize = 32 << 20;
/// The longest a request may take, from sending it to the last byte of the reply.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// How much of a failure's body is read: Google's JSON errors take a few KiB, and a retry
/// should not wait for (or buffer) the rest of a hostile one.
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// The bounds one client applies; tests shorten them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub deadline: Duration,
    pub max_body: usize,
    /// The request budget (see `budget`): `google_requests_per_minute`.
    pub requests_per_minute: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            deadline: REQUEST_DEADLINE,
            max_body: MAX_REPLY_BYTES,
            requests_per_minute: 600,
        }
    }
}

/// A reply, read whole within the limits. A failure's body is cut at `MAX_ERROR_BYTES`.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why a request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not reachable, refused, reset, or a read that timed out.
    Unreachable,
    /// The overall deadline passed.
    Deadline,
    /// A success whose body is larger than the cap.
    TooLarge,
    /// The plugin is closing.
    Closing,
}

/// A failed request: what happened, in words safe to show (no URL, so no token).
#[derive(Debug, Clone)]
pub struct HttpError {
    pub failure: Failure,
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    fn new(failure: Failure, message: impl Into<String>) -> HttpError {
        HttpError {
            failure,
            message: message.into(),
        }
    }

    /// The plugin's error for it: closing and unreachable are network errors, a reply too
    /// large is Google's fault.
    pub fn into_error(self) -> Error {
        let kind = match self.failure {
            Failure::TooLarge => ErrorKind::Google,
            _ => ErrorKind::Network,
        };
        Error::new(kind, self.message)
    }
}

pub struct HttpClient {
    client: reqwest::blocking::Client,
    limits: Limits,
    /// Set when the plugin closes: a reply being read is abandoned at its next chunk.
    closing: AtomicBool,
    budget: Budget,
}

impl HttpClient {
    pub fn new(limits: Limits) -> Result<HttpClient> {
        // Redirects are not followed: a token endpoint that redirects is misconfigured, and
        // following it could carry a code elsewhere.
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10).min(limits.deadline))
            .timeout(limits.deadline)
            .user_agent(concat!(
                "vodia-google-integration/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("cannot build the HTTP client: {}", error_chain(&e)),
                )
            })?;
        Ok(HttpClient {
            client,
            limits,
            closing: AtomicBool::new(false),
            budget: Budget::new(limits.requests_per_minute),
        })
    }

    /// The request budget every request takes from (and a 429 pauses a quota of).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Waits while `quota` is paused after a 429; false when the plugin closes.
    pub fn wait_for_quota(&self, quota: &str) -> bool {
        self.budget
            .wait_for_quota(quota, || self.closing.load(Ordering::SeqCst))
            .is_ok()
    }

    /// For building requests; send them with [`execute`](Self::execute).
    pub fn requests(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// Abandons replies being read, and refuses new requests: the plugin is closing.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Sends a request and reads its reply within the limits.
    pub fn execute(
        &self,
        mut request: reqwest::blocking::Request,
    ) -> std::result::Result<Reply, HttpError> {
        // Every request to Google waits for its turn in the plugin's budget first; the
        // deadline counts from when it goes out.
        self.budget
            .take(|| self.closing.load(Ordering::SeqCst))
            .map_err(|_| closing())?;
        let deadline = Instant::now() + self.limits.deadline;
        // Bounds each wait of reqwest (headers, then every read) by the whole deadline.
        *request.timeout_mut() = Some(self.limits.deadline);
        let mut response = self
            .client
            .execute(request)
            .map_err(|e| HttpError::new(failure_of(&e), describe(&e)))?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let success = (200..300).contains(&status);
        let cap = if success {
            self.limits.max_body
        } else {
            MAX_ERROR_BYTES
        };
        if success && response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large(cap));
        }
        let mut body = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            if self.closing.load(Ordering::SeqCst) {
                return Err(closing());
            }
            if Instant::now() >= deadline {
                return Err(self.past_deadline());
            }
            let read = match response.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                // reqwest's own deadline covers the body too; either way it is the deadline.
                Err(e) if Instant::now() >= deadline || error_chain(&e).contains("timed out") => {
                    return Err(self.past_deadline())
                }
                Err(e) => {
                    return Err(HttpError::new(
                        Failure::Unreachable,
                        format!("the reply was cut off ({})", error_chain(&e)),
                    ))
                }
            };
            if body.len() + read > cap {
                if success {
                    return Err(too_large(cap));
                }
                // Enough of a failure to read Google's error; the rest is dropped with the
                // connection.
                body.extend_from_slice(&chunk[..cap - body.len()]);
                break;
            }
            body.extend_from_slice(&chunk[..read]);
        }
        replace_nul_escapes(&mut body);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn past_deadline(&self) -> HttpError {
        HttpError::new(
            Failure::Deadline,
            format!(
                "the reply took longer than {} s to arrive; it was abandoned",
                self.limits.deadline.as_secs_f64()
            ),
        )
    }

    /// `oauth2`'s way of sending: the token endpoint goes through the same limits.
    pub fn for_oauth(
        &self,
    ) -> impl Fn(oauth2::HttpRequest) -> std::result::Result<oauth2::HttpResponse, HttpError> + '_
    {
        move |request| {
            let request = reqwest::blocking::Request::try_from(request).map_err(|e| {
                HttpError::new(
                    Failure::Unreachable,
                    format!("cannot build the request ({})", describe(&e)),
                )
            })?;
            let reply = self.execute(request)?;
            let mut response = oauth2::http::Response::builder().status(reply.status);
            for (name, value) in &reply.headers {
                response = response.header(name, value);
            }
            response.body(reply.body).map_err(|e| {
                HttpError::new(
                    Failure::Unreachable,
                    format!("the reply is not valid HTTP ({e})"),
                )
            })
        }
    }
}

/// Replaces every JSON escape of U+0000 (`\u0000`) in a reply with one of U+FFFD, in place
/// (both are six bytes). PostgreSQL's text refuses U+0000, so one such character in a name, a
/// label or a token from Google failed every commit of the account's sync, each time; and a
/// C string ends there, so the PBX showed a name cut short. Every reply is JSON (the People
/// and Calendar APIs, the token endpoint), where a NUL can only come escaped: serde_json
/// refuses a raw one. An escape is told from an escaped backslash followed by `u0000` text
/// by the backslashes before it: an odd run escapes the `u`.
fn replace_nul_escapes(body: &mut [u8]) {
    let found: Vec<usize> = memchr::memmem::find_iter(body, b"\\u0000").collect();
    for at in found {
        let backslashes = body[..=at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            body[at + 1..at + 6].copy_from_slice(b"ufffd");
        }
    }
}

fn closing() -> HttpError {
    HttpError::new(
        Failure::Closing,
        "the plugin is closing; the request was abandoned",
    )
}

fn too_large(cap: usize) -> HttpError {
    HttpError::new(
        Failure::TooLarge,
        format!(
            "the reply is larger than {} MiB, more than any real Google reply; it was refused",
            cap >> 20
        ),
    )
}

fn failure_of(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Deadline
    } else {
        Failure::Unreachable
    }
}

/// A reqwest error in words, without its URL (which may carry a sync or page token).
fn describe(e: &reqwest::Error) -> String {
    error_chain(e)
}

/// An error with its causes, "a: b: c", so a message shows the root cause (refused, timed out).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    strip_urls(&text)
}

/// Cuts the query and fragment off every URL in `text`: whatever a library put in an error,
/// no token leaves through it.
pub fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>'))
            .unwrap_or(after.len());
        let url = &after[..end];
        let kept = url.find(['?', '#']).map_or(url, |cut| &url[..cut]);
        out.push_str(&rest[..at + 3]);
        out.push_str(kept);
        if kept.len() < url.len() {
            out.push_str("?…");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn a_nul_escape_becomes_a_replacement_character_and_nothing_else_changes() {
        for (reply, read) in [
            (r#"{"n":"A\u0000B"}"#, "A\u{fffd}B"),
            // An escaped backslash, then the text u0000: not a NUL.
            (r#"{"n":"A\\u0000B"}"#, "A\\u0000B"),
            // An escaped backslash, then a NUL.
            (r#"{"n":"A\\\u0000B"}"#, "A\\\u{fffd}B"),
            (r#"{"n":"\u0000\u0000"}"#, "\u{fffd}\u{fffd}"),
            (r#"{"n":"\u00001"}"#, "\u{fffd}1"),
            (r#"{"n":"\u0001"}"#, "\u{1}"),
        ] {
            let mut body = reply.as_bytes().to_vec();
            replace_nul_escapes(&mut body);
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed["n"], read, "{reply}");
        }
    }

    #[test]
    fn urls_lose_their_query_in_error_text() {
        let text = "error sending request for url (http://127.0.0.1:9/v1/people/me/connections?syncToken=SECRET&pageToken=P): connection refused";
        let stripped = strip_urls(text);
        assert!(!stripped.contains("SECRET") && !stripped.contains("pageToken"));
        assert!(stripped.contains("http://127.0.0.1:9/v1/people/me/connections?…"));
        assert!(stripped.ends_with("connection refused"));
        assert_eq!(strip_urls("no url here"), "no url here");
    }

    /// A server that answers one request with `head`, then sends `body` a byte at a time
    /// every `every`.
    fn trickling_server(head: &'static str, body: &'static [u8], every: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut socket, _)) = listener.accept() {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request);
                let _ = socket.write_all(head.as_bytes());
                for byte in body {
                    if socket.write_all(&[*byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(every);
                }
            }
        });
        format!("http://{addr}/x?syncToken=SECRET")
    }

    fn get(client: &HttpClient, url: &str) -> std::result::Result<Reply, HttpError> {
        let request = client.requests().get(url).build().unwrap();
        client.execute(request)
    }

    #[test]
    fn a_trickled_reply_ends_at_the_deadline() {
        let client = HttpClient::new(Limits {
            deadline: Duration::from_millis(600),
            max_body: 1 << 20,
            ..Limits::default()
        })
        .unwrap();
        let url = trickling_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            &[b' '; 100],
            Duration::from_millis(50),
        );
        let started = Instant::now();
        let error = get(&client, &url).err().expect("abandoned");
        assert_eq!(error.failure, Failure::Deadline, "{}", error.message);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!error.message.contains("SECRET"));
    }

    #[test]
    fn a_success_larger_than_the_cap_is_refused_and_a_failure_is_cut() {
        let client = HttpClient::new(Limits {
            deadline: Duration::from_secs(10),
            max_body: 10,
            ..Limits::default()
        })
        .unwrap();
        let url = trickling_server(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            &[b'x'; 40],
            Duration::ZERO,
        );
        let error = get(&client, &url).err().expect("too large");
        assert_eq!(error.failure, Failure::TooLarge);
        let url = trickling_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n",
            &[b'x'; 40],
            Duration::ZERO,
        );
        assert_eq!(get(&client, &url).err().unwrap().failure, Failure::TooLarge);

        let long_error: &'static [u8] =
            Box::leak(vec![b'e'; MAX_ERROR_BYTES * 3].into_boxed_slice());
        let url = trickling_server(
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n",
            long_error,
            Duration::ZERO,
        );
        let Ok(reply) = get(&client, &url) else {
            panic!("a failure is a reply")
        };
        assert_eq!((reply.status, reply.body.len()), (503, MAX_ERROR_BYTES));
    }

    #[test]
    fn an_unreachable_host_names_no_token() {
        let client = HttpClient::new(Limits::default()).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = get(
            &client,
            &format!("http://127.0.0.1:{port}/v1?syncToken=SECRET"),
        )
        .err()
        .expect("refused");
        assert_eq!(error.failure, Failure::Unreachable);
        assert!(!error.message.contains("SECRET"), "{}", error.message);
    }

    #[test]
    fn a_closing_client_refuses_new_requests() {
        let client = HttpClient::new(Limits::default()).unwrap();
        client.close();
        let error = get(&client, "http://127.0.0.1:9/").err().unwrap();
        assert_eq!(error.failure, Failure::Closing);
    }
}
