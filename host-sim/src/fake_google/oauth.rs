//! The OAuth 2.0 authorization page, token and revocation endpoints.

use super::*;

// ---------------------------------------------------------------------------------------------
// Authorization endpoint
// ---------------------------------------------------------------------------------------------

pub(super) struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    challenge: String,
    offline: bool,
    prompt_consent: bool,
    login_hint: Option<String>,
}

impl AuthRequest {
    /// The requested scopes, in full, in the order asked, without repeats.
    pub(super) fn scopes(&self) -> Vec<String> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// An error Google shows on its own page (it does not redirect for these).
pub(super) struct AuthError {
    code: u16,
    error: &'static str,
    detail: String,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error {}: {} - {}", self.code, self.error, self.detail)
    }
}

pub(super) fn auth_err(code: u16, error: &'static str, detail: impl Into<String>) -> AuthError {
    AuthError {
        code,
        error,
        detail: detail.into(),
    }
}

pub(super) fn validate_auth(
    st: &State,
    pairs: &[(String, String)],
) -> Result<AuthRequest, AuthError> {
    let bad = |d: String| auth_err(400, "invalid_request", d);
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(bad(format!("Parameter not allowed to be repeated: {k}")));
        }
    }
    let get = |k: &str| first(pairs, k).filter(|v| !v.is_empty());
    let client_id =
        get("client_id").ok_or_else(|| bad("Missing required parameter: client_id".into()))?;
    let client = st
        .clients
        .get(client_id)
        .ok_or_else(|| auth_err(401, "invalid_client", "The OAuth client was not found."))?;
    let redirect_uri = get("redirect_uri")
        .ok_or_else(|| bad("Missing required parameter: redirect_uri".into()))?;
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(auth_err(
            400,
            "redirect_uri_mismatch",
            format!(
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. If you're the app developer, register the redirect URI in the Google Cloud Console. Request details: redirect_uri={redirect_uri}"
            ),
        ));
    }
    if let Some((k, _)) = pairs
        .iter()
        .find(|(k, _)| !AUTH_PARAMS.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "Parameter not allowed for this message type: {k}"
        )));
    }
    match get("response_type") {
        None => return Err(bad("Required parameter is missing: response_type".into())),
        Some("code") => {}
        Some(other) => {
            return Err(auth_err(
                400,
                "unsupported_response_type",
                format!("Invalid response_type: {other}"),
            ));
        }
    }
    let scope_raw = get("scope").ok_or_else(|| bad("Missing required parameter: scope".into()))?;
    let mut scopes: Vec<String> = Vec::new();
    let mut invalid: Vec<&str> = Vec::new();
    for s in scope_raw.split(' ').filter(|s| !s.is_empty()) {
        let full = match s {
            "email" => "https://www.googleapis.com/auth/userinfo.email",
            "profile" => "https://www.googleapis.com/auth/userinfo.profile",
            other => other,
        };
        if SCOPES_KNOWN.contains(&full) {
            if !scopes.iter().any(|x| x == full) {
                scopes.push(full.to_string());
            }
        } else {
            invalid.push(s);
        }
    }
    if !invalid.is_empty() {
        return Err(auth_err(
            400,
            "invalid_scope",
            format!(
                "Some requested scopes were invalid. {{invalid=[{}]}}",
                invalid.join(", ")
            ),
        ));
    }
    if !scopes.iter().any(|s| s == CONTACTS_READONLY) {
        return Err(auth_err(
            400,
            "invalid_scope",
            format!("the scope does not include {CONTACTS_READONLY} (the fake requires it)"),
        ));
    }
    let offline = match get("access_type") {
        None | Some("online") => false,
        Some("offline") => true,
        Some(other) => return Err(bad(format!("Invalid access_type: {other}"))),
    };
    let mut prompt_consent = false;
    if let Some(p) = get("prompt") {
        for v in p.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "consent" => prompt_consent = true,
                "select_account" => {}
                "none" => {
                    return Err(bad(
                        "prompt=none cannot be used: the fake always shows its consent page".into(),
                    ));
                }
                other => return Err(bad(format!("Invalid prompt: {other}"))),
            }
        }
    }
    if let Some(v) = get("include_granted_scopes") {
        if v != "true" && v != "false" {
            return Err(bad(format!("Invalid include_granted_scopes: {v}")));
        }
    }
    let challenge = get("code_challenge").ok_or_else(|| {
        bad("Missing required parameter: code_challenge (the fake requires PKCE)".into())
    })?;
    match get("code_challenge_method") {
        Some("S256") => {}
        None => {
            return Err(bad(
                "Missing code_challenge_method: Google would assume plain; the fake requires S256"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(bad(format!(
                "Invalid code_challenge_method: {other} (the fake requires S256)"
            )));
        }
    }
    if !pkce_shaped(challenge) || challenge.len() != 43 {
        return Err(bad(
            "Invalid code_challenge: an S256 challenge is 43 characters of base64url".into(),
        ));
    }
    let state = get("state")
        .ok_or_else(|| bad("Missing parameter: state (the fake requires it)".into()))?;
    Ok(AuthRequest {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        scope: scopes.join(" "),
        state: state.to_string(),
        challenge: challenge.to_string(),
        offline,
        prompt_consent,
        login_hint: get("login_hint").map(str::to_string),
    })
}

/// Returns (redirect_uri, callback query). `granted` says which of the requested scopes the
/// user left ticked; the grant (and the callback's `scope`) has only those.
pub(super) fn approve_locked(
    st: &mut State,
    pairs: &[(String, String)],
    email: &str,
    granted: &dyn Fn(&str) -> bool,
) -> Result<(String, String), String> {
    let mut ar = validate_auth(st, pairs).map_err(|e| e.to_string())?;
    ar.scope = ar
        .scopes()
        .into_iter()
        .filter(|s| granted(s))
        .collect::<Vec<_>>()
        .join(" ");
    if !st.users.contains_key(email) {
        return Err(format!(
            "unknown Google account {email}: add it with add_user first"
        ));
    }
    let has_refresh = st.grants.values().any(|g| {
        g.alive && g.email == email && g.client_id == ar.client_id && g.refresh_token.is_some()
    });
    let issue_refresh = ar.offline && (ar.prompt_consent || !has_refresh);
    let code = format!("4/0A{}", random_token(70));
    st.codes.insert(
        code.clone(),
        CodeGrant {
            client_id: ar.client_id,
            redirect_uri: ar.redirect_uri.clone(),
            email: email.to_string(),
            scope: ar.scope.clone(),
            challenge: ar.challenge,
            issued: Instant::now(),
            used: false,
            issue_refresh,
        },
    );
    let query = format!(
        "state={}&code={}&scope={}&authuser=0&prompt=consent",
        google_encode(&ar.state),
        google_encode(&code),
        google_encode(&ar.scope)
    );
    Ok((ar.redirect_uri, query))
}

pub(super) fn deny_locked(
    st: &State,
    pairs: &[(String, String)],
) -> Result<(String, String), String> {
    let ar = validate_auth(st, pairs).map_err(|e| e.to_string())?;
    Ok((
        ar.redirect_uri,
        format!("state={}&error=access_denied", google_encode(&ar.state)),
    ))
}

pub(super) fn auth_error_page(e: &AuthError) -> Reply {
    let head = if e.code == 401 || e.error == "redirect_uri_mismatch" {
        "Access blocked: This app’s request is invalid"
    } else {
        "Access blocked: Authorization Error"
    };
    Reply::html(
        e.code,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error {code}: {error}</title></head>\n<body>\n<h1 id=\"blocked\">{head}</h1>\n<h2 id=\"error\">Error {code}: {error}</h2>\n<p id=\"error-detail\">{detail}</p>\n</body></html>\n",
            code = e.code,
            error = e.error,
            detail = html_escape(&e.detail),
        ),
    )
}

/// What Google's consent screen says a scope lets the app do.
fn scope_description(scope: &str) -> &str {
    match scope {
        CONTACTS_READONLY => "See and download your contacts",
        CONTACTS_FULL => "See, edit, download, and permanently delete your contacts",
        CONTACTS_OTHER_READONLY => {
            "See and download contact info automatically saved in your “Other contacts”"
        }
        DIRECTORY_READONLY => {
            "See and download your organization’s Google Workspace directory"
        }
        CALENDAR_FREEBUSY => "View your availability in your calendars",
        CALENDAR_READONLY => {
            "See and download any calendar you can access using your Google Calendar"
        }
        CALENDAR_FULL => {
            "See, edit, share, and permanently delete all the calendars you can access using Google Calendar"
        }
        "https://www.googleapis.com/auth/userinfo.email" => {
            "See your primary Google Account email address"
        }
        "https://www.googleapis.com/auth/userinfo.profile" => {
            "See your personal info, including any personal info you’ve made publicly available"
        }
        "openid" => "Associate you with your personal info on Google",
        other => other,
    }
}

pub(super) fn consent_page(st: &State, pairs: &[(String, String)]) -> Reply {
    let ar = match validate_auth(st, pairs) {
        Ok(ar) => ar,
        Err(e) => return auth_error_page(&e),
    };
    let raw_query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut users = String::new();
    for (i, (email, u)) in st.users.iter().enumerate() {
        let checked = match &ar.login_hint {
            Some(h) => h == email,
            None => i == 0,
        };
        let _ = writeln!(
            users,
            "<li><label><input type=\"radio\" name=\"email\" id=\"user-{e}\" value=\"{e}\"{c}> {n} &lt;{e}&gt;</label></li>",
            e = html_escape(email),
            n = html_escape(&u.display_name),
            c = if checked { " checked" } else { "" },
        );
    }
    if users.is_empty() {
        users.push_str("<li id=\"no-users\">No Google accounts (add one with add_user)</li>\n");
    }
    // Granular consent: every scope but contacts.readonly (which the fake always grants on
    // this page) has a ticked box the user may untick; `decision` grants the ticked ones.
    let mut choices = String::new();
    for scope in ar.scopes() {
        let what = html_escape(scope_description(&scope));
        if scope == CONTACTS_READONLY {
            let _ = writeln!(choices, "<li id=\"scope-contacts.readonly\">{what}</li>");
            continue;
        }
        let short = scope
            .strip_prefix("https://www.googleapis.com/auth/")
            .unwrap_or(&scope);
        let _ = writeln!(
            choices,
            "<li><label><input type=\"checkbox\" name=\"grant\" id=\"scope-{id}\" value=\"{s}\" checked> {what}</label></li>",
            id = html_escape(short),
            s = html_escape(&scope),
        );
    }
    Reply::html(
        200,
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Google Accounts</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}ul{{list-style:none;padding:0}}</style></head>
<body>
<h1>Choose an account</h1>
<p>to continue to <b id="client">{client}</b></p>
<form id="consent" method="post" action="{action}">
<input type="hidden" name="q" value="{q}">
<ul id="users">
{users}</ul>
<p id="scopes">This app wants to: {scope}</p>
<input type="hidden" name="granular" value="1">
<ul id="scope-choices">
{choices}</ul>
<button type="submit" id="allow" name="decision" value="allow">Allow</button>
<button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form>
</body></html>
"#,
            client = html_escape(&ar.client_id),
            action = DECISION_PATH,
            q = html_escape(&raw_query),
            scope = html_escape(&ar.scope),
        ),
    )
}

pub(super) fn decision(st: &mut State, form: &[(String, String)]) -> Reply {
    let pairs = parse_query(first(form, "q").unwrap_or(""));
    // Only a form with the scope boxes (`granular`) can untick: a post without it (an older
    // page, a test posting by hand) grants everything asked, as before.
    let granular = first(form, "granular").is_some();
    let granted = |scope: &str| {
        !granular
            || scope == CONTACTS_READONLY
            || form.iter().any(|(k, v)| k == "grant" && v == scope)
    };
    let result = match first(form, "decision") {
        Some("allow") => match first(form, "email") {
            Some(email) => approve_locked(st, &pairs, email, &granted),
            None => Err("Choose an account".to_string()),
        },
        Some("deny") => deny_locked(st, &pairs),
        _ => Err("Missing decision".to_string()),
    };
    match result {
        Ok((redirect_uri, query)) => {
            let sep = if redirect_uri.contains('?') { '&' } else { '?' };
            Reply::redirect(&format!("{redirect_uri}{sep}{query}"))
        }
        Err(text) => auth_error_page(&auth_err(400, "invalid_request", text)),
    }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

pub(super) fn client_credentials(rq: &Request) -> Result<(Option<String>, Option<String>), Reply> {
    let mut id = rq.form_param("client_id").map(str::to_string);
    let mut secret = rq.form_param("client_secret").map(str::to_string);
    if let Some(auth) = rq.header("authorization") {
        if auth.len() > 6 && auth[..6].eq_ignore_ascii_case("basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth[6..].trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| oauth_error(400, "invalid_request", "Bad Request"))?;
            let (u, p) = decoded
                .split_once(':')
                .ok_or_else(|| oauth_error(400, "invalid_request", "Bad Request"))?;
            let (u, p) = (form_decode(u), form_decode(p));
            if id.as_deref().is_some_and(|b| b != u) {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "client_id in the body and in the Authorization header differ.",
                ));
            }
            id = Some(u);
            secret = Some(p);
        }
    }
    Ok((id, secret))
}

pub(super) fn authenticate_client(st: &State, rq: &Request) -> Result<Client, Reply> {
    let (id, secret) = client_credentials(rq)?;
    let id = id.filter(|s| !s.is_empty()).ok_or_else(|| {
        oauth_error(
            400,
            "invalid_request",
            "Could not determine client ID from request.",
        )
    })?;
    let client = st
        .clients
        .get(&id)
        .ok_or_else(|| oauth_error(401, "invalid_client", "The OAuth client was not found."))?;
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| oauth_error(400, "invalid_request", "client_secret is missing."))?;
    if secret != client.secret {
        return Err(oauth_error(401, "invalid_client", "Unauthorized"));
    }
    Ok(client.clone())
}

pub(super) fn token_endpoint(st: &mut State, rq: &Request) -> Reply {
    if rq.method != "POST" {
        return oauth_error(405, "invalid_request", "Method Not Allowed: use POST.");
    }
    let grant_type = rq.form_param("grant_type").unwrap_or("");
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let client = match authenticate_client(st, rq) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if grant_type == "authorization_code" {
        exchange_code(st, rq, &client)
    } else {
        refresh(st, rq, &client)
    }
}

pub(super) fn exchange_code(st: &mut State, rq: &Request, client: &Client) -> Reply {
    let Some(code) = rq.form_param("code").filter(|c| !c.is_empty()) else {
        return oauth_error(400, "invalid_request", "Missing required parameter: code");
    };
    let lifetime = st.code_lifetime;
    let Some(grant) = st.codes.get_mut(code) else {
        return oauth_error(400, "invalid_grant", "Bad Request");
    };
    if grant.used || grant.issued.elapsed() > lifetime || grant.client_id != client.id {
        return oauth_error(400, "invalid_grant", "Bad Request");
    }
    // A code is spent by any exchange attempt that reaches it.
    grant.used = true;
    match rq.form_param("redirect_uri") {
        None | Some("") => {
            return oauth_error(400, "invalid_request", "Missing parameter: redirect_uri");
        }
        Some(r) if r != grant.redirect_uri => {
            return oauth_error(400, "redirect_uri_mismatch", "Bad Request");
        }
        Some(_) => {}
    }
    let Some(verifier) = rq.form_param("code_verifier").filter(|v| !v.is_empty()) else {
        return oauth_error(400, "invalid_grant", "Missing code verifier.");
    };
    if !pkce_shaped(verifier)
        || !(43..=128).contains(&verifier.len())
        || s256(verifier) != grant.challenge
    {
        return oauth_error(400, "invalid_grant", "Bad Request");
    }
    let (email, scope, issue_refresh) = (
        grant.email.clone(),
        grant.scope.clone(),
        grant.issue_refresh,
    );
    let id = st.new_grant(&email, &client.id, &scope, issue_refresh);
    let access = st.new_access_token(id);
    let mut body = json!({
        "access_token": access,
        "expires_in": st.access_lifetime.as_secs(),
        "scope": scope,
        "token_type": "Bearer",
    });
    if let Some(rt) = st.grants.get(&id).and_then(|g| g.refresh_token.clone()) {
        body["refresh_token"] = json!(rt);
    }
    Reply::oauth(200, &body)
}

pub(super) fn refresh(st: &mut State, rq: &Request, client: &Client) -> Reply {
    let Some(rt) = rq.form_param("refresh_token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: refresh_token",
        );
    };
    let Some(&id) = st.refresh_tokens.get(rt) else {
        return oauth_error(400, "invalid_grant", "Bad Request");
    };
    let Some(grant) = st.grants.get(&id) else {
        return oauth_error(400, "invalid_grant", "Bad Request");
    };
    if grant.client_id != client.id {
        return oauth_error(401, "unauthorized_client", "Unauthorized");
    }
    if !grant.alive {
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
    }
    let scope = grant.scope.clone();
    let access = st.new_access_token(id);
    Reply::oauth(
        200,
        &json!({
            "access_token": access,
            "expires_in": st.access_lifetime.as_secs(),
            "scope": scope,
            "token_type": "Bearer",
        }),
    )
}

pub(super) fn revoke_endpoint(st: &mut State, rq: &Request) -> Reply {
    if rq.method != "POST" && rq.method != "GET" {
        return oauth_error(405, "invalid_request", "Method Not Allowed");
    }
    let Some(token) = rq
        .form_param("token")
        .or_else(|| rq.query_param("token"))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
    else {
        return oauth_error(400, "invalid_request", "Missing required parameter: token");
    };
    let grant = match st.refresh_tokens.get(&token) {
        Some(id) => st.grants.get(id).filter(|g| g.alive),
        None => st.access_grant(&token),
    };
    let Some(grant) = grant else {
        return oauth_error(400, "invalid_token", "Bad Request");
    };
    let (email, client_id) = (grant.email.clone(), grant.client_id.clone());
    st.kill_grants(&email, Some(&client_id));
    st.revoked.push(token);
    Reply::oauth(200, &json!({}))
}
