//! OAuth 2.0 with Google (web-server flow, offline access, PKCE): the authorization URL, the
//! code exchange, refreshing access tokens, and revocation. Stateless: the plugin keeps the
//! states and tokens in the store; this module only speaks to Google.

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};

use super::api::printable;
use super::http::{HttpClient, HttpError};
use crate::book::contact::Source;
use crate::config::{DomainSettings, GoogleEndpoints};
use crate::error::{Error, ErrorKind, Result};

/// The scope every account needs: read-only access to the user's contacts.
pub const CONTACTS_SCOPE: &str = "https://www.googleapis.com/auth/contacts.readonly";
/// Read-only access to the user's "other contacts".
pub const OTHER_CONTACTS_SCOPE: &str = "https://www.googleapis.com/auth/contacts.other.readonly";
/// Read-only access to the Workspace organisation's directory.
pub const DIRECTORY_SCOPE: &str = "https://www.googleapis.com/auth/directory.readonly";

/// The scope a contact source's list needs.
pub fn scope_of(source: Source) -> &'static str {
    match source {
        Source::Contacts => CONTACTS_SCOPE,
        Source::Directory => DIRECTORY_SCOPE,
        Source::OtherContacts => OTHER_CONTACTS_SCOPE,
    }
}

type GoogleClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Tokens as Google granted them. No `Debug`: they must never be printed.
pub struct GrantedTokens {
    pub access_token: String,
    /// Seconds since the epoch when the access token stops working, when Google said.
    pub expires_at: Option<i64>,
    /// Present on a code exchange; absent on a refresh (Google does not resend it).
    pub refresh_token: Option<String>,
    /// The scopes Google says it granted (its reply's `scope`), when it said.
    pub scopes: Option<Vec<String>>,
}

/// A fresh authorization request: the URL for the consent popup and the PKCE verifier to keep
/// until Google's redirect comes back.
pub struct AuthorizationRequest {
    pub url: String,
    pub pkce_verifier: String,
}

fn client(settings: &DomainSettings, endpoints: &GoogleEndpoints) -> GoogleClient {
    BasicClient::new(ClientId::new(settings.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            settings.client_secret.expose().to_owned(),
        ))
        .set_auth_uri(AuthUrl::from_url(endpoints.auth_url.clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token_url.clone()))
        .set_redirect_uri(RedirectUrl::from_url(settings.redirect_uri.clone()))
        // Google documents the secret in the form body; it also accepts Basic auth.
        .set_auth_type(AuthType::RequestBody)
}

/// The scopes an account's configuration needs, and no more: contacts always, each further
/// source's, and the calendar's free/busy times when calendar presence is on.
pub fn scopes_for(settings: &DomainSettings) -> Vec<&'static str> {
    let mut scopes = vec![CONTACTS_SCOPE];
    for &source in &settings.sources {
        if source != Source::Contacts {
            scopes.push(scope_of(source));
        }
    }
    if settings.calendar {
        scopes.push(super::calendar::CALENDAR_SCOPE);
    }
    scopes
}

/// Google's consent URL with every parameter the contract lists, for the given state.
pub fn authorization_request(
    settings: &DomainSettings,
    endpoints: &GoogleEndpoints,
    state: String,
) -> AuthorizationRequest {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client(settings, endpoints)
        .authorize_url(|| CsrfToken::new(state))
        .add_scopes(
            scopes_for(settings)
                .into_iter()
                .map(|scope| Scope::new(scope.into())),
        )
        // A refresh token, so syncs go on without the user; `prompt=consent` makes Google
        // send one even when this user granted access before.
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .add_extra_param("include_granted_scopes", "true")
        .set_pkce_challenge(challenge)
        .url();
    AuthorizationRequest {
        url: url.into(),
        pkce_verifier: verifier.secret().clone(),
    }
}

pub fn exchange_code(
    http: &HttpClient,
    settings: &DomainSettings,
    endpoints: &GoogleEndpoints,
    code: &str,
    pkce_verifier: &str,
    now: i64,
) -> Result<GrantedTokens> {
    let reply = client(settings, endpoints)
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request(&http.for_oauth())
        .map_err(|e| token_error(e, "exchanging the authorization code", settings))?;
    Ok(granted(&reply, now))
}

/// The token endpoint's errors that say "try again later" rather than "no": OAuth's own
/// (RFC 6749 5.2) and what Google's endpoint answers a 5xx or 429 with.
const TRANSIENT_TOKEN_ERRORS: [&str; 5] = [
    "temporarily_unavailable",
    "server_error",
    "internal_failure",
    "backend_error",
    "rate_limit_exceeded",
];

/// Why a refresh failed, sorted by what the sync does next.
pub enum RefreshFailure {
    /// `invalid_grant`: the user revoked access, the token expired, or the consent screen is
    /// in "Testing". Only reconnecting helps.
    GrantDead(Error),
    /// Google could not be reached, or its token endpoint failed (a 5xx's
    /// `temporarily_unavailable` or `internal_failure`, a 429, a broken reply): worth
    /// retrying.
    Unreachable(Error),
    /// Any other refusal (bad client credentials, an unknown client, a redirect mismatch).
    Refused(Error),
}

pub fn refresh(
    http: &HttpClient,
    settings: &DomainSettings,
    endpoints: &GoogleEndpoints,
    refresh_token: &str,
    now: i64,
) -> std::result::Result<GrantedTokens, RefreshFailure> {
    let reply = client(settings, endpoints)
        .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
        .request(&http.for_oauth())
        .map_err(|e| {
            let grant_dead = matches!(&e, RequestTokenError::ServerResponse(r)
                if r.error().to_string() == "invalid_grant");
            let endpoint_failed = match &e {
                RequestTokenError::ServerResponse(r) => {
                    TRANSIENT_TOKEN_ERRORS.contains(&r.error().to_string().as_str())
                }
                RequestTokenError::Parse(..) | RequestTokenError::Other(_) => true,
                RequestTokenError::Request(_) => false,
            };
            let error = token_error(e, "refreshing the access token", settings);
            if grant_dead {
                RefreshFailure::GrantDead(error)
            } else if endpoint_failed || error.kind() == ErrorKind::Network {
                RefreshFailure::Unreachable(error)
            } else {
                RefreshFailure::Refused(error)
            }
        })?;
    Ok(granted(&reply, now))
}

/// Revokes a token (and with it the whole grant) at Google's revocation endpoint. Sent by
/// hand rather than with `oauth2`'s `revoke_token`, which refuses plain-http endpoints and so
/// cannot reach the loopback fake Google of the tests and the host simulator.
pub fn revoke(http: &HttpClient, endpoints: &GoogleEndpoints, token: &str) -> Result<()> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let request = http
        .requests()
        .post(endpoints.revoke_url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .build()
        .map_err(|e| Error::network(format!("cannot build the revocation request ({e})")))?;
    let reply = http.execute(request).map_err(|e| {
        e.into_error().with_context(
            format!(
                "cannot reach Google's revocation endpoint {}",
                endpoints.revoke_url
            ),
            "",
        )
    })?;
    if (200..300).contains(&reply.status) {
        return Ok(());
    }
    let google_error = serde_json::from_slice::<BasicErrorResponse>(&reply.body)
        .map(|e| e.error().to_string())
        .unwrap_or_else(|_| format!("HTTP {}", reply.status));
    Err(Error::google(format!(
        "Google did not revoke the grant ({google_error}); the user can remove access at https://myaccount.google.com/permissions"
    )))
}

/// The parts of Google's redirect query the plugin reads.
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub scope: Option<String>,
}

impl Callback {
    pub fn parse(query: &str) -> Result<Callback> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut callback = Callback {
            state: None,
            code: None,
            error: None,
            scope: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "state" => &mut callback.state,
                "code" => &mut callback.code,
                "error" => &mut callback.error,
                "scope" => &mut callback.scope,
                _ => continue,
            };
            if slot.is_some() {
                // Two states (or codes) cannot both be Google's: refuse rather than guess.
                return Err(Error::new(
                    ErrorKind::State,
                    format!("Google's redirect carries \"{key}\" twice; pass the query string exactly as it arrived"),
                ));
            }
            *slot = Some(value.into_owned());
        }
        // `error` is shown to the administrator: whatever sent the redirect chose it.
        callback.error = callback.error.map(|e| printable(&e, 64));
        Ok(callback)
    }
}

fn granted(reply: &BasicTokenResponse, now: i64) -> GrantedTokens {
    GrantedTokens {
        access_token: reply.access_token().secret().clone(),
        expires_at: reply
            .expires_in()
            .map(|d| now.saturating_add(d.as_secs().min(i64::MAX as u64) as i64)),
        refresh_token: reply.refresh_token().map(|t| t.secret().clone()),
        scopes: reply
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect()),
    }
}

/// Turns a token-endpoint failure into an error an administrator can act on. Google's
/// `error` and `error_description` are quoted; the request itself (code, secret) never is.
fn token_error(
    e: RequestTokenError<HttpError, BasicErrorResponse>,
    doing: &str,
    settings: &DomainSettings,
) -> Error {
    match e {
        RequestTokenError::ServerResponse(reply) => {
            let code = reply.error().to_string();
            // Google's words go into gi_last_error, the status and the log: cut and cleaned,
            // as the APIs' are (see `api::printable`).
            let description = reply
                .error_description()
                .map(|d| format!(": {}", printable(d, 300)))
                .unwrap_or_default();
            if TRANSIENT_TOKEN_ERRORS.contains(&code.as_str()) {
                // Google's own failure (a 5xx or 429 told as an OAuth error), not a refusal.
                return Error::google(format!(
                    "Google's token endpoint failed while {doing} ({code}{description})"
                ));
            }
            let advice = match code.as_str() {
                "invalid_grant" => {
                    "the code was already used or expired, or the grant was revoked; click \"Get auth code\" again. If tokens die after 7 days, the OAuth consent screen is still in \"Testing\": publish it"
                        .to_string()
                }
                "invalid_client" | "unauthorized_client" => format!(
                    "check the client ID \"{}\" and its client secret in the Google Cloud console (APIs & Services > Credentials). A refresh token belongs to the client that issued it: if the account connected under another client (the configuration's client changed since), click \"Get auth code\" to connect it under this one",
                    settings.client_id
                ),
                "redirect_uri_mismatch" => format!(
                    "add \"{}\" to the client's authorized redirect URIs in the Google Cloud console",
                    settings.redirect_uri
                ),
                _ => "see Google's message".to_string(),
            };
            Error::google(format!(
                "Google refused {doing} ({}{description}); {advice}",
                printable(&code, 60)
            ))
        }
        RequestTokenError::Request(e) => {
            let advice = if e.failure == super::http::Failure::TooLarge {
                ""
            } else {
                "; check the PBX's internet access and DNS"
            };
            e.into_error().with_context(format!("Google's token endpoint failed while {doing}"), advice)
        }
        RequestTokenError::Parse(e, _) => Error::google(format!(
            "Google's token endpoint answered with something that is not a token reply while {doing} ({e})"
        )),
        RequestTokenError::Other(text) => Error::google(format!(
            "Google's token endpoint failed while {doing}: {}",
            first_line(&text)
        )),
    }
}

fn first_line(text: &str) -> String {
    printable(text.lines().next().unwrap_or(""), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_from_the_redirect_is_bounded_and_stripped() {
        let long = format!("error=bad%0D%0Aline%1B[31m{}&state=s", "x".repeat(5000));
        let callback = Callback::parse(&long).ok().unwrap();
        let error = callback.error.unwrap();
        assert!(!error.chars().any(|c| c.is_control()), "{error:?}");
        assert!(error.chars().count() <= 65, "{}", error.len());
        assert!(error.starts_with("badline[31m"));
    }
}
