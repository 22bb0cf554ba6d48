//! Google API error bodies, the People API's `people.connections.list`, and the rendering of
//! a person that every People list shares.

use super::*;

// ---------------------------------------------------------------------------------------------
// Error bodies
// ---------------------------------------------------------------------------------------------

pub(super) fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::oauth(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

pub(super) fn api_error_value(code: u16, error: Value) -> Reply {
    Reply::json(code, &json!({ "error": error }))
}

pub(super) fn api_error(code: u16, status: &str, message: &str, details: Vec<Value>) -> Reply {
    let mut err = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        err["details"] = Value::Array(details);
    }
    api_error_value(code, err)
}

pub(super) fn error_info(reason: &str, domain: &str, metadata: Value) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": domain,
        "metadata": metadata,
    })
}

pub(super) fn help_link(description: &str, url: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": description, "url": url}],
    })
}

pub(super) fn people_metadata() -> Value {
    json!({"service": PEOPLE_SERVICE, "method": LIST_METHOD})
}

/// The ErrorInfo metadata naming the method of that endpoint.
pub(super) fn method_metadata(endpoint: Endpoint) -> Value {
    match endpoint {
        Endpoint::ContactGroups => json!({"service": PEOPLE_SERVICE, "method": GROUPS_METHOD}),
        Endpoint::OtherContacts => {
            json!({"service": PEOPLE_SERVICE, "method": OTHER_CONTACTS_METHOD})
        }
        Endpoint::Directory => json!({"service": PEOPLE_SERVICE, "method": DIRECTORY_METHOD}),
        Endpoint::Calendar => calendar_metadata(),
        _ => people_metadata(),
    }
}

pub(super) fn unauthenticated_at(endpoint: Endpoint, had_credentials: bool) -> Reply {
    let (message, reason, www) = if had_credentials {
        (
            UNAUTHENTICATED_MESSAGE,
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        )
    } else {
        (
            MISSING_CREDENTIALS_MESSAGE,
            "CREDENTIALS_MISSING",
            "Bearer realm=\"https://accounts.google.com/\"",
        )
    };
    let details = vec![error_info(
        reason,
        "googleapis.com",
        method_metadata(endpoint),
    )];
    let reply = if endpoint == Endpoint::Calendar {
        // The Calendar API adds its older `errors` entry, which names the header at fault.
        let (text, why) = if had_credentials {
            ("Invalid Credentials", "authError")
        } else {
            ("Login Required.", "required")
        };
        calendar_error(
            401,
            "UNAUTHENTICATED",
            message,
            vec![json!({
                "message": text,
                "domain": "global",
                "reason": why,
                "location": "Authorization",
                "locationType": "header",
            })],
            details,
        )
    } else {
        api_error(401, "UNAUTHENTICATED", message, details)
    };
    reply.header("WWW-Authenticate", www)
}

/// What Google answers when an API (`service`, named `title` in the console) is not enabled
/// for the project: the message, and the details (ErrorInfo `SERVICE_DISABLED`, the localized
/// message, the activation link). Every API the fake serves words it alike.
pub(super) fn service_disabled(service: &str, title: &str) -> (String, Vec<Value>) {
    let activation = format!(
        "https://console.developers.google.com/apis/api/{service}/overview?project={PROJECT_NUMBER}"
    );
    let message = format!(
        "{title} has not been used in project {PROJECT_NUMBER} before or it is disabled. Enable it by visiting {activation} then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry."
    );
    let details = vec![
        error_info(
            "SERVICE_DISABLED",
            "googleapis.com",
            json!({
                "activationUrl": activation,
                "consumer": format!("projects/{PROJECT_NUMBER}"),
                "containerInfo": PROJECT_NUMBER,
                "service": service,
                "serviceTitle": title,
            }),
        ),
        json!({
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        }),
        help_link("Google developers console API activation", &activation),
    ];
    (message, details)
}

pub(super) fn people_disabled() -> Reply {
    let (message, details) = service_disabled(PEOPLE_SERVICE, "People API");
    api_error(403, "PERMISSION_DENIED", &message, details)
}

/// A sync token sent with other fields than the call that earned it asked for. Google's
/// documentation: "When the pageToken or syncToken is specified, all other request
/// parameters must match the first call"; its exact reply is not documented, so the fake
/// answers as it does for a page token's.
pub(super) const MUST_MATCH_THE_SYNC_TOKENS_CALL: &str =
    "Parameters other than page_size and page_token must match the call that returned the sync token.";

pub(super) fn expired_sync_token() -> Reply {
    expired_sync_token_at(Endpoint::People)
}

pub(super) fn expired_sync_token_at(endpoint: Endpoint) -> Reply {
    api_error(
        400,
        "FAILED_PRECONDITION",
        EXPIRED_SYNC_TOKEN_MESSAGE,
        vec![error_info(
            "EXPIRED_SYNC_TOKEN",
            PEOPLE_SERVICE,
            method_metadata(endpoint),
        )],
    )
}

/// A list endpoint's `pageSize` as Google reads it: absent or 0 is the endpoint's default,
/// over 1000 or negative or not a number is a 400 in Google's words.
pub(super) fn page_size(value: Option<&String>, default: usize) -> Result<usize, Reply> {
    match value.map(|s| s.parse::<i64>()) {
        None | Some(Ok(0)) => Ok(default),
        Some(Err(_)) => Err(invalid_argument_field(
            &format!(
                "Invalid value at 'page_size' (TYPE_INT32), \"{}\"",
                value.map_or("", String::as_str)
            ),
            "page_size",
        )),
        Some(Ok(n)) if n < 0 => Err(invalid_argument(
            "Page size must be greater than or equal to 0.",
        )),
        Some(Ok(n)) if n > MAX_PAGE_SIZE as i64 => Err(invalid_argument(
            "Page size must be less than or equal to 1000.",
        )),
        Some(Ok(n)) => Ok(usize::try_from(n).unwrap_or(default)),
    }
}

pub(super) fn invalid_argument(message: &str) -> Reply {
    api_error(400, "INVALID_ARGUMENT", message, vec![])
}

pub(super) fn invalid_argument_field(message: &str, field: &str) -> Reply {
    api_error(
        400,
        "INVALID_ARGUMENT",
        message,
        vec![json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": field, "description": message}],
        })],
    )
}

pub(super) fn google_html_error(code: u16, title: &str, text: &str) -> Reply {
    Reply::html(
        code,
        format!(
            "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error {code} ({title})!!1</title>\n  <p><b>{code}.</b> <ins>That’s an error.</ins>\n  <p>{text}  <ins>That’s all we know.</ins>\n"
        ),
    )
}

pub(super) fn not_found(path: &str) -> Reply {
    google_html_error(
        404,
        "Not Found",
        &format!(
            "The requested URL <code>{}</code> was not found on this server.",
            html_escape(path)
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// People API
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct Fields {
    pub(super) names: bool,
    pub(super) phones: bool,
    pub(super) organizations: bool,
    pub(super) metadata: bool,
    pub(super) emails: bool,
    pub(super) memberships: bool,
    /// Rendering for `people.listDirectoryPeople`: sources are `DOMAIN_PROFILE` or
    /// `DOMAIN_CONTACT` (see [`source_type`]).
    pub(super) directory: bool,
}

/// The `source.type` Google gives a person's fields: `OTHER_CONTACT` for
/// `otherContacts/…`; in the directory `DOMAIN_CONTACT` for a shared contact (`people/c…`)
/// and `DOMAIN_PROFILE` for a user's profile (`people/` and digits); else `CONTACT`.
pub(super) fn source_type(resource_name: &str, directory: bool) -> &'static str {
    if resource_name.starts_with("otherContacts/") {
        "OTHER_CONTACT"
    } else if directory && resource_name.starts_with("people/c") {
        "DOMAIN_CONTACT"
    } else if directory {
        "DOMAIN_PROFILE"
    } else {
        "CONTACT"
    }
}

pub(super) fn canonical_param(name: &str) -> Option<&'static str> {
    Some(match name {
        "personFields" | "person_fields" => "personFields",
        "pageSize" | "page_size" => "pageSize",
        "pageToken" | "page_token" => "pageToken",
        "requestSyncToken" | "request_sync_token" => "requestSyncToken",
        "syncToken" | "sync_token" => "syncToken",
        "sortOrder" | "sort_order" => "sortOrder",
        "sources" => "sources",
        "requestMask.includeField" | "request_mask.include_field" => "requestMask",
        "key" | "alt" | "fields" | "prettyPrint" | "quotaUser" | "$.xgafv" | "callback"
        | "uploadType" | "upload_protocol" => "ignored",
        _ => return None,
    })
}

pub(super) fn snake_to_camel(s: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in s.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The user behind the request's `Authorization: Bearer` access token, or the 401 (or 403
/// without a contacts scope) Google answers that endpoint with.
pub(super) fn authenticate(st: &State, rq: &Request, endpoint: Endpoint) -> Result<String, Reply> {
    authenticate_for(st, rq, endpoint, &[CONTACTS_READONLY, CONTACTS_FULL])
}

/// The same for an endpoint that needs one of `scopes` (403 without any of them).
pub(super) fn authenticate_for(
    st: &State,
    rq: &Request,
    endpoint: Endpoint,
    scopes: &[&str],
) -> Result<String, Reply> {
    let Some(auth) = rq.header("authorization") else {
        return Err(unauthenticated_at(endpoint, false));
    };
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(unauthenticated_at(endpoint, true)),
    };
    let Some(grant) = st.access_grant(token) else {
        return Err(unauthenticated_at(endpoint, true));
    };
    if !grant.scope.split(' ').any(|s| scopes.contains(&s)) {
        return Err(status_fault(endpoint, 403));
    }
    Ok(grant.email.clone())
}

pub(super) fn people_endpoint(st: &mut State, rq: &Request) -> Reply {
    if rq.method != "GET" {
        return not_found(&rq.path);
    }
    let email = match authenticate(st, rq, Endpoint::People) {
        Ok(e) => e,
        Err(r) => return r,
    };

    // Parameters.
    let mut person_fields: Vec<String> = Vec::new();
    let mut params: HashMap<&'static str, String> = HashMap::new();
    for (k, v) in &rq.query {
        let Some(c) = canonical_param(k) else {
            let msg = format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot bind query parameter. Field '{k}' could not be found in request message."
            );
            return invalid_argument_field(&msg, k);
        };
        if c == "personFields" {
            for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                let f = snake_to_camel(f.strip_prefix("person.").unwrap_or(f));
                if !PERSON_FIELDS.contains(&f.as_str()) {
                    return invalid_argument(&format!(
                        "Invalid personFields mask path: \"{f}\". Valid paths are documented at https://developers.google.com/people/api/rest/v1/people/get."
                    ));
                }
                if !person_fields.contains(&f) {
                    person_fields.push(f);
                }
            }
        } else {
            params.entry(c).or_insert_with(|| v.clone());
        }
    }
    if person_fields.is_empty() {
        return invalid_argument(
            "personFields mask is required. Please specify one or more valid paths. Valid paths are documented at https://developers.google.com/people/api/rest/v1/people.connections/list.",
        );
    }
    person_fields.sort();
    let page_size = match page_size(params.get("pageSize"), DEFAULT_PAGE_SIZE) {
        Ok(n) => n,
        Err(reply) => return reply,
    };
    let request_sync = match params.get("requestSyncToken").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(v) => {
            return invalid_argument_field(
                &format!("Invalid value at 'request_sync_token' (TYPE_BOOL), \"{v}\""),
                "request_sync_token",
            );
        }
    };
    let sort = params
        .get("sortOrder")
        .cloned()
        .unwrap_or_else(|| "LAST_MODIFIED_ASCENDING".into());
    if ![
        "LAST_MODIFIED_ASCENDING",
        "LAST_MODIFIED_DESCENDING",
        "FIRST_NAME_ASCENDING",
        "LAST_NAME_ASCENDING",
    ]
    .contains(&sort.as_str())
    {
        return invalid_argument_field(
            &format!(
                "Invalid value at 'sort_order' (type.googleapis.com/google.people.v1.ListConnectionsRequest.SortOrder), \"{sort}\""
            ),
            "sort_order",
        );
    }
    let sync_token = params.get("syncToken").filter(|s| !s.is_empty()).cloned();
    let fields = Fields {
        names: person_fields.iter().any(|f| f == "names"),
        phones: person_fields.iter().any(|f| f == "phoneNumbers"),
        organizations: person_fields.iter().any(|f| f == "organizations"),
        metadata: person_fields.iter().any(|f| f == "metadata"),
        emails: person_fields.iter().any(|f| f == "emailAddresses"),
        memberships: person_fields.iter().any(|f| f == "memberships"),
        directory: false,
    };

    // The snapshot to page through.
    let (snapshot, offset) = if let Some(pt) = params.get("pageToken").filter(|s| !s.is_empty()) {
        let Some((snap, offset)) = st.page_tokens.get(pt).cloned() else {
            return invalid_argument("Request contains an invalid argument.");
        };
        if snap.email != email {
            return invalid_argument("Request contains an invalid argument.");
        }
        if snap.person_fields != person_fields
            || snap.sync_token != sync_token
            || snap.request_sync != request_sync
        {
            return invalid_argument(
                "Parameters other than page_size and page_token must match the call that returned the page token.",
            );
        }
        (snap, offset)
    } else {
        let Some(user) = st.users.get(&email) else {
            return invalid_argument("Request contains an invalid argument.");
        };
        let items: Vec<(&String, &Entry)> = if let Some(t) = &sync_token {
            let Some(info) = st
                .sync_tokens
                .get(t)
                .filter(|i| i.email == email && i.kind == ListKind::Connections)
            else {
                return invalid_argument("Request contains an invalid argument.");
            };
            if info.expired {
                return expired_sync_token();
            }
            if info.fields != person_fields {
                return invalid_argument(MUST_MATCH_THE_SYNC_TOKENS_CALL);
            }
            let since = info.seq;
            let mut v: Vec<_> = user
                .contacts
                .iter()
                .filter(|(_, e)| e.seq > since)
                .collect();
            v.sort_by_key(|(_, e)| e.seq);
            v
        } else {
            let mut v: Vec<_> = user
                .contacts
                .iter()
                .filter(|(_, e)| e.person.is_some())
                .collect();
            match sort.as_str() {
                "LAST_MODIFIED_DESCENDING" => v.sort_by_key(|(_, e)| std::cmp::Reverse(e.seq)),
                "FIRST_NAME_ASCENDING" => v.sort_by_key(|(_, e)| {
                    e.person
                        .as_ref()
                        .map(|p| (p.given.to_lowercase(), p.family.to_lowercase()))
                }),
                "LAST_NAME_ASCENDING" => v.sort_by_key(|(_, e)| {
                    e.person
                        .as_ref()
                        .map(|p| (p.family.to_lowercase(), p.given.to_lowercase()))
                }),
                _ => v.sort_by_key(|(_, e)| e.seq),
            }
            v
        };
        let snap = Snapshot {
            email: email.clone(),
            items: items
                .into_iter()
                .map(|(name, e)| Item {
                    resource_name: name.clone(),
                    person: e.person.clone(),
                    group_ids: e
                        .person
                        .as_ref()
                        .map(|p| user.group_ids(p))
                        .unwrap_or_default(),
                    updated: e.updated,
                })
                .collect(),
            seq: st.seq,
            person_fields: person_fields.clone(),
            sync_token: sync_token.clone(),
            request_sync,
        };
        (Arc::new(snap), 0)
    };

    let (start, end) = page_range(st, page_size, offset, snapshot.items.len());
    let mut body = Map::new();
    if end < snapshot.items.len() {
        let pt = random_token(60);
        st.page_tokens
            .insert(pt.clone(), (Arc::clone(&snapshot), end));
        body.insert("nextPageToken".into(), json!(pt));
    } else if snapshot.request_sync {
        let t = st.new_sync_token(&email, snapshot.seq, snapshot.person_fields.clone());
        body.insert("nextSyncToken".into(), json!(t));
    }
    body.insert("totalPeople".into(), json!(snapshot.items.len()));
    body.insert("totalItems".into(), json!(snapshot.items.len()));
    Reply::json_later(200, move || {
        render_page(&snapshot.items[start..end], &fields, "connections", body)
    })
}

/// Where a page of `len` items starts and ends: `page_size` asked, capped by the fake's
/// `set_page_size_cap`, from `offset`.
pub(super) fn page_range(
    st: &State,
    page_size: usize,
    offset: usize,
    len: usize,
) -> (usize, usize) {
    let size = st.page_size_cap.map_or(page_size, |cap| page_size.min(cap));
    let end = (offset + size).min(len);
    (offset.min(end), end)
}

/// A page's JSON: `body` with the people of `items` under `key` (none: no key, as Google
/// leaves it out). Made outside the state's lock (see `Reply::json_later`).
pub(super) fn render_page(
    items: &[Item],
    fields: &Fields,
    key: &str,
    mut body: Map<String, Value>,
) -> Value {
    let people: Vec<Value> = items.iter().map(|item| render_item(item, fields)).collect();
    if !people.is_empty() {
        body.insert(key.into(), Value::Array(people));
    }
    Value::Object(body)
}

/// The `n`th person of endless pages ([`Fault::EndlessPages`]): a name and a valid-looking
/// US number in the `exchange`, unique for the first 10,000 pages.
pub(super) fn endless_item(resource_name: String, n: u64, exchange: u16) -> Item {
    let last4 = n % 10_000;
    let person = Person::new(&resource_name, "Endless", &format!("Page{n}")).with_phone_canonical(
        &format!("(212) {exchange}-{last4:04}"),
        &format!("+1212{exchange}{last4:04}"),
        "mobile",
    );
    Item {
        resource_name,
        person: Some(person),
        group_ids: Vec::new(),
        updated: SystemTime::now(),
    }
}

/// A page of [`Fault::EndlessPages`]: one new person and a fresh `nextPageToken` on every
/// call, never a `nextSyncToken`.
pub(super) fn endless_page(st: &mut State) -> Reply {
    st.endless += 1;
    let n = st.endless;
    let item = endless_item(format!("people/endless{n}"), n, 555);
    let fields = Fields {
        names: true,
        phones: true,
        ..Fields::default()
    };
    Reply::json(
        200,
        &json!({
            "connections": [render_item(&item, &fields)],
            "nextPageToken": format!("endless-{n}"),
            "totalPeople": n + 1,
            "totalItems": n + 1,
        }),
    )
}

pub(super) fn digest(data: &str) -> [u8; 32] {
    Sha256::digest(data.as_bytes()).into()
}

pub(super) fn render_item(item: &Item, fields: &Fields) -> Value {
    // Memberships name groups by id, so a group's rename changes no person's etag.
    let without_group_names = item.person.clone().map(|mut p| {
        p.groups.clear();
        p
    });
    let hash = digest(&format!(
        "{}|{:?}|{:?}",
        item.resource_name, without_group_names, item.group_ids
    ));
    let etag = format!(
        "%{}",
        base64::engine::general_purpose::STANDARD.encode(&hash[..18])
    );
    let Some(p) = &item.person else {
        return json!({
            "resourceName": item.resource_name,
            "etag": etag,
            "metadata": {"deleted": true},
        });
    };
    let kind = source_type(&item.resource_name, fields.directory);
    // A profile's source id is the person's own number; a contact's a hex id of its own.
    let source_id: String = match item.resource_name.strip_prefix("people/") {
        Some(n) if kind == "DOMAIN_PROFILE" => n.to_string(),
        _ => digest(&item.resource_name)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    };
    let source = json!({"type": kind, "id": source_id});
    let mut v = Map::new();
    v.insert("resourceName".into(), json!(p.resource_name));
    v.insert("etag".into(), json!(etag));
    if fields.metadata {
        let mut src = json!({
            "type": kind,
            "id": source_id,
            "etag": format!("#{}", base64::engine::general_purpose::STANDARD.encode(&hash[18..27])),
            "updateTime": rfc3339(item.updated),
        });
        if kind == "DOMAIN_PROFILE" {
            src["profileMetadata"] =
                json!({"objectType": "PERSON", "userTypes": ["GOOGLE_USER", "GOOGLE_APPS_USER"]});
        }
        v.insert(
            "metadata".into(),
            json!({"sources": [src], "objectType": "PERSON"}),
        );
    }
    if fields.names && !(p.display.is_empty() && p.given.is_empty() && p.family.is_empty()) {
        let display = if p.display.is_empty() {
            format!("{} {}", p.given, p.family).trim().to_string()
        } else {
            p.display.clone()
        };
        let last_first = match (p.family.is_empty(), p.given.is_empty()) {
            (false, false) => format!("{}, {}", p.family, p.given),
            _ => display.clone(),
        };
        let mut n = Map::new();
        n.insert(
            "metadata".into(),
            json!({"primary": true, "source": source}),
        );
        n.insert("displayName".into(), json!(display));
        if !p.family.is_empty() {
            n.insert("familyName".into(), json!(p.family));
        }
        if !p.given.is_empty() {
            n.insert("givenName".into(), json!(p.given));
        }
        n.insert("displayNameLastFirst".into(), json!(last_first));
        n.insert("unstructuredName".into(), json!(display));
        v.insert("names".into(), json!([n]));
    }
    if fields.phones && !p.phones.is_empty() {
        let phones: Vec<Value> = p
            .phones
            .iter()
            .enumerate()
            .map(|(i, ph)| {
                let mut m = Map::new();
                let meta = if i == 0 {
                    json!({"primary": true, "source": source})
                } else {
                    json!({"source": source})
                };
                m.insert("metadata".into(), meta);
                m.insert("value".into(), json!(ph.value));
                if let Some(c) = &ph.canonical {
                    m.insert("canonicalForm".into(), json!(c));
                }
                if !ph.kind.is_empty() {
                    m.insert("type".into(), json!(ph.kind));
                    m.insert("formattedType".into(), json!(formatted_type(&ph.kind)));
                }
                Value::Object(m)
            })
            .collect();
        v.insert("phoneNumbers".into(), Value::Array(phones));
    }
    if fields.organizations {
        if let Some(c) = p.company.as_ref().filter(|c| !c.is_empty()) {
            v.insert(
                "organizations".into(),
                json!([{"metadata": {"primary": true, "source": source}, "name": c}]),
            );
        }
    }
    if fields.emails && !p.emails.is_empty() {
        let emails: Vec<Value> = p
            .emails
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let meta = if i == 0 {
                    json!({"primary": true, "source": source})
                } else {
                    json!({"source": source})
                };
                // Google saves other contacts' addresses from mail, without a type.
                if kind == "OTHER_CONTACT" {
                    json!({"metadata": meta, "value": e})
                } else {
                    json!({"metadata": meta, "value": e, "type": "work", "formattedType": "Work"})
                }
            })
            .collect();
        v.insert("emailAddresses".into(), Value::Array(emails));
    }
    if fields.memberships {
        // The user's groups, then the system group every contact is in; never `starred`.
        let memberships: Vec<Value> = item
            .group_ids
            .iter()
            .map(String::as_str)
            .chain(std::iter::once("myContacts"))
            .map(|id| {
                json!({
                    "metadata": {"source": source},
                    "contactGroupMembership": {
                        "contactGroupId": id,
                        "contactGroupResourceName": format!("contactGroups/{id}"),
                    },
                })
            })
            .collect();
        v.insert("memberships".into(), Value::Array(memberships));
    }
    Value::Object(v)
}

pub(super) fn formatted_type(kind: &str) -> String {
    match kind {
        "mobile" => "Mobile",
        "work" => "Work",
        "home" => "Home",
        "main" => "Main",
        "homeFax" => "Home Fax",
        "workFax" => "Work Fax",
        "otherFax" => "Other Fax",
        "pager" => "Pager",
        "workMobile" => "Work Mobile",
        "workPager" => "Work Pager",
        "googleVoice" => "Google Voice",
        "other" => "Other",
        custom => custom,
    }
    .to_string()
}
