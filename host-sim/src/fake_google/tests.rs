//! Tests that drive the fake over HTTP.

use super::*;
use std::net::TcpStream;

const CLIENT_ID: &str = "1234.apps.googleusercontent.com";
const SECRET: &str = "GOCSPX-secret";
const REDIRECT: &str = "https://pbx.example.com/google/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-more-entropy";
const ALICE: &str = "alice@example.com";

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        first_ci(&self.headers, name)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 client (loopback only), so that the tests need no extra crate.
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let u = url::Url::parse(url).unwrap();
    let host = u.host_str().unwrap();
    assert!(host == "127.0.0.1" || host == "localhost", "{url}");
    let mut s = TcpStream::connect(("127.0.0.1", u.port().unwrap())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let target = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        u.port().unwrap(),
        body.len()
    );
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if first_ci(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 4 + n..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    http("GET", url, headers, "")
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn post_form(url: &str, pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    http("POST", url, &h, &form(pairs))
}

fn setup() -> FakeGoogle {
    let g = FakeGoogle::start();
    g.add_client(Client::new(CLIENT_ID, SECRET, &[REDIRECT]));
    g.add_user(ALICE, "Alice Example");
    g
}

fn auth_url_with(g: &FakeGoogle, overrides: &[(&str, Option<&str>)]) -> String {
    let challenge = s256(VERIFIER);
    let mut params: Vec<(&str, Option<String>)> = vec![
        ("response_type", Some("code".into())),
        ("client_id", Some(CLIENT_ID.into())),
        ("redirect_uri", Some(REDIRECT.into())),
        ("scope", Some(CONTACTS_READONLY.into())),
        ("access_type", Some("offline".into())),
        ("prompt", Some("consent".into())),
        ("include_granted_scopes", Some("true".into())),
        ("code_challenge", Some(challenge)),
        ("code_challenge_method", Some("S256".into())),
        ("state", Some("st+ate/=1".into())),
    ];
    for (k, v) in overrides {
        match params.iter_mut().find(|(pk, _)| pk == k) {
            Some(p) => p.1 = v.map(str::to_string),
            None => params.push((k, v.map(str::to_string))),
        }
    }
    let mut u = url::Url::parse(&g.auth_url()).unwrap();
    for (k, v) in params {
        if let Some(v) = v {
            u.query_pairs_mut().append_pair(k, &v);
        }
    }
    u.to_string()
}

fn auth_url(g: &FakeGoogle) -> String {
    auth_url_with(g, &[])
}

fn callback_param(query: &str, name: &str) -> Option<String> {
    parse_query(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn approve_code(g: &FakeGoogle) -> String {
    let q = g.approve(&auth_url(g), ALICE).unwrap();
    callback_param(&q, "code").unwrap()
}

fn exchange(g: &FakeGoogle, code: &str, verifier: &str) -> Resp {
    post_form(
        &g.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code_verifier", verifier),
        ],
        &[],
    )
}

/// Connects Alice; returns (access token, refresh token).
fn connect(g: &FakeGoogle) -> (String, String) {
    let r = exchange(g, &approve_code(g), VERIFIER);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    (
        v["access_token"].as_str().unwrap().to_string(),
        v["refresh_token"].as_str().unwrap().to_string(),
    )
}

fn refresh_with(g: &FakeGoogle, rt: &str) -> Resp {
    post_form(
        &g.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
        &[],
    )
}

fn list(g: &FakeGoogle, access: &str, query: &str) -> Resp {
    get(
        &format!("{}{CONNECTIONS_PATH}?{query}", g.people_url()),
        &[("Authorization", &format!("Bearer {access}"))],
    )
}

const FULL: &str =
    "personFields=names,phoneNumbers,organizations&pageSize=1000&requestSyncToken=true";

fn assert_oauth_error(r: &Resp, status: u16, error: &str, description: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"error": error, "error_description": description})
    );
}

fn person(n: u32) -> Person {
    Person::new(&format!("people/c{n}"), &format!("Given{n}"), "Family").with_phone_canonical(
        &format!("(212) 555-{n:04}"),
        &format!("+1212555{n:04}"),
        "mobile",
    )
}

#[test]
fn code_flow_with_pkce() {
    let g = setup();
    let q = g.approve(&auth_url(&g), ALICE).unwrap();
    assert!(q.starts_with("state=st%2Bate/%3D1&code=4/0A"), "{q}");
    assert!(q.contains("&scope=https://www.googleapis.com/auth/contacts.readonly"));
    assert_eq!(callback_param(&q, "state").unwrap(), "st+ate/=1");
    let code = callback_param(&q, "code").unwrap();

    let r = exchange(&g, &code, VERIFIER);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(r.header("cache-control").unwrap().contains("no-store"));
    let v = r.json();
    assert!(v["access_token"].as_str().unwrap().starts_with("ya29."));
    assert!(v["refresh_token"].as_str().unwrap().starts_with("1//"));
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], CONTACTS_READONLY);
    assert_eq!(g.live_refresh_tokens(ALICE), 1);

    // A code is single-use.
    assert_oauth_error(
        &exchange(&g, &code, VERIFIER),
        400,
        "invalid_grant",
        "Bad Request",
    );
    // A wrong verifier is refused (and spends the code).
    let code2 = approve_code(&g);
    let wrong = "x".repeat(43);
    assert_oauth_error(
        &exchange(&g, &code2, &wrong),
        400,
        "invalid_grant",
        "Bad Request",
    );
    assert_oauth_error(
        &exchange(&g, &code2, VERIFIER),
        400,
        "invalid_grant",
        "Bad Request",
    );
    // A missing verifier.
    let code3 = approve_code(&g);
    assert_oauth_error(
        &exchange(&g, &code3, ""),
        400,
        "invalid_grant",
        "Missing code verifier.",
    );
    // A different redirect_uri.
    let code4 = approve_code(&g);
    let r = post_form(
        &g.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code4),
            ("redirect_uri", "https://evil.example/cb"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code_verifier", VERIFIER),
        ],
        &[],
    );
    assert_oauth_error(&r, 400, "redirect_uri_mismatch", "Bad Request");
    // An expired code.
    g.set_code_lifetime(Duration::ZERO);
    let code5 = approve_code(&g);
    std::thread::sleep(Duration::from_millis(5));
    assert_oauth_error(
        &exchange(&g, &code5, VERIFIER),
        400,
        "invalid_grant",
        "Bad Request",
    );
    // Garbage.
    assert_oauth_error(
        &exchange(&g, "4/0Anope", VERIFIER),
        400,
        "invalid_grant",
        "Bad Request",
    );
}

#[test]
fn client_authentication_in_body_or_basic() {
    let g = setup();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"))
    );
    let code = approve_code(&g);
    let r = post_form(
        &g.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        &[("Authorization", &basic)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    // Refresh with Basic auth too.
    let r = post_form(
        &g.token_url(),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        &[("Authorization", &basic)],
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Wrong secret, in the body and in Basic.
    let bad = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", "wrong"),
    ];
    assert_oauth_error(
        &post_form(&g.token_url(), &bad, &[]),
        401,
        "invalid_client",
        "Unauthorized",
    );
    let bad_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:wrong"))
    );
    let r = post_form(
        &g.token_url(),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        &[("Authorization", &bad_basic)],
    );
    assert_oauth_error(&r, 401, "invalid_client", "Unauthorized");
    // Unknown client, missing secret, missing client.
    let r = post_form(
        &g.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", "nobody.apps.googleusercontent.com"),
            ("client_secret", SECRET),
        ],
        &[],
    );
    assert_oauth_error(&r, 401, "invalid_client", "The OAuth client was not found.");
    let r = post_form(
        &g.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", CLIENT_ID),
        ],
        &[],
    );
    assert_oauth_error(&r, 400, "invalid_request", "client_secret is missing.");
    let r = post_form(&g.token_url(), &[("grant_type", "refresh_token")], &[]);
    assert_oauth_error(
        &r,
        400,
        "invalid_request",
        "Could not determine client ID from request.",
    );
    // Grant types.
    let r = post_form(&g.token_url(), &[("grant_type", "password")], &[]);
    assert_oauth_error(
        &r,
        400,
        "unsupported_grant_type",
        "Invalid grant_type: password",
    );
    let r = post_form(&g.token_url(), &[("client_id", CLIENT_ID)], &[]);
    assert_oauth_error(&r, 400, "unsupported_grant_type", "Invalid grant_type: ");
    let r = post_form(
        &g.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
        &[],
    );
    assert_oauth_error(
        &r,
        400,
        "invalid_request",
        "Missing required parameter: code",
    );
}

#[test]
fn refresh_gives_a_new_access_token_and_no_refresh_token() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1)]);
    let (access, rt) = connect(&g);
    assert_eq!(list(&g, &access, FULL).status, 200);
    g.expire_access_tokens();
    let r = list(&g, &access, FULL);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));

    let r = refresh_with(&g, &rt);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v.get("refresh_token").is_none(), "{v}");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["token_type"], "Bearer");
    let access2 = v["access_token"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_eq!(list(&g, access2, FULL).status, 200);
    // The old refresh token keeps working.
    assert_eq!(refresh_with(&g, &rt).status, 200);
    assert_oauth_error(
        &post_form(
            &g.token_url(),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ],
            &[],
        ),
        400,
        "invalid_request",
        "Missing required parameter: refresh_token",
    );
    // Access tokens really expire.
    g.set_access_token_lifetime(Duration::ZERO);
    let v = refresh_with(&g, &rt).json();
    assert_eq!(v["expires_in"], 0);
    assert_eq!(
        list(&g, v["access_token"].as_str().unwrap(), FULL).status,
        401
    );
}

#[test]
fn revoke_kills_the_grant() {
    let g = setup();
    let (access, rt) = connect(&g);
    let r = post_form(&g.revoke_url(), &[("token", &rt)], &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({}));
    assert_eq!(g.revoked_tokens(), vec![rt.clone()]);
    assert_eq!(g.live_refresh_tokens(ALICE), 0);
    assert_eq!(g.live_access_tokens(ALICE), 0);
    assert_oauth_error(
        &refresh_with(&g, &rt),
        400,
        "invalid_grant",
        "Token has been expired or revoked.",
    );
    assert_eq!(list(&g, &access, FULL).status, 401);
    // Revoking again, or an unknown token.
    assert_oauth_error(
        &post_form(&g.revoke_url(), &[("token", &rt)], &[]),
        400,
        "invalid_token",
        "Bad Request",
    );
    assert_oauth_error(
        &post_form(&g.revoke_url(), &[("token", "1//0nope")], &[]),
        400,
        "invalid_token",
        "Bad Request",
    );
    // Revoking an access token ends the refresh token too.
    let (access, rt) = connect(&g);
    assert_eq!(
        post_form(&g.revoke_url(), &[("token", &access)], &[]).status,
        200
    );
    assert_eq!(refresh_with(&g, &rt).json()["error"], "invalid_grant");
    // The user removing access.
    let (_, rt) = connect(&g);
    assert_eq!(g.live_refresh_tokens(ALICE), 1);
    g.revoke_grants(ALICE);
    assert_eq!(g.live_refresh_tokens(ALICE), 0);
    assert_oauth_error(
        &refresh_with(&g, &rt),
        400,
        "invalid_grant",
        "Token has been expired or revoked.",
    );
    let revoke_requests = g.requests_to(Endpoint::Revoke);
    assert_eq!(revoke_requests.len(), 4);
    assert_eq!(revoke_requests[0].method, "POST");
    assert_eq!(
        revoke_requests[0].form_param("token"),
        Some(g.revoked_tokens()[0].as_str())
    );
    assert_eq!(revoke_requests[0].status, 200);
    assert_eq!(revoke_requests[1].status, 400);
}

#[test]
fn refresh_token_only_offline_and_on_consent() {
    let g = setup();
    let online = auth_url_with(&g, &[("access_type", None)]);
    let code = callback_param(&g.approve(&online, ALICE).unwrap(), "code").unwrap();
    let v = exchange(&g, &code, VERIFIER).json();
    assert!(v.get("refresh_token").is_none(), "{v}");
    // First offline consent gives one; a second without prompt=consent does not.
    connect(&g);
    let no_prompt = auth_url_with(&g, &[("prompt", None)]);
    let code = callback_param(&g.approve(&no_prompt, ALICE).unwrap(), "code").unwrap();
    let v = exchange(&g, &code, VERIFIER).json();
    assert!(v.get("refresh_token").is_none(), "{v}");
    connect(&g);
    assert_eq!(g.live_refresh_tokens(ALICE), 2);
}

#[test]
fn paging_and_sync_tokens() {
    let g = setup();
    g.set_contacts(ALICE, (1..=5).map(person).collect());
    g.set_page_size_cap(2);
    let (access, _) = connect(&g);

    let mut seen = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    let sync_token = loop {
        let q = match &page_token {
            Some(t) => format!("{FULL}&pageToken={t}"),
            None => FULL.to_string(),
        };
        let r = list(&g, &access, &q);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        pages += 1;
        assert_eq!(v["totalPeople"], 5);
        assert_eq!(v["totalItems"], 5);
        for p in v["connections"].as_array().unwrap() {
            seen.push(p["resourceName"].as_str().unwrap().to_string());
        }
        if let Some(t) = v["nextPageToken"].as_str() {
            assert!(
                v.get("nextSyncToken").is_none(),
                "sync token before the last page"
            );
            page_token = Some(t.to_string());
        } else {
            break v["nextSyncToken"].as_str().unwrap().to_string();
        }
    };
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=5).map(|n| format!("people/c{n}")).collect();
    assert_eq!(seen, expected);

    // A person's shape.
    g.set_page_size_cap(0);
    let v = list(
        &g,
        &access,
        "personFields=names,phoneNumbers,organizations,metadata",
    )
    .json();
    assert!(v.get("nextSyncToken").is_none(), "not asked for");
    let p = &v["connections"][0];
    assert_eq!(p["resourceName"], "people/c1");
    assert!(p["etag"].as_str().unwrap().starts_with('%'));
    assert_eq!(p["metadata"]["sources"][0]["type"], "CONTACT");
    assert_eq!(p["names"][0]["displayName"], "Given1 Family");
    assert_eq!(p["names"][0]["givenName"], "Given1");
    assert_eq!(p["names"][0]["familyName"], "Family");
    assert_eq!(p["names"][0]["metadata"]["primary"], true);
    assert_eq!(p["phoneNumbers"][0]["value"], "(212) 555-0001");
    assert_eq!(p["phoneNumbers"][0]["canonicalForm"], "+12125550001");
    assert_eq!(p["phoneNumbers"][0]["type"], "mobile");
    assert_eq!(p["phoneNumbers"][0]["formattedType"], "Mobile");
    assert!(p.get("organizations").is_none());
    // Only the requested fields.
    let v = list(&g, &access, "personFields=names").json();
    assert!(v["connections"][0].get("phoneNumbers").is_none());
    assert!(v["connections"][0].get("metadata").is_none());

    // One change and one deletion.
    g.upsert_contact(
        ALICE,
        Person::new("people/c2", "Bob", "Builder")
            .with_company("Acme")
            .with_phone("+49 30 1234567", "work"),
    );
    g.delete_contact(ALICE, "people/c4");
    let r = list(&g, &access, &format!("{FULL}&syncToken={sync_token}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let c = v["connections"].as_array().unwrap();
    assert_eq!(c.len(), 2, "{v}");
    assert_eq!(c[0]["resourceName"], "people/c2");
    assert_eq!(c[0]["names"][0]["displayName"], "Bob Builder");
    assert_eq!(c[0]["organizations"][0]["name"], "Acme");
    assert!(c[0]["phoneNumbers"][0].get("canonicalForm").is_none());
    assert_eq!(c[1]["resourceName"], "people/c4");
    assert_eq!(c[1]["metadata"]["deleted"], true);
    assert!(c[1].get("names").is_none());
    let sync2 = v["nextSyncToken"].as_str().unwrap().to_string();

    // Nothing changed since: no "connections" at all, as Google.
    let v = list(&g, &access, &format!("{FULL}&syncToken={sync2}")).json();
    assert!(v.get("connections").is_none(), "{v}");
    assert!(v["nextSyncToken"].is_string());
    // The older token still works and still sees both changes.
    let v = list(&g, &access, &format!("{FULL}&syncToken={sync_token}")).json();
    assert_eq!(v["connections"].as_array().unwrap().len(), 2);

    // set_contacts records only real changes.
    let mut now: Vec<Person> = g.contacts(ALICE);
    assert_eq!(now.len(), 4);
    now.retain(|p| p.resource_name != "people/c1");
    now.push(Person::new("people/c9", "", "").with_display(""));
    g.set_contacts(ALICE, now);
    let v = list(&g, &access, &format!("{FULL}&syncToken={sync2}")).json();
    let names: Vec<&str> = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["resourceName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["people/c1", "people/c9"]);
    assert!(v["connections"][1].get("names").is_none(), "no name at all");

    // Page tokens must be used with the same parameters.
    g.set_page_size_cap(1);
    let v = list(&g, &access, FULL).json();
    let pt = v["nextPageToken"].as_str().unwrap();
    let r = list(&g, &access, &format!("personFields=names&pageToken={pt}"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let r = list(&g, &access, &format!("{FULL}&pageToken=bogus"));
    assert_eq!(r.status, 400);
}

#[test]
fn expired_and_bad_sync_tokens() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1)]);
    let (access, _) = connect(&g);
    let v = list(&g, &access, FULL).json();
    let token = v["nextSyncToken"].as_str().unwrap().to_string();
    g.expire_sync_tokens(ALICE);
    let r = list(&g, &access, &format!("{FULL}&syncToken={token}"));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {
            "code": 400,
            "message": "Sync token is expired. Clear local cache and retry call without the sync token.",
            "status": "FAILED_PRECONDITION",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "EXPIRED_SYNC_TOKEN",
                "domain": "people.googleapis.com",
                "metadata": {
                    "service": "people.googleapis.com",
                    "method": "google.people.v1.PeopleService.ListConnections",
                },
            }],
        }})
    );
    // A full sync gives a fresh token that works.
    let v = list(&g, &access, FULL).json();
    let fresh = v["nextSyncToken"].as_str().unwrap();
    assert_eq!(
        list(&g, &access, &format!("{FULL}&syncToken={fresh}")).status,
        200
    );
    // A made-up token.
    let r = list(&g, &access, &format!("{FULL}&syncToken=EAEYbogus"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
}

/// Google serves a sync token only with the parameters of the call that earned it: asking
/// for other fields with it is refused (as the fake refuses a page token so used), on every
/// list that issues tokens.
#[test]
fn a_sync_token_is_served_only_with_the_fields_it_was_earned_with() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1)]);
    g.set_other_contacts(ALICE, vec![other_person(1)]);
    let (access, _) = connect(&g);
    let token = list(&g, &access, FULL).json()["nextSyncToken"]
        .as_str()
        .unwrap()
        .to_string();
    let more = FULL.replace("organizations", "organizations,memberships");
    let r = list(&g, &access, &format!("{more}&syncToken={token}"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        list(&g, &access, &format!("{FULL}&syncToken={token}")).status,
        200,
        "the same fields are served"
    );

    let access = connect_sources(&g);
    let token = other_list(&g, &access, OTHER).json()["nextSyncToken"]
        .as_str()
        .unwrap()
        .to_string();
    let fewer = OTHER.replace(",emailAddresses", "");
    assert_ne!(fewer, OTHER);
    let r = other_list(&g, &access, &format!("{fewer}&syncToken={token}"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
}

#[test]
fn people_request_validation() {
    let g = setup();
    let (access, _) = connect(&g);
    // No contacts at all: no "connections" key.
    let v = list(&g, &access, FULL).json();
    assert!(v.get("connections").is_none());
    assert!(v["nextSyncToken"].is_string());

    let r = get(&format!("{}{CONNECTIONS_PATH}?{FULL}", g.people_url()), &[]);
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(v["error"]["details"][0]["reason"], "CREDENTIALS_MISSING");
    assert_eq!(list(&g, "ya29.bogus", FULL).status, 401);

    let r = list(&g, &access, "pageSize=10");
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("personFields mask is required"));
    assert_eq!(list(&g, &access, "personFields=names,bogus").status, 400);
    assert_eq!(
        list(&g, &access, "personFields=names&pageSize=1001").status,
        400
    );
    assert_eq!(
        list(&g, &access, "personFields=names&pageSize=abc").status,
        400
    );
    assert_eq!(
        list(&g, &access, "personFields=names&requestSyncToken=yes").status,
        400
    );
    let r = list(&g, &access, "personFields=names&page_sise=10");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Unknown name"));
    // Repeated personFields and snake_case are accepted, as by Google.
    assert_eq!(
        list(&g, &access, "personFields=names&personFields=phone_numbers").status,
        200
    );
    // Unknown paths.
    assert_eq!(
        get(&format!("{}/v1/people/me", g.people_url()), &[]).status,
        404
    );
}

#[test]
fn every_fault() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1), person(2)]);
    let (access, rt) = connect(&g);
    let people = |f: Fault| {
        g.inject(Endpoint::People, f);
        list(&g, &access, FULL)
    };

    let r = people(Fault::Status(500));
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["status"], "INTERNAL");
    let r = people(Fault::Status(503));
    assert_eq!(
        (r.status, r.json()["error"]["status"].clone()),
        (503, json!("UNAVAILABLE"))
    );
    let r = people(Fault::Status(401));
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    let r = people(Fault::Status(403));
    assert_eq!(r.json()["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        r.json()["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    );
    let r = people(Fault::Status(502));
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));

    let r = people(Fault::PeopleDisabled);
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("People API has not been used in project"));
    assert_eq!(v["error"]["details"][0]["reason"], "SERVICE_DISABLED");

    let r = people(Fault::RateLimited {
        retry_after_secs: 7,
    });
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");

    let r = people(Fault::ExpiredSyncToken);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["details"][0]["reason"],
        "EXPIRED_SYNC_TOKEN"
    );
    let r = people(Fault::Gone);
    assert_eq!(r.status, 410);
    assert_eq!(
        r.json()["error"]["details"][0]["reason"],
        "EXPIRED_SYNC_TOKEN"
    );

    let r = people(Fault::TruncatedJson);
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    assert!(r.body.starts_with("{\n  \"connections\""));

    let r = people(Fault::WrongType);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["connections"], "oops");

    let t0 = Instant::now();
    let r = people(Fault::Delay(Duration::from_millis(300)));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["connections"].as_array().unwrap().len(), 2);

    // FIFO, one per request, then normal again.
    g.inject(Endpoint::People, Fault::Status(500));
    g.inject(Endpoint::People, Fault::Status(503));
    assert_eq!(g.pending_faults(Endpoint::People), 2);
    assert_eq!(list(&g, &access, FULL).status, 500);
    assert_eq!(list(&g, &access, FULL).status, 503);
    assert_eq!(list(&g, &access, FULL).status, 200);
    assert_eq!(g.pending_faults(Endpoint::People), 0);

    // Sticky faults, and clearing.
    g.set_sticky_fault(Endpoint::People, Some(Fault::Status(503)));
    assert_eq!(list(&g, &access, FULL).status, 503);
    assert_eq!(list(&g, &access, FULL).status, 503);
    g.inject(Endpoint::People, Fault::Status(500));
    g.clear_faults();
    assert_eq!(list(&g, &access, FULL).status, 200);

    // Token endpoint faults.
    g.inject(Endpoint::Token, Fault::InvalidGrant);
    assert_oauth_error(
        &refresh_with(&g, &rt),
        400,
        "invalid_grant",
        "Token has been expired or revoked.",
    );
    g.inject(Endpoint::Token, Fault::Status(503));
    let r = refresh_with(&g, &rt);
    assert_eq!(r.status, 503);
    assert!(r.json()["error"].is_string());
    g.inject(Endpoint::Token, Fault::WrongType);
    assert_eq!(refresh_with(&g, &rt).json()["access_token"], 12345);
    g.inject(Endpoint::Token, Fault::TruncatedJson);
    let r = refresh_with(&g, &rt);
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    g.inject(
        Endpoint::Token,
        Fault::RateLimited {
            retry_after_secs: 3,
        },
    );
    let r = refresh_with(&g, &rt);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("3")));
    assert_eq!(refresh_with(&g, &rt).status, 200);

    // Revoke endpoint faults: the grant survives a failed revocation.
    g.inject(Endpoint::Revoke, Fault::Status(500));
    assert_eq!(
        post_form(&g.revoke_url(), &[("token", &rt)], &[]).status,
        500
    );
    assert_eq!(refresh_with(&g, &rt).status, 200);
    assert!(g.revoked_tokens().is_empty());
}

/// Sends a bodiless request by hand and returns the socket, for replies read by hand.
fn send_raw(g: &FakeGoogle, method: &str, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(g.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        g.addr()
    )
    .unwrap();
    s
}

/// The `Content-Type` of replies the fake makes up.
const JSON_TYPE: &str = "application/json; charset=UTF-8";
/// How a `Fault::Huge` body starts.
const HUGE_START: &str = "{\"connections\":[";

#[test]
fn raw_fault_answers_exactly_what_it_is_given() {
    let g = setup();
    let (access, _) = connect(&g);
    let page = r#"{"connections":[{"resourceName":"people/c1"},{"resourceName":"people/c1"}],"nextPageToken":"same"}"#;
    g.inject(
        Endpoint::People,
        Fault::Raw {
            status: 200,
            headers: vec![("X-Hostile".into(), "yes".into())],
            body: page.into(),
        },
    );
    let r = list(&g, &access, FULL);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, page);
    assert_eq!(r.header("x-hostile"), Some("yes"));
    assert_eq!(r.header("content-type"), Some(JSON_TYPE));
    let len = page.len().to_string();
    assert_eq!(r.header("content-length"), Some(len.as_str()));
    assert_eq!(r.header("connection"), Some("close"));

    // Its own Content-Type replaces the default one; a 429 with an HTTP-date Retry-After.
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    g.inject(
        Endpoint::People,
        Fault::Raw {
            status: 429,
            headers: vec![
                ("Retry-After".into(), date.into()),
                ("Content-Type".into(), "text/plain".into()),
            ],
            body: "slow down".into(),
        },
    );
    let r = list(&g, &access, FULL);
    assert_eq!((r.status, r.body.as_str()), (429, "slow down"));
    assert_eq!(r.header("retry-after"), Some(date));
    let types: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(types, vec!["text/plain"]);

    // A lying Content-Length replaces the fake's own; the body still ends at the close.
    g.inject(
        Endpoint::Token,
        Fault::Raw {
            status: 200,
            headers: vec![("Content-Length".into(), "1000".into())],
            body: "{}".into(),
        },
    );
    let r = post_form(&g.token_url(), &[("grant_type", "refresh_token")], &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    let lengths: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(lengths, vec!["1000"]);

    // Sticky, and logged with its status.
    g.set_sticky_fault(
        Endpoint::People,
        Some(Fault::Raw {
            status: 503,
            headers: vec![],
            body: "{}".into(),
        }),
    );
    assert_eq!(list(&g, &access, FULL).status, 503);
    assert_eq!(list(&g, &access, FULL).status, 503);
    assert_eq!(g.requests_to(Endpoint::People).last().unwrap().status, 503);
    g.clear_faults();
    assert_eq!(list(&g, &access, FULL).status, 200);
}

#[test]
fn trickle_fault_sends_the_whole_body_slowly() {
    let g = setup();
    let (_, rt) = connect(&g);
    let interval = Duration::from_millis(2);
    g.inject(Endpoint::Token, Fault::Trickle { interval });
    let t0 = Instant::now();
    let r = refresh_with(&g, &rt);
    let elapsed = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    let len = r.body.len().to_string();
    assert_eq!(r.header("content-length"), Some(len.as_str()));
    // The refresh really happened: the new access token works.
    let v = r.json();
    let access = v["access_token"].as_str().unwrap();
    assert_eq!(list(&g, access, FULL).status, 200);
    // One byte per interval at best.
    let bytes = u32::try_from(r.body.len()).unwrap();
    assert!(elapsed >= interval * bytes, "{bytes} bytes in {elapsed:?}");
    assert_eq!(g.requests_to(Endpoint::Token).last().unwrap().status, 200);

    // Sticky too.
    g.set_sticky_fault(Endpoint::People, Some(Fault::Trickle { interval }));
    for _ in 0..2 {
        let r = list(&g, access, FULL);
        assert_eq!(r.status, 200);
        assert!(r.json()["nextSyncToken"].is_string());
    }
}

#[test]
fn huge_fault_streams_exactly_that_many_bytes() {
    let g = setup();
    let (access, _) = connect(&g);
    for content_length in [true, false] {
        g.inject(
            Endpoint::People,
            Fault::Huge {
                bytes: 200_000,
                content_length,
            },
        );
        let r = list(&g, &access, FULL);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 200_000);
        assert!(r.body.starts_with(HUGE_START));
        assert!(r.body[HUGE_START.len()..].bytes().all(|b| b == b' '));
        assert!(serde_json::from_str::<Value>(&r.body).is_err());
        assert_eq!(r.header("content-type"), Some(JSON_TYPE));
        assert_eq!(
            r.header("content-length"),
            if content_length { Some("200000") } else { None }
        );
        assert_eq!(r.header("connection"), Some("close"));
    }
    // Shorter than the prefix: the prefix is cut.
    g.inject(
        Endpoint::People,
        Fault::Huge {
            bytes: 5,
            content_length: true,
        },
    );
    assert_eq!(list(&g, &access, FULL).body, "{\"con");
    // Sticky too.
    g.set_sticky_fault(
        Endpoint::Token,
        Some(Fault::Huge {
            bytes: 70_000,
            content_length: false,
        }),
    );
    for _ in 0..2 {
        let r = post_form(&g.token_url(), &[("grant_type", "refresh_token")], &[]);
        assert_eq!((r.status, r.body.len()), (200, 70_000));
    }
}

#[test]
fn huge_fault_streams_300_mb() {
    let g = setup();
    let bytes: u64 = 300_000_000;
    g.inject(
        Endpoint::People,
        Fault::Huge {
            bytes,
            content_length: false,
        },
    );
    let mut r = BufReader::new(send_raw(&g, "GET", CONNECTIONS_PATH));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.is_empty() || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    let mut start = [0u8; 16];
    r.read_exact(&mut start).unwrap();
    assert_eq!(&start[..], HUGE_START.as_bytes());
    let rest = std::io::copy(&mut r, &mut std::io::sink()).unwrap();
    assert_eq!(rest + 16, bytes);
}

#[test]
fn streamed_replies_stop_on_disconnect_and_shutdown() {
    let g = setup();
    g.set_sticky_fault(
        Endpoint::People,
        Some(Fault::Huge {
            bytes: 300_000_000,
            content_length: true,
        }),
    );
    // A client that reads a little and hangs up: the fake stops sending.
    let mut s = send_raw(&g, "GET", CONNECTIONS_PATH);
    let mut start = vec![0u8; 100_000];
    s.read_exact(&mut start).unwrap();
    assert!(start.starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(s);
    let t0 = Instant::now();
    while !g.shared.conns.lock().open.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "still streaming to a closed connection"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Dropping the fake during a trickle, and while a huge body waits on a client that does
    // not read, returns quickly.
    g.clear_faults();
    g.inject(
        Endpoint::People,
        Fault::Trickle {
            interval: Duration::from_secs(1),
        },
    );
    g.inject(
        Endpoint::People,
        Fault::Huge {
            bytes: 300_000_000,
            content_length: false,
        },
    );
    let mut trickled = send_raw(&g, "GET", CONNECTIONS_PATH);
    // The head comes at once (no token: a 401), the body a byte a second.
    let mut status_line = [0u8; 12];
    trickled.read_exact(&mut status_line).unwrap();
    assert_eq!(&status_line, b"HTTP/1.1 401");
    let stalled = send_raw(&g, "GET", CONNECTIONS_PATH);
    std::thread::sleep(Duration::from_millis(300));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(g);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "dropping the fake hangs on a streamed reply"
    );
    drop(stalled);
    drop(trickled);
}

#[test]
fn endless_pages_never_end() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1)]);
    let (access, _) = connect(&g);
    g.set_sticky_fault(Endpoint::People, Some(Fault::EndlessPages));
    let mut tokens = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    let mut query = FULL.to_string();
    for _ in 0..5 {
        let r = list(&g, &access, &query);
        assert_eq!(r.status, 200);
        let v = r.json();
        assert!(v.get("nextSyncToken").is_none(), "{v}");
        let people = v["connections"].as_array().unwrap();
        assert_eq!(people.len(), 1);
        let p = &people[0];
        let name = p["resourceName"].as_str().unwrap();
        assert!(name.starts_with("people/endless"), "{name}");
        assert!(names.insert(name.to_string()), "{name} again");
        assert!(p["names"][0]["displayName"]
            .as_str()
            .unwrap()
            .starts_with("Endless"));
        assert!(p["phoneNumbers"][0]["canonicalForm"]
            .as_str()
            .unwrap()
            .starts_with("+1212555"));
        let token = v["nextPageToken"].as_str().unwrap().to_string();
        assert!(tokens.insert(token.clone()), "{token} again");
        query = format!("{FULL}&pageToken={token}");
    }
    // Off again: the real list ends with a sync token.
    g.set_sticky_fault(Endpoint::People, None);
    let v = list(&g, &access, FULL).json();
    assert_eq!(v["connections"].as_array().unwrap().len(), 1);
    assert!(v["nextSyncToken"].is_string());
}

#[test]
fn approve_validates_like_google() {
    let g = setup();
    let err = |o: &[(&str, Option<&str>)]| g.approve(&auth_url_with(&g, o), ALICE).unwrap_err();
    assert!(err(&[("redirect_uri", Some("https://evil.example/cb"))])
        .starts_with("Error 400: redirect_uri_mismatch"));
    assert!(err(&[("client_id", Some("nobody"))]).starts_with("Error 401: invalid_client"));
    assert!(err(&[("client_id", None)]).starts_with("Error 400: invalid_request"));
    assert!(err(&[("response_type", Some("token"))]).contains("unsupported_response_type"));
    assert!(err(&[("scope", None)]).contains("Missing required parameter: scope"));
    assert!(err(&[("scope", Some("openid email"))]).contains("invalid_scope"));
    assert!(
        err(&[("scope", Some("https://www.googleapis.com/auth/bogus"))])
            .contains("invalid=[https://www.googleapis.com/auth/bogus]")
    );
    assert!(err(&[("code_challenge", None)]).contains("code_challenge"));
    assert!(err(&[("code_challenge_method", None)]).contains("S256"));
    assert!(err(&[("code_challenge_method", Some("plain"))]).contains("S256"));
    assert!(err(&[("code_challenge", Some("short"))]).contains("code_challenge"));
    assert!(err(&[("state", None)]).contains("state"));
    assert!(err(&[("access_type", Some("forever"))]).contains("access_type"));
    assert!(err(&[("bogus", Some("1"))]).contains("Parameter not allowed"));
    assert!(g
        .approve(&auth_url(&g), "nobody@example.com")
        .unwrap_err()
        .contains("unknown"));
    assert!(g
        .approve(&auth_url(&g).replace("/o/oauth2/v2/auth", "/auth"), ALICE)
        .is_err());
    // Wider scopes are fine when contacts.readonly is there.
    let scope = format!("openid email {CONTACTS_READONLY}");
    let q = g
        .approve(&auth_url_with(&g, &[("scope", Some(&scope))]), ALICE)
        .unwrap();
    assert_eq!(
        callback_param(&q, "scope").unwrap(),
        format!("openid https://www.googleapis.com/auth/userinfo.email {CONTACTS_READONLY}")
    );

    assert_eq!(
        g.deny(&auth_url(&g)).unwrap(),
        "state=st%2Bate/%3D1&error=access_denied"
    );
    assert!(g
        .deny(&auth_url_with(&g, &[("redirect_uri", Some("https://x/"))]))
        .is_err());
}

#[test]
fn consent_page_over_http() {
    let g = setup();
    g.add_user("bob@example.com", "Bob <B>");
    assert_eq!(
        g.users(),
        vec![
            (ALICE.to_string(), "Alice Example".to_string()),
            ("bob@example.com".to_string(), "Bob <B>".to_string()),
        ]
    );
    let url = auth_url(&g);
    let r = get(&url, &[]);
    assert_eq!(r.status, 200);
    for id in [
        "id=\"user-alice@example.com\"",
        "id=\"user-bob@example.com\"",
        "id=\"allow\"",
        "id=\"deny\"",
    ] {
        assert!(r.body.contains(id), "{id} missing from {}", r.body);
    }
    assert!(r.body.contains("Bob &lt;B&gt;"));
    let q = url.split_once('?').unwrap().1;
    let q_decoded = parse_query(q)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .count();
    assert!(q_decoded > 5);
    let raw_q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(parse_query(q))
        .finish();

    // Allow as Bob: a 302 to the redirect URI with the callback query.
    let r = post_form(
        &format!("{}{DECISION_PATH}", g.base_url()),
        &[
            ("q", &raw_q),
            ("email", "bob@example.com"),
            ("decision", "allow"),
        ],
        &[],
    );
    assert_eq!(r.status, 302, "{}", r.body);
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with(&format!("{REDIRECT}?state=st%2Bate/%3D1&code=4/0A")),
        "{loc}"
    );
    let code = callback_param(loc.split_once('?').unwrap().1, "code").unwrap();
    assert_eq!(exchange(&g, &code, VERIFIER).status, 200);
    assert_eq!(g.live_refresh_tokens("bob@example.com"), 1);

    // Deny.
    let r = post_form(
        &format!("{}{DECISION_PATH}", g.base_url()),
        &[("q", &raw_q), ("decision", "deny")],
        &[],
    );
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").unwrap(),
        format!("{REDIRECT}?state=st%2Bate/%3D1&error=access_denied")
    );

    // A bad request shows Google's error page, not a redirect.
    let r = get(
        &auth_url_with(&g, &[("redirect_uri", Some("https://evil.example/cb"))]),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    assert!(r.body.contains("Error 400: redirect_uri_mismatch"));
    let r = get(&auth_url_with(&g, &[("client_id", Some("nobody"))]), &[]);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Error 401: invalid_client"));
    assert_eq!(get(&format!("{}/nowhere", g.base_url()), &[]).status, 404);
}

#[test]
fn requests_are_recorded() {
    let g = setup();
    let (access, _) = connect(&g);
    list(&g, &access, FULL);
    let reqs = g.requests();
    assert_eq!(reqs.len(), 2);
    let t = &reqs[0];
    assert_eq!(
        (t.method.as_str(), t.path.as_str(), t.endpoint),
        ("POST", TOKEN_PATH, Some(Endpoint::Token))
    );
    assert_eq!(t.form_param("grant_type"), Some("authorization_code"));
    assert_eq!(t.form_param("code_verifier"), Some(VERIFIER));
    assert!(t
        .header("Content-Type")
        .unwrap()
        .contains("form-urlencoded"));
    assert_eq!(t.status, 200);
    let p = &reqs[1];
    assert_eq!(p.path, CONNECTIONS_PATH);
    assert_eq!(p.query_param("pageSize"), Some("1000"));
    assert_eq!(
        p.header("authorization"),
        Some(format!("Bearer {access}").as_str())
    );
    assert!(p.received >= t.received);
    assert_eq!(g.requests_to(Endpoint::People).len(), 1);
    g.clear_requests();
    assert!(g.requests().is_empty());
}

#[test]
fn concurrent_requests_and_shutdown() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1)]);
    let (access, _) = connect(&g);
    // A slow reply does not hold up the others.
    g.inject(Endpoint::People, Fault::Delay(Duration::from_secs(2)));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let slow = s.spawn(|| list(&g, &access, FULL).status);
        std::thread::sleep(Duration::from_millis(100));
        let fast: Vec<_> = (0..3)
            .map(|_| s.spawn(|| list(&g, &access, FULL).status))
            .collect();
        for f in fast {
            assert_eq!(f.join().unwrap(), 200);
        }
        assert!(t0.elapsed() < Duration::from_millis(1500));
        assert_eq!(slow.join().unwrap(), 200);
    });
    let addr = g.addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(g.base_url(), format!("http://{addr}"));
    // Dropping it during a long delay returns quickly and closes the port.
    g.inject(Endpoint::People, Fault::Delay(Duration::from_secs(60)));
    let url = format!("{}{CONNECTIONS_PATH}?{FULL}", g.people_url());
    let bearer = format!("Bearer {access}");
    let pending = std::thread::spawn(move || {
        let u = url::Url::parse(&url).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", u.port().unwrap())).unwrap();
        let _ = write!(
            s,
            "GET {}?{} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n",
            u.path(),
            u.query().unwrap()
        );
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    drop(g);
    assert!(t0.elapsed() < Duration::from_secs(5));
    pending.join().unwrap();
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn only_loopback() {
    let e = FakeGoogle::start_on("0.0.0.0:0".parse().unwrap()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let g = FakeGoogle::start_on("127.0.0.1:0".parse().unwrap()).unwrap();
    assert!(g.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(g.config_json()["token_url"], g.token_url());
    assert_eq!(g.config_json()["calendar_url"], g.calendar_url());
    assert_eq!(g.calendar_url(), g.people_url());
}

#[test]
fn fake_google_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<FakeGoogle>();
    check::<Request>();
    check::<Fault>();
}

#[test]
fn helpers() {
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_millis(1_709_210_096_123)),
        "2024-02-29T12:34:56.123Z"
    );
    assert_eq!(google_encode("a b/c:d+e=&"), "a%20b/c:d%2Be%3D%26");
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
}

// ---------------------------------------------------------------------------------------------
// Emails, memberships and contact groups
// ---------------------------------------------------------------------------------------------

fn groups_list(g: &FakeGoogle, access: &str, query: &str) -> Resp {
    get(
        &format!("{}{CONTACT_GROUPS_PATH}?{query}", g.people_url()),
        &[("Authorization", &format!("Bearer {access}"))],
    )
}

/// The resource name of Alice's group of that name.
fn group_rn(g: &FakeGoogle, name: &str) -> String {
    g.groups(ALICE)
        .into_iter()
        .find(|(_, n)| n == name)
        .unwrap_or_else(|| panic!("no group {name}"))
        .0
}

fn membership_ids(p: &Value) -> Vec<String> {
    p["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let cgm = &m["contactGroupMembership"];
            let id = cgm["contactGroupId"].as_str().unwrap();
            assert_eq!(
                cgm["contactGroupResourceName"],
                format!("contactGroups/{id}"),
                "{m}"
            );
            id.to_string()
        })
        .collect()
}

fn connection<'a>(v: &'a Value, resource_name: &str) -> &'a Value {
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resourceName"] == resource_name)
        .unwrap_or_else(|| panic!("no {resource_name} in {v}"))
}

fn resource_names(v: &Value) -> Vec<String> {
    v["connections"].as_array().map_or_else(Vec::new, |c| {
        c.iter()
            .map(|p| p["resourceName"].as_str().unwrap().to_string())
            .collect()
    })
}

#[test]
fn emails_and_memberships_only_when_asked() {
    let g = setup();
    g.set_contacts(
        ALICE,
        vec![
            person(1)
                .with_email("one@example.com")
                .with_email("one@home.example")
                .with_group("Customers"),
            person(2),
            Person::new("people/c9", "", "")
                .with_display("")
                .with_email("x@example.com"),
        ],
    );
    let (access, _) = connect(&g);
    let customers = group_rn(&g, "Customers");
    let customers_id = customers.strip_prefix("contactGroups/").unwrap();
    assert!(
        !customers_id.is_empty() && customers_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{customers}"
    );

    // Not asked for: neither key.
    let v = list(&g, &access, "personFields=names,phoneNumbers").json();
    for p in v["connections"].as_array().unwrap() {
        assert!(p.get("emailAddresses").is_none(), "{p}");
        assert!(p.get("memberships").is_none(), "{p}");
    }
    // Only emails.
    let v = list(&g, &access, "personFields=emailAddresses").json();
    assert!(connection(&v, "people/c1").get("memberships").is_none());
    assert!(connection(&v, "people/c1").get("names").is_none());
    assert!(connection(&v, "people/c1").get("emailAddresses").is_some());

    // Both.
    let v = list(
        &g,
        &access,
        "personFields=names,emailAddresses,memberships,metadata",
    )
    .json();
    let c1 = connection(&v, "people/c1");
    let source = c1["names"][0]["metadata"]["source"].clone();
    assert_eq!(source["type"], "CONTACT");
    assert_eq!(
        c1["emailAddresses"],
        json!([
            {"metadata": {"primary": true, "source": source}, "value": "one@example.com",
             "type": "work", "formattedType": "Work"},
            {"metadata": {"source": source}, "value": "one@home.example",
             "type": "work", "formattedType": "Work"},
        ])
    );
    assert_eq!(
        c1["memberships"][0],
        json!({
            "metadata": {"source": source},
            "contactGroupMembership": {
                "contactGroupId": customers_id,
                "contactGroupResourceName": customers,
            },
        })
    );
    assert_eq!(membership_ids(c1), vec![customers_id, "myContacts"]);
    // Everyone is in myContacts, nobody is starred.
    let c2 = connection(&v, "people/c2");
    assert_eq!(membership_ids(c2), vec!["myContacts"]);
    assert!(c2.get("emailAddresses").is_none(), "no emails: no key");
    let c9 = connection(&v, "people/c9");
    assert!(c9.get("names").is_none(), "no name at all");
    assert_eq!(c9["emailAddresses"][0]["value"], "x@example.com");
    assert_eq!(c9["emailAddresses"][0]["metadata"]["primary"], true);
    assert_eq!(membership_ids(c9), vec!["myContacts"]);
    assert!(!v.to_string().contains("starred"));

    // snake_case and the person. prefix are accepted; unknown paths still refused.
    assert_eq!(
        list(
            &g,
            &access,
            "personFields=email_addresses,person.memberships"
        )
        .status,
        200
    );
    let r = list(&g, &access, "personFields=names,emailAddress");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        r.body.contains("Invalid personFields mask path"),
        "{}",
        r.body
    );
    assert_eq!(list(&g, &access, "personFields=names,groups").status, 400);

    // Changes of emails or groups are changes of the person.
    const INC: &str = "personFields=names,emailAddresses,memberships&requestSyncToken=true";
    let sync = list(&g, &access, INC).json()["nextSyncToken"]
        .as_str()
        .unwrap()
        .to_string();
    g.upsert_contact(ALICE, person(2).with_email("two@example.com"));
    let mut now = g.contacts(ALICE);
    for p in &mut now {
        if p.resource_name == "people/c1" {
            p.groups.push("Suppliers".into());
        }
    }
    g.set_contacts(ALICE, now);
    let v = list(&g, &access, &format!("{INC}&syncToken={sync}")).json();
    assert_eq!(resource_names(&v), vec!["people/c2", "people/c1"]);
    assert_eq!(
        connection(&v, "people/c2")["emailAddresses"][0]["value"],
        "two@example.com"
    );
    let suppliers = group_rn(&g, "Suppliers");
    assert_eq!(
        membership_ids(connection(&v, "people/c1")),
        vec![
            customers_id,
            suppliers.strip_prefix("contactGroups/").unwrap(),
            "myContacts"
        ]
    );
    let sync2 = v["nextSyncToken"].as_str().unwrap().to_string();
    // The same contacts again: nothing changed.
    g.set_contacts(ALICE, g.contacts(ALICE));
    let v = list(&g, &access, &format!("{INC}&syncToken={sync2}")).json();
    assert!(v.get("connections").is_none(), "{v}");
    // Dropping a group from a person is a change too.
    let mut now = g.contacts(ALICE);
    for p in &mut now {
        if p.resource_name == "people/c1" {
            p.groups.retain(|n| n != "Customers");
        }
    }
    g.set_contacts(ALICE, now);
    let v = list(&g, &access, &format!("{INC}&syncToken={sync2}")).json();
    assert_eq!(resource_names(&v), vec!["people/c1"]);
    assert_eq!(
        membership_ids(connection(&v, "people/c1")),
        vec![
            suppliers.strip_prefix("contactGroups/").unwrap(),
            "myContacts"
        ]
    );
}

#[test]
fn renaming_a_group_changes_no_person() {
    let g = setup();
    g.set_contacts(
        ALICE,
        vec![
            person(1).with_group("Customers"),
            person(2).with_group("Customers").with_group("VIP"),
        ],
    );
    let (access, _) = connect(&g);
    let before = g.groups(ALICE);
    assert_eq!(
        before.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
        vec!["Customers", "VIP"]
    );
    let customers = before[0].0.clone();
    const INC: &str = "personFields=names,memberships,metadata&requestSyncToken=true";
    let v = list(&g, &access, INC).json();
    let sync = v["nextSyncToken"].as_str().unwrap().to_string();
    let etag_before = connection(&v, "people/c1")["etag"].clone();
    let gv = groups_list(&g, &access, "").json();
    let group_before = gv["contactGroups"][0].clone();
    assert_eq!(group_before["resourceName"], customers.as_str());
    let groups_sync = gv["nextSyncToken"].as_str().unwrap().to_string();

    std::thread::sleep(Duration::from_millis(5));
    g.rename_group(ALICE, "Customers", "Clients").unwrap();

    // Same resource name, new name.
    let after = g.groups(ALICE);
    assert_eq!(after[0], (customers.clone(), "Clients".to_string()));
    assert_eq!(after[1], before[1]);
    // The stored persons name the new group.
    assert!(g
        .contacts(ALICE)
        .iter()
        .all(|p| p.groups.first().map(String::as_str) == Some("Clients")));
    // The people sync reports nobody; the persons' etags and memberships did not change.
    let v = list(&g, &access, &format!("{INC}&syncToken={sync}")).json();
    assert!(v.get("connections").is_none(), "{v}");
    let v = list(&g, &access, INC).json();
    let c1 = connection(&v, "people/c1");
    assert_eq!(c1["etag"], etag_before);
    assert_eq!(
        membership_ids(c1)[0],
        customers.strip_prefix("contactGroups/").unwrap()
    );
    // The group's name, etag and updateTime changed.
    let gv = groups_list(&g, &access, "").json();
    let group_after = &gv["contactGroups"][0];
    assert_eq!(group_after["resourceName"], customers.as_str());
    assert_eq!(group_after["name"], "Clients");
    assert_eq!(group_after["formattedName"], "Clients");
    assert_eq!(group_after["memberCount"], 2);
    assert_ne!(group_after["etag"], group_before["etag"]);
    assert_ne!(
        group_after["metadata"]["updateTime"],
        group_before["metadata"]["updateTime"]
    );
    // The groups sync token sees the renamed group only.
    let r = groups_list(&g, &access, &format!("syncToken={groups_sync}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["contactGroups"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["contactGroups"][0]["name"], "Clients");
    assert!(v["nextSyncToken"].is_string());
    // Sync tokens of one list are no good for the other.
    assert_eq!(
        list(&g, &access, &format!("{INC}&syncToken={groups_sync}")).status,
        400
    );
    assert_eq!(
        groups_list(&g, &access, &format!("syncToken={sync}")).status,
        400
    );

    // Refused: unknown group, a name in use, an empty name. Renaming to itself is a no-op.
    assert!(g.rename_group(ALICE, "Customers", "X").is_err());
    assert!(g.rename_group(ALICE, "Clients", "VIP").is_err());
    assert!(g.rename_group(ALICE, "Clients", " ").is_err());
    assert!(g
        .rename_group("nobody@example.com", "Clients", "X")
        .is_err());
    g.rename_group(ALICE, "Clients", "Clients").unwrap();
    assert_eq!(g.groups(ALICE)[0], (customers.clone(), "Clients".into()));
    // The old name used again is a new group, with another id.
    g.upsert_contact(ALICE, person(3).with_group("Customers"));
    let rn = group_rn(&g, "Customers");
    assert_ne!(rn, customers);
    assert_eq!(g.groups(ALICE).len(), 3);
}

#[test]
fn contact_groups_list_and_paging() {
    let g = setup();
    g.set_contacts(
        ALICE,
        vec![
            person(1).with_group("Customers").with_group("Suppliers"),
            person(2).with_group("Customers"),
            person(3).with_group("Board"),
            person(4),
        ],
    );
    // A group stays when nobody is in it any more.
    g.upsert_contact(ALICE, person(3));
    let (access, _) = connect(&g);
    let user_groups = g.groups(ALICE);
    assert_eq!(
        user_groups
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>(),
        vec!["Customers", "Suppliers", "Board"]
    );

    let mut seen: Vec<Value> = Vec::new();
    let mut query = "pageSize=2".to_string();
    let mut pages = 0;
    loop {
        let r = groups_list(&g, &access, &query);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        pages += 1;
        assert_eq!(v["totalItems"], 11);
        let page = v["contactGroups"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().cloned());
        match v["nextPageToken"].as_str() {
            Some(t) => {
                assert!(
                    v.get("nextSyncToken").is_none(),
                    "sync token before the end"
                );
                query = format!("pageSize=2&pageToken={t}");
            }
            None => {
                assert!(v["nextSyncToken"].is_string(), "{v}");
                break;
            }
        }
        assert!(pages < 20, "paging never ends");
    }
    assert_eq!(pages, 6);
    let names: Vec<&str> = seen
        .iter()
        .map(|g| g["resourceName"].as_str().unwrap())
        .collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 11, "each group once: {names:?}");
    let mut expected: Vec<String> = user_groups.iter().map(|(rn, _)| rn.clone()).collect();
    for id in [
        "chatBuddies",
        "all",
        "myContacts",
        "friends",
        "family",
        "coworkers",
        "blocked",
        "starred",
    ] {
        expected.push(format!("contactGroups/{id}"));
    }
    assert_eq!(names, expected);

    // User groups.
    let customers = &seen[0];
    assert_eq!(customers["groupType"], "USER_CONTACT_GROUP");
    assert_eq!(customers["name"], "Customers");
    assert_eq!(customers["formattedName"], "Customers");
    assert_eq!(customers["memberCount"], 2);
    assert!(customers["etag"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(customers["metadata"]["updateTime"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(seen[1]["memberCount"], 1);
    assert!(
        seen[2].get("memberCount").is_none(),
        "empty: no memberCount"
    );
    // System groups.
    let my = seen
        .iter()
        .find(|g| g["resourceName"] == "contactGroups/myContacts")
        .unwrap();
    assert_eq!(
        *my,
        json!({
            "resourceName": "contactGroups/myContacts",
            "groupType": "SYSTEM_CONTACT_GROUP",
            "name": "myContacts",
            "formattedName": "My Contacts",
            "memberCount": 4,
        })
    );
    let starred = seen
        .iter()
        .find(|g| g["resourceName"] == "contactGroups/starred")
        .unwrap();
    assert_eq!(starred["groupType"], "SYSTEM_CONTACT_GROUP");
    assert_eq!(starred["formattedName"], "Starred");
    assert!(starred.get("memberCount").is_none());

    // Default page size (30): everything at once; 0 means the default.
    for q in [
        "",
        "pageSize=0",
        "groupFields=name,memberCount",
        "page_size=1000",
    ] {
        let r = groups_list(&g, &access, q);
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        let v = r.json();
        assert_eq!(v["contactGroups"].as_array().unwrap().len(), 11, "{q}");
        assert!(v.get("nextPageToken").is_none());
    }
    // The page size cap applies too.
    g.set_page_size_cap(4);
    let v = groups_list(&g, &access, "pageSize=100").json();
    assert_eq!(v["contactGroups"].as_array().unwrap().len(), 4);
    assert!(v["nextPageToken"].is_string());
    g.set_page_size_cap(0);

    // Bad parameters, as Google.
    for q in [
        "pageSize=1001",
        "pageSize=-1",
        "pageSize=abc",
        "page_sise=2",
        "pageToken=bogus",
    ] {
        let r = groups_list(&g, &access, q);
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT", "{q}");
    }
    // A connections page token is no groups page token.
    g.set_page_size_cap(1);
    let pt = list(&g, &access, FULL).json()["nextPageToken"]
        .as_str()
        .unwrap()
        .to_string();
    g.set_page_size_cap(0);
    assert_eq!(
        groups_list(&g, &access, &format!("pageToken={pt}")).status,
        400
    );

    // Logged like the others, under their own endpoint.
    let logged = g.requests_to(Endpoint::ContactGroups);
    assert!(logged.len() >= 14);
    assert!(logged.iter().all(|r| r.path == CONTACT_GROUPS_PATH));
    assert_eq!(logged[0].query_param("pageSize"), Some("2"));
    assert_eq!(logged[0].status, 200);
    assert!(g
        .requests_to(Endpoint::People)
        .iter()
        .all(|r| r.path == CONNECTIONS_PATH));
}

#[test]
fn contact_groups_auth_and_faults() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1).with_group("Customers")]);
    let (access, _) = connect(&g);

    // 401 without a valid token.
    let r = get(&format!("{}{CONTACT_GROUPS_PATH}", g.people_url()), &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let v = r.json();
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(v["error"]["details"][0]["reason"], "CREDENTIALS_MISSING");
    assert_eq!(
        v["error"]["details"][0]["metadata"]["method"],
        "google.people.v1.ContactGroupService.ListContactGroups"
    );
    assert_eq!(groups_list(&g, "ya29.bogus", "").status, 401);
    let r = get(
        &format!("{}{CONTACT_GROUPS_PATH}", g.people_url()),
        &[("Authorization", &format!("Basic {access}"))],
    );
    assert_eq!(r.status, 401);
    assert_eq!(groups_list(&g, &access, "").status, 200);
    assert_eq!(
        http(
            "POST",
            &format!("{}{CONTACT_GROUPS_PATH}", g.people_url()),
            &[("Authorization", &format!("Bearer {access}"))],
            ""
        )
        .status,
        404
    );

    // Faults of their own queue: the connections list does not eat them, nor the other way.
    g.inject(Endpoint::ContactGroups, Fault::Status(503));
    assert_eq!(list(&g, &access, FULL).status, 200);
    assert_eq!(g.pending_faults(Endpoint::ContactGroups), 1);
    let r = groups_list(&g, &access, "");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["status"], "UNAVAILABLE");
    g.inject(Endpoint::People, Fault::Status(500));
    assert_eq!(groups_list(&g, &access, "").status, 200);
    assert_eq!(list(&g, &access, FULL).status, 500);

    g.inject(Endpoint::ContactGroups, Fault::Status(403));
    let v = groups_list(&g, &access, "").json();
    assert_eq!(
        v["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    );
    g.inject(Endpoint::ContactGroups, Fault::WrongType);
    assert_eq!(groups_list(&g, &access, "").json()["contactGroups"], "oops");
    g.inject(
        Endpoint::ContactGroups,
        Fault::RateLimited {
            retry_after_secs: 5,
        },
    );
    let r = groups_list(&g, &access, "");
    assert_eq!((r.status, r.header("retry-after")), (429, Some("5")));
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    g.inject(Endpoint::ContactGroups, Fault::PeopleDisabled);
    assert_eq!(groups_list(&g, &access, "").status, 403);
    g.inject(
        Endpoint::ContactGroups,
        Fault::Huge {
            bytes: 100,
            content_length: true,
        },
    );
    let r = groups_list(&g, &access, "");
    assert_eq!(r.body.len(), 100);
    assert!(r.body.starts_with("{\"contactGroups\":["));

    // Endless pages of new groups.
    g.set_sticky_fault(Endpoint::ContactGroups, Some(Fault::EndlessPages));
    let mut tokens = std::collections::HashSet::new();
    let mut query = String::new();
    for _ in 0..4 {
        let v = groups_list(&g, &access, &query).json();
        assert!(v.get("nextSyncToken").is_none());
        assert_eq!(v["contactGroups"].as_array().unwrap().len(), 1);
        let t = v["nextPageToken"].as_str().unwrap().to_string();
        assert!(tokens.insert(t.clone()));
        query = format!("pageToken={t}");
    }
    g.set_sticky_fault(Endpoint::ContactGroups, None);
    let v = groups_list(&g, &access, "").json();
    assert_eq!(v["totalItems"], 9);

    // Revoked grants and expired access tokens get 401.
    g.expire_access_tokens();
    assert_eq!(groups_list(&g, &access, "").status, 401);
}

// ---------------------------------------------------------------------------------------------
// Calendar: freebusy.query
// ---------------------------------------------------------------------------------------------

/// An authorization URL asking for contacts and free/busy (and whatever `extra` adds).
fn calendar_auth_url(g: &FakeGoogle, extra: &str) -> String {
    let scope = format!("{CONTACTS_READONLY} {CALENDAR_FREEBUSY} {extra}");
    auth_url_with(g, &[("scope", Some(scope.trim()))])
}

/// Connects Alice through `approve_unticking`; returns (callback query, token reply).
fn connect_unticking(g: &FakeGoogle, auth_url: &str, unticked: &[&str]) -> (String, Value) {
    let q = g.approve_unticking(auth_url, ALICE, unticked).unwrap();
    let r = exchange(g, &callback_param(&q, "code").unwrap(), VERIFIER);
    assert_eq!(r.status, 200, "{}", r.body);
    (q, r.json())
}

/// Alice's access token with the free/busy scope granted.
fn connect_calendar(g: &FakeGoogle) -> String {
    let (_, v) = connect_unticking(g, &calendar_auth_url(g, ""), &[]);
    v["access_token"].as_str().unwrap().to_string()
}

fn freebusy_raw(g: &FakeGoogle, headers: &[(&str, &str)], body: &str) -> Resp {
    http(
        "POST",
        &format!("{}{FREEBUSY_PATH}", g.calendar_url()),
        headers,
        body,
    )
}

fn freebusy(g: &FakeGoogle, access: &str, body: &Value) -> Resp {
    freebusy_raw(
        g,
        &[
            ("Authorization", &format!("Bearer {access}")),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
}

/// The usual query: `[min, max)` of the primary calendar.
fn window(min: &str, max: &str) -> Value {
    json!({"timeMin": min, "timeMax": max, "items": [{"id": "primary"}]})
}

/// Unix seconds of an RFC 3339 time.
fn secs(t: &str) -> i64 {
    parse_rfc3339_ms(t).unwrap() / 1000
}

fn periods(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("no busy list: {v}"))
        .iter()
        .map(|p| {
            (
                p["start"].as_str().unwrap().to_string(),
                p["end"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn freebusy_clips_sorts_and_never_merges() {
    let g = setup();
    let access = connect_calendar(&g);
    let day = secs("2026-11-29T00:00:00Z");
    let h = |n: f64| day + (n * 3600.0) as i64;
    g.set_busy(
        ALICE,
        vec![
            (h(20.0), h(21.0)),
            (h(9.5), h(11.0)), // overlaps the next one
            (h(9.0), h(10.0)),
            (h(11.0), h(12.0)), // adjacent to the one before
            (h(-2.0), h(1.0)),  // straddles timeMin
            (h(23.0), h(26.0)), // straddles timeMax
            (h(-1.0), h(0.0)),  // ends at timeMin: outside
            (h(24.0), h(25.0)), // starts at timeMax: outside
            (h(30.0), h(31.0)),
            (h(5.0), h(5.0)), // empty
        ],
    );
    g.add_busy(ALICE, h(9.0), h(10.0)); // the same meeting twice: two events
    assert_eq!(g.busy(ALICE).len(), 11);

    // The window written with offsets: 2026-11-29T00:00Z to 2026-11-30T00:00Z.
    let mut query = window("2026-11-29T01:00:00+01:00", "2026-11-29T19:00:00.000-05:00");
    query["items"] = json!([{"id": "primary"}, {"id": ALICE}, {"id": "bob@example.com"}]);
    let r = freebusy(&g, &access, &query);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["kind"], "calendar#freeBusy");
    assert_eq!(v["timeMin"], "2026-11-29T00:00:00.000Z");
    assert_eq!(v["timeMax"], "2026-11-30T00:00:00.000Z");
    let expect: Vec<(String, String)> = [
        ("00:00", "01:00"),
        ("09:00", "10:00"),
        ("09:00", "10:00"),
        ("09:30", "11:00"),
        ("11:00", "12:00"),
        ("20:00", "21:00"),
        ("23:00", "00:00"),
    ]
    .iter()
    .map(|(s, e)| {
        let end_day = if *e == "00:00" { "30" } else { "29" };
        (
            format!("2026-11-29T{s}:00Z"),
            format!("2026-11-{end_day}T{e}:00Z"),
        )
    })
    .collect();
    assert_eq!(periods(&v["calendars"]["primary"]["busy"]), expect);
    // The user's own address is the primary calendar too.
    assert_eq!(v["calendars"][ALICE], v["calendars"]["primary"]);
    // Any other calendar: Google's notFound, with an empty busy list.
    assert_eq!(
        v["calendars"]["bob@example.com"],
        json!({"errors": [{"domain": "global", "reason": "notFound"}], "busy": []})
    );
    assert!(v["calendars"]["primary"].get("errors").is_none());

    // A window with a fraction of a second clips to it, to the millisecond.
    let v = freebusy(
        &g,
        &access,
        &window("2026-11-29T09:45:00.5Z", "2026-11-29T09:50:00Z"),
    )
    .json();
    assert_eq!(v["timeMin"], "2026-11-29T09:45:00.500Z");
    assert_eq!(
        periods(&v["calendars"]["primary"]["busy"]),
        vec![
            (
                "2026-11-29T09:45:00.500Z".to_string(),
                "2026-11-29T09:50:00Z".to_string()
            );
            3
        ]
    );

    // No items, no calendars; a free window, an empty busy list.
    let v = freebusy(
        &g,
        &access,
        &json!({"timeMin": "2026-11-29T00:00:00Z", "timeMax": "2026-11-30T00:00:00Z"}),
    )
    .json();
    assert_eq!(v["calendars"], json!({}));
    let v = freebusy(
        &g,
        &access,
        &window("2026-11-29T13:00:00Z", "2026-11-29T14:00:00Z"),
    )
    .json();
    assert_eq!(v["calendars"]["primary"], json!({"busy": []}));

    g.clear_busy(ALICE);
    assert!(g.busy(ALICE).is_empty());
    let v = freebusy(
        &g,
        &access,
        &window("2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z"),
    )
    .json();
    assert_eq!(v["calendars"]["primary"]["busy"], json!([]));

    let reqs = g.requests_to(Endpoint::Calendar);
    assert_eq!(reqs.len(), 5);
    assert_eq!(
        (
            reqs[0].method.as_str(),
            reqs[0].path.as_str(),
            reqs[0].status
        ),
        ("POST", FREEBUSY_PATH, 200)
    );
    assert_eq!(
        reqs[0].form_param("timeMin"),
        Some("2026-11-29T01:00:00+01:00")
    );
    assert!(g.requests_to(Endpoint::People).is_empty());
}

#[test]
fn freebusy_needs_a_token_with_a_calendar_scope() {
    let g = setup();
    g.add_busy(
        ALICE,
        secs("2026-11-29T09:00:00Z"),
        secs("2026-11-29T10:00:00Z"),
    );
    let query = window("2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z");

    // No token, or not one of ours: 401 in the Calendar API's shape.
    let r = freebusy_raw(
        &g,
        &[("Content-Type", "application/json")],
        &query.to_string(),
    );
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let v = r.json();
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(v["error"]["errors"][0]["reason"], "required");
    assert_eq!(v["error"]["errors"][0]["location"], "Authorization");
    assert_eq!(v["error"]["details"][0]["reason"], "CREDENTIALS_MISSING");
    assert_eq!(
        v["error"]["details"][0]["metadata"],
        json!({"service": "calendar-json.googleapis.com", "method": "calendar.v3.Freebusy.Query"})
    );
    let r = freebusy(&g, "ya29.bogus", &query);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "authError");

    // The user unticked the calendar box: contacts work, freeBusy is a 403.
    let (_, token) = connect_unticking(&g, &calendar_auth_url(&g, ""), &[CALENDAR_FREEBUSY]);
    let without = token["access_token"].as_str().unwrap().to_string();
    assert_eq!(list(&g, &without, FULL).status, 200);
    let r = freebusy(&g, &without, &query);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));
    assert_eq!(
        r.json(),
        json!({"error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [{"message": "Insufficient Permission", "domain": "global",
                        "reason": "insufficientPermissions"}],
            "status": "PERMISSION_DENIED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": "calendar-json.googleapis.com",
                             "method": "calendar.v3.Freebusy.Query"},
            }],
        }})
    );
    // A plain contacts grant, never asked for the calendar: the same.
    let (contacts_only, _) = connect(&g);
    assert_eq!(freebusy(&g, &contacts_only, &query).status, 403);

    // calendar.freebusy, calendar.readonly and calendar each let it through.
    let with = connect_calendar(&g);
    assert_eq!(freebusy(&g, &with, &query).status, 200);
    for scope in [CALENDAR_READONLY, CALENDAR_FULL] {
        let url = auth_url_with(
            &g,
            &[("scope", Some(&format!("{CONTACTS_READONLY} {scope}")))],
        );
        let (_, t) = connect_unticking(&g, &url, &[]);
        let r = freebusy(&g, t["access_token"].as_str().unwrap(), &query);
        assert_eq!(r.status, 200, "{scope}: {}", r.body);
        assert_eq!(
            r.json()["calendars"]["primary"]["busy"][0]["start"],
            "2026-11-29T09:00:00Z"
        );
    }

    // Expired and revoked tokens: 401.
    g.expire_access_tokens();
    assert_eq!(freebusy(&g, &with, &query).status, 401);
}

#[test]
fn freebusy_request_validation() {
    let g = setup();
    let access = connect_calendar(&g);
    let bad = |body: Value, reason: &str, message: &str, location: &str| {
        let r = freebusy(&g, &access, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["message"], message, "{body}");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
        let e = &v["error"]["errors"][0];
        assert_eq!(
            (&e["reason"], &e["message"], &e["location"]),
            (&json!(reason), &json!(message), &json!(location)),
            "{body}"
        );
    };
    let ok_min = "2026-11-29T00:00:00Z";
    let ok_max = "2026-11-30T00:00:00Z";
    bad(
        json!({"timeMax": ok_max, "items": [{"id": "primary"}]}),
        "required",
        "Missing timeMin parameter.",
        "timeMin",
    );
    bad(
        json!({"timeMin": ok_min, "items": [{"id": "primary"}]}),
        "required",
        "Missing timeMax parameter.",
        "timeMax",
    );
    bad(
        json!({}),
        "required",
        "Missing timeMin parameter.",
        "timeMin",
    );
    for wrong in [
        json!("tomorrow"),
        json!("2026-11-29"),
        json!("2026-11-29T00:00:00"),
        json!("2026-02-30T00:00:00Z"),
        json!(1_795_000_000),
    ] {
        bad(
            json!({"timeMin": wrong, "timeMax": ok_max}),
            "invalid",
            "Invalid timeMin parameter.",
            "timeMin",
        );
    }
    bad(
        window(ok_min, "2026-11-29T24:00:00Z"),
        "invalid",
        "Invalid timeMax parameter.",
        "timeMax",
    );
    // timeMax not after timeMin, however written.
    for max in [ok_min, "2026-11-28T19:00:00-05:00", "2026-11-28T00:00:00Z"] {
        bad(
            window(ok_min, max),
            "timeRangeEmpty",
            "The specified time range is empty.",
            "timeMax",
        );
    }
    bad(
        json!({"timeMin": ok_min, "timeMax": ok_max, "items": "primary"}),
        "invalid",
        "Invalid items parameter.",
        "items",
    );
    bad(
        json!({"timeMin": ok_min, "timeMax": ok_max, "items": [{}]}),
        "required",
        "Missing items.id parameter.",
        "items.id",
    );

    // Not JSON, or not said to be JSON.
    let bearer = format!("Bearer {access}");
    let r = freebusy_raw(
        &g,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        "{\"timeMin\":",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "parseError");
    let r = freebusy_raw(
        &g,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&[("timeMin", ok_min), ("timeMax", ok_max)]),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "parseError");
    // freeBusy is a POST.
    let r = get(
        &format!("{}{FREEBUSY_PATH}", g.calendar_url()),
        &[("Authorization", &bearer)],
    );
    assert_eq!(r.status, 404);
    // Unused settings are accepted.
    let mut q = window(ok_min, ok_max);
    q["timeZone"] = json!("Europe/Berlin");
    q["calendarExpansionMax"] = json!(5);
    assert_eq!(freebusy(&g, &access, &q).status, 200);
}

#[test]
fn calendar_faults() {
    let g = setup();
    g.add_busy(
        ALICE,
        secs("2026-11-29T09:00:00Z"),
        secs("2026-11-29T10:00:00Z"),
    );
    let (contacts_access, _) = connect(&g);
    let access = connect_calendar(&g);
    let query = window("2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z");
    let calendar = |f: Fault| {
        g.inject(Endpoint::Calendar, f);
        freebusy(&g, &access, &query)
    };

    let r = calendar(Fault::CalendarDisabled);
    assert_eq!(r.status, 403);
    let v = r.json();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Google Calendar API has not been used in project {PROJECT_NUMBER} before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/calendar-json.googleapis.com/overview?project={PROJECT_NUMBER} then retry."
        )),
        "{message}"
    );
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        v["error"]["errors"][0],
        json!({"message": message, "domain": "usageLimits", "reason": "accessNotConfigured",
               "extendedHelp": "https://console.developers.google.com"})
    );
    let info = &v["error"]["details"][0];
    assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(info["reason"], "SERVICE_DISABLED");
    assert_eq!(info["metadata"]["service"], "calendar-json.googleapis.com");
    assert_eq!(
        info["metadata"]["consumer"],
        format!("projects/{PROJECT_NUMBER}")
    );

    let r = calendar(Fault::WrongType);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["calendars"], "oops");
    let r = calendar(Fault::TruncatedJson);
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    assert!(r.body.starts_with("{\n  \"calendars\""), "{}", r.body);

    let r = calendar(Fault::Status(503));
    assert_eq!(r.status, 503);
    let v = r.json();
    assert_eq!(v["error"]["status"], "UNAVAILABLE");
    assert_eq!(v["error"]["errors"][0]["reason"], "backendError");
    let r = calendar(Fault::Status(500));
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "backendError");
    let r = calendar(Fault::Status(403));
    assert_eq!(
        r.json()["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
    let r = calendar(Fault::Status(401));
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "authError");
    let r = calendar(Fault::Status(502));
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = calendar(Fault::RateLimited {
        retry_after_secs: 4,
    });
    assert_eq!((r.status, r.header("retry-after")), (429, Some("4")));
    let v = r.json();
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(v["error"]["errors"][0]["reason"], "rateLimitExceeded");
    let r = calendar(Fault::Huge {
        bytes: 200,
        content_length: true,
    });
    assert_eq!((r.status, r.body.len()), (200, 200));
    assert!(r.body.starts_with("{\"calendars\":{ "));
    let t0 = Instant::now();
    let r = calendar(Fault::Delay(Duration::from_millis(200)));
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        r.json()["calendars"]["primary"]["busy"][0]["end"],
        "2026-11-29T10:00:00Z"
    );
    // No pages to go on with: EndlessPages answers normally.
    assert_eq!(calendar(Fault::EndlessPages).status, 200);
    assert_eq!(g.pending_faults(Endpoint::Calendar), 0);

    // Its own queue: the People API does not eat its faults, nor the other way round.
    g.inject(Endpoint::Calendar, Fault::Status(503));
    assert_eq!(list(&g, &contacts_access, FULL).status, 200);
    assert_eq!(g.pending_faults(Endpoint::Calendar), 1);
    g.inject(Endpoint::People, Fault::Status(500));
    assert_eq!(freebusy(&g, &access, &query).status, 503);
    assert_eq!(freebusy(&g, &access, &query).status, 200);
    assert_eq!(list(&g, &contacts_access, FULL).status, 500);

    // Sticky until cleared, and recorded like every request.
    g.set_sticky_fault(Endpoint::Calendar, Some(Fault::CalendarDisabled));
    for _ in 0..2 {
        let r = freebusy(&g, &access, &query);
        assert_eq!(
            r.json()["error"]["details"][0]["reason"],
            "SERVICE_DISABLED"
        );
    }
    assert_eq!(list(&g, &contacts_access, FULL).status, 200);
    g.clear_faults();
    assert_eq!(freebusy(&g, &access, &query).status, 200);
    let statuses: Vec<u16> = g
        .requests_to(Endpoint::Calendar)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses.len(), 17);
    assert_eq!(&statuses[statuses.len() - 3..], &[403, 403, 200]);
}

#[test]
fn approve_unticking_grants_less() {
    let g = setup();
    let url = calendar_auth_url(&g, "https://www.googleapis.com/auth/directory.readonly");
    let directory = "https://www.googleapis.com/auth/directory.readonly";

    let (q, token) = connect_unticking(&g, &url, &["calendar.freebusy"]);
    let granted = format!("{CONTACTS_READONLY} {directory}");
    assert_eq!(callback_param(&q, "scope").unwrap(), granted);
    // As Google writes it: `/` and `:` as they are, spaces as %20.
    assert!(
        q.contains("&scope=https://www.googleapis.com/auth/contacts.readonly%20https://"),
        "{q}"
    );
    assert_eq!(token["scope"], granted.as_str());
    // A refresh keeps the smaller grant.
    let r = refresh_with(&g, token["refresh_token"].as_str().unwrap());
    assert_eq!(r.json()["scope"], granted.as_str());
    let refreshed = r.json()["access_token"].as_str().unwrap().to_string();
    let query = window("2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z");
    assert_eq!(freebusy(&g, &refreshed, &query).status, 403);

    // Nothing unticked: everything asked; in full or short, the same scope.
    let (q, token) = connect_unticking(&g, &url, &[]);
    let all = format!("{CONTACTS_READONLY} {CALENDAR_FREEBUSY} {directory}");
    assert_eq!(callback_param(&q, "scope").unwrap(), all);
    assert_eq!(token["scope"], all.as_str());
    let (q, _) = connect_unticking(&g, &url, &[CALENDAR_FREEBUSY, "directory.readonly"]);
    assert_eq!(callback_param(&q, "scope").unwrap(), CONTACTS_READONLY);

    // Unticking contacts.readonly: the People API refuses the grant, freeBusy takes it.
    let (q, token) = connect_unticking(&g, &url, &["contacts.readonly"]);
    assert_eq!(
        callback_param(&q, "scope").unwrap(),
        format!("{CALENDAR_FREEBUSY} {directory}")
    );
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(list(&g, access, FULL).status, 403);
    assert_eq!(freebusy(&g, access, &query).status, 200);

    // A scope that was not asked for cannot be unticked; a bad URL is refused as by approve.
    let e = g
        .approve_unticking(&url, ALICE, &["calendar.readonly"])
        .unwrap_err();
    assert!(e.contains("not requested"), "{e}");
    assert!(g
        .approve_unticking(&auth_url_with(&g, &[("code_challenge", None)]), ALICE, &[])
        .is_err());
    assert!(g
        .approve_unticking(&url, "nobody@example.com", &[])
        .is_err());
}

#[test]
fn consent_page_scope_boxes() {
    let g = setup();
    let url = calendar_auth_url(&g, "");
    let r = get(&url, &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(&format!(
            "<input type=\"checkbox\" name=\"grant\" id=\"scope-calendar.freebusy\" value=\"{CALENDAR_FREEBUSY}\" checked>"
        )),
        "{}",
        r.body
    );
    assert!(r.body.contains("View your availability in your calendars"));
    // contacts.readonly has no box: it is always granted on this page.
    assert!(r.body.contains("id=\"scope-contacts.readonly\""));
    assert!(!r.body.contains(&format!("value=\"{CONTACTS_READONLY}\"")));
    assert!(r.body.contains("name=\"granular\""));

    let raw_q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(parse_query(url.split_once('?').unwrap().1))
        .finish();
    let decide = |fields: &[(&str, &str)]| -> String {
        let mut all = vec![
            ("q", raw_q.as_str()),
            ("email", ALICE),
            ("decision", "allow"),
        ];
        all.extend_from_slice(fields);
        let r = post_form(&format!("{}{DECISION_PATH}", g.base_url()), &all, &[]);
        assert_eq!(r.status, 302, "{}", r.body);
        let loc = r.header("location").unwrap();
        callback_param(loc.split_once('?').unwrap().1, "scope").unwrap()
    };
    // Unticked (the box is not posted): only contacts.
    assert_eq!(decide(&[("granular", "1")]), CONTACTS_READONLY);
    // Left ticked: both.
    let both = format!("{CONTACTS_READONLY} {CALENDAR_FREEBUSY}");
    assert_eq!(
        decide(&[("granular", "1"), ("grant", CALENDAR_FREEBUSY)]),
        both
    );
    // A form without the boxes grants everything asked.
    assert_eq!(decide(&[]), both);
}

#[test]
fn rfc3339_times() {
    let ms = |t: &str| parse_rfc3339_ms(t);
    assert_eq!(ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(ms("1970-01-01t00:00:01z"), Some(1000));
    assert_eq!(ms("2026-11-29T20:00:00Z"), Some(1_795_982_400_000));
    assert_eq!(ms("2026-11-29T21:00:00+01:00"), ms("2026-11-29T20:00:00Z"));
    assert_eq!(ms("2026-11-29T14:30:00-05:30"), ms("2026-11-29T20:00:00Z"));
    assert_eq!(ms("2026-11-29T20:00:00-00:00"), ms("2026-11-29T20:00:00Z"));
    assert_eq!(ms("2026-11-29T20:00:00.1Z"), Some(1_795_982_400_100));
    assert_eq!(
        ms("2026-11-29T20:00:00.123456789Z"),
        Some(1_795_982_400_123)
    );
    assert_eq!(ms("2024-02-29T12:34:56.123Z"), Some(1_709_210_096_123));
    assert_eq!(ms("1969-12-31T23:59:59Z"), Some(-1000));
    assert_eq!(ms("2016-12-31T23:59:60Z"), ms("2017-01-01T00:00:00Z"));
    for bad in [
        "",
        "2026-11-29",
        "2026-11-29T20:00:00",
        "2026-11-29T20:00Z",
        "2026-11-29 20:00:00Z",
        "2026-11-29T20:00:00.Z",
        "2026-11-29T20:00:00+0100",
        "2026-11-29T20:00:00+24:00",
        "2026-11-29T20:00:00Z ",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-11-29T24:00:00Z",
        "2026-11-29T23:60:00Z",
        "+026-11-29T20:00:00Z",
        "2026-11-29T20:00:00ü",
    ] {
        assert_eq!(ms(bad), None, "{bad:?}");
    }
    assert_eq!(rfc3339_utc(1_795_982_400), "2026-11-29T20:00:00Z");
    assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
    for days in (-800_000..800_000).step_by(997) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
    for secs in [0, 951_782_400, 1_709_210_096, 4_102_444_799] {
        assert_eq!(parse_rfc3339_ms(&rfc3339_utc(secs)), Some(secs * 1000));
    }
}

// ---------------------------------------------------------------------------------------------
// Contact sources: otherContacts.list and people.listDirectoryPeople
// ---------------------------------------------------------------------------------------------

/// The plugin's otherContacts query (contract: names, phone numbers, email addresses).
const OTHER: &str =
    "readMask=names,phoneNumbers,emailAddresses&pageSize=1000&requestSyncToken=true";
/// The plugin's directory query (contract: both sources, organizations too).
const DIR: &str = "readMask=names,phoneNumbers,organizations,emailAddresses&sources=DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE&sources=DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT&pageSize=1000&requestSyncToken=true";
const DIR_PROFILES: &str =
    "readMask=names,phoneNumbers&sources=DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE&requestSyncToken=true";
const BOB_GMAIL: &str = "bob@gmail.com";

/// An authorization URL asking for contacts and both other sources.
fn sources_auth_url(g: &FakeGoogle) -> String {
    let scope = format!("{CONTACTS_READONLY} {CONTACTS_OTHER_READONLY} {DIRECTORY_READONLY}");
    auth_url_with(g, &[("scope", Some(&scope))])
}

/// The access token of `email` (a user of the fake) with every source's scope granted but
/// `unticked`.
fn connect_sources_as(g: &FakeGoogle, email: &str, unticked: &[&str]) -> String {
    let q = g
        .approve_unticking(&sources_auth_url(g), email, unticked)
        .unwrap();
    let r = exchange(g, &callback_param(&q, "code").unwrap(), VERIFIER);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"].as_str().unwrap().to_string()
}

fn connect_sources(g: &FakeGoogle) -> String {
    connect_sources_as(g, ALICE, &[])
}

fn other_list(g: &FakeGoogle, access: &str, query: &str) -> Resp {
    get(
        &format!("{}{OTHER_CONTACTS_PATH}?{query}", g.people_url()),
        &[("Authorization", &format!("Bearer {access}"))],
    )
}

fn dir_list(g: &FakeGoogle, access: &str, query: &str) -> Resp {
    get(
        &format!("{}{DIRECTORY_PATH}?{query}", g.people_url()),
        &[("Authorization", &format!("Bearer {access}"))],
    )
}

fn other_person(n: u32) -> Person {
    Person::new(
        &format!("otherContacts/c{n}"),
        &format!("Other{n}"),
        "Saved",
    )
    .with_phone_canonical(&format!("(212) 556-{n:04}"), &format!("+1212556{n:04}"), "")
    .with_email(&format!("other{n}@mail.example"))
}

/// A directory profile (`people/` and digits) of the example.com organisation.
fn profile(n: u32) -> Person {
    Person::new(
        &format!("people/11283636574{n:08}"),
        &format!("Col{n}"),
        "League",
    )
    .with_company("Example Inc")
    .with_phone_canonical(
        &format!("(212) 557-{n:04}"),
        &format!("+1212557{n:04}"),
        "work",
    )
    .with_email(&format!("col{n}@example.com"))
}

/// A shared contact (`people/c…`) of the example.com organisation.
fn shared(n: u32) -> Person {
    Person::new(&format!("people/c9{n:04}"), &format!("Shared{n}"), "Vendor")
        .with_company("Vendor Ltd")
        .with_phone(&format!("+44 20 7946 {n:04}"), "work")
}

/// Every page of a list (the query must not carry `pageToken`): the persons under `key`, the
/// number of pages, and the last page.
fn all_pages(fetch: &dyn Fn(&str) -> Resp, query: &str, key: &str) -> (Vec<Value>, usize, Value) {
    let mut people = Vec::new();
    let mut pages = 0;
    let mut q = query.to_string();
    loop {
        let r = fetch(&q);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        pages += 1;
        assert!(pages < 100, "endless");
        people.extend(v[key].as_array().cloned().unwrap_or_default());
        match v["nextPageToken"].as_str() {
            Some(t) => {
                assert!(v.get("nextSyncToken").is_none(), "sync token early: {v}");
                q = format!("{query}&pageToken={t}");
            }
            None => return (people, pages, v),
        }
    }
}

fn names_of(people: &[Value]) -> Vec<String> {
    people
        .iter()
        .map(|p| p["resourceName"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn other_contacts_paging_and_incremental_sync() {
    let g = setup();
    g.set_other_contacts(ALICE, (1..=5).map(other_person).collect());
    g.set_contacts(ALICE, vec![person(1)]);
    g.set_page_size_cap(2);
    let access = connect_sources(&g);

    // Full sync: three pages of at most 2, `totalSize` on each, the sync token on the last.
    let fetch = |q: &str| {
        let r = other_list(&g, &access, q);
        if r.status == 200 {
            assert_eq!(r.json()["totalSize"], 5, "{}", r.body);
        }
        r
    };
    let (people, pages, last) = all_pages(&fetch, OTHER, "otherContacts");
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=5).map(|n| format!("otherContacts/c{n}")).collect();
    assert_eq!(names_of(&people), expected);
    let sync = last["nextSyncToken"].as_str().unwrap().to_string();

    // A person's shape: only the fields asked; emails as Google saves them, without a type.
    let p = &people[0];
    assert!(p["etag"].as_str().unwrap().starts_with('%'));
    assert_eq!(p["names"][0]["displayName"], "Other1 Saved");
    assert_eq!(p["names"][0]["metadata"]["source"]["type"], "OTHER_CONTACT");
    assert_eq!(p["phoneNumbers"][0]["canonicalForm"], "+12125560001");
    assert!(p["phoneNumbers"][0].get("type").is_none());
    assert_eq!(
        p["emailAddresses"][0],
        json!({
            "metadata": p["emailAddresses"][0]["metadata"].clone(),
            "value": "other1@mail.example",
        })
    );
    assert!(p.get("metadata").is_none());
    assert!(p.get("memberships").is_none());
    g.set_page_size_cap(0);
    let v = other_list(&g, &access, "readMask=metadata,names").json();
    assert!(v.get("nextSyncToken").is_none(), "not asked for");
    assert_eq!(v["otherContacts"].as_array().unwrap().len(), 5);
    let p = &v["otherContacts"][0];
    assert_eq!(p["metadata"]["sources"][0]["type"], "OTHER_CONTACT");
    assert_eq!(p["metadata"]["objectType"], "PERSON");
    assert!(p.get("phoneNumbers").is_none());

    // One change and one deletion: the incremental reply has both, the deletion a tombstone.
    g.upsert_other_contact(
        ALICE,
        Person::new("otherContacts/c2", "Robert", "Saved").with_phone("+49 30 1234567", ""),
    );
    g.delete_other_contact(ALICE, "otherContacts/c4");
    g.delete_other_contact(ALICE, "otherContacts/c404");
    let r = other_list(&g, &access, &format!("{OTHER}&syncToken={sync}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let c = v["otherContacts"].as_array().unwrap();
    assert_eq!(names_of(c), ["otherContacts/c2", "otherContacts/c4"]);
    assert_eq!(c[0]["names"][0]["displayName"], "Robert Saved");
    assert_eq!(c[1]["metadata"]["deleted"], true);
    assert!(c[1].get("names").is_none());
    assert_eq!(v["totalSize"], 2);
    let sync2 = v["nextSyncToken"].as_str().unwrap().to_string();
    // Nothing since: no `otherContacts` key, as Google leaves empty lists out.
    let v = other_list(&g, &access, &format!("{OTHER}&syncToken={sync2}")).json();
    assert!(v.get("otherContacts").is_none(), "{v}");
    assert_eq!(v["totalSize"], 0);
    assert!(v["nextSyncToken"].is_string());
    // The user's own contacts are no change of their other contacts, nor the other way round.
    g.upsert_contact(ALICE, person(7));
    let v = other_list(&g, &access, &format!("{OTHER}&syncToken={sync2}")).json();
    assert!(v.get("otherContacts").is_none(), "{v}");

    // set_other_contacts records only real changes; the API lists what is stored.
    let mut now = g.other_contacts(ALICE);
    assert_eq!(now.len(), 4);
    now.retain(|p| p.resource_name != "otherContacts/c1");
    g.set_other_contacts(ALICE, now);
    let v = other_list(&g, &access, &format!("{OTHER}&syncToken={sync2}")).json();
    assert_eq!(
        names_of(v["otherContacts"].as_array().unwrap()),
        ["otherContacts/c1"]
    );
    assert_eq!(g.other_contacts(ALICE).len(), 3);
    assert_eq!(g.contacts(ALICE).len(), 2);

    // Page tokens: the same parameters, and only this list's.
    g.set_page_size_cap(1);
    let v = other_list(&g, &access, OTHER).json();
    let pt = v["nextPageToken"].as_str().unwrap().to_string();
    let r = other_list(&g, &access, &format!("readMask=names&pageToken={pt}"));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("must match the call"), "{}", r.body);
    assert_eq!(
        other_list(&g, &access, &format!("{OTHER}&pageToken={pt}")).status,
        200
    );
    let v = list(&g, &access, FULL).json();
    let people_pt = v["nextPageToken"].as_str().unwrap().to_string();
    let r = other_list(&g, &access, &format!("{OTHER}&pageToken={people_pt}"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let r = list(&g, &access, &format!("{FULL}&pageToken={pt}"));
    assert_eq!(r.status, 400);
    g.set_page_size_cap(0);

    // Sync tokens: only this list's.
    let people_sync = list(&g, &access, FULL).json()["nextSyncToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = other_list(&g, &access, &format!("{OTHER}&syncToken={people_sync}"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let r = list(&g, &access, &format!("{FULL}&syncToken={sync2}"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let r = groups_list(&g, &access, &format!("syncToken={sync2}"));
    assert_eq!(r.status, 400);
    let r = other_list(&g, &access, &format!("{OTHER}&syncToken=EAIYbogus"));
    assert_eq!(r.status, 400);
}

#[test]
fn other_contacts_sync_tokens_expire() {
    let g = setup();
    g.set_other_contacts(ALICE, vec![other_person(1)]);
    let access = connect_sources(&g);
    let token = other_list(&g, &access, OTHER).json()["nextSyncToken"]
        .as_str()
        .unwrap()
        .to_string();
    g.expire_sync_tokens(ALICE);
    let r = other_list(&g, &access, &format!("{OTHER}&syncToken={token}"));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {
            "code": 400,
            "message": "Sync token is expired. Clear local cache and retry call without the sync token.",
            "status": "FAILED_PRECONDITION",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "EXPIRED_SYNC_TOKEN",
                "domain": "people.googleapis.com",
                "metadata": {
                    "service": "people.googleapis.com",
                    "method": "google.people.v1.OtherContacts.ListOtherContacts",
                },
            }],
        }})
    );
    // A full sync gives a fresh token that works.
    let v = other_list(&g, &access, OTHER).json();
    let fresh = v["nextSyncToken"].as_str().unwrap();
    assert_eq!(
        other_list(&g, &access, &format!("{OTHER}&syncToken={fresh}")).status,
        200
    );
}

#[test]
fn other_contacts_request_validation_and_scope() {
    let g = setup();
    let access = connect_sources(&g);
    // A user without other contacts: no `otherContacts` key.
    let v = other_list(&g, &access, OTHER).json();
    assert!(v.get("otherContacts").is_none(), "{v}");
    assert_eq!(v["totalSize"], 0);
    assert!(v["nextSyncToken"].is_string());

    // readMask: required, and Google allows no organizations nor memberships here.
    let r = other_list(&g, &access, "pageSize=10");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    assert!(r.body.contains("readMask is required"), "{}", r.body);
    for mask in [
        "names,organizations",
        "memberships",
        "names,bogus",
        "addresses",
    ] {
        let r = other_list(&g, &access, &format!("readMask={mask}"));
        assert_eq!(r.status, 400, "{mask}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid readMask path"));
    }
    for ok in [
        "readMask=names,phoneNumbers,emailAddresses,metadata,photos",
        "readMask=names&readMask=phone_numbers",
        "read_mask=person.names",
        "readMask=names&sources=READ_SOURCE_TYPE_CONTACT",
        "readMask=names&pageSize=0",
        "readMask=names&pageSize=1000",
    ] {
        assert_eq!(other_list(&g, &access, ok).status, 200, "{ok}");
    }
    for bad in [
        "readMask=names&pageSize=1001",
        "readMask=names&pageSize=-1",
        "readMask=names&requestSyncToken=yes",
        "readMask=names&sources=READ_SOURCE_TYPE_BOGUS",
        "readMask=names&sources=READ_SOURCE_TYPE_PROFILE",
        "readMask=names&sortOrder=LAST_MODIFIED_ASCENDING",
        "readMask=names&mergeSources=DIRECTORY_MERGE_SOURCE_TYPE_CONTACT",
    ] {
        assert_eq!(other_list(&g, &access, bad).status, 400, "{bad}");
    }
    assert_eq!(
        http(
            "POST",
            &format!("{}{OTHER_CONTACTS_PATH}?{OTHER}", g.people_url()),
            &[("Authorization", &format!("Bearer {access}"))],
            ""
        )
        .status,
        404
    );

    // 401 naming the method.
    let r = get(
        &format!("{}{OTHER_CONTACTS_PATH}?{OTHER}", g.people_url()),
        &[],
    );
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["error"]["details"][0]["reason"], "CREDENTIALS_MISSING");
    assert_eq!(
        v["error"]["details"][0]["metadata"]["method"],
        "google.people.v1.OtherContacts.ListOtherContacts"
    );

    // The contacts scopes do not let otherContacts through: only contacts.other.readonly.
    let (contacts_only, _) = connect(&g);
    let unticked = connect_sources_as(&g, ALICE, &["contacts.other.readonly"]);
    for token in [&contacts_only, &unticked] {
        let r = other_list(&g, token, OTHER);
        assert_eq!(r.status, 403);
        assert_eq!(
            r.json(),
            json!({"error": {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "status": "PERMISSION_DENIED",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "people.googleapis.com",
                        "method": "google.people.v1.OtherContacts.ListOtherContacts",
                    },
                }],
            }})
        );
        assert_eq!(list(&g, token, FULL).status, 200);
    }
    // Nor does contacts.other.readonly let the connections list through.
    let other_only = connect_sources_as(&g, ALICE, &["contacts.readonly"]);
    assert_eq!(other_list(&g, &other_only, OTHER).status, 200);
    assert_eq!(list(&g, &other_only, FULL).status, 403);
}

#[test]
fn directory_paging_sources_and_incremental_sync() {
    let g = setup();
    let mut people: Vec<Person> = (1..=3).map(profile).collect();
    people.extend((1..=2).map(shared));
    g.set_directory("Example.com", people);
    g.set_page_size_cap(2);
    let access = connect_sources(&g);

    // Both sources: five people, in pages of 2, the sync token on the last page only.
    let fetch = |q: &str| dir_list(&g, &access, q);
    let (all, pages, last) = all_pages(&fetch, DIR, "people");
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 5);
    assert!(last.get("totalSize").is_none() && last.get("totalItems").is_none());
    let sync = last["nextSyncToken"].as_str().unwrap().to_string();
    // Profiles only, then shared contacts only.
    let (profiles, _, last_profiles) = all_pages(&fetch, DIR_PROFILES, "people");
    assert_eq!(
        names_of(&profiles),
        (1..=3)
            .map(|n| format!("people/11283636574{n:08}"))
            .collect::<Vec<_>>()
    );
    let profiles_sync = last_profiles["nextSyncToken"].as_str().unwrap().to_string();
    let contacts_only = DIR_PROFILES.replace("DOMAIN_PROFILE", "DOMAIN_CONTACT");
    let (contacts, _, _) = all_pages(&fetch, &contacts_only, "people");
    assert_eq!(names_of(&contacts), ["people/c90001", "people/c90002"]);

    // Shapes: a profile's source is DOMAIN_PROFILE with its own number, a shared contact's
    // DOMAIN_CONTACT; organizations are shown when asked.
    g.set_page_size_cap(0);
    let v = dir_list(&g, &access, &format!("{DIR}&readMask=metadata")).json();
    let p = &v["people"][0];
    assert_eq!(p["resourceName"], "people/1128363657400000001");
    let src = &p["metadata"]["sources"][0];
    assert_eq!(src["type"], "DOMAIN_PROFILE");
    assert_eq!(src["id"], "1128363657400000001");
    assert_eq!(src["profileMetadata"]["objectType"], "PERSON");
    assert_eq!(
        p["names"][0]["metadata"]["source"]["type"],
        "DOMAIN_PROFILE"
    );
    assert_eq!(p["organizations"][0]["name"], "Example Inc");
    assert_eq!(p["phoneNumbers"][0]["canonicalForm"], "+12125570001");
    assert_eq!(p["emailAddresses"][0]["value"], "col1@example.com");
    assert!(p.get("memberships").is_none());
    let c = v["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resourceName"] == "people/c90001")
        .unwrap();
    assert_eq!(c["metadata"]["sources"][0]["type"], "DOMAIN_CONTACT");
    assert_eq!(c["organizations"][0]["name"], "Vendor Ltd");

    // A change, a profile removed, a shared contact removed.
    g.upsert_directory_person("example.com", profile(2).with_display("Colleague Two"));
    g.delete_directory_person("EXAMPLE.COM", "people/11283636574{n:08}"); // unknown: nothing
    g.delete_directory_person("example.com", &profile(3).resource_name);
    g.delete_directory_person("example.com", "people/c90002");
    let v = dir_list(&g, &access, &format!("{DIR}&syncToken={sync}")).json();
    let changed = v["people"].as_array().unwrap();
    assert_eq!(
        names_of(changed),
        [
            "people/1128363657400000002",
            "people/1128363657400000003",
            "people/c90002"
        ]
    );
    assert_eq!(changed[0]["names"][0]["displayName"], "Colleague Two");
    assert_eq!(changed[1]["metadata"]["deleted"], true);
    assert_eq!(changed[2]["metadata"]["deleted"], true);
    assert!(changed[2].get("names").is_none());
    let sync2 = v["nextSyncToken"].as_str().unwrap().to_string();
    // The profiles' token sees the profiles' changes only, tombstone included.
    let v = dir_list(
        &g,
        &access,
        &format!("{DIR_PROFILES}&syncToken={profiles_sync}"),
    )
    .json();
    assert_eq!(v["people"].as_array().unwrap().len(), 2, "{v}");
    // Nothing since: no `people` key.
    let v = dir_list(&g, &access, &format!("{DIR}&syncToken={sync2}")).json();
    assert!(v.get("people").is_none(), "{v}");
    assert!(v["nextSyncToken"].is_string());
    // set_directory records only real changes; directory() lists what is stored.
    let mut now = g.directory("example.com");
    assert_eq!(now.len(), 3);
    now.push(shared(3));
    g.set_directory("example.com", now);
    let v = dir_list(&g, &access, &format!("{DIR}&syncToken={sync2}")).json();
    assert_eq!(names_of(v["people"].as_array().unwrap()), ["people/c90003"]);

    // Tokens of another list are refused, and the directory's by the others.
    let other_sync = other_list(&g, &access, OTHER).json()["nextSyncToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = dir_list(&g, &access, &format!("{DIR}&syncToken={other_sync}"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        other_list(&g, &access, &format!("{OTHER}&syncToken={sync2}")).status,
        400
    );
    assert_eq!(
        list(&g, &access, &format!("{FULL}&syncToken={sync2}")).status,
        400
    );
    g.set_page_size_cap(1);
    let pt = dir_list(&g, &access, DIR).json()["nextPageToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = dir_list(&g, &access, &format!("{DIR_PROFILES}&pageToken={pt}"));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("must match the call"), "{}", r.body);
    assert_eq!(
        other_list(&g, &access, &format!("{OTHER}&pageToken={pt}")).status,
        400
    );

    // Expiry: the directory's tokens die with the user's others.
    g.expire_sync_tokens(ALICE);
    let r = dir_list(&g, &access, &format!("{DIR}&syncToken={sync2}"));
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(v["error"]["details"][0]["reason"], "EXPIRED_SYNC_TOKEN");
    assert_eq!(
        v["error"]["details"][0]["metadata"]["method"],
        "google.people.v1.PeopleService.ListDirectoryPeople"
    );
}

#[test]
fn directory_refuses_consumer_accounts_and_bad_requests() {
    let g = setup();
    g.add_user(BOB_GMAIL, "Bob Consumer");
    g.set_directory("example.com", vec![profile(1)]);
    let bob = connect_sources_as(&g, BOB_GMAIL, &[]);
    let alice = connect_sources(&g);

    // A consumer account: Google's words, no details.
    let r = dir_list(&g, &bob, DIR);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {
            "code": 400,
            "message": "Must be a G Suite domain user.",
            "status": "FAILED_PRECONDITION",
        }})
    );
    // Even an empty directory makes the domain a Workspace one.
    g.set_directory("gmail.com", vec![]);
    let v = dir_list(&g, &bob, DIR).json();
    assert!(v.get("people").is_none(), "{v}");
    assert!(v["nextSyncToken"].is_string());
    assert!(g.directory("gmail.com").is_empty());
    // Other domains' directories are never seen.
    let v = dir_list(&g, &alice, DIR).json();
    assert_eq!(v["people"].as_array().unwrap().len(), 1);

    // sources: required, each a domain source.
    let mask = "readMask=names,phoneNumbers,organizations";
    for bad in [
        mask.to_string(),
        format!("{mask}&sources=DIRECTORY_SOURCE_TYPE_UNSPECIFIED"),
        format!("{mask}&sources=DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE&sources=BOGUS"),
        format!("{mask}&sources=READ_SOURCE_TYPE_CONTACT"),
        "sources=DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE".to_string(),
        format!("{mask},bogus&sources=DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE"),
        format!("{DIR_PROFILES}&pageSize=1001"),
        format!("{DIR}&mergeSources=BOGUS"),
        format!("{DIR}&sortOrder=LAST_NAME_ASCENDING"),
    ] {
        let r = dir_list(&g, &alice, &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT", "{bad}");
    }
    let r = dir_list(&g, &alice, &format!("{mask}&sources=BOGUS"));
    assert!(r.body.contains("Invalid value at 'sources'"), "{}", r.body);
    // A bad request from a consumer account is refused for the request first.
    assert_eq!(
        dir_list(&g, &bob, mask).json()["error"]["status"],
        "INVALID_ARGUMENT"
    );
    for ok in [
        format!("{DIR}&mergeSources=DIRECTORY_MERGE_SOURCE_TYPE_CONTACT"),
        format!("{DIR}&sources=DIRECTORY_SOURCE_TYPE_UNSPECIFIED"),
        "read_mask=names&sources=DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE&page_size=5".to_string(),
    ] {
        assert_eq!(dir_list(&g, &alice, &ok).status, 200, "{ok}");
    }

    // Scope: directory.readonly only.
    let (contacts_only, _) = connect(&g);
    let unticked = connect_sources_as(&g, ALICE, &["directory.readonly"]);
    for token in [&contacts_only, &unticked] {
        let r = dir_list(&g, token, DIR);
        assert_eq!(r.status, 403);
        let v = r.json();
        assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
        assert_eq!(
            v["error"]["details"][0]["reason"],
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
        );
        assert_eq!(
            v["error"]["details"][0]["metadata"],
            json!({
                "service": "people.googleapis.com",
                "method": "google.people.v1.PeopleService.ListDirectoryPeople",
            })
        );
    }
    // The scope is checked before the Workspace domain.
    let bob_unticked = connect_sources_as(&g, BOB_GMAIL, &["directory.readonly"]);
    g.set_directory("gmail.com", vec![]);
    assert_eq!(dir_list(&g, &bob_unticked, DIR).status, 403);
    let r = get(&format!("{}{DIRECTORY_PATH}?{DIR}", g.people_url()), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"]["details"][0]["metadata"]["method"],
        "google.people.v1.PeopleService.ListDirectoryPeople"
    );
}

#[test]
fn source_faults_have_their_own_queues() {
    let g = setup();
    g.set_contacts(ALICE, vec![person(1)]);
    g.set_other_contacts(ALICE, vec![other_person(1), other_person(2)]);
    g.set_directory("example.com", vec![profile(1), shared(1)]);
    let access = connect_sources(&g);
    let other = |f: Fault| {
        g.inject(Endpoint::OtherContacts, f);
        other_list(&g, &access, OTHER)
    };
    let dir = |f: Fault| {
        g.inject(Endpoint::Directory, f);
        dir_list(&g, &access, DIR)
    };

    // Separate queues: a fault is eaten only by its own endpoint.
    g.inject(Endpoint::OtherContacts, Fault::Status(503));
    g.inject(Endpoint::Directory, Fault::Status(500));
    assert_eq!(list(&g, &access, FULL).status, 200);
    assert_eq!(groups_list(&g, &access, "").status, 200);
    assert_eq!(g.pending_faults(Endpoint::OtherContacts), 1);
    assert_eq!(g.pending_faults(Endpoint::Directory), 1);
    let r = other_list(&g, &access, OTHER);
    assert_eq!(
        (r.status, r.json()["error"]["status"].clone()),
        (503, json!("UNAVAILABLE"))
    );
    assert_eq!(other_list(&g, &access, OTHER).status, 200);
    let r = dir_list(&g, &access, DIR);
    assert_eq!(
        (r.status, r.json()["error"]["status"].clone()),
        (500, json!("INTERNAL"))
    );
    assert_eq!(dir_list(&g, &access, DIR).status, 200);
    g.inject(Endpoint::People, Fault::Status(500));
    assert_eq!(other_list(&g, &access, OTHER).status, 200);
    assert_eq!(dir_list(&g, &access, DIR).status, 200);
    assert_eq!(list(&g, &access, FULL).status, 500);
    // Recorded under their own endpoint.
    assert!(g
        .requests_to(Endpoint::OtherContacts)
        .iter()
        .all(|r| r.path == OTHER_CONTACTS_PATH));
    assert!(g
        .requests_to(Endpoint::Directory)
        .iter()
        .all(|r| r.path == DIRECTORY_PATH));
    assert_eq!(g.requests_to(Endpoint::Directory).len(), 3);

    for (name, fetch) in [
        ("otherContacts", &other as &dyn Fn(Fault) -> Resp),
        ("people", &dir),
    ] {
        let method = if name == "people" {
            "google.people.v1.PeopleService.ListDirectoryPeople"
        } else {
            "google.people.v1.OtherContacts.ListOtherContacts"
        };
        for (code, status) in [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (429, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
        ] {
            let r = fetch(Fault::Status(code));
            assert_eq!(r.status, code, "{name}");
            assert_eq!(r.json()["error"]["status"], status, "{name} {code}");
        }
        let r = fetch(Fault::Status(403));
        assert_eq!(
            r.json()["error"]["details"][0]["metadata"]["method"],
            method
        );
        let r = fetch(Fault::Status(502));
        assert_eq!(r.status, 502);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        let r = fetch(Fault::PeopleDisabled);
        assert_eq!(
            r.json()["error"]["details"][0]["reason"],
            "SERVICE_DISABLED"
        );

        let r = fetch(Fault::RateLimited {
            retry_after_secs: 9,
        });
        assert_eq!((r.status, r.header("retry-after")), (429, Some("9")));
        assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");

        let r = fetch(Fault::ExpiredSyncToken);
        assert_eq!(r.status, 400);
        let v = r.json();
        assert_eq!(v["error"]["details"][0]["reason"], "EXPIRED_SYNC_TOKEN");
        assert_eq!(v["error"]["details"][0]["metadata"]["method"], method);
        let r = fetch(Fault::Gone);
        assert_eq!(r.status, 410);
        let v = r.json();
        assert_eq!(v["error"]["details"][0]["reason"], "EXPIRED_SYNC_TOKEN");
        assert_eq!(v["error"]["details"][0]["metadata"]["method"], method);

        let r = fetch(Fault::TruncatedJson);
        assert_eq!(r.status, 200);
        assert!(serde_json::from_str::<Value>(&r.body).is_err());
        assert!(r.body.starts_with('{'), "{}", r.body);

        let r = fetch(Fault::WrongType);
        assert_eq!(r.status, 200);
        assert_eq!(r.json()[name], "oops");

        let t0 = Instant::now();
        let r = fetch(Fault::Delay(Duration::from_millis(200)));
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert_eq!(r.json()[name].as_array().unwrap().len(), 2);

        let r = fetch(Fault::Trickle {
            interval: Duration::from_micros(200),
        });
        assert_eq!(r.status, 200);
        assert_eq!(r.json()[name].as_array().unwrap().len(), 2);

        let r = fetch(Fault::Raw {
            status: 200,
            headers: vec![],
            body: format!("{{\"{name}\":[{{\"resourceName\":\"x\"}}]}}"),
        });
        assert_eq!(r.json()[name][0]["resourceName"], "x");

        let r = fetch(Fault::Huge {
            bytes: 100,
            content_length: true,
        });
        assert_eq!(r.body.len(), 100);
        assert!(r.body.starts_with(&format!("{{\"{name}\":[")), "{}", r.body);
        assert!(serde_json::from_str::<Value>(&r.body).is_err());
    }
    assert_eq!(g.pending_faults(Endpoint::OtherContacts), 0);
    assert_eq!(g.pending_faults(Endpoint::Directory), 0);
    assert_eq!(g.pending_faults(Endpoint::People), 0);
}

#[test]
fn source_endless_pages_never_end() {
    let g = setup();
    g.set_other_contacts(ALICE, vec![other_person(1)]);
    g.set_directory("example.com", vec![profile(1)]);
    let access = connect_sources(&g);
    g.set_sticky_fault(Endpoint::OtherContacts, Some(Fault::EndlessPages));
    g.set_sticky_fault(Endpoint::Directory, Some(Fault::EndlessPages));
    for (name, base, prefix, number) in [
        ("otherContacts", OTHER, "otherContacts/endless", "+1212556"),
        ("people", DIR, "people/8800000", "+1212557"),
    ] {
        let fetch = |q: &str| {
            if name == "people" {
                dir_list(&g, &access, q)
            } else {
                other_list(&g, &access, q)
            }
        };
        let mut tokens = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        let mut query = base.to_string();
        for i in 1..=4u64 {
            let r = fetch(&query);
            assert_eq!(r.status, 200);
            let v = r.json();
            assert!(v.get("nextSyncToken").is_none(), "{v}");
            let people = v[name].as_array().unwrap();
            assert_eq!(people.len(), 1, "{v}");
            let rn = people[0]["resourceName"].as_str().unwrap();
            assert!(rn.starts_with(prefix), "{rn}");
            assert!(names.insert(rn.to_string()), "{rn} again");
            assert!(people[0]["phoneNumbers"][0]["canonicalForm"]
                .as_str()
                .unwrap()
                .starts_with(number));
            if name == "otherContacts" {
                assert_eq!(v["totalSize"], i + 1);
            } else {
                assert!(v.get("totalSize").is_none());
            }
            let t = v["nextPageToken"].as_str().unwrap().to_string();
            assert!(tokens.insert(t.clone()), "{t} again");
            query = format!("{base}&pageToken={t}");
        }
    }
    // The People list is untouched; off again, the real lists end with a sync token.
    assert!(list(&g, &access, FULL).json()["nextSyncToken"].is_string());
    g.set_sticky_fault(Endpoint::OtherContacts, None);
    g.set_sticky_fault(Endpoint::Directory, None);
    let v = other_list(&g, &access, OTHER).json();
    assert_eq!(v["otherContacts"].as_array().unwrap().len(), 1);
    assert!(v["nextSyncToken"].is_string());
    let v = dir_list(&g, &access, DIR).json();
    assert_eq!(v["people"].as_array().unwrap().len(), 1);
    assert!(v["nextSyncToken"].is_string());
}

#[test]
fn consent_page_boxes_for_the_sources() {
    let g = setup();
    let url = sources_auth_url(&g);
    let r = get(&url, &[]);
    assert_eq!(r.status, 200);
    for (id, scope, what) in [
        (
            "contacts.other.readonly",
            CONTACTS_OTHER_READONLY,
            "“Other contacts”",
        ),
        (
            "directory.readonly",
            DIRECTORY_READONLY,
            "Google Workspace directory",
        ),
    ] {
        assert!(
            r.body.contains(&format!(
                "<input type=\"checkbox\" name=\"grant\" id=\"scope-{id}\" value=\"{scope}\" checked>"
            )),
            "{}",
            r.body
        );
        assert!(r.body.contains(what), "{what}");
        assert!(SCOPES_KNOWN.contains(&scope));
    }
    // Posting the form with one box unticked grants the rest.
    let raw_q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(parse_query(url.split_once('?').unwrap().1))
        .finish();
    let r = post_form(
        &format!("{}{DECISION_PATH}", g.base_url()),
        &[
            ("q", raw_q.as_str()),
            ("email", ALICE),
            ("decision", "allow"),
            ("granular", "1"),
            ("grant", DIRECTORY_READONLY),
        ],
        &[],
    );
    assert_eq!(r.status, 302, "{}", r.body);
    let loc = r.header("location").unwrap();
    assert_eq!(
        callback_param(loc.split_once('?').unwrap().1, "scope").unwrap(),
        format!("{CONTACTS_READONLY} {DIRECTORY_READONLY}")
    );
    // approve_unticking takes them in short form, and refuses one that was not asked.
    let q = g
        .approve_unticking(
            &url,
            ALICE,
            &["contacts.other.readonly", DIRECTORY_READONLY],
        )
        .unwrap();
    assert_eq!(callback_param(&q, "scope").unwrap(), CONTACTS_READONLY);
    let e = g
        .approve_unticking(&auth_url(&g), ALICE, &["directory.readonly"])
        .unwrap_err();
    assert!(e.contains("not requested"), "{e}");
}
