//! The People API's contact sources besides the user's own contacts: `otherContacts.list`
//! (`GET /v1/otherContacts`, the people Google saved from the user's interactions) and
//! `people.listDirectoryPeople` (`GET /v1/people:listDirectoryPeople`, the profiles and
//! shared contacts of the user's Google Workspace organisation).
//!
//! Both page and sync as `people.connections.list` does (page tokens bound to the first
//! call's parameters, `nextSyncToken` on the last page only when asked for, deletions as
//! `metadata.deleted` persons in incremental replies, tokens per user that
//! [`FakeGoogle::expire_sync_tokens`] expires), and each takes only its own tokens: a sync or
//! page token of another list is a 400 `INVALID_ARGUMENT`, as a made-up one is.

use super::*;

/// The `readMask` paths `otherContacts.list` takes with `READ_SOURCE_TYPE_CONTACT` (its
/// default and the only source the fake serves); Google refuses the others, `organizations`
/// and `memberships` included.
const OTHER_CONTACTS_MASK: &[&str] = &[
    "emailAddresses",
    "metadata",
    "names",
    "phoneNumbers",
    "photos",
];

const DOMAIN_PROFILE: &str = "DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE";
const DOMAIN_CONTACT: &str = "DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT";

/// Google's words to a consumer account (gmail.com, ...) asking for a directory.
const NOT_WORKSPACE_MESSAGE: &str = "Must be a G Suite domain user.";

/// What differs between the two lists.
struct SourceList {
    kind: ListKind,
    endpoint: Endpoint,
    /// The reply's key for the persons.
    items_key: &'static str,
    /// The only scope that lets the list through.
    scope: &'static str,
    /// The reference page Google's messages point to.
    doc_url: &'static str,
}

const OTHER_CONTACTS: SourceList = SourceList {
    kind: ListKind::OtherContacts,
    endpoint: Endpoint::OtherContacts,
    items_key: "otherContacts",
    scope: CONTACTS_OTHER_READONLY,
    doc_url: "https://developers.google.com/people/api/rest/v1/otherContacts/list",
};

const DIRECTORY: SourceList = SourceList {
    kind: ListKind::Directory,
    endpoint: Endpoint::Directory,
    items_key: "people",
    scope: DIRECTORY_READONLY,
    doc_url: "https://developers.google.com/people/api/rest/v1/people/listDirectoryPeople",
};

/// A request's parameters, parsed and checked.
struct SourceQuery {
    read_mask: Vec<String>,
    sources: Vec<String>,
    page_size: usize,
    page_token: Option<String>,
    sync_token: Option<String>,
    request_sync: bool,
}

fn canonical_source_param(name: &str) -> Option<&'static str> {
    Some(match name {
        "readMask" | "read_mask" => "readMask",
        "pageSize" | "page_size" => "pageSize",
        "pageToken" | "page_token" => "pageToken",
        "requestSyncToken" | "request_sync_token" => "requestSyncToken",
        "syncToken" | "sync_token" => "syncToken",
        "sources" => "sources",
        "mergeSources" | "merge_sources" => "mergeSources",
        "key" | "alt" | "fields" | "prettyPrint" | "quotaUser" | "$.xgafv" | "callback"
        | "uploadType" | "upload_protocol" | "access_token" | "oauth_token" => "ignored",
        _ => return None,
    })
}

fn unknown_param(name: &str) -> Reply {
    let msg = format!(
        "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. Field '{name}' could not be found in request message."
    );
    invalid_argument_field(&msg, name)
}

/// A repeated enum parameter's value that is no name of that enum, in Google's words.
fn bad_enum(field: &str, enum_type: &str, value: &str) -> Reply {
    invalid_argument_field(
        &format!("Invalid value at '{field}' (type.googleapis.com/{enum_type}), \"{value}\""),
        field,
    )
}

/// Reads and checks the query of `list` (the checks Google makes before looking at data).
fn parse_source_query(list: &SourceList, rq: &Request) -> Result<SourceQuery, Reply> {
    let mut read_mask: Vec<String> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut params: HashMap<&'static str, String> = HashMap::new();
    for (k, v) in &rq.query {
        let c = match canonical_source_param(k) {
            Some("mergeSources") if list.kind != ListKind::Directory => None,
            c => c,
        };
        match c {
            None => return Err(unknown_param(k)),
            Some("readMask") => {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    let f = snake_to_camel(f.strip_prefix("person.").unwrap_or(f));
                    let allowed = match list.kind {
                        ListKind::OtherContacts => OTHER_CONTACTS_MASK.contains(&f.as_str()),
                        _ => PERSON_FIELDS.contains(&f.as_str()),
                    };
                    if !allowed {
                        return Err(invalid_argument(&format!(
                            "Invalid readMask path: \"{f}\". Valid paths are documented at {}.",
                            list.doc_url
                        )));
                    }
                    if !read_mask.contains(&f) {
                        read_mask.push(f);
                    }
                }
            }
            // Repeated: every value counts.
            Some("sources") => match (list.kind, v.as_str()) {
                (ListKind::Directory, DOMAIN_PROFILE | DOMAIN_CONTACT) => {
                    if !sources.contains(v) {
                        sources.push(v.clone());
                    }
                }
                (ListKind::Directory, "DIRECTORY_SOURCE_TYPE_UNSPECIFIED") => {}
                (ListKind::Directory, _) => {
                    return Err(bad_enum(
                        "sources",
                        "google.people.v1.DirectorySourceType",
                        v,
                    ));
                }
                (_, "READ_SOURCE_TYPE_CONTACT") => {}
                // Stricter than Google, which then takes more readMask paths: the fake
                // serves no profiles beside other contacts, and the plugin asks for none.
                (_, "READ_SOURCE_TYPE_PROFILE") => {
                    return Err(invalid_argument(
                        "READ_SOURCE_TYPE_PROFILE is not served by the fake Google's otherContacts.list (leave sources out, or send READ_SOURCE_TYPE_CONTACT).",
                    ));
                }
                (_, "READ_SOURCE_TYPE_UNSPECIFIED") => {}
                (_, _) => {
                    return Err(bad_enum("sources", "google.people.v1.ReadSourceType", v));
                }
            },
            // Accepted and without effect: the fake merges nothing into the profiles.
            Some("mergeSources") => {
                if !matches!(
                    v.as_str(),
                    "DIRECTORY_MERGE_SOURCE_TYPE_CONTACT"
                        | "DIRECTORY_MERGE_SOURCE_TYPE_UNSPECIFIED"
                ) {
                    return Err(bad_enum(
                        "merge_sources",
                        "google.people.v1.DirectoryMergeSourceType",
                        v,
                    ));
                }
            }
            Some(c) => {
                params.entry(c).or_insert_with(|| v.clone());
            }
        }
    }
    if read_mask.is_empty() {
        return Err(invalid_argument(&format!(
            "readMask is required. Please specify one or more valid paths. Valid paths are documented at {}.",
            list.doc_url
        )));
    }
    read_mask.sort();
    if list.kind == ListKind::Directory && sources.is_empty() {
        return Err(invalid_argument(&format!(
            "sources is required. Please specify {DOMAIN_PROFILE}, {DOMAIN_CONTACT} or both."
        )));
    }
    sources.sort();
    let page_size = page_size(params.get("pageSize"), DEFAULT_PAGE_SIZE)?;
    let request_sync = match params.get("requestSyncToken").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(v) => {
            return Err(invalid_argument_field(
                &format!("Invalid value at 'request_sync_token' (TYPE_BOOL), \"{v}\""),
                "request_sync_token",
            ));
        }
    };
    Ok(SourceQuery {
        read_mask,
        sources,
        page_size,
        page_token: params.get("pageToken").filter(|s| !s.is_empty()).cloned(),
        sync_token: params.get("syncToken").filter(|s| !s.is_empty()).cloned(),
        request_sync,
    })
}

/// The Workspace domain of a user, if their address is at one.
fn workspace_domain(st: &State, email: &str) -> Option<String> {
    let domain = domain_key(email.rsplit_once('@')?.1);
    st.directories.contains_key(&domain).then_some(domain)
}

/// Whether an entry of the directory is of one of the asked `sources` (a profile or a
/// shared contact, as its resource name says, tombstones included).
fn in_sources(resource_name: &str, sources: &[String]) -> bool {
    let wanted = match source_type(resource_name, true) {
        "DOMAIN_CONTACT" => DOMAIN_CONTACT,
        _ => DOMAIN_PROFILE,
    };
    sources.iter().any(|s| s == wanted)
}

/// `GET /v1/otherContacts`: `readMask` (required; only `emailAddresses`, `metadata`,
/// `names`, `phoneNumbers`, `photos`), `pageSize` (0..=1000, 0 or none: 100),
/// `requestSyncToken`, `syncToken`, `pageToken`, `sources` (`READ_SOURCE_TYPE_CONTACT`
/// only). Replies `{"otherContacts", "nextPageToken", "nextSyncToken", "totalSize"}`, empty
/// `otherContacts` left out. Needs [`CONTACTS_OTHER_READONLY`]: `contacts.readonly` and
/// `contacts` get the 403 `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, as from Google.
pub(super) fn other_contacts_endpoint(st: &mut State, rq: &Request) -> Reply {
    source_endpoint(st, rq, &OTHER_CONTACTS)
}

/// `GET /v1/people:listDirectoryPeople`: `readMask` (required), `sources` (repeated,
/// required: `DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE` for the organisation's users,
/// `DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT` for its shared contacts), `mergeSources` (accepted,
/// no effect), `pageSize`, `requestSyncToken`, `syncToken`, `pageToken`. Replies `{"people",
/// "nextPageToken", "nextSyncToken"}` (no total, as Google). Needs [`DIRECTORY_READONLY`]. A
/// user whose address is not at a Workspace domain ([`FakeGoogle::set_directory`]) gets
/// Google's 400 `FAILED_PRECONDITION` "Must be a G Suite domain user." without details, once
/// the request's parameters are found good.
pub(super) fn directory_endpoint(st: &mut State, rq: &Request) -> Reply {
    source_endpoint(st, rq, &DIRECTORY)
}

fn source_endpoint(st: &mut State, rq: &Request, list: &SourceList) -> Reply {
    if rq.method != "GET" {
        return not_found(&rq.path);
    }
    let email = match authenticate_for(st, rq, list.endpoint, &[list.scope]) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let q = match parse_source_query(list, rq) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let domain = if list.kind == ListKind::Directory {
        match workspace_domain(st, &email) {
            Some(d) => Some(d),
            None => return api_error(400, "FAILED_PRECONDITION", NOT_WORKSPACE_MESSAGE, vec![]),
        }
    } else {
        None
    };

    let (snapshot, offset) = if let Some(pt) = &q.page_token {
        let Some((snap, offset)) = st.source_page_tokens.get(pt).cloned() else {
            return invalid_argument("Request contains an invalid argument.");
        };
        if snap.email != email || snap.kind != list.kind {
            return invalid_argument("Request contains an invalid argument.");
        }
        if snap.read_mask != q.read_mask
            || snap.sources != q.sources
            || snap.sync_token != q.sync_token
            || snap.request_sync != q.request_sync
        {
            return invalid_argument(
                "Parameters other than page_size and page_token must match the call that returned the page token.",
            );
        }
        (snap, offset)
    } else {
        let since = match &q.sync_token {
            None => None,
            Some(t) => {
                let Some(info) = st
                    .sync_tokens
                    .get(t)
                    .filter(|i| i.email == email && i.kind == list.kind)
                else {
                    return invalid_argument("Request contains an invalid argument.");
                };
                if info.expired {
                    return expired_sync_token_at(list.endpoint);
                }
                if info.fields != q.read_mask {
                    return invalid_argument(MUST_MATCH_THE_SYNC_TOKENS_CALL);
                }
                Some(info.seq)
            }
        };
        let empty = BTreeMap::new();
        let entries = match &domain {
            Some(d) => st.directories.get(d),
            None => st.users.get(&email).map(|u| &u.other),
        }
        .unwrap_or(&empty);
        // A full list has the live people; an incremental one every change since the token,
        // deletions included; both in order of change.
        let mut items: Vec<(&String, &Entry)> = entries
            .iter()
            .filter(|(_, e)| match since {
                Some(seq) => e.seq > seq,
                None => e.person.is_some(),
            })
            .filter(|(name, _)| list.kind != ListKind::Directory || in_sources(name, &q.sources))
            .collect();
        items.sort_by_key(|(_, e)| e.seq);
        let snap = SourceSnapshot {
            kind: list.kind,
            email: email.clone(),
            items: items
                .into_iter()
                .map(|(name, e)| Item {
                    resource_name: name.clone(),
                    person: e.person.clone(),
                    group_ids: Vec::new(),
                    updated: e.updated,
                })
                .collect(),
            seq: st.seq,
            read_mask: q.read_mask.clone(),
            sources: q.sources.clone(),
            sync_token: q.sync_token.clone(),
            request_sync: q.request_sync,
        };
        (Arc::new(snap), 0)
    };

    let has = |f: &str| q.read_mask.iter().any(|m| m == f);
    let fields = Fields {
        names: has("names"),
        phones: has("phoneNumbers"),
        organizations: has("organizations"),
        metadata: has("metadata"),
        emails: has("emailAddresses"),
        // Other contacts are in no group; directory people have no memberships of the user's.
        memberships: false,
        directory: list.kind == ListKind::Directory,
    };
    let (start, end) = page_range(st, q.page_size, offset, snapshot.items.len());
    let mut body = Map::new();
    if end < snapshot.items.len() {
        let pt = random_token(60);
        st.source_page_tokens
            .insert(pt.clone(), (Arc::clone(&snapshot), end));
        body.insert("nextPageToken".into(), json!(pt));
    } else if snapshot.request_sync {
        let t = st.new_sync_token_for(list.kind, &email, snapshot.seq, snapshot.read_mask.clone());
        body.insert("nextSyncToken".into(), json!(t));
    }
    if list.kind == ListKind::OtherContacts {
        body.insert("totalSize".into(), json!(snapshot.items.len()));
    }
    let key = list.items_key;
    Reply::json_later(200, move || {
        render_page(&snapshot.items[start..end], &fields, key, body)
    })
}

/// A page of [`Fault::EndlessPages`] on [`Endpoint::OtherContacts`] or
/// [`Endpoint::Directory`]: one new person and a fresh `nextPageToken` on every call, never a
/// `nextSyncToken`.
pub(super) fn endless_source_page(st: &mut State, endpoint: Endpoint) -> Reply {
    let directory = endpoint == Endpoint::Directory;
    let n = if directory {
        st.endless_directory += 1;
        st.endless_directory
    } else {
        st.endless_other += 1;
        st.endless_other
    };
    let (resource_name, exchange, token) = if directory {
        (
            format!("people/8800000{n}"),
            557,
            format!("endless-directory-{n}"),
        )
    } else {
        (
            format!("otherContacts/endless{n}"),
            556,
            format!("endless-other-{n}"),
        )
    };
    let item = endless_item(resource_name, n, exchange);
    let fields = Fields {
        names: true,
        phones: true,
        directory,
        ..Fields::default()
    };
    let person = render_item(&item, &fields);
    Reply::json(
        200,
        &if directory {
            json!({"people": [person], "nextPageToken": token})
        } else {
            json!({"otherContacts": [person], "nextPageToken": token, "totalSize": n + 1})
        },
    )
}
