//! The shared store of a PBX cluster: the same tables as `sqlite`, in PostgreSQL, so that
//! every node sees every state, token and contact. Each node still answers lookups from its
//! own memory; what this adds is telling the others what changed (`NOTIFY gi_changes`, heard by
//! a listener thread of each node: see `changes`) and claims, so that one node at a time runs an
//! account's sync (`claim`: an advisory lock of this node's session, which dies with it).
//!
//! One connection behind a mutex serves every write, as in SQLite; a connection that broke (the
//! server restarted, the network failed) is replaced at the next call, so the plugin reconnects
//! by itself. Messages name the store as user@host:port/dbname, never with its password.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, GenericClient, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::book_change::{self, BookChange, Followed};
use super::pg_copy::CopyReader;
use super::pg_numbers;
use super::seal::Sealer;
use super::sqlite::{lock_data_dir, MAX_PENDING_PER_ACCOUNT};
use super::stored_rows::{split_groups, Runs};
use super::{
    CalendarOutcome, Change, Claim, Committed, Landing, Loaded, PendingAuth, Store, StoreRead,
    StoredAccount, StoredPresence, StoredSource, StoredSyncToken, Tokens, ACCESS, CONTACTS_JOB,
    REFRESH,
};
use crate::book::contact::{Contact, Source};
use crate::book::numbers::GroupNames;
use crate::book::patch::Replaced;
use crate::clock::unix_now;
use crate::config::PgUrl;
use crate::error::{pg_cause, Error, Result};

/// A connection idle this long is checked before use (see `PgStore::with`).
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(10);
/// The channel every node listens on; a payload is "NODE KIND [SOURCE] ACCOUNT".
const CHANNEL: &str = "gi_changes";
/// Taken (for the transaction) by whichever node migrates: nodes starting together migrate
/// one after the other, and the later ones find nothing left to do.
const MIGRATION_LOCK: i64 = 0x6769_5f6d_6967_7261; // "gi_migra"

/// Schema migrations, applied in order; `schema_version` records how many have run. Append,
/// never edit. Text that orders contacts is `COLLATE "C"`, byte order as in SQLite, so both
/// stores hand the index the same order.
const MIGRATIONS: &[&str] = &[
    // 1: the schema of SQLite's migration 6, plus claims, a pending state's order of arrival,
    // and `store_meta` (the key check: see `check_key`).
    r#"CREATE TABLE store_meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
     );
     CREATE TABLE pending_auth (
        seq           BIGSERIAL,
        state_hash    BYTEA PRIMARY KEY,
        account       TEXT NOT NULL,
        pkce_verifier TEXT NOT NULL,
        created_at    BIGINT NOT NULL
     );
     CREATE INDEX pending_auth_by_account ON pending_auth (account, created_at);
     CREATE TABLE accounts (
        account           TEXT PRIMARY KEY,
        connection_id     BIGINT NOT NULL,
        refresh_token     TEXT NOT NULL,
        access_token      TEXT,
        access_expires_at BIGINT,
        connected_at      BIGINT NOT NULL,
        status            TEXT NOT NULL CHECK (status IN ('connected', 'issue')),
        reason            TEXT,
        last_sync         BIGINT,
        last_error        TEXT,
        scopes            TEXT NOT NULL DEFAULT ''
     );
     CREATE TABLE contacts (
        id            BIGSERIAL PRIMARY KEY,
        account       TEXT COLLATE "C" NOT NULL,
        source        TEXT COLLATE "C" NOT NULL,
        resource_name TEXT COLLATE "C" NOT NULL,
        name          TEXT NOT NULL,
        company       TEXT NOT NULL,
        groups        TEXT NOT NULL DEFAULT '',
        UNIQUE (account, source, resource_name)
     );
     CREATE TABLE numbers (
        contact_id BIGINT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
        position   INTEGER NOT NULL,
        e164       BIGINT NOT NULL,
        national   BIGINT NOT NULL,
        label      TEXT NOT NULL,
        PRIMARY KEY (contact_id, position)
     );
     CREATE INDEX numbers_by_e164 ON numbers (e164);
     CREATE INDEX numbers_by_national ON numbers (national);
     CREATE TABLE contact_groups (
        account       TEXT NOT NULL,
        resource_name TEXT NOT NULL,
        name          TEXT NOT NULL,
        PRIMARY KEY (account, resource_name)
     );
     CREATE TABLE presence (
        account       TEXT PRIMARY KEY,
        connection_id BIGINT NOT NULL,
        fetched_at    BIGINT,
        window_end    BIGINT,
        busy          TEXT NOT NULL DEFAULT '',
        issue         TEXT
     );
     CREATE TABLE sources (
        account       TEXT NOT NULL,
        source        TEXT NOT NULL,
        connection_id BIGINT,
        sync_token    TEXT,
        last_sync     BIGINT,
        last_error    TEXT,
        PRIMARY KEY (account, source)
     );
     CREATE TABLE claims (
        account    TEXT NOT NULL,
        job        TEXT NOT NULL,
        node       BIGINT NOT NULL,
        claimed_at BIGINT NOT NULL,
        PRIMARY KEY (account, job)
     );"#,
    // 2: each book's latest change, for the other nodes to patch their copy by (see
    // `PgStore::book_changed`); `seq` marks it, `prev_seq` the change before it.
    r#"CREATE SEQUENCE book_change_seq;
     CREATE TABLE book_changes (
        account  TEXT NOT NULL,
        source   TEXT NOT NULL,
        seq      BIGINT NOT NULL,
        prev_seq BIGINT NOT NULL DEFAULT 0,
        patch    BYTEA,
        PRIMARY KEY (account, source)
     );"#,
    // 3: each contact's numbers packed in its row (see `pg_numbers`), so that reading contacts
    // needs no join and the open reads one stream; the rows already there are packed here. A
    // row without (NULL) was written by a node of an older version during a rolling upgrade:
    // reads pack its numbers from `numbers` as they go (`PACKED_NUMBERS`).
    r#"ALTER TABLE contacts ADD COLUMN packed_numbers BYTEA;
     UPDATE contacts c SET packed_numbers = COALESCE(
        (SELECT string_agg(int8send(n.e164) || int8send(n.national)
                           || int4send(octet_length(convert_to(n.label, 'UTF8')))
                           || convert_to(n.label, 'UTF8'), ''::BYTEA ORDER BY n.position)
         FROM numbers n WHERE n.contact_id = c.id),
        ''::BYTEA);"#,
    // 4: what the sync that earned a source's sync token asked Google for (as SQLite's
    // migration 7). NULL: a token from before this, or from a node of an older version during
    // a rolling upgrade; the next sync of that source is a full one.
    r#"ALTER TABLE sources ADD COLUMN sync_asked TEXT;"#,
];

pub struct PgStore {
    url: PgUrl,
    tls: MakeRustlsConnect,
    /// None after a connection broke and before the next call reconnects; with when it was
    /// last used.
    conn: Mutex<Option<(Client, Instant)>>,
    sealer: Sealer,
    /// This plugin among the store's nodes: its own notifications are not news to it.
    node: i64,
    changes: Mutex<Option<Receiver<Change>>>,
    stopping: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
    _data_dir_lock: std::fs::File,
}

impl PgStore {
    /// Connects, migrates (under an advisory lock), checks that the key opens the stored
    /// tokens, and starts listening for other nodes' changes before anything is read, so that
    /// none is missed between the read and the listening.
    pub fn open(url: &PgUrl, data_dir: &Path, sealer: Sealer) -> Result<PgStore> {
        let data_dir_lock = lock_data_dir(data_dir)?;
        let tls = tls_connector(url.root_cert.as_deref())?;
        let node = rand::random::<i64>() & i64::MAX;
        let unreachable = |e: postgres::Error| {
            Error::storage(format!(
                "cannot open the PostgreSQL store {url} ({}); check that the server runs, that this node may connect, and the URL in \"store\"",
                pg_cause(&e)
            ))
        };
        let mut listening = url.settings.connect(tls.clone()).map_err(unreachable)?;
        listening
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(unreachable)?;
        let mut conn = url.settings.connect(tls.clone()).map_err(unreachable)?;
        migrate(&mut conn)?;
        check_key(&mut conn, &sealer)?;
        check_tokens(&mut conn, &sealer)?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let listener = {
            let (url, tls, stopping) = (url.clone(), tls.clone(), stopping.clone());
            std::thread::Builder::new()
                .name("gi-store-listen".into())
                .spawn(move || listen(listening, &url, &tls, node, &stopping, &sender))
                .map_err(|e| Error::storage(format!("cannot start listening to the store: {e}")))?
        };
        log::info!("store: PostgreSQL {url}, as node {node:x}");
        Ok(PgStore {
            url: url.clone(),
            tls,
            conn: Mutex::new(Some((conn, Instant::now()))),
            sealer,
            node,
            changes: Mutex::new(Some(receiver)),
            stopping,
            listener: Some(listener),
            _data_dir_lock: data_dir_lock,
        })
    }

    /// Runs `f` on the store's connection, connecting first when there is none (or it broke).
    /// A failure that broke the connection says the store is out of reach.
    fn with<R>(&self, f: impl FnOnce(&mut Client) -> Result<R>) -> Result<R> {
        let mut conn = self.conn.lock();
        // A connection idle for a while may have been closed by a restarted server without
        // this side knowing yet: asked first (one round trip), so that the call itself does
        // not fail on it.
        if let Some((client, used)) = conn.as_mut() {
            if used.elapsed() > IDLE_CHECK_AFTER && !client.is_closed() {
                let _ = client.is_valid(Duration::from_secs(5));
            }
        }
        if conn.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            *conn = None;
            let client = self.url.settings.connect(self.tls.clone()).map_err(|e| {
                Error::storage(format!(
                    "the PostgreSQL store {} is unreachable ({}); lookups answer from memory meanwhile, and the plugin reconnects by itself",
                    self.url,
                    pg_cause(&e)
                ))
            })?;
            log::info!("store: connected to PostgreSQL {} again", self.url);
            *conn = Some((client, Instant::now()));
        }
        let (client, used) = conn.as_mut().expect("connected above");
        *used = Instant::now();
        let result = f(client);
        if result.is_err() && client.is_closed() {
            *conn = None;
            let error = result.err().expect("checked above");
            return Err(Error::storage(format!(
                "the connection to the PostgreSQL store {} broke ({}); lookups answer from memory meanwhile, and the plugin reconnects by itself",
                self.url,
                error.message()
            )));
        }
        result
    }

    /// Records that one source's book changed (in the transaction that changed it) and tells
    /// the other nodes. `patch` is the change when it is an incremental sync's (see
    /// `book_change`): a node whose copy is the book just before it patches its copy; every
    /// other node, and every other change (a full sync, new group names, an erase), rebuilds.
    /// Only the latest change is kept, so the table holds a row a book.
    fn book_changed(
        &self,
        tx: &mut impl GenericClient,
        account: &str,
        source: Source,
        patch: Option<&[u8]>,
    ) -> Result<()> {
        tx.execute(
            "INSERT INTO book_changes (account, source, seq, patch)
                VALUES ($1, $2, nextval('book_change_seq'), $3)
             ON CONFLICT (account, source) DO UPDATE
                SET prev_seq = book_changes.seq, seq = excluded.seq, patch = excluded.patch",
            &[&account, &source.name(), &patch],
        )?;
        self.notify(tx, &format!("contacts {} {account}", source.name()))
    }

    fn notify(&self, tx: &mut impl GenericClient, change: &str) -> Result<()> {
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &format!("{:x} {change}", self.node)],
        )?;
        Ok(())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

/// TLS through rustls (ring), verifying the server's certificate against the web's root
/// certificates and those of the URL's `sslrootcert`; whether TLS is used is the URL's
/// `sslmode` (disable, prefer, require). Unlike libpq's `require`, a certificate is always
/// verified: an unverified session is open to whoever sits between node and server.
fn tls_connector(root_cert: Option<&Path>) -> Result<MakeRustlsConnect> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = root_cert {
        let refused = |why: String| {
            Error::config(format!(
                "configuration: store: sslrootcert {}: {why}; it must be a PEM file of the CA certificates the PostgreSQL server's certificate chains to",
                path.display()
            ))
        };
        let pem = std::fs::read(path).map_err(|e| refused(format!("cannot be read ({e})")))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| refused(format!("is not valid PEM ({e})")))?;
            roots
                .add(cert)
                .map_err(|e| refused(format!("holds a certificate rustls refuses ({e})")))?;
            added += 1;
        }
        if added == 0 {
            return Err(refused("holds no certificate".into()));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The listener thread: hands other nodes' changes to `changes`. When the connection breaks it
/// reconnects (every second until it can), then reports `Everything`: what happened meanwhile
/// was not heard.
fn listen(
    mut client: Client,
    url: &PgUrl,
    tls: &MakeRustlsConnect,
    node: i64,
    stopping: &AtomicBool,
    changes: &Sender<Change>,
) {
    let own = format!("{node:x} ");
    loop {
        loop {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            let next = client
                .notifications()
                .timeout_iter(Duration::from_millis(200))
                .next();
            match next {
                Ok(Some(notification)) => {
                    let payload = notification.payload();
                    // This node's own contacts are in its index already (swapped under the
                    // store's lock); its own account and calendar notices are heard, so that a
                    // reload that raced one of its writes is followed by one that reads it.
                    if payload.starts_with(&own) && payload[own.len()..].starts_with("contacts ") {
                        continue;
                    }
                    match parse_change(payload) {
                        Some(change) => {
                            let _ = changes.send(change);
                        }
                        None => log::debug!("store: ignored the change notice {payload:?}"),
                    }
                }
                Ok(None) if !client.is_closed() => {}
                Ok(None) | Err(_) => break,
            }
        }
        log::warn!("store: lost the connection that hears other nodes' changes; reconnecting");
        client = loop {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
            let Ok(mut fresh) = url.settings.connect(tls.clone()) else {
                continue;
            };
            if fresh.batch_execute(&format!("LISTEN {CHANNEL}")).is_ok() {
                break fresh;
            }
        };
        log::info!("store: hearing other nodes' changes again; reloading everything");
        let _ = changes.send(Change::Everything);
    }
}

/// "NODE account ACCOUNT", "NODE contacts SOURCE ACCOUNT" or "NODE presence ACCOUNT".
fn parse_change(payload: &str) -> Option<Change> {
    let mut parts = payload.splitn(3, ' ');
    let _node = parts.next()?;
    let kind = parts.next()?;
    let rest = parts.next()?;
    Some(match kind {
        "account" => Change::Account(rest.to_owned()),
        "presence" => Change::Presence(rest.to_owned()),
        "contacts" => {
            let (source, account) = rest.split_once(' ')?;
            Change::Contacts(account.to_owned(), Source::from_name(source)?)
        }
        _ => return None,
    })
}

fn migrate(conn: &mut Client) -> Result<()> {
    let mut tx = conn.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let version: i32 = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map_or(0, |row| row.get(0));
    let version = version as usize;
    if version > MIGRATIONS.len() {
        return Err(Error::storage(format!(
            "the PostgreSQL store has schema version {version}, newer than this plugin knows ({}); give every node the newest plugin",
            MIGRATIONS.len()
        )));
    }
    for migration in &MIGRATIONS[version..] {
        tx.batch_execute(migration)?;
    }
    if version < MIGRATIONS.len() {
        tx.execute("DELETE FROM schema_version", &[])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(MIGRATIONS.len() as i32)],
        )?;
        log::info!(
            "store: PostgreSQL schema migrated from version {version} to {}",
            MIGRATIONS.len()
        );
    }
    tx.commit()?;
    Ok(())
}

/// Refuses a key other than the one the store's first node sealed with, even while no token
/// is stored yet: nodes with different keys would each fail on the other's tokens later. The
/// first node stores a value sealed with its key; every open must open it.
fn check_key(conn: &mut Client, sealer: &Sealer) -> Result<()> {
    conn.execute(
        "INSERT INTO store_meta (name, value) VALUES ('key_check', $1) ON CONFLICT (name) DO NOTHING",
        &[&sealer.seal(KEY_CHECK, KEY_CHECK, KEY_CHECK)],
    )?;
    let stored: String = conn
        .query_one("SELECT value FROM store_meta WHERE name = 'key_check'", &[])?
        .get(0);
    sealer.open(KEY_CHECK, KEY_CHECK, &stored).map_err(|_| {
        crate::error::Error::config(format!(
            "the token key {} is not the key this PostgreSQL store's nodes seal tokens with; give every node the same token_key_file",
            sealer.key_path().display()
        ))
    })?;
    Ok(())
}

const KEY_CHECK: &str = "key_check";

/// Proves that the key opens every stored token (a node with another key must never send
/// garbage to Google), and seals any written in plain text.
fn check_tokens(conn: &mut Client, sealer: &Sealer) -> Result<()> {
    let mut tx = conn.transaction()?;
    let rows = tx.query(
        "SELECT account, refresh_token, access_token FROM accounts",
        &[],
    )?;
    for row in rows {
        let account: String = row.get(0);
        let values: [(&str, Option<String>); 2] =
            [(REFRESH, Some(row.get(1))), (ACCESS, row.get(2))];
        for (field, value) in values {
            let Some(value) = value else { continue };
            if Sealer::is_sealed(&value) {
                sealer.open(&account, field, &value)?;
                continue;
            }
            tx.execute(
                &format!("UPDATE accounts SET {field} = $2 WHERE account = $1"),
                &[&account, &sealer.seal(&account, field, &value)],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn stored_account_from_row(row: &postgres::Row) -> StoredAccount {
    StoredAccount::from_columns(
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
    )
}

const ACCOUNT_COLUMNS: &str =
    "SELECT account, connection_id, status, reason, last_sync, last_error, scopes FROM accounts";

impl Store for PgStore {
    fn insert_pending(
        &self,
        state_hash: &[u8],
        pending: &PendingAuth,
        expired_before: i64,
    ) -> Result<()> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM pending_auth WHERE created_at < $1",
                &[&expired_before],
            )?;
            tx.execute(
                "INSERT INTO pending_auth (state_hash, account, pkce_verifier, created_at) VALUES ($1, $2, $3, $4)",
                &[
                    &state_hash,
                    &pending.account,
                    &pending.sealed_verifier(&self.sealer),
                    &pending.created_at,
                ],
            )?;
            // An account keeps its newest few authorizations (see SQLite's).
            tx.execute(
                "DELETE FROM pending_auth WHERE account = $1 AND state_hash NOT IN
                    (SELECT state_hash FROM pending_auth WHERE account = $1
                     ORDER BY created_at DESC, seq DESC LIMIT $2)",
                &[&pending.account, &MAX_PENDING_PER_ACCOUNT],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn take_pending(&self, state_hash: &[u8], expired_before: i64) -> Result<Option<PendingAuth>> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            // DELETE ... RETURNING: two nodes handed the same redirect cannot both spend it.
            let pending = tx
                .query_opt(
                    "DELETE FROM pending_auth WHERE state_hash = $1
                     RETURNING account, pkce_verifier, created_at",
                    &[&state_hash],
                )?
                .map(|row| (row.get(0), row.get(1), row.get(2)));
            tx.execute(
                "DELETE FROM pending_auth WHERE created_at < $1",
                &[&expired_before],
            )?;
            tx.commit()?;
            pending
                .map(|stored| PendingAuth::open_stored(&self.sealer, stored))
                .transpose()
        })
    }

    fn connect_account(
        &self,
        account: &str,
        tokens: &Tokens,
        scopes: &[String],
        now: i64,
    ) -> Result<StoredAccount> {
        let connection_id: i64 = rand::random::<i64>() & i64::MAX;
        let refresh = self.sealer.seal(account, REFRESH, &tokens.refresh_token);
        let access = tokens
            .access_token
            .as_deref()
            .map(|t| self.sealer.seal(account, ACCESS, t));
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO accounts (account, connection_id, refresh_token, access_token, access_expires_at,
                                       connected_at, status, reason, last_error, scopes)
                 VALUES ($1, $2, $3, $4, $5, $6, 'connected', NULL, NULL, $7)
                 ON CONFLICT (account) DO UPDATE SET
                    connection_id = excluded.connection_id, refresh_token = excluded.refresh_token,
                    access_token = excluded.access_token, access_expires_at = excluded.access_expires_at,
                    connected_at = excluded.connected_at, status = 'connected', reason = NULL,
                    last_error = NULL, scopes = excluded.scopes",
                &[
                    &account,
                    &connection_id,
                    &refresh,
                    &access,
                    &tokens.access_expires_at,
                    &now,
                    &scopes.join(" "),
                ],
            )?;
            tx.execute("DELETE FROM presence WHERE account = $1", &[&account])?;
            tx.execute(
                "UPDATE sources SET sync_token = NULL, last_error = NULL WHERE account = $1",
                &[&account],
            )?;
            self.notify(&mut tx, &format!("account {account}"))?;
            self.notify(&mut tx, &format!("presence {account}"))?;
            let row = tx.query_one(&format!("{ACCOUNT_COLUMNS} WHERE account = $1"), &[&account])?;
            tx.commit()?;
            Ok(stored_account_from_row(&row))
        })
    }

    fn account(&self, account: &str) -> Result<Option<StoredAccount>> {
        self.with(|conn| {
            let row = conn.query_opt(
                &format!("{ACCOUNT_COLUMNS} WHERE account = $1"),
                &[&account],
            )?;
            Ok(row.as_ref().map(stored_account_from_row))
        })
    }

    fn accounts(&self) -> Result<Vec<StoredAccount>> {
        self.with(|conn| {
            let rows = conn.query(&format!("{ACCOUNT_COLUMNS} ORDER BY account"), &[])?;
            Ok(rows.iter().map(stored_account_from_row).collect())
        })
    }

    fn tokens(&self, account: &str, connection_id: i64) -> Result<Option<Tokens>> {
        let sealed = self.with(|conn| {
            Ok(conn
                .query_opt(
                    "SELECT refresh_token, access_token, access_expires_at FROM accounts
                     WHERE account = $1 AND connection_id = $2",
                    &[&account, &connection_id],
                )?
                .map(|row| {
                    (
                        row.get::<_, String>(0),
                        row.get::<_, Option<String>>(1),
                        row.get::<_, Option<i64>>(2),
                    )
                }))
        })?;
        sealed
            .map(|sealed| Tokens::open_sealed(&self.sealer, account, sealed))
            .transpose()
    }

    fn update_access_token(
        &self,
        account: &str,
        connection_id: i64,
        access_token: &str,
        expires_at: Option<i64>,
        new_refresh_token: Option<&str>,
    ) -> Result<()> {
        let access = self.sealer.seal(account, ACCESS, access_token);
        let refresh = new_refresh_token.map(|t| self.sealer.seal(account, REFRESH, t));
        self.with(|conn| {
            conn.execute(
                "UPDATE accounts SET access_token = $3, access_expires_at = $4,
                                     refresh_token = coalesce($5, refresh_token)
                 WHERE account = $1 AND connection_id = $2",
                &[&account, &connection_id, &access, &expires_at, &refresh],
            )?;
            Ok(())
        })
    }

    fn set_health(
        &self,
        account: &str,
        connection_id: i64,
        issue: Option<&str>,
        last_error: Option<&str>,
    ) -> Result<()> {
        let status = if issue.is_some() {
            "issue"
        } else {
            "connected"
        };
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE accounts SET status = $3, reason = $4, last_error = $5
                 WHERE account = $1 AND connection_id = $2
                   AND (status, reason, last_error) IS DISTINCT FROM ($3, $4, $5)",
                &[&account, &connection_id, &status, &issue, &last_error],
            )?;
            if changed > 0 {
                self.notify(&mut tx, &format!("account {account}"))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn delete_account(&self, account: &str, connection_id: i64) -> Result<bool> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            // The claims first, as a sync's landing takes them (FOR SHARE, then the account's
            // row): taken after the account's row, a disable and a landing of the same account
            // each held what the other waited for, and PostgreSQL aborted one, the disable
            // among them ("deadlock detected"). Should the account turn out to be another
            // connection's, the rollback puts them back.
            tx.execute("DELETE FROM claims WHERE account = $1", &[&account])?;
            let removed = tx.execute(
                "DELETE FROM accounts WHERE account = $1 AND connection_id = $2",
                &[&account, &connection_id],
            )?;
            if removed == 0 {
                return Ok(false);
            }
            for table in [
                "contacts",
                "contact_groups",
                "sources",
                "pending_auth",
                "presence",
                "book_changes",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE account = $1"),
                    &[&account],
                )?;
            }
            self.notify(&mut tx, &format!("account {account}"))?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn presences(&self, only: Option<&str>) -> Result<Vec<StoredPresence>> {
        self.with(|conn| {
            let rows = conn.query(
                "SELECT p.account, p.fetched_at, p.window_end, p.busy, p.issue
                 FROM presence p JOIN accounts a
                   ON a.account = p.account AND a.connection_id = p.connection_id
                 WHERE $1::TEXT IS NULL OR p.account = $1",
                &[&only],
            )?;
            Ok(rows.iter().map(presence_from_row).collect())
        })
    }

    fn save_presence(
        &self,
        account: &str,
        connection_id: i64,
        outcome: CalendarOutcome<'_>,
        after_commit: &mut dyn FnMut(),
    ) -> Result<bool> {
        let (fetched_at, window_end, busy, issue) = outcome.columns();
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            if !lock_connection(&mut tx, account, connection_id)? {
                return Ok(false);
            }
            // Told to the other nodes only when something changed: Google answering the
            // same 403 every interval sends nothing (a good answer always has a new time).
            let changed = tx.execute(
                "INSERT INTO presence (account, connection_id, fetched_at, window_end, busy, issue)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (account) DO UPDATE SET connection_id = excluded.connection_id,
                    fetched_at = excluded.fetched_at, window_end = excluded.window_end,
                    busy = excluded.busy, issue = excluded.issue
                 WHERE (presence.connection_id, presence.fetched_at, presence.window_end,
                        presence.busy, presence.issue)
                    IS DISTINCT FROM (excluded.connection_id, excluded.fetched_at,
                        excluded.window_end, excluded.busy, excluded.issue)",
                &[
                    &account,
                    &connection_id,
                    &fetched_at,
                    &window_end,
                    &busy,
                    &issue,
                ],
            )?;
            if changed > 0 {
                self.notify(&mut tx, &format!("presence {account}"))?;
            }
            tx.commit()?;
            after_commit();
            Ok(true)
        })
    }

    fn set_presence_issue(
        &self,
        account: &str,
        connection_id: i64,
        issue: Option<&str>,
    ) -> Result<()> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            if !lock_connection(&mut tx, account, connection_id)? {
                return Ok(());
            }
            let changed = tx.execute(
                "INSERT INTO presence (account, connection_id, issue)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (account) DO UPDATE SET issue = excluded.issue
                 WHERE presence.connection_id = excluded.connection_id
                   AND presence.issue IS DISTINCT FROM excluded.issue",
                &[&account, &connection_id, &issue],
            )?;
            if changed > 0 {
                self.notify(&mut tx, &format!("presence {account}"))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn delete_presence(&self, account: &str) -> Result<()> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            if tx.execute("DELETE FROM presence WHERE account = $1", &[&account])? > 0 {
                self.notify(&mut tx, &format!("presence {account}"))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn sync_token(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
    ) -> Result<Option<StoredSyncToken>> {
        self.with(|conn| {
            let row = conn.query_opt(
                "SELECT s.sync_token, s.sync_asked FROM sources s JOIN accounts a ON a.account = s.account
                 WHERE s.account = $1 AND a.connection_id = $2 AND s.source = $3",
                &[&account, &connection_id, &source.name()],
            )?;
            Ok(row.and_then(|row| StoredSyncToken::from_columns((row.get(0), row.get(1)))))
        })
    }

    fn set_source_error(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
        error: Option<&str>,
    ) -> Result<()> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            if !lock_connection(&mut tx, account, connection_id)? {
                return Ok(());
            }
            let changed = tx.execute(
                "INSERT INTO sources (account, source, last_error) VALUES ($1, $2, $3)
                 ON CONFLICT (account, source) DO UPDATE SET last_error = excluded.last_error
                 WHERE sources.last_error IS DISTINCT FROM excluded.last_error",
                &[&account, &source.name(), &error],
            )?;
            if changed > 0 {
                self.notify(&mut tx, &format!("account {account}"))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn forget_older_source(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
    ) -> Result<bool> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            // The account's row first, as a landing and a disable take it before the sources
            // and contacts: read without a lock, a disable on another node (account row, then
            // contacts, then sources) and this (sources, then contacts) each held what the
            // other waited for, and PostgreSQL aborted one, perhaps the disable.
            let current = tx
                .query_opt(
                    "SELECT 1 FROM accounts WHERE account = $1 AND connection_id = $2 FOR UPDATE",
                    &[&account, &connection_id],
                )?
                .is_some();
            if !current {
                return Ok(false);
            }
            // As SQLite's: a source no connection landed holds nothing to erase (deleting its
            // row sent every follower a notice to rebuild an empty book at each failed sync).
            let older = tx.execute(
                "DELETE FROM sources WHERE account = $1 AND source = $2
                    AND connection_id IS NOT NULL AND connection_id <> $3",
                &[&account, &source.name(), &connection_id],
            )?;
            if older == 0 {
                return Ok(false);
            }
            let erased = tx.execute(
                "DELETE FROM contacts WHERE account = $1 AND source = $2",
                &[&account, &source.name()],
            )?;
            self.book_changed(&mut tx, account, source, None)?;
            tx.commit()?;
            #[cfg(debug_assertions)]
            debug_lose_commit_reply(account)?;
            Ok(erased > 0)
        })
    }

    fn source_states(&self, only: Option<&str>) -> Result<Vec<(String, Source, StoredSource)>> {
        self.with(|conn| {
            let rows = conn.query(
                "SELECT account, source, last_sync, last_error FROM sources
                 WHERE $1::TEXT IS NULL OR account = $1",
                &[&only],
            )?;
            Ok(rows
                .iter()
                .filter_map(|row| {
                    // A name this version does not know (a newer plugin's) is left alone.
                    let source = Source::from_name(row.get(1))?;
                    let state = StoredSource {
                        last_sync: row.get(2),
                        last_error: row.get(3),
                    };
                    Some((row.get(0), source, state))
                })
                .collect())
        })
    }

    fn forget_sources(&self, keep: &dyn Fn(&str) -> Vec<Source>) -> Result<Vec<(String, Source)>> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            // In one order on every node, each account's row locked before its sources and
            // contacts, as a landing and a disable lock them (see `forget_older_source`).
            let dropped: Vec<(String, Source)> = tx
                .query(
                    "SELECT account, source FROM sources ORDER BY account, source",
                    &[],
                )?
                .iter()
                .filter_map(|row| {
                    let account: String = row.get(0);
                    let source = Source::from_name(row.get(1))?;
                    (!keep(&account).contains(&source)).then_some((account, source))
                })
                .collect();
            for (account, source) in &dropped {
                tx.query(
                    "SELECT 1 FROM accounts WHERE account = $1 FOR UPDATE",
                    &[account],
                )?;
                for table in ["sources", "contacts"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE account = $1 AND source = $2"),
                        &[account, &source.name()],
                    )?;
                }
                if *source == Source::Contacts {
                    tx.execute("DELETE FROM contact_groups WHERE account = $1", &[account])?;
                }
                self.book_changed(&mut tx, account, *source, None)?;
            }
            tx.commit()?;
            Ok(dropped)
        })
    }

    fn commit_sync(
        &self,
        account: &str,
        connection_id: i64,
        landing: &Landing<'_>,
        now: i64,
        after_commit: &mut dyn FnMut(&dyn StoreRead, &Committed) -> Result<()>,
    ) -> Result<bool> {
        self.with(|conn| {
            let mut tx = conn.transaction()?;
            let Some(committed) = self.write_sync(&mut tx, account, connection_id, landing, now)?
            else {
                return Ok(false);
            };
            tx.commit()?;
            #[cfg(debug_assertions)]
            debug_lose_commit_reply(account)?;
            after_commit(&PgRead(RefCell::new(conn)), &committed)?;
            Ok(true)
        })
    }

    fn for_each_book(
        &self,
        each: &mut dyn FnMut(String, Source, Loaded, GroupNames),
    ) -> Result<()> {
        self.with(|conn| {
            // One snapshot for the groups and both streams of contacts: another node's sync
            // landing between them must not give a contact's new id no numbers.
            let mut tx = snapshot(conn)?;
            let mut groups: HashMap<String, GroupNames> = HashMap::new();
            for row in tx.query(
                "SELECT account, resource_name, name FROM contact_groups",
                &[],
            )? {
                groups
                    .entry(row.get(0))
                    .or_default()
                    .insert(row.get(1), row.get(2));
            }
            load_contacts(&mut tx, None, &mut |account, source, loaded| {
                let names = match source {
                    Source::Contacts => groups.remove(&account).unwrap_or_default(),
                    _ => GroupNames::new(),
                };
                each(account, source, loaded, names)
            })?;
            tx.commit()?;
            Ok(())
        })
    }

    fn book(&self, account: &str, source: Source) -> Result<(Loaded, GroupNames, i64)> {
        self.with(|conn| {
            // One snapshot: the mark must be the change the contacts read are the result of.
            let mut tx = snapshot(conn)?;
            let mark = latest_book_change(&mut tx, account, source)?.map_or(0, |row| row.get(0));
            let loaded = contacts_of(&mut tx, account, source)?;
            let names = group_names_for(&mut tx, account, source)?;
            tx.commit()?;
            Ok((loaded, names, mark))
        })
    }

    fn follow_book(
        &self,
        account: &str,
        source: Source,
        mark: i64,
        patch: &mut dyn FnMut(&dyn StoreRead, &BookChange) -> Result<bool>,
    ) -> Result<Followed> {
        self.with(|conn| {
            // One snapshot for the change, its contacts and the holders the patch reads: a
            // sync landing meanwhile must not show the patch a later state than the change's.
            let mut tx = snapshot(conn)?;
            // A notice with no new change behind it is a late one (this node has caught up
            // already) or a node of the version before `book_changes`, which changes contacts
            // without a row, during a rolling upgrade: only a rebuild is right for both.
            let Some(row) = latest_book_change(&mut tx, account, source)? else {
                return Ok(Followed::Rebuild);
            };
            let (seq, prev_seq, bytes): (i64, i64, Option<Vec<u8>>) =
                (row.get(0), row.get(1), row.get(2));
            let Some(bytes) = bytes.filter(|_| prev_seq == mark && seq != mark) else {
                return Ok(Followed::Rebuild);
            };
            let (replaced, upsert_ids, deletions) = match book_change::decode(&bytes) {
                Ok(decoded) => decoded,
                Err(e) => {
                    log::warn!("account {account}: {}", e.message());
                    return Ok(Followed::Rebuild);
                }
            };
            let ids: Vec<i64> = upsert_ids.iter().map(|&id| id as i64).collect();
            let upserts = load_where(&mut tx, "c.id = ANY($1)", &[&ids])?.contacts;
            if upserts.len() != ids.len() {
                return Ok(Followed::Rebuild);
            }
            let group_names = group_names_for(&mut tx, account, source)?;
            let change = BookChange {
                replaced,
                upserts,
                deletions,
                group_names,
            };
            let patched = patch(&PgRead(RefCell::new(&mut tx)), &change)?;
            tx.commit()?;
            Ok(if patched {
                Followed::Patched(seq)
            } else {
                Followed::Rebuild
            })
        })
    }

    fn backup(&self, _target: &Path) -> Result<()> {
        Err(Error::config(
            "gi_backup copies the SQLite store only; this plugin uses PostgreSQL, so back it up with PostgreSQL's own tools (pg_dump, or the server's base backups)",
        ))
    }

    /// PostgreSQL makes each commit durable itself.
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    fn claim(&self, account: &str, job: &str, fresh_within: Option<i64>) -> Result<Claim> {
        let key = claim_key(account, job);
        let now = unix_now();
        self.with(|conn| {
            let locked: bool = conn
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?
                .get(0);
            if !locked {
                return Ok(Claim::Busy);
            }
            let decided = (|| {
                let last = conn.query_opt(
                    "SELECT node, claimed_at FROM claims WHERE account = $1 AND job = $2",
                    &[&account, &job],
                )?;
                if let (Some(window), Some(last)) = (fresh_within, last) {
                    let (node, at): (i64, i64) = (last.get(0), last.get(1));
                    if node != self.node && at > now - window {
                        return Ok(Claim::Fresh(at));
                    }
                }
                conn.execute(
                    "INSERT INTO claims (account, job, node, claimed_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (account, job) DO UPDATE SET node = excluded.node, claimed_at = excluded.claimed_at",
                    &[&account, &job, &self.node, &now],
                )?;
                Ok::<_, Error>(Claim::Granted)
            })();
            // Anything but a grant gives the lock back at once: held by a live session, it
            // would keep every other node out until this one's connection ends.
            if !matches!(decided, Ok(Claim::Granted)) {
                let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&key]);
            }
            decided
        })
    }

    fn release(&self, account: &str, job: &str) {
        let key = claim_key(account, job);
        // A connection that broke since took the lock with it.
        let mut conn = self.conn.lock();
        if let Some((conn, _)) = conn.as_mut().filter(|(c, _)| !c.is_closed()) {
            if let Err(e) = conn.execute("SELECT pg_advisory_unlock($1)", &[&key]) {
                log::warn!("store: cannot give back the claim on {account}'s {job}: {e}");
            }
        }
    }

    fn changes(&self) -> Option<Receiver<Change>> {
        self.changes.lock().take()
    }
}

impl PgStore {
    /// `commit_sync`'s writes (see SQLite's for the reasoning): what differs from the store is
    /// written, in a few statements whatever the number of contacts (arrays, not a round trip a
    /// row). None when the connection is no longer current.
    fn write_sync(
        &self,
        tx: &mut Transaction<'_>,
        account: &str,
        connection_id: i64,
        landing: &Landing<'_>,
        now: i64,
    ) -> Result<Option<Committed>> {
        let Landing {
            source,
            replace_all,
            upserts,
            deletions,
            sync_token,
            sync_asked,
            group_names,
        } = *landing;
        // The claim this sync ran under must still be this node's. Should its connection have
        // broken mid-sync (the session's lock going with it), another node may have claimed
        // and synced the account since; this node's older fetch must not land over that. The
        // row is locked until the commit, so a claim racing this waits for it.
        let claimed_by: Option<i64> = tx
            .query_opt(
                "SELECT node FROM claims WHERE account = $1 AND job = $2 FOR SHARE",
                &[&account, &CONTACTS_JOB],
            )?
            .map(|row| row.get(0));
        if claimed_by.is_some_and(|node| node != self.node) {
            log::warn!(
                "account {account}: another node took its sync over while this node's connection to the store was broken; this node's sync is dropped, the other's stands"
            );
            return Ok(None);
        }
        // The status is left alone until every source has ended (see SQLite's).
        let current = tx.execute(
            "UPDATE accounts SET last_sync = GREATEST(last_sync, $3)
             WHERE account = $1 AND connection_id = $2",
            &[&account, &connection_id, &now],
        )?;
        if current == 0 {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO sources (account, source, connection_id, sync_token, sync_asked, last_sync, last_error)
                VALUES ($1, $2, $3, $4, $5, $6, NULL)
             ON CONFLICT (account, source) DO UPDATE SET
                connection_id = excluded.connection_id, sync_token = excluded.sync_token,
                sync_asked = excluded.sync_asked, last_sync = excluded.last_sync, last_error = NULL",
            &[&account, &source.name(), &connection_id, &sync_token, &sync_asked, &now],
        )?;
        // The stored versions of everyone this sync touches: every contact of the source for a
        // full sync, else those named by resource name.
        let stored = if replace_all {
            contacts_of(tx, account, source)?
        } else {
            let names: Vec<&str> = deletions
                .iter()
                .map(String::as_str)
                .chain(upserts.iter().map(|c| c.resource_name.as_str()))
                .collect();
            load_where(
                tx,
                "c.account = $1 AND c.source = $2 AND c.resource_name = ANY($3)",
                &[&account, &source.name(), &names],
            )?
        };
        let mut stored: HashMap<String, (u64, Contact)> = stored
            .contacts
            .into_iter()
            .zip(stored.ids)
            .map(|(contact, id)| (contact.resource_name.clone(), (id, contact)))
            .collect();
        let mut replaced = Vec::new();
        let mut removed: Vec<i64> = Vec::new();
        let mut remove = |id: u64, old: &Contact| {
            replaced.push(Replaced {
                id,
                numbers: old.numbers.iter().map(|n| (n.e164, n.national)).collect(),
            });
            removed.push(id as i64);
        };
        for resource_name in deletions {
            if let Some((id, old)) = stored.remove(resource_name) {
                remove(id, &old);
            }
        }
        let mut kept: HashMap<&str, u64> = HashMap::new();
        let mut written: Vec<&Contact> = Vec::new();
        for contact in upserts {
            if let Some((id, old)) = stored.remove(&contact.resource_name) {
                // Only a full sync keeps an unchanged contact's row: an incremental sync's
                // index patch hides every upsert's stored version and adds it anew (as in
                // SQLite), so a kept row would answer twice.
                if replace_all && old == *contact {
                    kept.insert(&contact.resource_name, id);
                    continue;
                }
                remove(id, &old);
            }
            written.push(contact);
        }
        if replace_all {
            // What a full sync no longer brings is gone at Google.
            for (_, (id, old)) in stored.drain() {
                remove(id, &old);
            }
        }
        if !removed.is_empty() {
            tx.execute("DELETE FROM contacts WHERE id = ANY($1)", &[&removed])?;
        }
        let mut new_ids: HashMap<String, u64> = HashMap::with_capacity(written.len());
        if !written.is_empty() {
            let names: Vec<&str> = written.iter().map(|c| c.resource_name.as_str()).collect();
            let people: Vec<&str> = written.iter().map(|c| c.name.as_str()).collect();
            let companies: Vec<&str> = written.iter().map(|c| c.company.as_str()).collect();
            let groups: Vec<String> = written.iter().map(|c| c.groups.join("\n")).collect();
            let packed: Vec<Vec<u8>> = written
                .iter()
                .map(|c| pg_numbers::pack(&c.numbers))
                .collect();
            for row in tx.query(
                "INSERT INTO contacts (account, source, resource_name, name, company, groups, packed_numbers)
                 SELECT $1, $2, r, n, c, g, p
                 FROM unnest($3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BYTEA[]) AS u(r, n, c, g, p)
                 RETURNING resource_name, id",
                &[&account, &source.name(), &names, &people, &companies, &groups, &packed],
            )? {
                new_ids.insert(row.get(0), row.get::<_, i64>(1) as u64);
            }
            let (mut ids, mut positions, mut e164s, mut nationals, mut labels) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for contact in &written {
                let id = new_ids[&contact.resource_name] as i64;
                for (position, number) in contact.numbers.iter().enumerate() {
                    ids.push(id);
                    positions.push(position as i32);
                    e164s.push(number.e164.0 as i64);
                    nationals.push(number.national.0 as i64);
                    labels.push(number.label.as_str());
                }
            }
            if !ids.is_empty() {
                tx.execute(
                    "INSERT INTO numbers (contact_id, position, e164, national, label)
                     SELECT * FROM unnest($1::BIGINT[], $2::INT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[])",
                    &[&ids, &positions, &e164s, &nationals, &labels],
                )?;
            }
        }
        let upsert_ids: Vec<u64> = upserts
            .iter()
            .map(|c| {
                kept.get(c.resource_name.as_str())
                    .or_else(|| new_ids.get(&c.resource_name))
                    .copied()
                    .expect("every upsert was kept or written")
            })
            .collect();
        let groups_changed =
            source == Source::Contacts && stored_group_names(tx, account)? != *group_names;
        if groups_changed {
            tx.execute("DELETE FROM contact_groups WHERE account = $1", &[&account])?;
            let (names, titles): (Vec<&str>, Vec<&str>) = group_names
                .iter()
                .map(|(r, n)| (r.as_str(), n.as_str()))
                .unzip();
            tx.execute(
                "INSERT INTO contact_groups (account, resource_name, name)
                 SELECT $1, r, n FROM unnest($2::TEXT[], $3::TEXT[]) AS u(r, n)",
                &[&account, &names, &titles],
            )?;
        }
        let contacts_changed = !written.is_empty() || !replaced.is_empty();
        if contacts_changed || groups_changed {
            let patch = (!replace_all && !groups_changed)
                .then(|| book_change::encode(&replaced, &upsert_ids, deletions));
            self.book_changed(tx, account, source, patch.as_deref())?;
        }
        self.notify(tx, &format!("account {account}"))?;
        Ok(Some(Committed {
            contacts_changed,
            groups_changed,
            replaced,
            upsert_ids,
        }))
    }
}

/// The store's connection (or a transaction on it), read after a commit (see
/// `Store::commit_sync`) or while following another node's change.
struct PgRead<'a, C>(RefCell<&'a mut C>);

impl<C: GenericClient> StoreRead for PgRead<'_, C> {
    fn contacts_of(&self, account: &str, source: Source) -> Result<Loaded> {
        contacts_of(*self.0.borrow_mut(), account, source)
    }

    fn holders(
        &self,
        account: &str,
        source: Source,
        e164s: &[u64],
        nationals: &[u64],
    ) -> Result<Vec<Contact>> {
        let e164s: Vec<i64> = e164s.iter().map(|&k| k as i64).collect();
        let nationals: Vec<i64> = nationals.iter().map(|&k| k as i64).collect();
        let loaded = load_where(
            *self.0.borrow_mut(),
            "c.id IN (SELECT n.contact_id FROM numbers n JOIN contacts h ON h.id = n.contact_id
                      WHERE (n.e164 = ANY($3) OR n.national = ANY($4))
                        AND h.account = $1 AND h.source = $2)",
            &[&account, &source.name(), &e164s, &nationals],
        )?;
        Ok(loaded.contacts)
    }
}

/// Debug builds only: lets a test lose the reply to a COMMIT (the connection breaking just
/// then) of a sync's landing or of `forget_older_source`: committed, yet an error to the
/// caller. GI_DEBUG_LOSE_COMMIT_REPLY lists `ACCOUNT:N` (comma-separated): the account's N-th
/// such commit in this process loses its reply (N is 2 when left out: the first gives the
/// account a book to fall behind). Release builds have no hook.
#[cfg(debug_assertions)]
fn debug_lose_commit_reply(account: &str) -> Result<()> {
    static COMMITS: parking_lot::Mutex<Option<HashMap<String, usize>>> =
        parking_lot::Mutex::new(None);
    let Ok(listed) = std::env::var("GI_DEBUG_LOSE_COMMIT_REPLY") else {
        return Ok(());
    };
    let Some(lost) = listed.split(',').find_map(|entry| {
        let (named, n) = entry.rsplit_once(':').unwrap_or((entry, "2"));
        (named == account).then(|| n.parse::<usize>().unwrap_or(2))
    }) else {
        return Ok(());
    };
    let mut commits = COMMITS.lock();
    let count = commits
        .get_or_insert_with(HashMap::new)
        .entry(account.to_owned())
        .or_default();
    *count += 1;
    if *count == lost {
        return Err(Error::storage(
            "the reply to COMMIT was lost (GI_DEBUG_LOSE_COMMIT_REPLY)",
        ));
    }
    Ok(())
}

/// A claim's advisory lock key: the account and job, hashed into the 64 bits PostgreSQL takes.
fn claim_key(account: &str, job: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("google-integration claim {job} {account}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// Whether the account is still connected by `connection_id`, its row then locked until the
/// transaction ends, so that a `delete_account` (disable, reconnect) waits for what this
/// transaction writes and erases it, or went first and this one writes nothing. A bare
/// `WHERE EXISTS` takes no lock: a delete could commit between the check and this commit,
/// and leave rows of an account that is gone (busy times are personal data).
fn lock_connection(tx: &mut Transaction<'_>, account: &str, connection_id: i64) -> Result<bool> {
    let row = tx.query_opt(
        "SELECT 1 FROM accounts WHERE account = $1 AND connection_id = $2 FOR SHARE",
        &[&account, &connection_id],
    )?;
    Ok(row.is_some())
}

fn presence_from_row(row: &postgres::Row) -> StoredPresence {
    StoredPresence::from_columns(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// A read-only transaction that sees one snapshot of the store throughout.
fn snapshot(conn: &mut Client) -> Result<Transaction<'_>> {
    Ok(conn
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?)
}

/// The account's group names, which only the contacts source has.
fn group_names_for(
    conn: &mut impl GenericClient,
    account: &str,
    source: Source,
) -> Result<GroupNames> {
    match source {
        Source::Contacts => stored_group_names(conn, account),
        _ => Ok(GroupNames::new()),
    }
}

/// One source's latest change: (seq, prev_seq, patch).
fn latest_book_change(
    conn: &mut impl GenericClient,
    account: &str,
    source: Source,
) -> Result<Option<postgres::Row>> {
    Ok(conn.query_opt(
        "SELECT seq, prev_seq, patch FROM book_changes WHERE account = $1 AND source = $2",
        &[&account, &source.name()],
    )?)
}

fn stored_group_names(conn: &mut impl GenericClient, account: &str) -> Result<GroupNames> {
    Ok(conn
        .query(
            "SELECT resource_name, name FROM contact_groups WHERE account = $1",
            &[&account],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

fn contacts_of(conn: &mut impl GenericClient, account: &str, source: Source) -> Result<Loaded> {
    let mut found = Loaded::default();
    load_contacts(conn, Some((account, source)), &mut |_, _, loaded| {
        found = loaded
    })?;
    Ok(found)
}

/// The contacts `filter` picks (with `params`), with their numbers, by id.
fn load_where(
    conn: &mut impl GenericClient,
    filter: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Loaded> {
    let mut found = Loaded::default();
    let sql = format!("{} WHERE {filter} ORDER BY c.id", columns());
    scan(
        conn.query_raw(&sql, params.iter().copied())?,
        &mut |_, _, loaded| {
            found.contacts.extend(loaded.contacts);
            found.ids.extend(loaded.ids);
        },
    )?;
    Ok(found)
}

/// A contact's numbers as `pg_numbers` packs them: the row's own copy, or for a row a node of
/// an older version wrote (NULL), packed from `numbers` here exactly as migration 3 packed
/// the rows it found. PostgreSQL evaluates the subquery only for such a row.
const PACKED_NUMBERS: &str = "COALESCE(c.packed_numbers,
        (SELECT string_agg(int8send(n.e164) || int8send(n.national)
                           || int4send(octet_length(convert_to(n.label, 'UTF8')))
                           || convert_to(n.label, 'UTF8'), ''::BYTEA ORDER BY n.position)
         FROM numbers n WHERE n.contact_id = c.id),
        ''::BYTEA)";

/// One row a contact; `scan` reads them.
fn columns() -> String {
    format!(
        "SELECT c.account, c.source, c.id, c.resource_name, c.name, c.company, c.groups, {PACKED_NUMBERS}
         FROM contacts c"
    )
}

/// Streams contacts with their numbers ordered by account, source and resource name, handing
/// each source's contacts of an account to `each` once complete (as SQLite's `load_contacts`).
fn load_contacts(
    conn: &mut impl GenericClient,
    only: Option<(&str, Source)>,
    each: &mut dyn FnMut(String, Source, Loaded),
) -> Result<()> {
    let rows = match only {
        Some((account, source)) => conn.query_raw(
            &format!(
                "{} WHERE c.account = $1 AND c.source = $2 ORDER BY c.resource_name",
                columns()
            ),
            [
                &account as &(dyn postgres::types::ToSql + Sync),
                &source.name(),
            ],
        )?,
        None => return load_everything(conn, each),
    };
    scan(rows, each)
}

/// Every contact, for the index at open, in one stream that PostgreSQL need not sort: the
/// contacts in the order of their unique index (account, source, resource name), each with
/// its numbers packed in the row (`pg_numbers`). Reading the `numbers` table as a second
/// stream and gathering it by contact here took 40% of the open; the one query joining both
/// had the server sort a million joined rows (on disk, past `work_mem`): 1.65x SQLite's open.
fn load_everything(
    conn: &mut impl GenericClient,
    each: &mut dyn FnMut(String, Source, Loaded),
) -> Result<()> {
    let mut rows = CopyReader::new(conn.copy_out(&format!(
        "COPY ({} ORDER BY c.account, c.source, c.resource_name) TO STDOUT (FORMAT binary)",
        columns()
    ))?)?;
    let (mut account, mut source_name, mut groups, mut packed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut runs = Runs::new(each);
    while rows.next_row(8)? {
        let account = rows.text_into(&mut account)?;
        let source_name = rows.text_into(&mut source_name)?;
        let id = rows.i64()?;
        let (resource_name, name, company) = (rows.text()?, rows.text()?, rows.text()?);
        let groups = split_groups(rows.text_into(&mut groups)?);
        let numbers = pg_numbers::unpack(rows.bytes_into(&mut packed)?, id)?;
        let Some(loaded) = runs.run_of(account, source_name) else {
            continue;
        };
        loaded.ids.push(id as u64);
        loaded.contacts.push(Contact {
            resource_name,
            name,
            company,
            numbers,
            groups,
        });
    }
    runs.finish();
    Ok(())
}

/// Reads rows of `columns()` (one a contact), handing each (account, source) run of them to
/// `each`.
fn scan(
    mut rows: postgres::RowIter<'_>,
    each: &mut dyn FnMut(String, Source, Loaded),
) -> Result<()> {
    let mut runs = Runs::new(each);
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(2);
        let numbers = pg_numbers::unpack(row.get(7), id)?;
        let Some(loaded) = runs.run_of(row.get(0), row.get(1)) else {
            continue;
        };
        loaded.ids.push(id as u64);
        loaded.contacts.push(Contact {
            resource_name: row.get(3),
            name: row.get(4),
            company: row.get(5),
            numbers,
            groups: split_groups(row.get(6)),
        });
    }
    runs.finish();
    Ok(())
}
