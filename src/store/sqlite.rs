//! The plugin's SQLite database under `data_dir`: pending authorizations, tokens, sync state
//! and contacts. One connection behind a mutex serves every writer; lookups never come here
//! (they read the in-memory index). Every change that belongs together is one transaction, so
//! a process killed at any instant leaves the last complete state.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::seal::Sealer;
use super::stored_rows::{split_groups, Runs};
use super::{
    BookChange, CalendarOutcome, Change, Claim, Followed, PendingAuth, Store, StoreRead,
    StoredAccount, StoredPresence, StoredSource, StoredSyncToken, Tokens, ACCESS, REFRESH,
};
use std::collections::HashMap;

use crate::book::contact::{Contact, ContactNumber, Source};
use crate::book::numbers::GroupNames;
use crate::book::patch::Replaced;
use crate::book::phone::{NationalKey, E164};
use crate::error::{Error, Result};

pub const DATABASE_FILE: &str = "google-integration.sqlite3";
/// Authorizations an account may have waiting for Google's redirect at once.
pub const MAX_PENDING_PER_ACCOUNT: i64 = 16;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many have run.
/// Append, never edit: a released database has run the earlier ones.
const MIGRATIONS: &[&str] = &[
    // 1: the first release.
    "CREATE TABLE pending_auth (
        state_hash    BLOB PRIMARY KEY,
        account       TEXT NOT NULL,
        pkce_verifier TEXT NOT NULL,
        created_at    INTEGER NOT NULL
     );
     CREATE TABLE accounts (
        account           TEXT PRIMARY KEY,
        connection_id     INTEGER NOT NULL,
        refresh_token     TEXT NOT NULL,
        access_token      TEXT,
        access_expires_at INTEGER,
        connected_at      INTEGER NOT NULL,
        status            TEXT NOT NULL CHECK (status IN ('connected', 'issue')),
        reason            TEXT,
        last_sync         INTEGER,
        last_error        TEXT,
        sync_token        TEXT
     );
     CREATE TABLE contacts (
        id            INTEGER PRIMARY KEY,
        account       TEXT NOT NULL,
        resource_name TEXT NOT NULL,
        name          TEXT NOT NULL,
        company       TEXT NOT NULL,
        UNIQUE (account, resource_name)
     );
     CREATE TABLE numbers (
        contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
        e164       INTEGER NOT NULL,
        national   INTEGER NOT NULL,
        label      TEXT NOT NULL
     );
     CREATE INDEX numbers_by_contact ON numbers(contact_id);",
    // 2: contact groups (0.2): each contact's memberships by resource name, one a line, and
    // the names of the account's user groups.
    "ALTER TABLE contacts ADD COLUMN groups TEXT NOT NULL DEFAULT '';
     CREATE TABLE contact_groups (
        account       TEXT NOT NULL,
        resource_name TEXT NOT NULL,
        name          TEXT NOT NULL,
        PRIMARY KEY (account, resource_name)
     );",
    // 3: the scopes Google granted, space-separated, for the status.
    "ALTER TABLE accounts ADD COLUMN scopes TEXT NOT NULL DEFAULT '';",
    // 4: calendar presence: the last good freeBusy answer of an account's connection (busy
    // periods as "start end" pairs of Unix seconds, one a line) and its calendar problem.
    "CREATE TABLE presence (
        account       TEXT PRIMARY KEY,
        connection_id INTEGER NOT NULL,
        fetched_at    INTEGER,
        window_end    INTEGER,
        busy          TEXT NOT NULL DEFAULT '',
        issue         TEXT
     );",
    // 5: incremental syncs patch the index: they read who else holds a number a change
    // touched, by E.164 and by national number.
    "CREATE INDEX numbers_by_e164 ON numbers(e164);
     CREATE INDEX numbers_by_national ON numbers(national);",
    // 6: contact sources (0.2): an account's contacts come from up to three sources, each
    // with its own sync token, last sync and last error, and the connection whose sync
    // wrote its contacts. The contacts table is rebuilt (the
    // 12-step way, foreign keys off: see `migrate`) to key contacts by source too, keeping
    // their ids so that `numbers` still points at them; every contact so far is "contacts".
    "CREATE TABLE contacts_by_source (
        id            INTEGER PRIMARY KEY,
        account       TEXT NOT NULL,
        source        TEXT NOT NULL,
        resource_name TEXT NOT NULL,
        name          TEXT NOT NULL,
        company       TEXT NOT NULL,
        groups        TEXT NOT NULL DEFAULT '',
        UNIQUE (account, source, resource_name)
     );
     INSERT INTO contacts_by_source (id, account, source, resource_name, name, company, groups)
        SELECT id, account, 'contacts', resource_name, name, company, groups FROM contacts;
     DROP TABLE contacts;
     ALTER TABLE contacts_by_source RENAME TO contacts;
     CREATE TABLE sources (
        account       TEXT NOT NULL,
        source        TEXT NOT NULL,
        connection_id INTEGER,
        sync_token    TEXT,
        last_sync     INTEGER,
        last_error    TEXT,
        PRIMARY KEY (account, source)
     );
     INSERT INTO sources (account, source, connection_id, sync_token, last_sync)
        SELECT account, 'contacts', connection_id, sync_token, last_sync FROM accounts;
     ALTER TABLE accounts DROP COLUMN sync_token;",
    // 7: what the sync that earned a source's sync token asked Google for (its fields, see
    // `people::asked_of`): Google serves a token only with the request that made it, so a
    // release that asks for more syncs in full once. NULL: a token from before this.
    "ALTER TABLE sources ADD COLUMN sync_asked TEXT;",
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The database file, for backups (made on a connection of their own).
    path: std::path::PathBuf,
    sealer: Sealer,
    /// An erasure's checkpoint could not empty the WAL (a reader held an older snapshot past
    /// the busy timeout), so the erased rows' old bytes may still be in the files: each sync's
    /// commit tries again, without waiting, until one succeeds.
    checkpoint_owed: std::sync::atomic::AtomicBool,
    /// Held (an OS lock on `data_dir/.lock`) while the store is open: one plugin per
    /// data_dir, in this process or another; the OS releases it if the process dies.
    _data_dir_lock: std::fs::File,
}

impl SqliteStore {
    /// Opens (or creates) the database in `data_dir`. Tokens an older release stored in
    /// plain text are sealed now; sealed ones must open with `sealer`'s key, or the open
    /// fails: a wrong key must never send garbage tokens to Google.
    pub fn open(data_dir: &Path, sealer: Sealer) -> Result<SqliteStore> {
        let data_dir_lock = lock_data_dir(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        let mut conn = Connection::open(&path).map_err(|e| {
            Error::storage(format!(
                "cannot open the database {} ({e}); check the permissions of data_dir",
                path.display()
            ))
        })?;
        // WAL lets the single writer commit without blocking readers of the file; secure_delete
        // overwrites deleted rows, so an erased token leaves no bytes behind in the file.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        migrate(&mut conn)?;
        restrict_permissions(data_dir);
        canonical_account_names(&mut conn, &sealer)?;
        seal_plain_tokens(&mut conn, &sealer)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            sealer,
            checkpoint_owed: Default::default(),
            _data_dir_lock: data_dir_lock,
        })
    }
}

impl SqliteStore {
    /// After rows were erased: checkpoints the WAL into the database file and empties it, so
    /// that no copy of an erased row (a token, a contact) stays in either file. If a reader
    /// holds an older snapshot past the busy timeout, says so and owes the checkpoint.
    ///
    /// Never fails: the erasure has committed by now, and a caller told it failed would keep
    /// in memory what the store no longer has (a disable retried would find nothing to erase).
    fn erase_copies(&self, conn: &Connection) {
        let emptied = checkpoint(conn).unwrap_or_else(|e| {
            log::warn!("{}: {e}", self.path.display());
            false
        });
        if !emptied {
            self.checkpoint_owed
                .store(true, std::sync::atomic::Ordering::Relaxed);
            log::warn!("{}", self.copies_left());
        }
    }

    /// Tries an owed checkpoint again, without waiting for a reader: a backup may hold its
    /// snapshot for minutes, and the store must not stall the syncs meanwhile. At each sync's
    /// commit, and every few seconds from the workers (`Store::settle_owed`).
    fn settle_owed_checkpoint(&self, conn: &Connection) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.checkpoint_owed.load(Relaxed) {
            return;
        }
        let tried = (|| -> Result<bool> {
            conn.busy_timeout(std::time::Duration::ZERO)?;
            let done = checkpoint(conn);
            conn.busy_timeout(BUSY_TIMEOUT)?;
            done
        })();
        match tried {
            Ok(true) => {
                self.checkpoint_owed.store(false, Relaxed);
                log::info!(
                    "{}: the write-ahead log is emptied, and no copy of erased data is left",
                    self.path.display()
                );
            }
            Ok(false) => {}
            Err(e) => log::warn!("{} ({e})", self.copies_left()),
        }
    }

    fn copies_left(&self) -> String {
        format!(
            "another reader of {} (a backup or sqlite3?) held it open, so the write-ahead log could not be emptied: copies of data just erased stay in its files until it is; the plugin tries again every few seconds, and at close",
            self.path.display()
        )
    }
}

impl Store for SqliteStore {
    // ---- pending authorizations -------------------------------------------------------

    /// Stores a new pending authorization, and drops those created before `expired_before`
    /// (popups closed without an answer), so the table stays small without a janitor.
    fn insert_pending(
        &self,
        state_hash: &[u8],
        pending: &PendingAuth,
        expired_before: i64,
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM pending_auth WHERE created_at < ?1",
            [expired_before],
        )?;
        tx.execute(
            "INSERT INTO pending_auth (state_hash, account, pkce_verifier, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                state_hash,
                pending.account,
                pending.sealed_verifier(&self.sealer),
                pending.created_at
            ],
        )?;
        // A page reloaded in a loop (or a script) must not grow the table without bound:
        // an account keeps its newest few authorizations; older ones are refused as unknown.
        tx.execute(
            "DELETE FROM pending_auth WHERE account = ?1 AND rowid NOT IN
                (SELECT rowid FROM pending_auth WHERE account = ?1
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
            params![pending.account, MAX_PENDING_PER_ACCOUNT],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes and returns the pending authorization for a state: a state can be spent once.
    /// Also drops every pending authorization created before `expired_before`.
    fn take_pending(&self, state_hash: &[u8], expired_before: i64) -> Result<Option<PendingAuth>> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let pending = tx
            .query_row(
                "SELECT account, pkce_verifier, created_at FROM pending_auth WHERE state_hash = ?1",
                [state_hash],
                |row| Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        tx.execute(
            "DELETE FROM pending_auth WHERE state_hash = ?1",
            [state_hash],
        )?;
        tx.execute(
            "DELETE FROM pending_auth WHERE created_at < ?1",
            [expired_before],
        )?;
        tx.commit()?;
        pending
            .map(|stored| PendingAuth::open_stored(&self.sealer, stored))
            .transpose()
    }

    // ---- accounts and tokens ----------------------------------------------------------

    /// Stores a new connection's tokens, replacing an older connection's. The sync token is
    /// dropped (the new grant may be another Google user), so the next sync is a full one;
    /// the old contacts keep answering until it lands.
    fn connect_account(
        &self,
        account: &str,
        tokens: &Tokens,
        scopes: &[String],
        now: i64,
    ) -> Result<StoredAccount> {
        let connection_id: i64 = rand::random::<i64>() & i64::MAX;
        let mut conn = self.conn.lock();
        // One transaction: a crash never leaves the older connection's sync tokens with
        // the new one.
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO accounts (account, connection_id, refresh_token, access_token, access_expires_at,
                                   connected_at, status, reason, last_error, scopes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'connected', NULL, NULL, ?7)
             ON CONFLICT (account) DO UPDATE SET
                connection_id = excluded.connection_id, refresh_token = excluded.refresh_token,
                access_token = excluded.access_token, access_expires_at = excluded.access_expires_at,
                connected_at = excluded.connected_at, status = 'connected', reason = NULL,
                last_error = NULL, scopes = excluded.scopes",
            params![
                account,
                connection_id,
                self.sealer.seal(account, REFRESH, &tokens.refresh_token),
                tokens
                    .access_token
                    .as_deref()
                    .map(|t| self.sealer.seal(account, ACCESS, t)),
                tokens.access_expires_at,
                now,
                scopes.join(" ")
            ],
        )?;
        // The older connection's busy times may be another Google user's: never shown again.
        // Its sync tokens too: every source's next sync is a full one. (Its contacts answer
        // until then; see `forget_older_source` for a source that cannot sync.)
        tx.execute("DELETE FROM presence WHERE account = ?1", [account])?;
        tx.execute(
            "UPDATE sources SET sync_token = NULL, last_error = NULL WHERE account = ?1",
            [account],
        )?;
        tx.commit()?;
        // The older connection's busy times and sync tokens leave no copy in the files.
        self.erase_copies(&conn);
        drop(conn);
        self.account(account)?
            .ok_or_else(|| Error::storage("the account vanished while it was being stored"))
    }

    fn account(&self, account: &str) -> Result<Option<StoredAccount>> {
        let conn = self.conn.lock();
        let found = conn
            .query_row(
                "SELECT account, connection_id, status, reason, last_sync, last_error, scopes FROM accounts WHERE account = ?1",
                [account],
                stored_account_from_row,
            )
            .optional()?;
        Ok(found)
    }

    fn accounts(&self) -> Result<Vec<StoredAccount>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT account, connection_id, status, reason, last_sync, last_error, scopes FROM accounts ORDER BY account",
        )?;
        let rows = stmt.query_map([], stored_account_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn tokens(&self, account: &str, connection_id: i64) -> Result<Option<Tokens>> {
        let conn = self.conn.lock();
        let sealed = conn
            .query_row(
                "SELECT refresh_token, access_token, access_expires_at FROM accounts
                 WHERE account = ?1 AND connection_id = ?2",
                params![account, connection_id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                    ))
                },
            )
            .optional()?;
        sealed
            .map(|sealed| Tokens::open_sealed(&self.sealer, account, sealed))
            .transpose()
    }

    /// Stores a refreshed access token. The refresh token is kept, since Google does not
    /// resend it; should a reply carry a new one (rotation), that one replaces it.
    fn update_access_token(
        &self,
        account: &str,
        connection_id: i64,
        access_token: &str,
        expires_at: Option<i64>,
        new_refresh_token: Option<&str>,
    ) -> Result<()> {
        self.conn.lock().execute(
            "UPDATE accounts SET access_token = ?3, access_expires_at = ?4,
                                 refresh_token = coalesce(?5, refresh_token)
             WHERE account = ?1 AND connection_id = ?2",
            params![
                account,
                connection_id,
                self.sealer.seal(account, ACCESS, access_token),
                expires_at,
                new_refresh_token.map(|t| self.sealer.seal(account, REFRESH, t))
            ],
        )?;
        Ok(())
    }

    /// Records the outcome of an exchange with Google: `issue` is the reason for a yellow !,
    /// or None for connected; `last_error` is the latest failure, kept after recovery.
    fn set_health(
        &self,
        account: &str,
        connection_id: i64,
        issue: Option<&str>,
        last_error: Option<&str>,
    ) -> Result<()> {
        self.conn.lock().execute(
            "UPDATE accounts SET status = ?3, reason = ?4, last_error = ?5
             WHERE account = ?1 AND connection_id = ?2",
            params![
                account,
                connection_id,
                if issue.is_some() {
                    "issue"
                } else {
                    "connected"
                },
                issue,
                last_error
            ],
        )?;
        Ok(())
    }

    /// Erases everything of an account's connection `connection_id`: tokens, sync token,
    /// contacts and its pending states, then checkpoints and truncates the WAL so that no copy
    /// of a token stays in any file. Returns false, erasing nothing, when the account has
    /// another connection by now (it was connected again while being disabled).
    fn delete_account(&self, account: &str, connection_id: i64) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let removed = tx.execute(
            "DELETE FROM accounts WHERE account = ?1 AND connection_id = ?2",
            params![account, connection_id],
        )?;
        if removed == 0 {
            return Ok(false);
        }
        delete_contacts(&tx, account)?;
        tx.execute("DELETE FROM pending_auth WHERE account = ?1", [account])?;
        tx.execute("DELETE FROM presence WHERE account = ?1", [account])?;
        tx.commit()?;
        self.erase_copies(&conn);
        Ok(true)
    }

    // ---- calendar presence --------------------------------------------------------------

    /// Every stored calendar answer and problem, of accounts' current connections only.
    fn presences(&self, only: Option<&str>) -> Result<Vec<StoredPresence>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT p.account, p.fetched_at, p.window_end, p.busy, p.issue
             FROM presence p JOIN accounts a
               ON a.account = p.account AND a.connection_id = p.connection_id
             WHERE ?1 IS NULL OR p.account = ?1",
        )?;
        let rows = stmt.query_map([only], |row| {
            Ok(StoredPresence::from_columns(
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?,
                row.get(4)?,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Stores what a calendar fetch of the account's connection `connection_id` learnt (a
    /// good answer clears its calendar problem), then runs `after_commit` while the database
    /// is still locked, so that memory changes in the same order as the store. Returns false,
    /// changing nothing, when the account was disabled or reconnected meanwhile.
    fn save_presence(
        &self,
        account: &str,
        connection_id: i64,
        outcome: CalendarOutcome<'_>,
        after_commit: &mut dyn FnMut(),
    ) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let current: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM accounts WHERE account = ?1 AND connection_id = ?2",
                params![account, connection_id],
                |row| row.get(0),
            )
            .optional()?;
        if current.is_none() {
            return Ok(false);
        }
        let (fetched_at, window_end, busy, issue) = outcome.columns();
        tx.execute(
            "INSERT INTO presence (account, connection_id, fetched_at, window_end, busy, issue)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (account) DO UPDATE SET connection_id = excluded.connection_id,
                fetched_at = excluded.fetched_at, window_end = excluded.window_end,
                busy = excluded.busy, issue = excluded.issue",
            params![account, connection_id, fetched_at, window_end, busy, issue],
        )?;
        tx.commit()?;
        after_commit();
        Ok(true)
    }

    /// Records (or clears) the calendar problem of the account's connection `connection_id`;
    /// the busy times already stored stay.
    fn set_presence_issue(
        &self,
        account: &str,
        connection_id: i64,
        issue: Option<&str>,
    ) -> Result<()> {
        self.conn.lock().execute(
            "INSERT INTO presence (account, connection_id, issue)
             SELECT ?1, ?2, ?3 WHERE EXISTS
                (SELECT 1 FROM accounts WHERE account = ?1 AND connection_id = ?2)
             ON CONFLICT (account) DO UPDATE SET issue = excluded.issue
             WHERE presence.connection_id = excluded.connection_id",
            params![account, connection_id, issue],
        )?;
        Ok(())
    }

    /// Erases what the store knows of the account's calendar (presence was turned off).
    fn delete_presence(&self, account: &str) -> Result<()> {
        let conn = self.conn.lock();
        if conn.execute("DELETE FROM presence WHERE account = ?1", [account])? > 0 {
            self.erase_copies(&conn);
        }
        Ok(())
    }

    // ---- sync ---------------------------------------------------------------------------

    /// The sync token of one source of the account's connection `connection_id`.
    fn sync_token(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
    ) -> Result<Option<StoredSyncToken>> {
        let conn = self.conn.lock();
        let stored = conn
            .query_row(
                "SELECT s.sync_token, s.sync_asked FROM sources s JOIN accounts a ON a.account = s.account
                 WHERE s.account = ?1 AND a.connection_id = ?2 AND s.source = ?3",
                params![account, connection_id, source.name()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(stored.and_then(StoredSyncToken::from_columns))
    }

    /// Records how a source's last sync ended (`error`: None when it landed).
    fn set_source_error(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.lock().execute(
            "INSERT INTO sources (account, source, last_error)
                SELECT account, ?3, ?4 FROM accounts WHERE account = ?1 AND connection_id = ?2
             ON CONFLICT (account, source) DO UPDATE SET last_error = excluded.last_error",
            params![account, connection_id, source.name(), error],
        )?;
        Ok(())
    }

    /// Erases one source's contacts of the account when an older connection's sync wrote
    /// them, and returns whether it did. For a source that cannot sync under the account's
    /// current connection (its scope not granted this time, or the new Google account
    /// outside Workspace): the contacts of the Google user connected before must not answer
    /// for the new one. A failing source whose contacts this connection wrote keeps them.
    fn forget_older_source(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
    ) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        // A source no connection ever landed (NULL: only its last error is stored) holds
        // nothing to erase: deleting its row only to have it written again cost a truncating
        // checkpoint at each failed sync (a consumer account with the directory configured).
        let older = tx.execute(
            "DELETE FROM sources WHERE account = ?1 AND source = ?2
                AND connection_id IS NOT NULL AND connection_id IS NOT ?3
                AND EXISTS (SELECT 1 FROM accounts WHERE account = ?1 AND connection_id = ?3)",
            params![account, source.name(), connection_id],
        )?;
        if older == 0 {
            return Ok(false);
        }
        let erased = delete_source_contacts(&tx, account, source)?;
        tx.commit()?;
        self.erase_copies(&conn);
        Ok(erased > 0)
    }

    /// Every account's sources as stored (or one account's): when each last landed and how
    /// its last sync ended.
    fn source_states(&self, only: Option<&str>) -> Result<Vec<(String, Source, StoredSource)>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT account, source, last_sync, last_error FROM sources
             WHERE ?1 IS NULL OR account = ?1",
        )?;
        let rows = stmt.query_map([only], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                StoredSource {
                    last_sync: row.get(2)?,
                    last_error: row.get(3)?,
                },
            ))
        })?;
        let mut states = Vec::new();
        for row in rows {
            let (account, source, state) = row?;
            // A name this version does not know (a newer plugin's) is left alone.
            if let Some(source) = Source::from_name(&source) {
                states.push((account, source, state));
            }
        }
        Ok(states)
    }

    /// Erases the contacts, sync state and (without `contacts`) contact groups of every
    /// source that `keep` no longer lists for its account: a source removed from the
    /// configuration leaves nothing behind, and added back it starts with a full sync.
    /// Returns the (account, source) pairs erased.
    fn forget_sources(&self, keep: &dyn Fn(&str) -> Vec<Source>) -> Result<Vec<(String, Source)>> {
        let mut conn = self.conn.lock();
        let stored: Vec<(String, String)> = {
            let mut stmt = conn.prepare("SELECT account, source FROM sources")?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let dropped: Vec<(String, Source)> = stored
            .into_iter()
            .filter_map(|(account, name)| {
                let source = Source::from_name(&name)?;
                (!keep(&account).contains(&source)).then_some((account, source))
            })
            .collect();
        if dropped.is_empty() {
            return Ok(dropped);
        }
        let tx = conn.transaction()?;
        for (account, source) in &dropped {
            delete_source_contacts(&tx, account, *source)?;
            tx.execute(
                "DELETE FROM sources WHERE account = ?1 AND source = ?2",
                params![account, source.name()],
            )?;
            if *source == Source::Contacts {
                tx.execute("DELETE FROM contact_groups WHERE account = ?1", [account])?;
            }
        }
        tx.commit()?;
        self.erase_copies(&conn);
        Ok(dropped)
    }

    /// Lands a whole sync of one source in one transaction: the upserts replace contacts by
    /// resource name (a full sync's leave an unchanged contact's row alone, and remove every
    /// stored contact they do not list), the deletions remove them, the group names are
    /// replaced when they changed, and the new sync token and sync time are stored. Returns None, changing nothing, when the account was disabled or
    /// reconnected since the sync started. The `after_commit` callback runs while the
    /// database is still locked, so that the in-memory index is swapped in the same order as
    /// the commits (a disable cannot slip in between); it is told what changed (see
    /// `Committed`).
    fn commit_sync(
        &self,
        account: &str,
        connection_id: i64,
        landing: &Landing<'_>,
        now: i64,
        after_commit: &mut dyn FnMut(&dyn StoreRead, &Committed) -> Result<()>,
    ) -> Result<bool> {
        let Landing {
            source,
            replace_all,
            upserts,
            deletions,
            sync_token,
            sync_asked,
            group_names,
        } = *landing;
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let mut replaced = Vec::new();
        let mut upsert_ids = Vec::with_capacity(upserts.len());
        // The status is left alone: the sources land one by one, and the account's status is
        // summed up when they have all ended (`Core::clear_issue`, `Core::record_issue`). A
        // landing that turned it green while another source was failing, or deferred by
        // Google, showed the yellow ! gone to whoever read the store meanwhile (a restart,
        // another node) while the fault persisted.
        let current = tx.execute(
            "UPDATE accounts SET last_sync = MAX(COALESCE(last_sync, ?3), ?3)
             WHERE account = ?1 AND connection_id = ?2",
            params![account, connection_id, now],
        )?;
        if current == 0 {
            return Ok(false); // dropped with the transaction: nothing changes
        }
        tx.execute(
            "INSERT INTO sources (account, source, connection_id, sync_token, sync_asked, last_sync, last_error)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
             ON CONFLICT (account, source) DO UPDATE SET
                connection_id = excluded.connection_id, sync_token = excluded.sync_token,
                sync_asked = excluded.sync_asked, last_sync = excluded.last_sync, last_error = NULL",
            params![account, source.name(), connection_id, sync_token, sync_asked, now],
        )?;
        // A full sync writes only what differs from the store: a contact it brings unchanged
        // keeps its row (and id), a changed one is replaced, and one it no longer brings is
        // deleted. An expired sync token's resync of an unchanged book then writes little
        // more than the token; rewriting 25,000 unchanged contacts cost 0.2-0.4 s under the
        // store's lock, where another source's sync waits.
        let mut stored: Option<HashMap<String, (u64, Contact)>> = if replace_all {
            let loaded = contacts_of(&tx, account, source)?;
            Some(
                loaded
                    .contacts
                    .into_iter()
                    .zip(loaded.ids)
                    .map(|(contact, id)| (contact.resource_name.clone(), (id, contact)))
                    .collect(),
            )
        } else {
            None
        };
        let mut rewritten = false;
        {
            let mut find = tx.prepare_cached(
                "SELECT id FROM contacts WHERE account = ?1 AND source = ?2 AND resource_name = ?3",
            )?;
            let mut numbers_of =
                tx.prepare_cached("SELECT e164, national FROM numbers WHERE contact_id = ?1")?;
            let mut remove_numbers =
                tx.prepare_cached("DELETE FROM numbers WHERE contact_id = ?1")?;
            let mut remove_contact = tx.prepare_cached("DELETE FROM contacts WHERE id = ?1")?;
            let mut insert_contact = tx.prepare_cached(
                "INSERT INTO contacts (account, source, resource_name, name, company, groups) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut insert_number = tx.prepare_cached(
                "INSERT INTO numbers (contact_id, e164, national, label) VALUES (?1, ?2, ?3, ?4)",
            )?;
            // Removes the stored version of a contact, found by its resource name or already
            // known (its id and numbers), and notes what it was for the index.
            let mut remove = |resource_name: &str, known: Option<(u64, &[ContactNumber])>| {
                let (id, numbers) = match known {
                    Some((id, numbers)) => (
                        id as i64,
                        numbers.iter().map(|n| (n.e164, n.national)).collect(),
                    ),
                    None => {
                        let existing: Option<i64> = find
                            .query_row(params![account, source.name(), resource_name], |row| {
                                row.get(0)
                            })
                            .optional()?;
                        let Some(id) = existing else {
                            return Ok::<(), Error>(());
                        };
                        let numbers = numbers_of
                            .query_map([id], |row| {
                                Ok((
                                    E164(row.get::<_, i64>(0)? as u64),
                                    NationalKey(row.get::<_, i64>(1)? as u64),
                                ))
                            })?
                            .collect::<rusqlite::Result<_>>()?;
                        (id, numbers)
                    }
                };
                replaced.push(Replaced {
                    id: id as u64,
                    numbers,
                });
                remove_numbers.execute([id])?;
                remove_contact.execute([id])?;
                Ok(())
            };
            for resource_name in deletions {
                remove(resource_name, None)?;
            }
            for contact in upserts {
                match stored.as_mut() {
                    Some(stored) => {
                        if let Some((id, old)) = stored.remove(&contact.resource_name) {
                            if old == *contact {
                                upsert_ids.push(id);
                                continue;
                            }
                            remove(&contact.resource_name, Some((id, &old.numbers)))?;
                        }
                    }
                    None => remove(&contact.resource_name, None)?,
                }
                rewritten = true;
                insert_contact.execute(params![
                    account,
                    source.name(),
                    contact.resource_name,
                    contact.name,
                    contact.company,
                    contact.groups.join("\n")
                ])?;
                let id = tx.last_insert_rowid();
                upsert_ids.push(id as u64);
                for number in &contact.numbers {
                    insert_number.execute(params![
                        id,
                        number.e164.0 as i64,
                        number.national.0 as i64,
                        number.label
                    ])?;
                }
            }
            // What a full sync no longer brings is gone at Google.
            for (resource_name, (id, old)) in stored.take().unwrap_or_default() {
                remove(&resource_name, Some((id, &old.numbers)))?;
            }
        }
        // Contact groups are the contacts source's: the other sources carry no memberships.
        let groups_changed =
            source == Source::Contacts && stored_group_names(&tx, account)? != *group_names;
        if groups_changed {
            tx.execute("DELETE FROM contact_groups WHERE account = ?1", [account])?;
            let mut insert_group = tx.prepare_cached(
                "INSERT INTO contact_groups (account, resource_name, name) VALUES (?1, ?2, ?3)",
            )?;
            for (resource_name, name) in group_names {
                insert_group.execute(params![account, resource_name, name])?;
            }
        }
        tx.commit()?;
        let committed = Committed {
            contacts_changed: rewritten || !replaced.is_empty(),
            groups_changed,
            replaced,
            upsert_ids,
        };
        after_commit(&SqliteRead(&conn), &committed)?;
        self.settle_owed_checkpoint(&conn);
        Ok(true)
    }

    /// Hands every account's stored contacts and group names to `each`, one source of one
    /// account at a time, for rebuilding the index at open without holding every contact in
    /// memory at once. (The group names are the account's; only its contacts source has
    /// members.)
    fn for_each_book(
        &self,
        each: &mut dyn FnMut(String, Source, Loaded, GroupNames),
    ) -> Result<()> {
        let conn = self.conn.lock();
        let mut groups: HashMap<String, GroupNames> = HashMap::new();
        {
            let mut stmt =
                conn.prepare("SELECT account, resource_name, name FROM contact_groups")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                groups
                    .entry(row.get(0)?)
                    .or_default()
                    .insert(row.get(1)?, row.get(2)?);
            }
        }
        load_contacts(&conn, None, |account, source, loaded| {
            let names = match source {
                Source::Contacts => groups.remove(&account).unwrap_or_default(),
                _ => GroupNames::new(),
            };
            each(account, source, loaded, names)
        })
    }

    fn book(&self, account: &str, source: Source) -> Result<(Loaded, GroupNames, i64)> {
        let conn = self.conn.lock();
        let loaded = contacts_of(&conn, account, source)?;
        let names = match source {
            Source::Contacts => stored_group_names(&conn, account)?,
            _ => GroupNames::new(),
        };
        Ok((loaded, names, 0))
    }

    /// No other node writes this store: nothing follows it.
    fn follow_book(
        &self,
        _account: &str,
        _source: Source,
        _mark: i64,
        _patch: &mut dyn FnMut(&dyn StoreRead, &BookChange) -> Result<bool>,
    ) -> Result<Followed> {
        Ok(Followed::Rebuild)
    }

    /// Writes a consistent copy of the database to `target`, a new file (0600): `VACUUM INTO`
    /// on a connection of its own reads one snapshot while syncs go on writing through the
    /// store's connection (WAL), and lookups never come here. An existing `target` is refused.
    /// Tokens stay sealed in the copy: it opens with the same key.
    fn backup(&self, target: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        // Created here, empty and private, so that the copy is never readable by others and
        // an existing file is never overwritten (VACUUM INTO accepts an empty file).
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .map_err(|e| {
                Error::storage(format!(
                    "cannot create the backup {} ({e}); give a path to a new file in a writable directory",
                    target.display()
                ))
            })?;
        let copied = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|source| {
            source.busy_timeout(std::time::Duration::from_secs(30))?;
            let target = target
                .to_str()
                .ok_or(rusqlite::Error::InvalidPath(target.into()))?;
            source.execute("VACUUM INTO ?1", [target])
        });
        if let Err(e) = copied {
            let _ = std::fs::remove_file(target);
            return Err(Error::storage(format!(
                "the backup to {} failed ({e}); check the free space where it goes",
                target.display()
            )));
        }
        Ok(())
    }

    /// Checkpoints the WAL into the database file and empties it. Called on close too.
    fn checkpoint(&self) -> Result<()> {
        let conn = self.conn.lock();
        if !checkpoint(&conn)? {
            log::warn!("{}", self.copies_left());
        } else {
            self.checkpoint_owed
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// One node: nobody else runs a job, so every claim is granted.
    fn claim(&self, _account: &str, _job: &str, _fresh_within: Option<i64>) -> Result<Claim> {
        Ok(Claim::Granted)
    }

    fn release(&self, _account: &str, _job: &str) {}

    /// Nobody else writes this store.
    fn changes(&self) -> Option<std::sync::mpsc::Receiver<Change>> {
        None
    }

    fn settle_owed(&self) {
        if self
            .checkpoint_owed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.settle_owed_checkpoint(&self.conn.lock());
        }
    }
}

/// The store's connection, read after a commit (see `Store::commit_sync`).
struct SqliteRead<'a>(&'a Connection);

impl StoreRead for SqliteRead<'_> {
    fn contacts_of(&self, account: &str, source: Source) -> Result<Loaded> {
        contacts_of(self.0, account, source)
    }

    fn holders(
        &self,
        account: &str,
        source: Source,
        e164s: &[u64],
        nationals: &[u64],
    ) -> Result<Vec<Contact>> {
        holders(self.0, account, source, e164s, nationals)
    }
}

/// One source's contacts of the account, as the store holds them.
fn contacts_of(conn: &Connection, account: &str, source: Source) -> Result<Loaded> {
    let mut found = Loaded::default();
    load_contacts(conn, Some((account, source)), |_, _, loaded| found = loaded)?;
    Ok(found)
}

/// One source's contacts of the account that hold one of `e164s` or `nationals`, for
/// patching the index: with their numbers in the order a full read gives them. (The
/// indexes find a number in every account; the account filter follows: a number many
/// tenants share costs a row each.)
fn holders(
    conn: &Connection,
    account: &str,
    source: Source,
    e164s: &[u64],
    nationals: &[u64],
) -> Result<Vec<Contact>> {
    let mut ids: Vec<i64> = Vec::new();
    for (column, keys) in [("e164", e164s), ("national", nationals)] {
        let mut holding = conn.prepare_cached(&format!(
            "SELECT n.contact_id FROM numbers n JOIN contacts c ON c.id = n.contact_id
                 WHERE n.{column} = ?1 AND c.account = ?2 AND c.source = ?3"
        ))?;
        for &key in keys {
            let found =
                holding.query_map(params![key as i64, account, source.name()], |r| r.get(0))?;
            for id in found {
                ids.push(id?);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let mut contact = conn.prepare_cached(
        "SELECT c.resource_name, c.name, c.company, c.groups, n.e164, n.national, n.label
             FROM contacts c LEFT JOIN numbers n ON n.contact_id = c.id WHERE c.id = ?1
             ORDER BY n.rowid",
    )?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let mut rows = contact.query([id])?;
        let mut holder: Option<Contact> = None;
        while let Some(row) = rows.next()? {
            let holder = match &mut holder {
                Some(h) => h,
                None => holder.insert(Contact {
                    resource_name: row.get(0)?,
                    name: row.get(1)?,
                    company: row.get(2)?,
                    numbers: Vec::new(),
                    groups: split_groups(row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?),
                }),
            };
            if let Some(e164) = row.get::<_, Option<i64>>(4)? {
                holder.numbers.push(ContactNumber {
                    e164: E164(e164 as u64),
                    national: NationalKey(row.get::<_, i64>(5)? as u64),
                    label: row.get(6)?,
                });
            }
        }
        found.extend(holder);
    }
    Ok(found)
}

/// What a sync's commit changed, for the index (see `Store::commit_sync`).
pub struct Committed {
    /// Any contact was written or deleted (a full sync that found the store as Google has it
    /// wrote none).
    pub contacts_changed: bool,
    /// The names of the account's contact groups changed.
    pub groups_changed: bool,
    /// The stored versions the sync replaced or deleted.
    pub replaced: Vec<Replaced>,
    /// The store ids of the upserts, in their order (an unchanged contact's is its old one).
    pub upsert_ids: Vec<u64>,
}

/// What one sync lands (see `Store::commit_sync`).
#[derive(Clone, Copy)]
pub struct Landing<'a> {
    pub source: Source,
    /// A full sync: every stored contact of the account's source is replaced.
    pub replace_all: bool,
    pub upserts: &'a [Contact],
    pub deletions: &'a [String],
    pub sync_token: Option<&'a str>,
    /// What the sync asked Google for (see `people::asked_of`), kept with its token.
    pub sync_asked: &'a str,
    pub group_names: &'a GroupNames,
}

pub const LOCK_FILE: &str = ".lock";

/// Takes the data_dir's lock, or fails if another open plugin holds it. flock(2) locks
/// belong to the open file, so a second open in this same process is refused too.
pub(super) fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            Error::storage(format!(
                "cannot create the lock file {} ({e}); check that data_dir is writable",
                path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::storage(format!(
            "data_dir {} is in use by another open plugin (in this process or another); close it first, or give each plugin its own data_dir",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::storage(format!(
            "cannot lock {} ({e}); check the file system of data_dir",
            path.display()
        ))),
    }
}

/// Seals every token still in plain text (a store from before sealing), and proves that the
/// key opens the sealed ones, in one transaction; then empties the WAL so that no plain copy
/// is left in any file.
/// Gives every stored account its canonical name (see `account::canonical`). 0.1 kept accounts
/// as the host wrote them (`Example.com/40`); since 0.2 makes every account it is handed
/// canonical (`example.com/40`), such an account was out of reach after the upgrade: red,
/// its numbers not found, a disable erasing nothing, while its old row went on syncing in the
/// background with a grant nobody could revoke through the plugin. Where both names are
/// stored (the account connected again after the upgrade), the newer connection is kept and
/// the older one's rows are erased. Tokens are sealed with the account's name bound in:
/// those a 0.2 sealed under the old name are sealed again under the new one.
fn canonical_account_names(conn: &mut Connection, sealer: &Sealer) -> Result<()> {
    let stored: Vec<(String, i64, String, Option<String>)> = {
        let mut stmt = conn
            .prepare("SELECT account, connected_at, refresh_token, access_token FROM accounts")?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let renamed: Vec<_> = stored
        .into_iter()
        .filter(|(name, ..)| {
            crate::account::validate(name).is_ok() && !crate::account::is_canonical(name)
        })
        .collect();
    if renamed.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let mut erased = false;
    for (old, connected_at, refresh, access) in renamed {
        let new = crate::account::canonical(&old).into_owned();
        let existing: Option<i64> = tx
            .query_row(
                "SELECT connected_at FROM accounts WHERE account = ?1",
                [&new],
                |row| row.get(0),
            )
            .optional()?;
        let (dropped, kept) = match existing {
            None => (None, &old),
            Some(newer) if newer >= connected_at => (Some(&old), &new),
            Some(_) => (Some(&new), &old),
        };
        if let Some(dropped) = dropped {
            delete_contacts(&tx, dropped)?;
            for table in ["accounts", "pending_auth", "presence"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE account = ?1"),
                    [dropped],
                )?;
            }
            erased = true;
            log::warn!(
                "account {old} was stored as the host wrote it (by 0.1) and connected again as {new}; the older connection's data is erased. Its grant at Google is not revoked: the Google user can remove it at myaccount.google.com/permissions"
            );
        }
        if kept == &new {
            continue;
        }
        for table in [
            "accounts",
            "contacts",
            "sources",
            "contact_groups",
            "pending_auth",
            "presence",
        ] {
            tx.execute(
                &format!("UPDATE {table} SET account = ?2 WHERE account = ?1"),
                [&old, &new],
            )?;
        }
        for (field, value) in [(REFRESH, Some(refresh)), (ACCESS, access)] {
            let Some(sealed) = value.filter(|v| Sealer::is_sealed(v)) else {
                continue; // plain: sealed under the new name next
            };
            let plain = sealer.open(&old, field, &sealed)?;
            tx.execute(
                &format!("UPDATE accounts SET {field} = ?2 WHERE account = ?1"),
                params![new, sealer.seal(&new, field, &plain)],
            )?;
        }
        log::info!("account {old} is stored as {new} now, the name the PBX's calls use");
    }
    tx.commit()?;
    if erased && !checkpoint(conn)? {
        log::warn!("another reader of the database held it open, so the erased connection's tokens may still be in its write-ahead log; close that reader");
    }
    Ok(())
}

fn seal_plain_tokens(conn: &mut Connection, sealer: &Sealer) -> Result<()> {
    let tx = conn.transaction()?;
    let rows: Vec<(String, String, Option<String>)> = {
        let mut stmt = tx.prepare("SELECT account, refresh_token, access_token FROM accounts")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut sealed_now = 0;
    for (account, refresh, access) in rows {
        for (field, value) in [(REFRESH, Some(refresh)), (ACCESS, access)] {
            let Some(value) = value else { continue };
            if Sealer::is_sealed(&value) {
                sealer.open(&account, field, &value)?;
                continue;
            }
            tx.execute(
                &format!("UPDATE accounts SET {field} = ?2 WHERE account = ?1"),
                params![account, sealer.seal(&account, field, &value)],
            )?;
            sealed_now += 1;
        }
    }
    tx.commit()?;
    if sealed_now > 0 && !checkpoint(conn)? {
        log::warn!("another reader of the database held it open, so the plain-text tokens just sealed may still be in its write-ahead log; close that reader");
    }
    if sealed_now > 0 {
        log::info!("sealed {sealed_now} token(s) that an older release stored in plain text");
    }
    Ok(())
}

fn stored_account_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAccount> {
    Ok(StoredAccount::from_columns(
        row.get(0)?,
        row.get(1)?,
        row.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get_ref(6)?.as_str().map_err(rusqlite::Error::from)?,
    ))
}

/// The account's stored contact group names.
fn stored_group_names(conn: &Connection, account: &str) -> Result<GroupNames> {
    let mut stmt =
        conn.prepare_cached("SELECT resource_name, name FROM contact_groups WHERE account = ?1")?;
    let rows = stmt.query_map([account], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<GroupNames>>()?)
}

/// Erases every contact of the account, from every source, with its sync state and groups.
fn delete_contacts(tx: &Transaction<'_>, account: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM numbers WHERE contact_id IN (SELECT id FROM contacts WHERE account = ?1)",
        [account],
    )?;
    tx.execute("DELETE FROM contacts WHERE account = ?1", [account])?;
    tx.execute("DELETE FROM contact_groups WHERE account = ?1", [account])?;
    tx.execute("DELETE FROM sources WHERE account = ?1", [account])?;
    Ok(())
}

/// Erases one source's contacts of the account; returns how many there were.
fn delete_source_contacts(tx: &Transaction<'_>, account: &str, source: Source) -> Result<usize> {
    tx.execute(
        "DELETE FROM numbers WHERE contact_id IN
            (SELECT id FROM contacts WHERE account = ?1 AND source = ?2)",
        params![account, source.name()],
    )?;
    Ok(tx.execute(
        "DELETE FROM contacts WHERE account = ?1 AND source = ?2",
        params![account, source.name()],
    )?)
}

/// An account's contacts as the store holds them, in its order (by resource name), and
/// beside each its store id (`ids[i]` is `contacts[i]`'s).
#[derive(Default)]
pub struct Loaded {
    pub contacts: Vec<Contact>,
    pub ids: Vec<u64>,
}

/// Loads contacts with their numbers in one scan ordered by account and source, handing each
/// source's contacts of an account to `each` as soon as they are complete. A contact's
/// numbers come in the order they were stored (as `Store::holders` gives them): where one
/// number is listed twice, the first listing's label answers, in a full build and in a patch
/// alike.
fn load_contacts(
    conn: &Connection,
    only: Option<(&str, Source)>,
    mut each: impl FnMut(String, Source, Loaded),
) -> Result<()> {
    // Ordered by (account, source, resource_name), the UNIQUE index's order: it serves both
    // the filter and the grouping, so SQLite neither scans other accounts nor sorts (nor for
    // n.rowid: the join walks numbers_by_contact, whose entries are in rowid order).
    // (One query with "?1 IS NULL OR account = ?1" scanned every account and sorted.)
    const COLUMNS: &str = "SELECT c.account, c.id, c.resource_name, c.name, c.company,
                                  n.e164, n.national, n.label, c.groups, c.source
                           FROM contacts c LEFT JOIN numbers n ON n.contact_id = c.id";
    let mut stmt;
    let mut rows = match only {
        Some((account, source)) => {
            stmt = conn.prepare_cached(&format!(
                "{COLUMNS} WHERE c.account = ?1 AND c.source = ?2 ORDER BY c.resource_name, n.rowid"
            ))?;
            stmt.query(params![account, source.name()])?
        }
        None => {
            stmt = conn.prepare_cached(&format!(
                "{COLUMNS} ORDER BY c.account, c.source, c.resource_name, n.rowid"
            ))?;
            stmt.query([])?
        }
    };
    let mut runs = Runs::new(&mut each);
    // A contact's rows (one a number) come one after the other; ids are unique across runs.
    let mut last_id: Option<i64> = None;
    while let Some(row) = rows.next()? {
        let account = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        let source_name = row.get_ref(9)?.as_str().map_err(rusqlite::Error::from)?;
        let Some(loaded) = runs.run_of(account, source_name) else {
            continue;
        };
        let contacts = &mut loaded.contacts;
        let id: i64 = row.get(1)?;
        if last_id != Some(id) {
            loaded.ids.push(id as u64);
            let groups = row.get_ref(8)?.as_str().map_err(rusqlite::Error::from)?;
            contacts.push(Contact {
                resource_name: row.get(2)?,
                name: row.get(3)?,
                company: row.get(4)?,
                numbers: Vec::new(),
                groups: split_groups(groups),
            });
            last_id = Some(id);
        }
        let e164: Option<i64> = row.get(5)?;
        if let Some(e164) = e164 {
            let national: i64 = row.get(6)?;
            contacts
                .last_mut()
                .expect("pushed above")
                .numbers
                .push(ContactNumber {
                    e164: E164(e164 as u64),
                    national: NationalKey(national as u64),
                    label: row.get(7)?,
                });
        }
    }
    runs.finish();
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: usize =
        conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(Error::storage(format!(
            "the database has schema version {version}, newer than this plugin knows ({}); install the newer plugin again or move data_dir aside",
            MIGRATIONS.len()
        )));
    }
    if version == MIGRATIONS.len() {
        return Ok(());
    }
    // Off while migrating: a migration that rebuilds a table drops the old one, and with
    // foreign keys on that drop would delete every row referring to it (numbers by
    // contact). SQLite ignores this pragma inside a transaction, so it is set around them.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        // A rebuilt table must still satisfy every foreign key, or nothing is kept.
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(Error::storage(format!(
                "upgrading the database to schema version {} left rows of {table} without their parent; nothing was changed. Please report this with the plugin's log",
                done + 1
            )));
        }
        tx.pragma_update(None, "user_version", (done + 1) as i64)?;
        tx.commit()?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// How long a statement waits for another connection to the file (a backup's) to let go.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Checkpoints the WAL into the database file and truncates it. False when a reader of an
/// older snapshot kept it from finishing (SQLite's `busy` column): the WAL, and pages of the
/// database file it did not reach, may still hold what was erased.
fn checkpoint(conn: &Connection) -> Result<bool> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    Ok(busy == 0)
}

/// Tokens live in these files: only the PBX user may read them.
fn restrict_permissions(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let path = data_dir.join(format!("{DATABASE_FILE}{suffix}"));
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::BusyTimes;

    fn open_store(dir: &Path) -> Result<SqliteStore> {
        SqliteStore::open(dir, Sealer::load(None, dir)?)
    }

    #[test]
    fn plain_tokens_of_an_older_store_are_sealed_at_open_and_a_wrong_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_store(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        conn.execute(
            "INSERT INTO accounts (account, connection_id, refresh_token, access_token, connected_at, status)
             VALUES ('example.com', 1, '1//PLAINREFRESH', 'ya29.PLAINACCESS', 0, 'connected')",
            [],
        )
        .unwrap();
        drop(conn);
        let store = open_store(dir.path()).unwrap();
        let tokens = store.tokens("example.com", 1).unwrap().unwrap();
        assert_eq!(tokens.refresh_token, "1//PLAINREFRESH");
        assert_eq!(tokens.access_token.as_deref(), Some("ya29.PLAINACCESS"));
        drop(store);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for plain in ["PLAINREFRESH", "PLAINACCESS"] {
                assert!(!bytes.windows(plain.len()).any(|w| w == plain.as_bytes()));
            }
        }
        // Another key: the open fails, naming the key file, rather than using garbage.
        std::fs::remove_file(dir.path().join(crate::store::KEY_FILE)).unwrap();
        let err = open_store(dir.path())
            .err()
            .expect("a wrong key is refused");
        assert!(err.message().contains("token.key"), "{err}");
    }

    #[test]
    fn accounts_stored_as_the_host_wrote_them_take_their_canonical_name() {
        let dir = tempfile::tempdir().unwrap();
        // A 0.1 store (schema 1), which kept accounts as the host wrote them.
        {
            let mut conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(MIGRATIONS[0]).unwrap();
            tx.pragma_update(None, "user_version", 1).unwrap();
            tx.execute_batch(
                "INSERT INTO accounts (account, connection_id, refresh_token, connected_at, status, last_sync, sync_token)
                    VALUES ('Example.com/40', 3, '1//PLAIN40', 100, 'connected', 1700000000, 'TOKEN40');
                 INSERT INTO contacts (id, account, resource_name, name, company)
                    VALUES (7, 'Example.com/40', 'people/c1', 'Ann', '');
                 INSERT INTO numbers (contact_id, e164, national, label) VALUES (7, 12125550101, 2125550101, 'work');
                 INSERT INTO pending_auth (state_hash, account, pkce_verifier, created_at)
                    VALUES (x'01', 'Example.com/40', 'v', 100);
                 -- Both names: connected again after an upgrade; the newer connection stays.
                 INSERT INTO accounts (account, connection_id, refresh_token, connected_at, status)
                    VALUES ('ACME.de.', 1, '1//OLDER', 100, 'connected');
                 INSERT INTO contacts (id, account, resource_name, name, company)
                    VALUES (8, 'ACME.de.', 'people/c1', 'Old', '');
                 INSERT INTO numbers (contact_id, e164, national, label) VALUES (8, 12125550108, 2125550108, 'work');
                 INSERT INTO accounts (account, connection_id, refresh_token, connected_at, status)
                    VALUES ('acme.de', 2, '1//NEWER', 200, 'connected');
                 INSERT INTO contacts (id, account, resource_name, name, company)
                    VALUES (9, 'acme.de', 'people/c1', 'New', '');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = open_store(dir.path()).unwrap();
        let mut names: Vec<String> = store
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| a.account)
            .collect();
        names.sort();
        assert_eq!(names, ["acme.de", "example.com/40"]);
        let tokens = store.tokens("example.com/40", 3).unwrap().unwrap();
        assert_eq!(tokens.refresh_token, "1//PLAIN40");
        assert_eq!(
            store.tokens("acme.de", 2).unwrap().unwrap().refresh_token,
            "1//NEWER"
        );
        let token = store
            .sync_token("example.com/40", 3, Source::Contacts)
            .unwrap()
            .unwrap();
        assert_eq!(token.token, "TOKEN40");
        {
            let conn = store.conn.lock();
            let ann = contacts_of(&conn, "example.com/40", Source::Contacts).unwrap();
            assert_eq!(ann.contacts[0].name, "Ann");
            assert_eq!(ann.contacts[0].numbers.len(), 1);
            let acme = contacts_of(&conn, "acme.de", Source::Contacts).unwrap();
            let acme: Vec<&str> = acme.contacts.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(acme, ["New"]);
            for (table, expected) in [
                ("accounts", 2),
                ("contacts", 2),
                ("numbers", 1),
                ("pending_auth", 1),
            ] {
                let count: i64 = conn
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                    .unwrap();
                assert_eq!(count, expected, "{table}");
            }
            let pending: String = conn
                .query_row("SELECT account FROM pending_auth", [], |r| r.get(0))
                .unwrap();
            assert_eq!(pending, "example.com/40");
        }
        drop(store);

        // A 0.2 that opened such a store before sealed its tokens under the old name.
        let sealer = Sealer::load(None, dir.path()).unwrap();
        {
            let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            conn.execute(
                "INSERT INTO accounts (account, connection_id, refresh_token, connected_at, status)
                 VALUES ('Example.org', 4, ?1, 300, 'connected')",
                [sealer.seal("Example.org", REFRESH, "1//SEALED")],
            )
            .unwrap();
        }
        let store = open_store(dir.path()).unwrap();
        assert_eq!(
            store
                .tokens("example.org", 4)
                .unwrap()
                .unwrap()
                .refresh_token,
            "1//SEALED"
        );
    }

    #[test]
    fn a_store_from_before_sources_keeps_its_contacts_numbers_and_sync_token() {
        let dir = tempfile::tempdir().unwrap();
        // A 0.2 store of schema 5, as the release before contact sources left it.
        {
            let mut conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            let tx = conn.transaction().unwrap();
            for migration in &MIGRATIONS[..5] {
                tx.execute_batch(migration).unwrap();
            }
            tx.pragma_update(None, "user_version", 5).unwrap();
            tx.execute_batch(
                "INSERT INTO accounts (account, connection_id, refresh_token, connected_at, status, last_sync, sync_token)
                    VALUES ('example.com', 7, 'x', 0, 'connected', 1700000000, 'SYNCTOKEN5');
                 INSERT INTO contacts (id, account, resource_name, name, company, groups)
                    VALUES (41, 'example.com', 'people/c1', 'Ann', 'Acme', 'contactGroups/g');
                 INSERT INTO numbers (contact_id, e164, national, label) VALUES (41, 12125550101, 2125550101, 'work');
                 INSERT INTO numbers (contact_id, e164, national, label) VALUES (41, 12125550102, 2125550102, 'home');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = open_store(dir.path()).unwrap();
        let token = store
            .sync_token("example.com", 7, Source::Contacts)
            .unwrap()
            .unwrap();
        assert_eq!(token.token, "SYNCTOKEN5");
        // Kept, but not what it was asked with: the first sync of this release is a full one.
        assert_eq!(token.asked, None);
        let states = store.source_states(None).unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(
            (states[0].1, states[0].2.last_sync),
            (Source::Contacts, Some(1_700_000_000))
        );
        {
            let conn = store.conn.lock();
            let loaded = contacts_of(&conn, "example.com", Source::Contacts).unwrap();
            assert_eq!(loaded.ids, [41]);
            let ann = &loaded.contacts[0];
            assert_eq!((ann.name.as_str(), ann.groups.len()), ("Ann", 1));
            let labels: Vec<&str> = ann.numbers.iter().map(|n| n.label.as_str()).collect();
            assert_eq!(labels, ["work", "home"], "numbers kept, in their order");
            let keys: i64 = conn
                .pragma_query_value(None, "foreign_keys", |r| r.get(0))
                .unwrap();
            assert_eq!(keys, 1, "foreign keys are back on after migrating");
        }
        // Erasing the contacts source (dropped from the configuration) cascades to numbers.
        let dropped = store.forget_sources(&|_| vec![Source::Directory]).unwrap();
        assert_eq!(dropped, [("example.com".to_string(), Source::Contacts)]);
        let conn = store.conn.lock();
        let numbers: i64 = conn
            .query_row("SELECT count(*) FROM numbers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(numbers, 0);
        assert!(contacts_of(&conn, "example.com", Source::Contacts)
            .unwrap()
            .contacts
            .is_empty());
    }

    fn user_version(dir: &Path) -> i64 {
        let conn = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_database_gets_every_migration_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_store(dir.path()).unwrap());
        assert_eq!(user_version(dir.path()), MIGRATIONS.len() as i64);
        drop(open_store(dir.path()).unwrap()); // reopening runs nothing again
        assert_eq!(user_version(dir.path()), MIGRATIONS.len() as i64);

        let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = open_store(dir.path())
            .err()
            .expect("a newer schema is refused");
        assert!(err.message().contains("newer"), "{err}");
    }

    #[test]
    fn the_database_is_in_wal_mode_with_secure_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).unwrap();
        let conn = store.conn.lock();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let secure: i64 = conn
            .pragma_query_value(None, "secure_delete", |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), secure), ("wal", 1));
    }

    /// A source that never landed (a consumer account's directory, failing at every sync)
    /// has only its last error stored: there is nothing of an older connection to erase, and
    /// its row stays (it was deleted and written again at each failure, each time with a
    /// truncating checkpoint, and on PostgreSQL a notice that made every follower rebuild).
    #[test]
    fn a_source_no_connection_landed_has_nothing_older_to_forget() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).unwrap();
        let id = connect(&store, "example.com", 1);
        store
            .set_source_error("example.com", id, Source::Directory, Some("not Workspace"))
            .unwrap();
        let changes_before = store.conn.lock().total_changes();
        assert!(!store
            .forget_older_source("example.com", id, Source::Directory)
            .unwrap());
        assert_eq!(
            store.conn.lock().total_changes(),
            changes_before,
            "nothing written"
        );
        let states = store.source_states(Some("example.com")).unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].2.last_error.as_deref(), Some("not Workspace"));
    }

    #[test]
    fn a_refresh_keeps_the_refresh_token_unless_google_rotates_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).unwrap();
        let tokens = Tokens {
            refresh_token: "r1".into(),
            access_token: Some("a1".into()),
            access_expires_at: Some(1),
        };
        let id = store
            .connect_account("example.com", &tokens, &[], 1)
            .unwrap()
            .connection_id;
        store
            .update_access_token("example.com", id, "a2", Some(2), None)
            .unwrap();
        let kept = store.tokens("example.com", id).unwrap().unwrap();
        assert_eq!(
            (kept.refresh_token.as_str(), kept.access_token.as_deref()),
            ("r1", Some("a2"))
        );
        store
            .update_access_token("example.com", id, "a3", Some(3), Some("r2"))
            .unwrap();
        assert_eq!(
            store
                .tokens("example.com", id)
                .unwrap()
                .unwrap()
                .refresh_token,
            "r2"
        );
    }

    #[test]
    fn abandoned_authorizations_are_dropped_when_new_ones_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).unwrap();
        let pending = |at| PendingAuth {
            account: "example.com".into(),
            pkce_verifier: "v".into(),
            created_at: at,
        };
        store.insert_pending(b"old", &pending(100), 0).unwrap();
        store
            .insert_pending(b"new", &pending(1000), 1000 - 600)
            .unwrap();
        assert!(
            store.take_pending(b"old", 0).unwrap().is_none(),
            "dropped as expired"
        );
        assert!(store.take_pending(b"new", 0).unwrap().is_some());
        assert!(
            store.take_pending(b"new", 0).unwrap().is_none(),
            "spent once"
        );
    }

    #[test]
    fn an_account_keeps_only_its_newest_pending_authorizations() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).unwrap();
        let pending = |account: &str| PendingAuth {
            account: account.into(),
            pkce_verifier: "v".into(),
            created_at: 1000,
        };
        store
            .insert_pending(b"other", &pending("other.com"), 0)
            .unwrap();
        for n in 0..100u32 {
            store
                .insert_pending(&n.to_be_bytes(), &pending("example.com"), 0)
                .unwrap();
        }
        let count: i64 = store
            .conn
            .lock()
            .query_row(
                "SELECT count(*) FROM pending_auth WHERE account = 'example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(count, MAX_PENDING_PER_ACCOUNT);
        assert!(
            store
                .take_pending(&99u32.to_be_bytes(), 0)
                .unwrap()
                .is_some(),
            "the newest stays"
        );
        assert!(
            store
                .take_pending(&0u32.to_be_bytes(), 0)
                .unwrap()
                .is_none(),
            "the oldest went"
        );
        assert!(
            store.take_pending(b"other", 0).unwrap().is_some(),
            "other accounts untouched"
        );
    }

    /// A store with `account` connected twice: its replaced connection's id, and its
    /// current one's.
    fn reconnected(dir: &Path, account: &str) -> (SqliteStore, i64, i64) {
        let store = open_store(dir).unwrap();
        let old = connect(&store, account, 1);
        let new = connect(&store, account, 2);
        assert_ne!(old, new);
        (store, old, new)
    }

    /// Connects `account` (a refresh token only) at `now`; returns the connection's id.
    fn connect(store: &SqliteStore, account: &str, now: i64) -> i64 {
        let tokens = Tokens {
            refresh_token: "r".into(),
            access_token: None,
            access_expires_at: None,
        };
        store
            .connect_account(account, &tokens, &[], now)
            .unwrap()
            .connection_id
    }

    #[test]
    fn a_sync_for_a_replaced_connection_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, old, _) = reconnected(dir.path(), "example.com");
        let contact = Contact {
            resource_name: "people/c1".into(),
            name: "N".into(),
            company: String::new(),
            numbers: vec![],
            groups: vec![],
        };
        let landing = Landing {
            source: Source::Contacts,
            replace_all: true,
            upserts: &[contact],
            deletions: &[],
            sync_token: Some("t"),
            sync_asked: "personFields=names",
            group_names: &GroupNames::new(),
        };
        let landed = store
            .commit_sync("example.com", old, &landing, 3, &mut |_, _| Ok(()))
            .unwrap();
        assert!(!landed);
        let conn = store.conn.lock();
        assert!(contacts_of(&conn, "example.com", Source::Contacts)
            .unwrap()
            .contacts
            .is_empty());
    }

    /// Forgetting busy times a grant no longer covers: only the current connection's, the
    /// problem kept in their place, memory told while the store is locked.
    #[test]
    fn forgotten_busy_times_are_the_current_connections_only() {
        let dir = tempfile::tempdir().unwrap();
        let (store, old, current) = reconnected(dir.path(), "a.example");
        let busy = BusyTimes::new(vec![(100, 200)], 50, 1000);
        assert!(store
            .save_presence(
                "a.example",
                current,
                CalendarOutcome::Answer(&busy),
                &mut || ()
            )
            .unwrap());
        // Whether `connection`'s forget landed, and whether memory was told.
        let forget = |connection| {
            let mut told = false;
            let outcome = CalendarOutcome::NotGranted("grant it");
            let landed = store
                .save_presence("a.example", connection, outcome, &mut || told = true)
                .unwrap();
            (landed, told)
        };
        assert_eq!(forget(old), (false, false));
        let kept = &store.presences(Some("a.example")).unwrap()[0];
        assert_eq!(
            kept.busy.as_ref().map(|b| b.periods().to_vec()),
            Some(vec![(100, 200)])
        );
        assert_eq!(kept.issue, None);

        assert_eq!(forget(current), (true, true));
        let forgotten = &store.presences(Some("a.example")).unwrap()[0];
        assert!(forgotten.busy.is_none());
        assert_eq!(forgotten.issue.as_deref(), Some("grant it"));
    }
}
