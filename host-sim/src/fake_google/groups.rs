//! The People API's `contactGroups.list`: the user's own groups (labels) and the system groups.

use super::*;

/// The system groups every account has, in the order Google lists them (after the user's
/// own groups), with their English `formattedName`.
pub(super) const SYSTEM_GROUPS: &[(&str, &str)] = &[
    ("chatBuddies", "Chat contacts"),
    ("all", "All Contacts"),
    ("myContacts", "My Contacts"),
    ("friends", "Friends"),
    ("family", "Family"),
    ("coworkers", "Coworkers"),
    ("blocked", "Blocked"),
    ("starred", "Starred"),
];

fn canonical_group_param(name: &str) -> Option<&'static str> {
    Some(match name {
        "pageSize" | "page_size" => "pageSize",
        "pageToken" | "page_token" => "pageToken",
        "syncToken" | "sync_token" => "syncToken",
        "groupFields" | "group_fields" => "groupFields",
        "key" | "alt" | "fields" | "prettyPrint" | "quotaUser" | "$.xgafv" | "callback"
        | "uploadType" | "upload_protocol" | "access_token" | "oauth_token" => "ignored",
        _ => return None,
    })
}

/// A user group as `contactGroups.list` shows it. `memberCount` is left out when 0, as Google
/// leaves out zero values.
fn render_group(g: &Group, members: usize) -> Value {
    let hash = digest(&format!("{}|{}|{}", g.id, g.name, g.version));
    let mut v = Map::new();
    v.insert(
        "resourceName".into(),
        json!(format!("contactGroups/{}", g.id)),
    );
    v.insert(
        "etag".into(),
        json!(base64::engine::general_purpose::STANDARD.encode(&hash[..8])),
    );
    v.insert("metadata".into(), json!({"updateTime": rfc3339(g.updated)}));
    v.insert("groupType".into(), json!("USER_CONTACT_GROUP"));
    v.insert("name".into(), json!(g.name));
    v.insert("formattedName".into(), json!(g.name));
    if members > 0 {
        v.insert("memberCount".into(), json!(members));
    }
    Value::Object(v)
}

/// A system group: Google gives these neither an etag nor metadata.
fn render_system_group(id: &str, formatted: &str, members: usize) -> Value {
    let mut v = Map::new();
    v.insert("resourceName".into(), json!(format!("contactGroups/{id}")));
    v.insert("groupType".into(), json!("SYSTEM_CONTACT_GROUP"));
    v.insert("name".into(), json!(id));
    v.insert("formattedName".into(), json!(formatted));
    if members > 0 {
        v.insert("memberCount".into(), json!(members));
    }
    Value::Object(v)
}

/// Every group of a full list: the user's own, oldest first, then the system groups.
fn all_groups(user: Option<&User>) -> Vec<Value> {
    let Some(user) = user else {
        return SYSTEM_GROUPS
            .iter()
            .map(|(id, f)| render_system_group(id, f, 0))
            .collect();
    };
    let live = user.live_people().count();
    let mut out: Vec<Value> = user
        .groups
        .iter()
        .map(|g| render_group(g, user.member_count(&g.name)))
        .collect();
    for (id, formatted) in SYSTEM_GROUPS {
        let members = match *id {
            "all" | "myContacts" => live,
            _ => 0,
        };
        out.push(render_system_group(id, formatted, members));
    }
    out
}

/// `GET /v1/contactGroups`: `pageSize` (1..=1000, 0 or none: 30), `pageToken`, `syncToken`
/// (only groups created or renamed since), `groupFields` (accepted, not applied). The last
/// page carries a `nextSyncToken`, asked for or not, as Google does.
pub(super) fn contact_groups_endpoint(st: &mut State, rq: &Request) -> Reply {
    if rq.method != "GET" {
        return not_found(&rq.path);
    }
    let email = match authenticate(st, rq, Endpoint::ContactGroups) {
        Ok(e) => e,
        Err(r) => return r,
    };

    let mut params: HashMap<&'static str, String> = HashMap::new();
    for (k, v) in &rq.query {
        let Some(c) = canonical_group_param(k) else {
            let msg = format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot bind query parameter. Field '{k}' could not be found in request message."
            );
            return invalid_argument_field(&msg, k);
        };
        params.entry(c).or_insert_with(|| v.clone());
    }
    let page_size = match page_size(params.get("pageSize"), DEFAULT_GROUPS_PAGE_SIZE) {
        Ok(n) => n,
        Err(reply) => return reply,
    };
    let sync_token = params.get("syncToken").filter(|s| !s.is_empty()).cloned();

    let (snapshot, offset) = if let Some(pt) = params.get("pageToken").filter(|s| !s.is_empty()) {
        let Some((snap, offset)) = st.group_page_tokens.get(pt).cloned() else {
            return invalid_argument("Request contains an invalid argument.");
        };
        if snap.email != email {
            return invalid_argument("Request contains an invalid argument.");
        }
        if snap.sync_token != sync_token {
            return invalid_argument(
                "Parameters other than page_size and page_token must match the call that returned the page token.",
            );
        }
        (snap, offset)
    } else {
        let user = st.users.get(&email);
        let groups = if let Some(t) = &sync_token {
            let Some(info) = st
                .sync_tokens
                .get(t)
                .filter(|i| i.email == email && i.kind == ListKind::Groups)
            else {
                return invalid_argument("Request contains an invalid argument.");
            };
            if info.expired {
                return expired_sync_token_at(Endpoint::ContactGroups);
            }
            let since = info.seq;
            user.map_or_else(Vec::new, |u| {
                u.groups
                    .iter()
                    .filter(|g| g.seq > since)
                    .map(|g| render_group(g, u.member_count(&g.name)))
                    .collect()
            })
        } else {
            all_groups(user)
        };
        let snap = GroupSnapshot {
            email: email.clone(),
            groups,
            seq: st.seq,
            sync_token: sync_token.clone(),
        };
        (Arc::new(snap), 0)
    };

    let size = st.page_size_cap.map_or(page_size, |cap| page_size.min(cap));
    let end = (offset + size).min(snapshot.groups.len());
    let start = offset.min(end);
    let mut body = Map::new();
    if start < end {
        body.insert(
            "contactGroups".into(),
            Value::Array(snapshot.groups[start..end].to_vec()),
        );
    }
    body.insert("totalItems".into(), json!(snapshot.groups.len()));
    if end < snapshot.groups.len() {
        let pt = random_token(60);
        st.group_page_tokens
            .insert(pt.clone(), (Arc::clone(&snapshot), end));
        body.insert("nextPageToken".into(), json!(pt));
    } else {
        let t = st.new_groups_sync_token(&email, snapshot.seq);
        body.insert("nextSyncToken".into(), json!(t));
    }
    Reply::json(200, &Value::Object(body))
}

/// A page of [`Fault::EndlessPages`] on [`Endpoint::ContactGroups`]: one new user group and a
/// fresh `nextPageToken` on every call, never a `nextSyncToken`.
pub(super) fn endless_groups_page(st: &mut State) -> Reply {
    st.endless_groups += 1;
    let n = st.endless_groups;
    let group = Group {
        id: format!("e{n:x}"),
        name: format!("Endless {n}"),
        seq: 0,
        updated: SystemTime::now(),
        version: 1,
    };
    Reply::json(
        200,
        &json!({
            "contactGroups": [render_group(&group, 1)],
            "totalItems": n + 1,
            "nextPageToken": format!("endless-groups-{n}"),
        }),
    )
}
