//! The plugin as the host sees it, in safe Rust: open, connect an account, report its
//! status, disconnect it, sync it and look up callers. `src/ffi` maps each method to a C
//! function; tests and benchmarks may also call it directly.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use base64::Engine;
use parking_lot::RwLock;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::account;
use crate::book::contact::Source;
use crate::book::names::Query;
use crate::book::numbers::{AccountIndex, ContactIndex, ContactMatch, GroupNames};
use crate::book::HelperThreads;
use crate::config::Config;
use crate::core::{
    calendar_fetched, missing_calendar_scope, rfc3339, unix_now, AccountState, Core, Status,
};
use crate::error::{Error, ErrorKind, Result};
use crate::google::calendar;
use crate::google::http::{HttpClient, Limits};
use crate::google::oauth::{self, Callback};
use crate::presence::{Presence, PresenceBook};
use crate::store::{self, PendingAuth, Sealer, Store, Tokens};
use crate::sync::{Job, SyncWorker};

/// How long a state from `auth_url` may wait for Google's redirect.
pub const STATE_LIFETIME_SECS: i64 = 600;

pub struct Plugin {
    core: Arc<Core>,
    worker: SyncWorker,
    /// Held from storing a new connection until memory holds it too: two connects of one
    /// account at once (two consent popups finished together) must land in memory in the
    /// order they landed in the store, or memory keeps the replaced connection, under which
    /// syncs find no tokens and `disable` finds nothing to erase.
    connecting: parking_lot::Mutex<()>,
    /// Threads that build large indexes beside the thread that asks (see `book::helpers`);
    /// dropped after the workers stop, joining them if no other plugin in the process holds
    /// them.
    _helpers: HelperThreads,
}

/// The status of one account, as `gi_status_json` reports it.
#[derive(Serialize)]
pub struct StatusReport<'a> {
    pub account: &'a str,
    pub status: &'static str,
    pub reason: Option<String>,
    pub syncing: bool,
    pub contacts: usize,
    pub numbers: usize,
    pub last_sync: Option<String>,
    pub last_error: Option<String>,
    pub next_sync: Option<String>,
    pub scopes: Vec<String>,
    /// One entry for each configured source.
    pub sources: std::collections::BTreeMap<&'static str, SourceReport>,
    /// Null unless calendar presence is on for the account's domain.
    pub presence: Option<PresenceReport>,
}

/// One contact source of an account, in `gi_status_json`.
#[derive(Serialize)]
pub struct SourceReport {
    pub contacts: usize,
    pub numbers: usize,
    pub last_sync: Option<String>,
    pub last_error: Option<String>,
}

/// Calendar presence, in `gi_status_json`.
#[derive(Serialize)]
pub struct PresenceReport {
    pub state: &'static str,
    pub until: Option<String>,
    pub updated: Option<String>,
}

impl Plugin {
    /// Opens the plugin: parses the configuration, opens the store, and rebuilds the caller-ID
    /// index from it before returning, so lookups answer at once, with or without Google.
    pub fn open(config_json: &str) -> Result<Plugin> {
        let config = Config::parse(config_json)?;
        // Before the indexes are built from the store, which they help with.
        let helpers = HelperThreads::hold();
        let sealer = Sealer::load(config.token_key_file.as_deref(), &config.data_dir)?;
        let store = store::open(&config.store, &config.data_dir, sealer)?;
        let http = HttpClient::new(Limits {
            requests_per_minute: config.requests_per_minute,
            ..Limits::default()
        })?;

        // A source dropped from the configuration leaves nothing behind (and added back, it
        // starts with a full sync).
        let dropped =
            store.forget_sources(&|account| config.settings_for(account).sources.clone())?;
        for (account, source) in &dropped {
            log::info!(
                "account {account}: {} are no longer among its sources; what was synced of them is erased",
                source.noun()
            );
        }
        let mut accounts: HashMap<String, AccountState> = store
            .accounts()?
            .into_iter()
            .map(|stored| (stored.account.clone(), AccountState::from(stored)))
            .collect();
        for (account, source, state) in store.source_states(None)? {
            if let Some(account) = accounts.get_mut(&account) {
                account.sources[source as usize] = state;
            }
        }
        // An account yellow because a source failed is yellow now only for the sources it
        // keeps: removing `directory` is the fix the reason of an account outside Workspace
        // names, and the reason must not go on asking for it until the next sync.
        for (account, _) in &dropped {
            if let Some(state) = accounts.get_mut(account) {
                restate_issue(&*store, account, state);
            }
        }
        let presence = load_presence(&*store, &config, &mut accounts)?;
        let calendars: Vec<String> = accounts
            .iter()
            .filter(|(account, state)| calendar_fetched(&config, account, state))
            .map(|(account, _)| account.clone())
            .collect();
        let built = build_indexes(&*store, &config)?;
        let index = ContactIndex::default();
        index.replace_all(built);
        let schedule: Vec<(String, Option<i64>)> = accounts
            .iter()
            .map(|(account, state)| (account.clone(), state.last_sync))
            .collect();
        log::info!(
            "opened with {} connected account(s) from {}",
            accounts.len(),
            config.data_dir.display()
        );

        let core = Arc::new(Core {
            config,
            store,
            http,
            index,
            presence,
            accounts: RwLock::new(accounts),
        });
        let worker = SyncWorker::start(core.clone(), schedule, calendars);
        Ok(Plugin {
            core,
            worker,
            connecting: parking_lot::Mutex::new(()),
            _helpers: helpers,
        })
    }

    /// Google's consent URL for `account`, with a fresh single-use state bound to it.
    pub fn auth_url(&self, account: &str) -> Result<String> {
        account::validate(account)?;
        let state = random_token();
        let settings = self.core.config.settings_for(account);
        let request =
            oauth::authorization_request(settings, &self.core.config.google, state.clone());
        let now = unix_now();
        self.core.store.insert_pending(
            &state_hash(&state),
            &PendingAuth {
                account: account.to_owned(),
                pkce_verifier: request.pkce_verifier,
                created_at: now,
            },
            now - STATE_LIFETIME_SECS,
        )?;
        log::info!("account {account}: authorization URL issued (valid {STATE_LIFETIME_SECS} s)");
        Ok(request.url)
    }

    /// Handles Google's redirect: checks the state, exchanges the code, stores the tokens and
    /// starts the first sync. Returns the account that is now connected.
    pub fn complete(&self, callback_query: &str) -> Result<String> {
        let callback = Callback::parse(callback_query)?;
        let now = unix_now();
        let state = callback.state.ok_or_else(|| {
            Error::new(
                ErrorKind::State,
                "Google's redirect carries no state; pass the raw query string that arrived at redirect_uri",
            )
        })?;
        let pending = self
            .core
            .store
            .take_pending(&state_hash(&state), now - STATE_LIFETIME_SECS)?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::State,
                    "the authorization state is unknown, already used or expired; click \"Get auth code\" again and finish within 10 minutes",
                )
            })?;
        let account = pending.account;
        if now - pending.created_at > STATE_LIFETIME_SECS {
            return Err(Error::new(
                ErrorKind::State,
                format!("the authorization for {account} took longer than 10 minutes; click \"Get auth code\" again"),
            ));
        }
        if let Some(error) = callback.error {
            return Err(if error == "access_denied" {
                log::info!("account {account}: the Google user declined access");
                Error::new(
                    ErrorKind::Denied,
                    format!("the Google user declined access for {account}; click \"Get auth code\" again and choose Allow"),
                )
            } else {
                Error::google(format!(
                    "Google did not authorize {account} ({error}); check the OAuth client and consent screen in the Google Cloud console"
                ))
            });
        }
        let code = callback.code.ok_or_else(|| {
            Error::invalid_argument(
                "Google's redirect carries neither a code nor an error; pass the raw query string that arrived at redirect_uri",
            )
        })?;
        if let Some(scope) = &callback.scope {
            if !scope.split(' ').any(|s| s == oauth::CONTACTS_SCOPE) {
                return Err(Error::new(
                    ErrorKind::Denied,
                    format!("the Google user did not allow access to contacts for {account}; click \"Get auth code\" again and tick \"See and download your contacts\""),
                ));
            }
        }

        let settings = self.core.config.settings_for(&account);
        let granted = oauth::exchange_code(
            &self.core.http,
            settings,
            &self.core.config.google,
            &code,
            &pending.pkce_verifier,
            now,
        )?;
        // What Google granted is what its token reply says, whatever the redirect carried
        // (a host may drop `scope=` from the query): without contacts there is nothing to sync.
        if let Some(scopes) = &granted.scopes {
            if !scopes.iter().any(|s| s == oauth::CONTACTS_SCOPE) {
                // Not revoked: at Google that would end every grant of this Google user to
                // the client, the account's stored connection included, which a refused
                // connect must leave alone. The unused grant shows at
                // myaccount.google.com/permissions until the next consent replaces it.
                return Err(Error::new(
                    ErrorKind::Denied,
                    format!("Google granted no access to contacts for {account}; click \"Get auth code\" again and tick \"See and download your contacts\""),
                ));
            }
        }
        let refresh_token = granted.refresh_token.ok_or_else(|| {
            Error::google(format!(
                "Google granted access for {account} without a refresh token, so syncing could not continue; click \"Get auth code\" again"
            ))
        })?;
        // What Google says it granted; else what the redirect said; else what was asked.
        let scopes: Vec<String> = granted
            .scopes
            .clone()
            .unwrap_or_else(|| match &callback.scope {
                Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
                None => oauth::scopes_for(settings)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            });
        let connecting = self.connecting.lock();
        let stored = self.core.store.connect_account(
            &account,
            &Tokens {
                refresh_token,
                access_token: Some(granted.access_token),
                access_expires_at: granted.expires_at,
            },
            &scopes,
            now,
        )?;
        // The older connection's busy times may be another Google user's (the store dropped
        // them too): presence is unknown until this grant's first answer, asked for at once.
        self.core.presence.remove(&account);
        let mut state = AccountState::from(stored);
        // What the sources did before (their last sync) shows until they sync again. The
        // connection is stored by now: failing to read this must not fail the connect.
        match self.core.store.source_states(Some(&account)) {
            Ok(states) => {
                for (_, source, synced) in states {
                    state.sources[source as usize] = synced;
                }
            }
            Err(e) => log::warn!("account {account}: its sources' last syncs are not shown: {e}"),
        }
        state.presence_issue = missing_calendar_scope(&self.core.config, &account, &state);
        let fetch_calendar = calendar_fetched(&self.core.config, &account, &state);
        #[cfg(debug_assertions)]
        debug_connect_delay(&account);
        self.core.accounts.write().insert(account.clone(), state);
        drop(connecting);
        log::info!("account {account}: connected to Google");
        self.worker.request(&account, Job::Contacts);
        if fetch_calendar {
            self.worker.request(&account, Job::Presence);
        } else {
            self.worker.forget(&account, Job::Presence);
        }
        Ok(account)
    }

    pub fn status(&self, account: &str) -> Status {
        match self.core.accounts.read().get(account) {
            None => Status::Disconnected,
            Some(state) if state.issue.is_some() || state.presence_issue.is_some() => Status::Issue,
            Some(_) => Status::Connected,
        }
    }

    pub fn status_report<'a>(&self, account: &'a str) -> Result<StatusReport<'a>> {
        account::validate(account)?;
        let state = self.core.accounts.read().get(account).cloned();
        let (contacts, numbers) = match &state {
            Some(_) => self.core.index.counts(account),
            None => (0, 0),
        };
        let settings = self.core.config.settings_for(account);
        let connected = state.is_some();
        let sources = settings
            .sources
            .iter()
            .map(|&source| {
                let (contacts, numbers) = match &state {
                    Some(_) => self.core.index.source_counts(account, source),
                    None => (0, 0),
                };
                let synced = state.as_ref().map(|s| &s.sources[source as usize]);
                let report = SourceReport {
                    contacts,
                    numbers,
                    last_sync: synced.and_then(|s| s.last_sync).map(rfc3339),
                    last_error: synced.and_then(|s| s.last_error.clone()),
                };
                (source.name(), report)
            })
            .collect();
        let presence = settings.calendar.then(|| {
            let (presence, until) = self.presence(account);
            PresenceReport {
                state: match presence {
                    Presence::Unknown => "unknown",
                    Presence::Free => "free",
                    Presence::Busy => "busy",
                },
                until: (until != 0).then(|| rfc3339(until)),
                updated: self.core.presence.fetched_at(account).map(rfc3339),
            }
        });
        let next_sync = if connected {
            self.worker.next_due(account).map(rfc3339)
        } else {
            None
        };
        Ok(match state {
            None => StatusReport {
                account,
                status: "disconnected",
                reason: None,
                syncing: false,
                contacts,
                numbers,
                last_sync: None,
                last_error: None,
                next_sync,
                scopes: Vec::new(),
                sources,
                presence,
            },
            Some(state) => StatusReport {
                account,
                status: if state.reason().is_some() {
                    "issue"
                } else {
                    "connected"
                },
                reason: state.reason(),
                syncing: state.syncing,
                contacts,
                numbers,
                last_sync: state.last_sync.map(rfc3339),
                last_error: state.last_error,
                next_sync,
                scopes: state.scopes,
                sources,
                presence,
            },
        })
    }

    pub fn status_json(&self, account: &str) -> Result<String> {
        let report = self.status_report(account)?;
        serde_json::to_string(&report)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot write the status: {e}")))
    }

    /// Revokes the account's grant at Google and erases everything the plugin kept of it,
    /// whether or not Google answered.
    pub fn disable(&self, account: &str) -> Result<()> {
        account::validate(account)?;
        let Some(connection_id) = self.core.connection_id(account) else {
            log::info!("account {account}: disable asked, but it is not connected");
            return Ok(());
        };
        if let Some(tokens) = self.core.store.tokens(account, connection_id)? {
            match oauth::revoke(
                &self.core.http,
                &self.core.config.google,
                &tokens.refresh_token,
            ) {
                Ok(()) => log::info!("account {account}: access revoked at Google"),
                Err(e) => log::warn!(
                    "account {account}: {e}; the local tokens and contacts are erased anyway"
                ),
            }
        }
        // Only the connection read above is erased: one made meanwhile (a connect racing this
        // disable) is the administrator's newer wish and stays.
        if !self.core.store.delete_account(account, connection_id)? {
            // Connected again meanwhile (the administrator's newer wish), or already erased
            // from the store: by an earlier disable whose end failed, or another node's. Only
            // in the first case does memory keep the account.
            if self.core.store.account(account)?.is_some() {
                log::info!(
                    "account {account}: connected again while being disabled; the new connection stays"
                );
                return Ok(());
            }
        }
        {
            let mut accounts = self.core.accounts.write();
            if accounts
                .get(account)
                .is_some_and(|state| state.connection_id == connection_id)
            {
                accounts.remove(account);
                self.worker.forget(account, Job::Contacts);
                self.worker.forget(account, Job::Presence);
                self.core.index.remove(account);
                self.core.presence.remove(account);
            }
        }
        log::info!("account {account}: disabled; its tokens, contacts and calendar are erased");
        Ok(())
    }

    /// Starts a sync of the account (and a fetch of its calendar, when presence is on) in the
    /// background and returns at once.
    pub fn sync_now(&self, account: &str) -> Result<()> {
        account::validate(account)?;
        let fetch_calendar = match self.core.accounts.read().get(account) {
            None => {
                return Err(Error::invalid_argument(format!(
                    "account {account} is not connected to Google; connect it with \"Get auth code\" first"
                )))
            }
            Some(state) => calendar_fetched(&self.core.config, account, state),
        };
        self.worker.request(account, Job::Contacts);
        if fetch_calendar {
            self.worker.request(account, Job::Presence);
        }
        Ok(())
    }

    /// Who is calling `account` from `number`: reads the number in the account's region and
    /// asks the index. `copy_out` receives the match while it is borrowed from the index.
    pub fn lookup<R>(
        &self,
        account: &str,
        number: &str,
        copy_out: impl FnOnce(ContactMatch<'_>) -> R,
    ) -> Option<R> {
        let region = &self.core.config.settings_for(account).region;
        let incoming = region.read_incoming(number)?;
        self.core.index.lookup(account, &incoming, copy_out)
    }

    /// A consistent copy of the store at `path` (see `Store::backup`), while lookups and
    /// syncs go on.
    pub fn backup(&self, path: &str) -> Result<()> {
        if path.is_empty() {
            return Err(Error::invalid_argument(
                "the backup path is empty; give the path of a new file",
            ));
        }
        self.core.store.backup(std::path::Path::new(path))?;
        log::info!("backup written to {path}");
        Ok(())
    }

    /// The account's calendar presence now, and when it changes (Unix seconds, or 0), from
    /// memory. Unknown when presence is off for the account, its grant lacks the calendar,
    /// nothing was fetched yet, or the last good answer is older than three intervals (the
    /// book holds an account only while the first two allow it).
    pub fn presence(&self, account: &str) -> (Presence, i64) {
        self.core.presence.answer_now(account)
    }

    /// The first step of closing, taken before the calls in flight are waited for: replies
    /// being read from Google are abandoned at their next chunk, and no request goes out.
    /// A request already sent whose reply has not begun is waited for (reqwest's blocking
    /// client cannot be interrupted there), up to its 60 s deadline: Google answers in well
    /// under a second, a server that accepted and went silent is the case that waits.
    pub fn begin_close(&self) {
        self.core.http.close();
    }

    /// Searches the address book `account` sees (see `ContactIndex::search`): `copy_out`
    /// gets rows `offset..offset + cap`; returns how many match in all. A keypad query takes
    /// the digits 2-9 only.
    pub fn search(
        &self,
        account: &str,
        query: &str,
        keypad: bool,
        offset: usize,
        cap: usize,
        copy_out: impl FnMut(ContactMatch<'_>),
    ) -> Result<usize> {
        let query = Query::parse(query, keypad).map_err(Error::invalid_argument)?;
        Ok(self
            .core
            .index
            .search(account, &query, offset, cap, copy_out))
    }

    /// Stops the sync worker (waiting for a sync in flight to stop at its next step) and
    /// checkpoints the database. Dropping the plugin does the same.
    pub fn close(self) {}
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.worker.stop();
        if let Err(e) = self.core.store.checkpoint() {
            log::warn!("closing: {e}");
        }
        log::info!("closed");
    }
}

/// The calendar answers and problems the store kept, for accounts whose presence is on: what
/// was kept of accounts whose presence was turned off is erased (busy times are personal
/// data, kept only while they serve). Sets each account's calendar problem.
fn load_presence(
    store: &dyn Store,
    config: &Config,
    accounts: &mut HashMap<String, AccountState>,
) -> Result<PresenceBook> {
    let stale_after = 3 * config.presence_interval.as_secs() as i64;
    let book = PresenceBook::new(stale_after);
    for stored in store.presences(None)? {
        let Some(state) = accounts.get_mut(&stored.account) else {
            continue;
        };
        if !config.settings_for(&stored.account).calendar {
            store.delete_presence(&stored.account)?;
            log::info!(
                "account {}: calendar presence is off; its stored busy times are erased",
                stored.account
            );
            continue;
        }
        state.presence_issue = stored.issue;
        if let Some(busy) = stored.busy {
            if calendar::grants_free_busy(&state.scopes) {
                book.set(&stored.account, busy);
            }
        }
    }
    for (account, state) in accounts.iter_mut() {
        if let Some(missing) = missing_calendar_scope(config, account, state) {
            state.presence_issue = Some(missing);
        }
    }
    Ok(book)
}

/// Words an account's sync problem anew from the sources it keeps (after some were dropped
/// from the configuration), in memory and in the store; green when none of them failed.
/// The account's problem is its sources' when it has one (a refused token fails every
/// source); one with none (a run that panicked, a quota deferred past its retries) is
/// cleared too, and comes back at the next sync if it persists.
fn restate_issue(store: &dyn Store, account: &str, state: &mut AccountState) {
    if state.issue.is_none() {
        return;
    }
    let problem = state.sources_problem();
    if problem == state.issue {
        return;
    }
    match store.set_health(
        account,
        state.connection_id,
        problem.as_deref(),
        problem.as_deref(),
    ) {
        Ok(()) => {
            log::info!(
                "account {account}: {}",
                match &problem {
                    None => "no source it keeps failed its last sync: green again".to_owned(),
                    Some(problem) => format!("yellow for the sources it keeps: {problem}"),
                }
            );
            state.issue = problem.clone();
            state.last_error = problem;
        }
        Err(e) => log::error!("account {account}: cannot store its status: {e}"),
    }
}

/// Every stored account's index, built while the store is still being read: the store is
/// read on this thread and the indexes (numbers and names) are built on the others, so that
/// an open with a million stored numbers takes what the slower of the two takes.
fn build_indexes(
    store: &dyn Store,
    config: &Config,
) -> Result<Vec<(String, Source, AccountIndex)>> {
    type Loaded = (String, Source, crate::store::Loaded, GroupNames);
    let builders = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let (loaded, to_build) = std::sync::mpsc::sync_channel::<Loaded>(builders * 2);
    let to_build = parking_lot::Mutex::new(to_build);
    let failed = |account: &str| {
        Error::new(
            ErrorKind::Internal,
            format!("building the caller-ID index of account {account} failed (a bug in the plugin); please report it with the plugin's log"),
        )
    };
    std::thread::scope(|scope| {
        let threads = (0..builders)
            .map(|n| {
                // Named as the plugin's own, so that a panic on it goes to the plugin's log
                // (the panic hook), not the PBX's stderr.
                std::thread::Builder::new()
                    .name(format!("gi-open-build-{n}"))
                    .spawn_scoped(scope, || {
                        let mut built = Vec::new();
                        let mut broken = None;
                        loop {
                            let next = to_build.lock().recv();
                            let Ok((account, source, loaded, group_names)) = next else {
                                return broken.map_or(Ok(built), Err);
                            };
                            if broken.is_some() {
                                continue; // drained, so that the store's reader never waits
                            }
                            // `contact_groups` filters the contacts source only.
                            let only_groups = match source {
                                Source::Contacts => {
                                    config.settings_for(&account).contact_groups.as_deref()
                                }
                                _ => None,
                            };
                            // A panic must not end the thread: the reader, with every builder
                            // gone, would wait for ever on a full channel, and gi_open with it.
                            let index = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                #[cfg(debug_assertions)]
                                debug_panic_in_open(&account);
                                AccountIndex::build_stored(
                                    &loaded.contacts,
                                    &loaded.ids,
                                    &group_names,
                                    only_groups,
                                )
                            }));
                            match index {
                                Ok(index) => built.push((account, source, index)),
                                Err(_) => broken = Some(failed(&account)),
                            }
                        }
                    })
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Internal,
                            format!("cannot start a thread to build the caller-ID indexes ({e})"),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>();
        let threads = match threads {
            Ok(threads) => threads,
            Err(e) => {
                drop(loaded); // the builders started end, and the scope with them
                return Err(e);
            }
        };
        let read = store.for_each_book(&mut |account, source, contacts, group_names| {
            let _ = loaded.send((account, source, contacts, group_names));
        });
        drop(loaded);
        let mut all = Vec::new();
        for thread in threads {
            all.extend(thread.join().map_err(|_| failed("(unknown)"))??);
        }
        read.map(|()| all)
    })
}

/// Debug builds only: lets a test make an open's index build panic, to show that gi_open
/// then fails, neither hanging nor writing to stderr. Release builds have no hook.
#[cfg(debug_assertions)]
fn debug_panic_in_open(account: &str) {
    if std::env::var("GI_DEBUG_PANIC_IN_OPEN").is_ok_and(|a| a == "*" || a == account) {
        panic!("a panic injected by GI_DEBUG_PANIC_IN_OPEN");
    }
}

/// Debug builds only: lets a test hold the first connect of this process between storing the
/// connection and memory holding it, as a slow thread would, so that a second connect of the
/// same account lands meanwhile. Release builds have no hook.
#[cfg(debug_assertions)]
fn debug_connect_delay(account: &str) {
    static HELD_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(ms) = std::env::var("GI_DEBUG_CONNECT_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    else {
        return;
    };
    if !HELD_ONCE.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::warn!("account {account}: GI_DEBUG_CONNECT_DELAY_MS holds this connect {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// 256 random bits, URL-safe: unguessable, and carrying nothing but chance.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// States are stored hashed: a copy of the database does not reveal states still pending.
fn state_hash(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}
