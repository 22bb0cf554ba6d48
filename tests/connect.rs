//! Connecting, status and disconnecting, through the C ABI against the fake Google.

mod common;

use common::*;
use host_sim::fake_google::{Client, Endpoint, Fault, Person};
use host_sim::plugin::{GiResult, GiStatus, Plugin};
use serde_json::json;

const ACCOUNT: &str = "example.com/40";

#[test]
fn auth_url_carries_every_parameter_and_a_fresh_state() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    assert!(url.starts_with(&h.fake.auth_url()), "{url}");
    for (name, expected) in [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("access_type", "offline"),
        ("prompt", "consent"),
        ("include_granted_scopes", "true"),
        ("code_challenge_method", "S256"),
    ] {
        assert_eq!(
            param(&url, name).as_deref(),
            Some(expected),
            "{name} in {url}"
        );
    }
    let scope = param(&url, "scope").unwrap();
    assert!(scope
        .split(' ')
        .any(|s| s == "https://www.googleapis.com/auth/contacts.readonly"));
    let challenge = param(&url, "code_challenge").unwrap();
    assert_eq!(
        challenge.len(),
        43,
        "an S256 challenge is 43 base64url characters"
    );
    let state = param(&url, "state").unwrap();
    assert!(
        state.len() >= 43,
        "the state carries at least 256 random bits"
    );
    assert!(
        !state.contains("example.com"),
        "the state must not reveal the account"
    );

    let again = plugin.auth_url(ACCOUNT).unwrap();
    assert_ne!(param(&again, "state"), Some(state));
    assert_ne!(param(&again, "code_challenge"), Some(challenge));
}

#[test]
fn connecting_exchanges_the_code_with_pkce_and_the_secret() {
    let h = Harness::new();
    let plugin = h.open();
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);
    let account = h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(account, ACCOUNT);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);

    let exchange = h
        .fake
        .requests_to(Endpoint::Token)
        .into_iter()
        .find(|r| r.form_param("grant_type") == Some("authorization_code"))
        .expect("a code exchange");
    assert_eq!(exchange.form_param("client_secret"), Some(CLIENT_SECRET));
    assert!(exchange.form_param("code_verifier").is_some());
    assert_eq!(
        exchange.status, 200,
        "the fake verified PKCE and the secret"
    );

    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["account"], ACCOUNT);
    assert_eq!(status["status"], "connected");
    assert_eq!(status["reason"], serde_json::Value::Null);
    for field in ["syncing", "contacts", "numbers", "last_sync", "last_error"] {
        assert!(status.get(field).is_some(), "{field} missing from {status}");
    }
}

#[test]
fn a_replayed_state_is_refused_and_changes_nothing() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    plugin.complete(&callback).unwrap();
    let err = plugin.complete(&callback).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_STATE, "{err}");
    assert!(err.message.contains("Get auth code"), "{err}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn a_forged_or_foreign_state_is_refused() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    let state = param(&callback, "state").unwrap();
    let mut forged_state = state.clone();
    forged_state.replace_range(0..1, if state.starts_with('A') { "B" } else { "A" });
    let forged = callback.replace(&state, &forged_state);
    assert_eq!(
        plugin.complete(&forged).unwrap_err().code,
        GiResult::GI_ERR_STATE
    );
    let missing = callback.replace(&format!("state={state}"), "");
    assert_eq!(
        plugin.complete(&missing).unwrap_err().code,
        GiResult::GI_ERR_STATE
    );

    // A state issued by another PBX (another data_dir) means nothing here.
    let other = Harness::new();
    let other_plugin = other.open();
    let foreign_url = other_plugin.auth_url(ACCOUNT).unwrap();
    let foreign_state = param(&foreign_url, "state").unwrap();
    let foreign = format!("state={foreign_state}&code=4/whatever");
    assert_eq!(
        plugin.complete(&foreign).unwrap_err().code,
        GiResult::GI_ERR_STATE
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);

    // The genuine callback still works: the forgeries did not spend it.
    assert_eq!(plugin.complete(&callback).unwrap(), ACCOUNT);
}

#[test]
fn an_expired_state_is_refused() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    drop(plugin);
    // Age the pending authorization by 11 minutes, as if the user had walked away.
    store_query(&h, "UPDATE pending_auth SET created_at = created_at - 660");
    let plugin = h.open();
    let err = plugin.complete(&callback).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_STATE, "{err}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);
}

#[test]
fn the_state_survives_a_restart() {
    let h = Harness::new();
    let url = {
        let plugin = h.open();
        plugin.auth_url(ACCOUNT).unwrap()
    };
    let callback = h.fake.approve(&url, ALICE).unwrap();
    // Stored sealed as the tokens are: with the code in the redirect and the client secret,
    // the PKCE verifier redeems the account's tokens.
    // (host-sim asks gi_auth_url for its size first: each call stores a state of its own.)
    let stored = store_query(&h, "SELECT pkce_verifier FROM pending_auth");
    assert!(!stored.is_empty());
    for row in &stored {
        assert!(row[0].starts_with("sealed:v1:"), "{stored:?}");
    }
    let plugin = h.open();
    assert_eq!(plugin.complete(&callback).unwrap(), ACCOUNT);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
    let exchange = h.fake.requests_to(Endpoint::Token);
    let verifier = exchange[0].form_param("code_verifier").unwrap();
    assert!(stored.iter().all(|row| !row[0].contains(verifier)));
}

#[test]
fn denied_consent_is_reported_and_leaves_the_connection_alone() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let denied = h.fake.deny(&url).unwrap();
    let err = plugin.complete(&denied).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_DENIED, "{err}");
    assert!(err.message.contains("Allow"), "{err}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);

    // Connected first, a later denial does not disconnect.
    h.connect(&plugin, ACCOUNT, ALICE);
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let denied = h.fake.deny(&url).unwrap();
    assert_eq!(
        plugin.complete(&denied).unwrap_err().code,
        GiResult::GI_ERR_DENIED
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn consent_without_the_contacts_scope_is_a_denial() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    let scope = param(&callback, "scope").unwrap();
    let narrowed = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("state", &param(&callback, "state").unwrap())
        .append_pair("code", &param(&callback, "code").unwrap())
        .append_pair("scope", "openid email")
        .finish();
    assert!(scope.contains("contacts.readonly"));
    let err = plugin.complete(&narrowed).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_DENIED, "{err}");
    assert!(err.message.contains("contacts"), "{err}");
}

#[test]
fn a_token_endpoint_refusal_is_a_google_error_with_googles_description() {
    let h = Harness::new();
    let plugin = h.open();
    h.connect(&plugin, ACCOUNT, ALICE);
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, BOB).unwrap();
    h.fake.inject(Endpoint::Token, Fault::InvalidGrant);
    let err = plugin.complete(&callback).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_GOOGLE, "{err}");
    assert!(err.message.contains("invalid_grant"), "{err}");
    assert!(
        err.message.contains("Token has been expired or revoked."),
        "{err}"
    );
    assert_eq!(
        plugin.status(ACCOUNT),
        GiStatus::GI_STATUS_CONNECTED,
        "the old connection stays"
    );
}

#[test]
fn a_wrong_client_secret_names_the_client() {
    let h = Harness::new();
    let mut config = h.config();
    config["client_secret"] = "GOCSPX-not-the-secret".into();
    let plugin = h.open_with(&config);
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    let err = plugin.complete(&callback).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_GOOGLE, "{err}");
    assert!(
        err.message.contains("invalid_client") && err.message.contains(CLIENT_ID),
        "{err}"
    );
}

/// The token endpoint's words reach gi_last_error, the status and the log: a hostile or
/// broken one's `error_description` (64 KiB, terminal escapes) is cut and cleaned there, as
/// the APIs' errors are.
#[test]
fn the_token_endpoints_own_words_are_cut_and_cleaned() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    let description = format!("bad\u{1b}[31m\nline{}", "x".repeat(60_000));
    h.fake.inject(
        Endpoint::Token,
        Fault::Raw {
            status: 400,
            headers: Vec::new(),
            body: json!({"error": "invalid_grant", "error_description": description}).to_string(),
        },
    );
    let err = plugin.complete(&callback).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_GOOGLE, "{}", err.message);
    assert!(
        !err.message.chars().any(char::is_control),
        "{:?}",
        &err.message[..200]
    );
    assert!(err.message.len() < 1_500, "{} bytes", err.message.len());
    assert!(
        err.message.contains("invalid_grant: bad[31mlinexxx"),
        "{}",
        err.message
    );
}

#[test]
fn google_unreachable_during_the_exchange_is_a_network_error() {
    let h = Harness::new();
    let plugin = h.open();
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    let Harness {
        fake,
        dir: _dir,
        pg: _pg,
    } = h;
    drop(fake);
    let err = plugin.complete(&callback).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_NETWORK, "{err}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);
}

#[test]
fn the_connection_survives_a_restart_without_google() {
    let h = Harness::new();
    {
        let plugin = h.open();
        h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    }
    let config = h.config();
    let Harness {
        fake,
        dir: _dir,
        pg: _pg,
    } = h;
    drop(fake);
    let plugin = common::Harness::open_config(&config);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
    assert_eq!(plugin.status_value(ACCOUNT)["status"], "connected");
}

/// The harness's configuration with `domain` on an OAuth client of its own (known to the fake
/// Google: `{domain}-client.apps.googleusercontent.com`), and that client's redirect URI.
fn with_a_client_of_its_own(h: &Harness, domain: &str) -> (serde_json::Value, String) {
    let client_id = format!("{domain}-client.apps.googleusercontent.com");
    let redirect = format!("http://127.0.0.1:8081/{domain}/callback");
    h.fake.add_client(Client::new(
        &client_id,
        "domain-secret",
        &[redirect.as_str()],
    ));
    let mut config = h.config();
    config["domains"] = json!({
        domain: { "client_id": client_id, "client_secret": "domain-secret",
                  "redirect_uri": redirect }
    });
    (config, redirect)
}

#[test]
fn a_domain_uses_its_own_oauth_client() {
    let h = Harness::new();
    let (config, acme_redirect) = with_a_client_of_its_own(&h, "acme.de");
    let plugin = h.open_with(&config);
    let url = plugin.auth_url("acme.de/40").unwrap();
    assert_eq!(
        param(&url, "client_id").as_deref(),
        Some("acme.de-client.apps.googleusercontent.com")
    );
    assert_eq!(param(&url, "redirect_uri"), Some(acme_redirect));
    assert_eq!(h.connect(&plugin, "acme.de/40", ALICE), "acme.de/40");
    // Other domains keep the top-level client.
    let url = plugin.auth_url("other.com").unwrap();
    assert_eq!(param(&url, "client_id").as_deref(), Some(CLIENT_ID));
}

/// A refresh token belongs to the OAuth client that issued it. After the administrator gives
/// a domain another client, its accounts' refreshes fail with `unauthorized_client`, and the
/// reason told them to check the client ID and secret, which are right: the way out is to
/// connect again under the new client, and the reason says so.
#[test]
fn an_account_connected_under_another_client_is_told_to_connect_again() {
    let h = Harness::new();
    const MOVED: &str = "moved.example/40";
    let plugin = h.open();
    h.connect_and_sync(&plugin, MOVED, ALICE);
    drop(plugin);
    let (config, _) = with_a_client_of_its_own(&h, "moved.example");
    // The access token expired meanwhile: the next sync refreshes it.
    store_query(&h, "UPDATE accounts SET access_expires_at = 0");
    let plugin = h.open_with(&config);
    plugin.sync_now(MOVED).unwrap();
    let mut status = serde_json::Value::Null;
    assert!(
        wait_until(PATIENCE, || {
            status = plugin.status_value(MOVED);
            status["status"] == "issue" && status["syncing"] == false
        }),
        "{status}"
    );
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("client") && reason.contains("Get auth code"),
        "{reason}"
    );
}

#[test]
fn disable_revokes_at_google_and_disconnects() {
    let h = Harness::new();
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert_eq!(h.fake.live_refresh_tokens(ALICE), 1);
    plugin.disable(ACCOUNT).unwrap();
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);
    let revocations = h.fake.requests_to(Endpoint::Revoke);
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].method, "POST");
    assert!(
        revocations[0]
            .form_param("token")
            .is_some_and(|t| t.starts_with("1//")),
        "the refresh token is revoked"
    );
    assert_eq!(h.fake.live_refresh_tokens(ALICE), 0);
    assert_eq!(plugin.status_value(ACCOUNT)["status"], "disconnected");
    // Not connected: disabling again is fine.
    plugin.disable(ACCOUNT).unwrap();
    plugin.disable("never.connected").unwrap();
}

#[test]
fn a_disable_racing_a_connect_erases_only_the_connection_it_meant() {
    let h = Harness::new();
    h.fake.set_contacts(
        BOB,
        vec![Person::new("people/b1", "Bob", "Contact").with_phone("+1 212 555 0177", "work")],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    // The revocation takes a while; a new connect lands while it is under way.
    h.fake.inject(
        Endpoint::Revoke,
        Fault::Delay(std::time::Duration::from_millis(1500)),
    );
    std::thread::scope(|scope| {
        let disabling = scope.spawn(|| plugin.disable(ACCOUNT));
        assert!(wait_until(PATIENCE, || !h
            .fake
            .requests_to(Endpoint::Revoke)
            .is_empty()));
        h.connect(&plugin, ACCOUNT, BOB);
        disabling.join().unwrap().expect("disable succeeds");
    });
    assert_eq!(
        plugin.status(ACCOUNT),
        GiStatus::GI_STATUS_CONNECTED,
        "the newer connection stays"
    );
    wait_until(PATIENCE, || {
        plugin
            .lookup(ACCOUNT, "+12125550177")
            .ok()
            .flatten()
            .is_some()
    });
    let caller = plugin.lookup(ACCOUNT, "+12125550177").unwrap();
    assert_eq!(caller.map(|c| c.name).as_deref(), Some("Bob Contact"));
    drop(plugin);
    let plugin = h.open();
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn a_second_plugin_on_the_same_data_dir_is_refused_until_the_first_closes() {
    let h = Harness::new();
    let first = h.open();
    let err = Plugin::open(api(), &h.config().to_string())
        .err()
        .expect("the data_dir is in use");
    // gi_open answers NULL, so only gi_last_error tells (the contract's GI_ERR_STORAGE).
    assert!(err.message.contains("in use"), "{}", err.message);
    drop(first);
    let _second = h.open();
}

/// Two opens at once on a new data_dir: one gets it, the other is told it is in use. Both
/// probed one file to prove data_dir writable, and the one whose removal found it gone failed
/// with "not writable" (GI_ERR_CONFIG), sometimes the first opener; both made the token key,
/// and one could read it empty.
#[test]
fn two_opens_at_once_on_a_new_data_dir_one_gets_it_and_the_other_hears_it_is_in_use() {
    let h = Harness::new();
    for round in 0..20 {
        let mut config = h.config();
        config["data_dir"] = json!(h.data_dir().join(format!("race{round}")));
        let config = config.to_string();
        let opened: Vec<Result<Plugin<'static>, String>> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| Plugin::open(api(), &config).map_err(|e| e.message)))
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let refused: Vec<&String> = opened.iter().filter_map(|o| o.as_ref().err()).collect();
        assert_eq!(refused.len(), 1, "round {round}: {refused:?}");
        assert!(
            refused[0].contains("in use"),
            "round {round}: {}",
            refused[0]
        );
    }
}

#[test]
fn disable_erases_even_when_google_is_down() {
    let h = Harness::new();
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let Harness { fake, dir, pg } = h;
    drop(fake);
    plugin.disable(ACCOUNT).unwrap();
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);
    drop(plugin);
    // Read with the plugin closed (see common::read_db).
    let left = store_query_at(dir.path(), pg.as_ref(), "SELECT count(*) FROM accounts");
    assert_eq!(left, [["0"]]);
}

/// An account the store no longer has (erased by another node of a cluster whose notice
/// this node has not read yet, or by an earlier disable whose last step failed) is erased
/// from memory by a disable too: it answered calls, "connected", after a disable that
/// returned GI_OK.
/// 0.1 kept accounts as the host wrote them; 0.2 makes every account it is handed canonical.
/// An account 0.1 stored as `Upper.example/40` was out of reach after the upgrade: red, its
/// numbers not found, a disable erasing nothing, while it synced on in the background. The
/// open renames it.
#[test]
fn an_account_an_older_release_stored_as_the_host_wrote_it_is_reached_after_the_upgrade() {
    let h = Harness::new();
    if !h.on_sqlite() {
        return; // PostgreSQL stores came with 0.2, canonical from the start
    }
    const WRITTEN: &str = "Upper.example/40";
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Ada", "Lovelace").with_phone("+1 212 555 0100", "mobile")],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, "upper.example/40", ALICE);
    drop(plugin);
    // As 0.1 left it: the account as the host wrote it, its tokens in plain text.
    for table in [
        "accounts",
        "contacts",
        "sources",
        "contact_groups",
        "presence",
    ] {
        store_query(
            &h,
            &format!("UPDATE {table} SET account = '{WRITTEN}' WHERE account = 'upper.example/40'"),
        );
    }
    store_query(
        &h,
        "UPDATE accounts SET refresh_token = '1//plain', access_token = NULL",
    );
    let plugin = h.open();
    for asked in [WRITTEN, "upper.example/40"] {
        assert_eq!(
            plugin.status(asked),
            GiStatus::GI_STATUS_CONNECTED,
            "{asked}"
        );
        let caller = plugin.lookup(asked, "+12125550100").unwrap().unwrap();
        assert_eq!(
            (caller.name.as_str(), caller.account.as_str()),
            ("Ada Lovelace", "upper.example/40")
        );
    }
    plugin.disable(WRITTEN).unwrap();
    assert_eq!(plugin.lookup(WRITTEN, "+12125550100").unwrap(), None);
    drop(plugin);
    assert_eq!(store_number(&h, "SELECT count(*) FROM accounts"), 0);
    assert_eq!(store_number(&h, "SELECT count(*) FROM contacts"), 0);
}

#[test]
fn disabling_an_account_the_store_no_longer_has_erases_it_from_memory() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Ada", "Lovelace").with_phone("+1 212 555 0100", "mobile")],
    );
    let plugin = h.open();
    const GONE: &str = "gone.example/40";
    h.connect_and_sync(&plugin, GONE, ALICE);
    assert!(plugin.lookup(GONE, "+12125550100").unwrap().is_some());
    // Erased from the store behind this plugin's back.
    store_query(&h, "DELETE FROM accounts WHERE account = 'gone.example/40'");
    plugin.disable(GONE).unwrap();
    assert_eq!(plugin.status(GONE), GiStatus::GI_STATUS_DISCONNECTED);
    assert_eq!(plugin.lookup(GONE, "+12125550100").unwrap(), None);
}

#[test]
fn after_disable_and_close_no_byte_of_a_token_is_left_under_data_dir() {
    let h = Harness::new();
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    drop(plugin);
    // The tokens as stored (sealed), and as Google issued them.
    let (refresh, access) = stored_tokens(&h);
    let issued = h.fake.issued_tokens();
    assert!(!issued.is_empty());
    let plugin = h.open();
    // Before: the sealed tokens are there to be found (the check below can fail). With
    // PostgreSQL they live in its tables, and data_dir never held them.
    if h.on_sqlite() {
        let before = files_under(&h.data_dir().join("data"));
        assert!(before.iter().any(|(_, bytes)| contains(bytes, &refresh)));
    }
    plugin.disable(ACCOUNT).unwrap();
    drop(plugin);
    assert_eq!(store_number(&h, "SELECT count(*) FROM accounts"), 0);
    for (path, bytes) in files_under(&h.data_dir().join("data")) {
        for secret in [&refresh, &access].into_iter().chain(&issued) {
            assert!(
                !contains(&bytes, secret),
                "{} still holds a token",
                path.display()
            );
        }
    }
}

/// Set in the reader's process: the database it reads.
const READER_OF: &str = "GI_TEST_READER_OF";

/// The reader: opens `db`, reads in a transaction, says how many accounts it saw, keeps that
/// snapshot until a line comes on its standard input, ends it, and keeps its connection until
/// its standard input closes.
fn hold_a_snapshot_of(db: &str) {
    let reader = rusqlite::Connection::open(db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    println!("holding {seen}");
    std::io::stdin().read_line(&mut String::new()).unwrap();
    reader.execute_batch("COMMIT").unwrap();
    println!("released");
    // Still connected, as a monitoring tool stays: closing the last connection of a process
    // checkpoints the file itself, which no long-lived reader does.
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new()).unwrap();
}

/// A backup tool (or `sqlite3`) reading the database while an account is disabled keeps the
/// erasure's checkpoint from emptying the write-ahead log: the erased token's old page stays in
/// the files. The plugin says so, and empties the log once the reader is gone (its workers try
/// every few seconds), while it stays open (a PBX runs for months between closes).
#[test]
fn a_disable_while_another_reader_holds_the_database_erases_every_copy_once_it_lets_go() {
    if let Ok(db) = std::env::var(READER_OF) {
        return hold_a_snapshot_of(&db);
    }
    let h = Harness::new();
    if !h.on_sqlite() {
        return; // PostgreSQL keeps no file of the plugin's
    }
    capture_logs();
    const ERASED: &str = "reader.example/40";
    const SYNCING: &str = "reader.example/41";
    let plugin = h.open();
    h.connect_and_sync(&plugin, ERASED, ALICE);
    drop(plugin);
    let (refresh, access) = stored_tokens(&h);
    let plugin = h.open();
    h.connect_and_sync(&plugin, SYNCING, BOB);

    // A reader holds a snapshot from before the disable: in a process of its own, as a backup
    // tool is (SQLite's locks do not keep apart two copies of SQLite in one process).
    let mut reader = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_disable_while_another_reader_holds_the_database_erases_every_copy_once_it_lets_go",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            READER_OF,
            h.data_dir().join("data/google-integration.sqlite3"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut from_reader = std::io::BufReader::new(reader.stdout.take().unwrap());
    let mut wait_for_reader = |what: &str| {
        let mut said = String::new();
        while !said.contains(what) {
            said.clear();
            let read = std::io::BufRead::read_line(&mut from_reader, &mut said).unwrap();
            assert!(read > 0, "the reader ended before it said {what:?}");
        }
    };
    wait_for_reader("holding 2");
    plugin.disable(ERASED).unwrap();
    assert_eq!(plugin.status(ERASED), GiStatus::GI_STATUS_DISCONNECTED);
    assert!(
        logged_lines()
            .iter()
            .any(|l| l.contains("could not be emptied") && l.contains("tries again")),
        "the administrator is told: {:#?}",
        logged_lines()
    );
    let holding = || {
        files_under(&h.data_dir().join("data"))
            .into_iter()
            .filter(|(_, bytes)| contains(bytes, &refresh) || contains(bytes, &access))
            .map(|(path, _)| path.display().to_string())
            .collect::<Vec<_>>()
    };
    // The check below can fail: the reader's snapshot still needs the erased page.
    assert!(!holding().is_empty());
    let mut to_reader = reader.stdin.take().unwrap();
    std::io::Write::write_all(&mut to_reader, b"done\n").unwrap();
    wait_for_reader("released");

    // The reader's snapshot is gone (its connection stays). The plugin empties the log within
    // seconds, with no sync to wait for (there may never be one: the last account disabled,
    // or Google down for all); the plugin stays open.
    assert!(
        wait_until(PATIENCE, || holding().is_empty()),
        "{:?} still hold the erased account's token with the plugin open",
        holding()
    );
    assert_eq!(plugin.status(SYNCING), GiStatus::GI_STATUS_CONNECTED);
    drop(to_reader);
    assert!(reader.wait().unwrap().success());
}

#[test]
fn tokens_are_sealed_at_rest_and_a_copy_without_the_key_reveals_none() {
    let h = Harness::new();
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    drop(plugin);
    let issued = h.fake.issued_tokens();
    assert!(
        issued.len() >= 2,
        "a refresh and an access token were issued"
    );
    let data = h.data_dir().join("data");
    for (path, bytes) in files_under(&data) {
        for token in &issued {
            assert!(
                !contains(&bytes, token),
                "{} holds a token in plain text",
                path.display()
            );
        }
    }
    let (refresh, access) = stored_tokens(&h);
    for token in &issued {
        assert!(!refresh.contains(token.as_str()) && !access.contains(token.as_str()));
    }
    let key = key_path(&h);
    let meta = std::fs::metadata(&key).expect("the token key is there");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));

    // The database copied without its key: the plugin refuses it, naming the key, rather
    // than sending Google garbage.
    let kept = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let err = Plugin::open(api(), &h.config().to_string())
        .err()
        .expect("refused");
    assert_eq!(err.code, GiResult::GI_ERR_CONFIG);
    let key_name = key.file_name().unwrap().to_str().unwrap();
    assert!(err.message.contains(key_name), "{}", err.message);
    if h.on_sqlite() {
        // A way out an administrator can take: with no plugin open, nothing can be disabled
        // (the message said to), so it names the old key's place, or the database to move.
        assert!(
            err.message.contains("in place of this one")
                && err.message.contains("google-integration.sqlite3")
                && !err.message.contains("disable"),
            "{}",
            err.message
        );
    }
    // The old key put back (over the one made meanwhile): all is there again.
    std::fs::write(&key, kept).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let plugin = h.open();
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn a_named_key_file_must_exist_be_private_and_hold_32_bytes() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::new();
    let key = h.data_dir().join("pbx-google.key");
    let mut config = h.config();
    config["token_key_file"] = serde_json::json!(key);
    let open_error = |config: &serde_json::Value| {
        Plugin::open(api(), &config.to_string())
            .err()
            .expect("refused")
    };
    let missing = open_error(&config);
    assert!(
        missing.message.contains("pbx-google.key"),
        "{}",
        missing.message
    );

    std::fs::write(&key, [1u8; 16]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(open_error(&config).message.contains("16 bytes"));

    std::fs::write(&key, [1u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(open_error(&config).message.contains("chmod 600"));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    drop(plugin);
    assert!(
        !h.data_dir().join("data/token.key").exists(),
        "with a named key, none is made in data_dir"
    );
    let plugin = h.open_with(&config);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn data_dir_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::new();
    let _plugin = h.open();
    let mode = std::fs::metadata(h.data_dir().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn an_existing_data_dir_others_can_read_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::new();
    let data = h.data_dir().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _plugin = h.open();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn accounts_are_canonical_in_their_domain_part_and_bidi_controls_are_refused() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Ada", "Lovelace").with_phone("+1 212 555 0100", "mobile")],
    );
    let plugin = h.open();
    let connected = h.connect(&plugin, "Example.COM./40", ALICE);
    assert_eq!(
        connected, "example.com/40",
        "gi_complete reports the canonical form"
    );
    wait_for_sync(&plugin, "example.com/40", 1);
    for spelling in ["example.com/40", "EXAMPLE.com./40", "Example.Com/40"] {
        assert_eq!(
            plugin.status(spelling),
            GiStatus::GI_STATUS_CONNECTED,
            "{spelling}"
        );
        let caller = plugin.lookup(spelling, "+12125550100").unwrap();
        let caller = caller.unwrap_or_else(|| panic!("{spelling} finds the contact"));
        assert_eq!(caller.account, "example.com/40");
        assert_eq!(plugin.status_value(spelling)["account"], "example.com/40");
    }
    assert!(
        plugin
            .lookup("example.com/Forty", "+12125550100")
            .unwrap()
            .is_none(),
        "the user part is the host's, compared as given"
    );
    let bidi = plugin.status_json("example.com/\u{202e}04").unwrap_err();
    assert_eq!(bidi.code, GiResult::GI_ERR_INVALID_ARGUMENT);
    plugin.disable("EXAMPLE.COM./40").unwrap();
    assert_eq!(
        plugin.status("example.com/40"),
        GiStatus::GI_STATUS_DISCONNECTED
    );
}
