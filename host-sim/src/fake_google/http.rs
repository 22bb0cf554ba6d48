//! The HTTP/1.1 server (one request per connection, `Connection: close`), routing and faults.

use super::*;

// ---------------------------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------------------------

pub(super) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delivery: Delivery,
    /// A JSON body made after the state's lock is released (see `Reply::json_later`).
    later: Option<Later>,
}

/// What makes a page's JSON from a snapshot, outside the lock.
type Later = Box<dyn FnOnce() -> Value + Send>;

/// How a reply's body goes out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// `body` at once, with its `Content-Length`: every ordinary reply.
    Whole,
    /// `body` one byte every so often ([`Fault::Trickle`]), after a head sent at once with the
    /// full `Content-Length`.
    Trickle(Duration),
    /// `len` bytes in all: `body` (cut to `len` if longer), then spaces, written chunk by chunk
    /// so that a huge body ([`Fault::Huge`]) is never held in memory. Without `content_length`
    /// the head has no `Content-Length` and the body ends when the connection closes.
    Generated { len: u64, content_length: bool },
}

/// The first bytes of a [`Fault::Huge`] body: a JSON prefix the spaces after it never close.
const HUGE_PREFIX: &[u8] = b"{\"connections\":[";
/// The same for [`Endpoint::ContactGroups`].
const HUGE_GROUPS_PREFIX: &[u8] = b"{\"contactGroups\":[";
/// The same for [`Endpoint::Calendar`].
const HUGE_CALENDAR_PREFIX: &[u8] = b"{\"calendars\":{";
/// The same for [`Endpoint::OtherContacts`].
const HUGE_OTHER_CONTACTS_PREFIX: &[u8] = b"{\"otherContacts\":[";
/// The same for [`Endpoint::Directory`].
const HUGE_DIRECTORY_PREFIX: &[u8] = b"{\"people\":[";
/// Chunk size for generated bodies: big enough to stream 300 MB quickly, small enough to
/// notice a shutdown between chunks.
const GENERATED_CHUNK: usize = 64 * 1024;

impl Reply {
    pub(super) fn json(status: u16, v: &Value) -> Reply {
        let mut body = serde_json::to_string_pretty(v).unwrap_or_default();
        body.push('\n');
        Reply {
            later: None,
            status,
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/json; charset=UTF-8".into(),
                ),
                ("Vary".into(), "Origin, X-Origin, Referer".into()),
            ],
            body: body.into_bytes(),
            delivery: Delivery::Whole,
        }
    }

    /// OAuth endpoints' JSON, with their no-cache headers.
    pub(super) fn oauth(status: u16, v: &Value) -> Reply {
        Reply::json(status, v)
            .header(
                "Cache-Control",
                "no-cache, no-store, max-age=0, must-revalidate",
            )
            .header("Pragma", "no-cache")
            .header("Expires", "Mon, 01 Jan 1990 00:00:00 GMT")
    }

    /// A JSON reply whose body `make` builds once the state's lock is released: a page of
    /// people is rendered from its snapshot (an `Arc`) while other requests go on, as two
    /// requests to Google are served side by side.
    pub(super) fn json_later(status: u16, make: impl FnOnce() -> Value + Send + 'static) -> Reply {
        Reply {
            later: Some(Box::new(make)),
            ..Reply::json(status, &Value::Null)
        }
    }

    /// The reply with its body made (see `json_later`).
    pub(super) fn rendered(mut self) -> Reply {
        if let Some(make) = self.later.take() {
            let mut body = serde_json::to_string_pretty(&make()).unwrap_or_default();
            body.push('\n');
            self.body = body.into_bytes();
        }
        self
    }

    pub(super) fn html(status: u16, body: String) -> Reply {
        Reply {
            later: None,
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
            delivery: Delivery::Whole,
        }
    }

    pub(super) fn redirect(location: &str) -> Reply {
        Reply::html(
            302,
            format!(
                "<HTML><HEAD><TITLE>Moved Temporarily</TITLE></HEAD><BODY>The document has moved <A HREF=\"{}\">here</A>.</BODY></HTML>\n",
                html_escape(location)
            ),
        )
        .header("Location", location)
    }

    pub(super) fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// The `Content-Length` the body has, if the head announces one.
    fn content_length(&self) -> Option<u64> {
        match self.delivery {
            Delivery::Whole | Delivery::Trickle(_) => Some(self.body.len() as u64),
            Delivery::Generated {
                len,
                content_length,
            } => content_length.then_some(len),
        }
    }
}

/// A request as read off the wire.
pub(super) struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One request per connection: read it, answer with `Connection: close`, close.
pub(super) fn handle_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    let (reply, head_only) = match read_request(&mut reader, &mut out) {
        Ok(Some(raw)) => {
            let head_only = raw.method == "HEAD";
            (serve(shared, raw), head_only)
        }
        Ok(None) => return,
        Err((status, message)) => (
            Reply {
                status,
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body: message.into_bytes(),
                delivery: Delivery::Whole,
                later: None,
            },
            false,
        ),
    };
    // A write error means the client went away: nothing to do but close.
    let _ = write_reply(shared, &mut out, &reply, head_only);
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Write);
}

pub(super) fn read_line(r: &mut impl BufRead) -> Result<Option<String>, (u16, String)> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(16 * 1024)
        .read_until(b'\n', &mut buf)
        .map_err(|e| (400, format!("read error: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err((400, "line too long or truncated".into()));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

pub(super) fn read_request(
    r: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<Option<RawRequest>, (u16, String)> {
    let line = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "bad request line".into()));
    };
    if !version.starts_with("HTTP/1.") {
        return Err((505, "HTTP/1.x only".into()));
    }
    let mut headers = Vec::new();
    loop {
        let Some(l) = read_line(r)? else {
            return Err((400, "truncated headers".into()));
        };
        if l.is_empty() {
            break;
        }
        if headers.len() >= 200 {
            return Err((431, "too many headers".into()));
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err((400, "bad header line".into()));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    if first_ci(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        let _ = out.flush();
    }
    let too_large = || (413, "body too large".to_string());
    let io = |e: std::io::Error| (400, format!("read error: {e}"));
    let mut body = Vec::new();
    if first_ci(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let size_line = read_line(r)?.ok_or_else(|| (400, "truncated chunk".to_string()))?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| (400, "bad chunk size".to_string()))?;
            if size == 0 {
                while read_line(r)?.is_some_and(|l| !l.is_empty()) {}
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(too_large());
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).map_err(io)?;
            read_line(r)?;
        }
    } else if let Some(len) = first_ci(&headers, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| (400, "bad Content-Length".to_string()))?;
        if len > MAX_BODY {
            return Err(too_large());
        }
        body.resize(len, 0);
        r.read_exact(&mut body).map_err(io)?;
    }
    Ok(Some(RawRequest {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
    }))
}

pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// Writes the head, then the body as `reply.delivery` says. A streamed body stops early, with
/// `Ok`, when the fake is being dropped, so that its `Drop` never waits for a slow body.
pub(super) fn write_reply(
    shared: &Shared,
    out: &mut impl Write,
    reply: &Reply,
    head_only: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    // The reply's own headers win over the standard ones (only `Fault::Raw` gives any), so
    // that a test can play a lying Content-Length or a keep-alive the fake does not keep.
    let has = |name: &str| first_ci(&reply.headers, name).is_some();
    if !has("date") {
        let _ = write!(head, "Date: {}\r\n", http_date(SystemTime::now()));
    }
    if !has("server") {
        head.push_str("Server: ESF\r\n");
    }
    if let Some(len) = reply.content_length() {
        if !has("content-length") && !has("transfer-encoding") {
            let _ = write!(head, "Content-Length: {len}\r\n");
        }
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if head_only {
        return Ok(());
    }
    let stopping = || shared.stop.load(Ordering::SeqCst);
    match reply.delivery {
        Delivery::Whole => out.write_all(&reply.body)?,
        Delivery::Trickle(interval) => {
            // The head must reach the client now, not with the first byte.
            out.flush()?;
            for b in &reply.body {
                shared.sleep(interval);
                if stopping() {
                    return Ok(());
                }
                out.write_all(std::slice::from_ref(b))?;
                out.flush()?;
            }
        }
        Delivery::Generated { len, .. } => {
            let prefix_len =
                usize::try_from(len).map_or(reply.body.len(), |l| l.min(reply.body.len()));
            out.write_all(&reply.body[..prefix_len])?;
            let mut left = len - prefix_len as u64;
            let chunk = vec![b' '; GENERATED_CHUNK];
            while left > 0 {
                if stopping() {
                    return Ok(());
                }
                let n = usize::try_from(left).map_or(GENERATED_CHUNK, |l| l.min(GENERATED_CHUNK));
                out.write_all(&chunk[..n])?;
                left -= n as u64;
            }
        }
    }
    Ok(())
}

pub(super) fn serve(shared: &Shared, raw: RawRequest) -> Reply {
    let received = Instant::now();
    let received_at = SystemTime::now();
    let body = String::from_utf8_lossy(&raw.body).into_owned();
    // An absolute-form target ("http://host/path?q") is accepted too.
    let target = match raw.target.find("://") {
        Some(i) => {
            let rest = &raw.target[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..]).to_string()
        }
        None => raw.target.clone(),
    };
    let (path, query_str) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let headers = raw.headers;
    let content_type = first_ci(&headers, "content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let form: Vec<(String, String)> = if content_type.starts_with("application/json") {
        match serde_json::from_str::<Value>(&body) {
            Ok(Value::Object(m)) => m
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    Value::Number(n) => Some((k, n.to_string())),
                    Value::Bool(b) => Some((k, b.to_string())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    } else if content_type.is_empty()
        || content_type.starts_with("application/x-www-form-urlencoded")
    {
        parse_query(&body)
    } else {
        Vec::new()
    };
    let endpoint = match path.as_str() {
        TOKEN_PATH => Some(Endpoint::Token),
        REVOKE_PATH => Some(Endpoint::Revoke),
        p if p == CONTACT_GROUPS_PATH
            || p.starts_with("/v1/contactGroups/")
            || p.starts_with("/v1/contactGroups:") =>
        {
            Some(Endpoint::ContactGroups)
        }
        // Before the generic People rule: each contact source has its own fault queue.
        p if p == OTHER_CONTACTS_PATH
            || p.starts_with("/v1/otherContacts/")
            || p.starts_with("/v1/otherContacts:") =>
        {
            Some(Endpoint::OtherContacts)
        }
        DIRECTORY_PATH | "/v1/people:searchDirectoryPeople" => Some(Endpoint::Directory),
        p if p.starts_with("/v1/") => Some(Endpoint::People),
        p if p.starts_with("/calendar/") => Some(Endpoint::Calendar),
        _ => None,
    };
    let request = Request {
        method: raw.method,
        path,
        query: parse_query(&query_str),
        form,
        headers,
        body,
        received,
        received_at,
        endpoint,
        status: 0,
    };
    let index = {
        let mut st = shared.state.lock();
        st.requests.push(request.clone());
        st.requests.len() - 1
    };

    let reply = route(shared, &request);

    let mut st = shared.state.lock();
    // The list may have been cleared meanwhile; only update our own entry.
    if let Some(r) = st.requests.get_mut(index) {
        if r.received == received && r.path == request.path {
            r.status = reply.status;
        }
    }
    reply
}

pub(super) fn route(shared: &Shared, rq: &Request) -> Reply {
    let fault = rq.endpoint.and_then(|e| shared.state.lock().take_fault(e));
    match (rq.endpoint, fault) {
        (Some(endpoint), Some(fault)) => apply_fault(shared, endpoint, fault, rq),
        _ => normal(shared, rq),
    }
}

pub(super) fn normal(shared: &Shared, rq: &Request) -> Reply {
    let reply = {
        let mut st = shared.state.lock();
        normal_locked(&mut st, rq)
    };
    reply.rendered()
}

fn normal_locked(st: &mut State, rq: &Request) -> Reply {
    match (rq.method.as_str(), rq.path.as_str()) {
        ("GET", AUTH_PATH) => consent_page(st, &rq.query),
        ("POST", DECISION_PATH) => decision(st, &rq.form),
        (_, TOKEN_PATH) => token_endpoint(st, rq),
        (_, REVOKE_PATH) => revoke_endpoint(st, rq),
        (_, CONNECTIONS_PATH) => people_endpoint(st, rq),
        (_, CONTACT_GROUPS_PATH) => contact_groups_endpoint(st, rq),
        (_, OTHER_CONTACTS_PATH) => other_contacts_endpoint(st, rq),
        (_, DIRECTORY_PATH) => directory_endpoint(st, rq),
        (_, FREEBUSY_PATH) => freebusy_endpoint(st, rq),
        _ => not_found(&rq.path),
    }
}

pub(super) fn apply_fault(
    shared: &Shared,
    endpoint: Endpoint,
    fault: Fault,
    rq: &Request,
) -> Reply {
    match fault {
        Fault::Delay(d) => {
            shared.sleep(d);
            normal(shared, rq)
        }
        Fault::TruncatedJson => {
            let mut r = normal(shared, rq);
            let half = r.body.len() / 2;
            r.body.truncate(half);
            r
        }
        Fault::WrongType => {
            let mut r = normal(shared, rq);
            let mut v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            match endpoint {
                Endpoint::People => v["connections"] = json!("oops"),
                Endpoint::ContactGroups => v["contactGroups"] = json!("oops"),
                Endpoint::OtherContacts => v["otherContacts"] = json!("oops"),
                Endpoint::Directory => v["people"] = json!("oops"),
                Endpoint::Calendar => v["calendars"] = json!("oops"),
                Endpoint::Token => {
                    if v.get("access_token").is_some() {
                        v["access_token"] = json!(12345);
                    } else {
                        v["error"] = json!(400);
                    }
                }
                Endpoint::Revoke => v = json!("oops"),
            }
            let status = r.status;
            r = Reply::json(status, &v);
            r
        }
        Fault::Status(code) => status_fault(endpoint, code),
        Fault::PeopleDisabled => people_disabled(),
        Fault::CalendarDisabled => calendar_disabled(),
        Fault::RateLimited { retry_after_secs } => {
            let r = if endpoint == Endpoint::Calendar {
                calendar_status_fault(429)
            } else if is_api(endpoint) {
                api_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    &format!(
                        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' of service '{PEOPLE_SERVICE}' for consumer 'project_number:{PROJECT_NUMBER}'."
                    ),
                    vec![
                        error_info(
                            "RATE_LIMIT_EXCEEDED",
                            "googleapis.com",
                            json!({
                                "quota_metric": "people.googleapis.com/read_requests",
                                "quota_limit": "ReadRequestsPerMinutePerUser",
                                "quota_limit_value": "90",
                                "quota_location": "global",
                                "service": PEOPLE_SERVICE,
                                "consumer": format!("projects/{PROJECT_NUMBER}"),
                            }),
                        ),
                        help_link(
                            "Request a higher quota limit.",
                            "https://cloud.google.com/docs/quota#requesting_higher_quota",
                        ),
                    ],
                )
            } else {
                Reply::oauth(
                    429,
                    &json!({"error": "rate_limit_exceeded", "error_description": "Rate Limit Exceeded"}),
                )
            };
            r.header("Retry-After", &retry_after_secs.to_string())
        }
        Fault::ExpiredSyncToken => expired_sync_token_at(endpoint),
        Fault::Gone => api_error_value(
            410,
            json!({
                "code": 410,
                "message": EXPIRED_SYNC_TOKEN_MESSAGE,
                "errors": [{
                    "message": EXPIRED_SYNC_TOKEN_MESSAGE,
                    "domain": "global",
                    "reason": "expiredSyncToken",
                }],
                "status": "FAILED_PRECONDITION",
                "details": [error_info("EXPIRED_SYNC_TOKEN", PEOPLE_SERVICE, method_metadata(endpoint))],
            }),
        ),
        Fault::InvalidGrant => {
            oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        }
        Fault::Raw {
            status,
            headers,
            body,
        } => {
            let mut all = Vec::with_capacity(headers.len() + 1);
            if first_ci(&headers, "content-type").is_none() {
                all.push((
                    "Content-Type".to_string(),
                    "application/json; charset=UTF-8".to_string(),
                ));
            }
            all.extend(headers);
            Reply {
                status,
                headers: all,
                body: body.into_bytes(),
                delivery: Delivery::Whole,
                later: None,
            }
        }
        Fault::Trickle { interval } => {
            let mut r = normal(shared, rq);
            r.delivery = Delivery::Trickle(interval);
            r
        }
        Fault::Huge {
            bytes,
            content_length,
        } => Reply {
            later: None,
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=UTF-8".into(),
            )],
            body: match endpoint {
                Endpoint::ContactGroups => HUGE_GROUPS_PREFIX.to_vec(),
                Endpoint::Calendar => HUGE_CALENDAR_PREFIX.to_vec(),
                Endpoint::OtherContacts => HUGE_OTHER_CONTACTS_PREFIX.to_vec(),
                Endpoint::Directory => HUGE_DIRECTORY_PREFIX.to_vec(),
                _ => HUGE_PREFIX.to_vec(),
            },
            delivery: Delivery::Generated {
                len: bytes,
                content_length,
            },
        },
        // freeBusy has no pages to go on with.
        Fault::EndlessPages if endpoint == Endpoint::Calendar => normal(shared, rq),
        Fault::EndlessPages => {
            let mut st = shared.state.lock();
            match endpoint {
                Endpoint::ContactGroups => endless_groups_page(&mut st),
                Endpoint::OtherContacts | Endpoint::Directory => {
                    endless_source_page(&mut st, endpoint)
                }
                _ => endless_page(&mut st),
            }
        }
    }
}

/// The People and Calendar API endpoints, which answer with API errors (the others with
/// OAuth errors).
pub(super) fn is_api(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::People
            | Endpoint::ContactGroups
            | Endpoint::OtherContacts
            | Endpoint::Directory
            | Endpoint::Calendar
    )
}

pub(super) fn status_fault(endpoint: Endpoint, code: u16) -> Reply {
    if code == 502 {
        return google_html_error(
            502,
            "Server Error",
            "The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.",
        );
    }
    if code < 400 {
        return Reply::json(code, &json!({}));
    }
    if !is_api(endpoint) {
        let (error, description) = match code {
            400 => ("invalid_request", "Bad Request"),
            401 => ("invalid_client", "Unauthorized"),
            403 => ("access_denied", "Forbidden"),
            429 => ("rate_limit_exceeded", "Rate Limit Exceeded"),
            500 => ("internal_failure", "Backend Error"),
            503 => ("temporarily_unavailable", "Service Unavailable"),
            _ => ("unknown_error", "Unknown Error"),
        };
        return oauth_error(code, error, description);
    }
    if endpoint == Endpoint::Calendar {
        return calendar_status_fault(code);
    }
    match code {
        400 => api_error(
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
            vec![],
        ),
        401 => unauthenticated_at(endpoint, true),
        403 => api_error(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
            vec![error_info(
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "googleapis.com",
                method_metadata(endpoint),
            )],
        ),
        404 => api_error(404, "NOT_FOUND", "Requested entity was not found.", vec![]),
        409 => api_error(409, "ABORTED", "The operation was aborted.", vec![]),
        429 => api_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            vec![],
        ),
        500 => api_error(500, "INTERNAL", "Internal error encountered.", vec![]),
        501 => api_error(
            501,
            "UNIMPLEMENTED",
            "Operation is not implemented, or supported, or enabled.",
            vec![],
        ),
        503 => api_error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            vec![],
        ),
        504 => api_error(
            504,
            "DEADLINE_EXCEEDED",
            "The request timed out. Please try again.",
            vec![],
        ),
        c => api_error(c, "UNKNOWN", "Unknown Error.", vec![]),
    }
}

pub(super) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let mut conns = shared.conns.lock();
        conns.threads.retain(|t| !t.is_finished());
        let id = conns.next;
        conns.next += 1;
        conns.open.insert(id, handle);
        let s = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("fake-google-conn".into())
            .spawn(move || {
                let _ = catch_unwind(AssertUnwindSafe(|| handle_connection(&s, stream)));
                s.conns.lock().open.remove(&id);
            });
        match spawned {
            Ok(t) => conns.threads.push(t),
            Err(_) => {
                conns.open.remove(&id);
            }
        }
    }
}
