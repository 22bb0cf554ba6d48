//! Following a shared store: another node of the cluster connected, synced, disabled or
//! changed the status of an account, and this node's memory (states, index, presence,
//! schedule) must show it within seconds. Each change reloads only what it names; after the
//! store was out of reach everything is reloaded, since changes may have been missed. A reload
//! may race this node's own write of the same account; the store then sends this node its own
//! notice of that write too, and the reload it causes reads the newer state.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::{Job, Shared};
use crate::book::contact::Source;
use crate::book::numbers::AccountIndex;
use crate::core::{calendar_fetched, missing_calendar_scope, AccountState, Core};
use crate::error::Result;
use crate::google::calendar;
use crate::store::Change;

/// Applies changes until the worker stops. A change that cannot be read now (the store went
/// away again) is kept and tried again a second later.
pub(super) fn follow(shared: &Shared, changes: &Receiver<Change>) {
    let mut failed: Option<Change> = None;
    while !shared.stopping.load(Ordering::SeqCst) {
        let change = match failed.take() {
            Some(change) => {
                std::thread::sleep(Duration::from_secs(1));
                change
            }
            None => match changes.recv_timeout(Duration::from_millis(200)) {
                Ok(change) => change,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        let started = Instant::now();
        match apply(shared, &change) {
            Ok(()) => log::debug!(
                "store: applied another node's change {change:?} in {} µs",
                started.elapsed().as_micros()
            ),
            Err(e) => {
                log::warn!("store: cannot apply another node's change {change:?} yet: {e}");
                failed = Some(change);
            }
        }
    }
}

fn apply(shared: &Shared, change: &Change) -> Result<()> {
    let core = &shared.core;
    match change {
        Change::Account(account) => reload_account(shared, account),
        Change::Contacts(account, source) => reload_book(core, account, *source),
        Change::Presence(account) => reload_presence(core, account),
        Change::Everything => {
            let mut accounts: Vec<String> = core.accounts.read().keys().cloned().collect();
            accounts.extend(core.store.accounts()?.into_iter().map(|s| s.account));
            accounts.sort();
            accounts.dedup();
            for account in &accounts {
                reload_account(shared, account)?;
                for source in Source::ALL {
                    reload_book(core, account, source)?;
                }
                reload_presence(core, account)?;
            }
            Ok(())
        }
    }
}

/// The account's connection and status as the store has them now; a connection new to this
/// node goes on its schedule (the node that connected it syncs it first), one gone is erased
/// from memory.
fn reload_account(shared: &Shared, account: &str) -> Result<()> {
    let core = &shared.core;
    let Some(stored) = core.store.account(account)? else {
        if core.accounts.write().remove(account).is_some() {
            shared.forget(account, Job::Contacts);
            shared.forget(account, Job::Presence);
            core.index.remove(account);
            core.presence.remove(account);
            log::info!("account {account}: disabled on another node; erased here too");
        }
        return Ok(());
    };
    let sources = core.store.source_states(Some(account))?;
    let mut state = AccountState::from(stored);
    for (_, source, synced) in sources {
        state.sources[source as usize] = synced;
    }
    let mut accounts = core.accounts.write();
    let known = accounts
        .get(account)
        .filter(|known| known.connection_id == state.connection_id);
    let new_connection = known.is_none();
    match known {
        Some(known) => {
            state.syncing = known.syncing;
            state.presence_issue = known.presence_issue.clone();
        }
        None => state.presence_issue = missing_calendar_scope(&core.config, account, &state),
    }
    let fetch_calendar = calendar_fetched(&core.config, account, &state);
    accounts.insert(account.to_owned(), state);
    drop(accounts);
    if new_connection {
        // An older connection's busy times may be another Google user's (the store dropped
        // them with the connect).
        core.presence.remove(account);
        shared.schedule(account, Job::Contacts);
        if fetch_calendar {
            shared.schedule(account, Job::Presence);
        } else {
            shared.forget(account, Job::Presence);
        }
        log::info!("account {account}: connected on another node");
    }
    Ok(())
}

/// One source's contacts of the account, rebuilt from the store.
fn reload_book(core: &Core, account: &str, source: Source) -> Result<()> {
    let (loaded, group_names) = core.store.book(account, source)?;
    if loaded.contacts.is_empty() {
        core.index.remove_source(account, source);
        return Ok(());
    }
    let only_groups = match source {
        Source::Contacts => core.config.settings_for(account).contact_groups.as_deref(),
        _ => None,
    };
    let index =
        AccountIndex::build_stored(&loaded.contacts, &loaded.ids, &group_names, only_groups);
    // Swapped in only while the account is connected here, under the lock a disable takes to
    // erase it from memory: a disable on this node after the read must not be undone.
    let accounts = core.accounts.read();
    if accounts.contains_key(account) {
        core.index.replace(account, source, index);
    }
    Ok(())
}

/// The account's calendar presence and calendar problem, as the store has them now.
fn reload_presence(core: &Core, account: &str) -> Result<()> {
    let stored = core.store.presences(Some(account))?.into_iter().next();
    let mut accounts = core.accounts.write();
    let Some(state) = accounts.get_mut(account) else {
        core.presence.remove(account);
        return Ok(());
    };
    let wanted = core.config.settings_for(account).calendar;
    match stored.as_ref().and_then(|s| s.busy.clone()) {
        Some(busy) if wanted && calendar::grants_free_busy(&state.scopes) => {
            core.presence.set(account, busy)
        }
        _ => core.presence.remove(account),
    }
    state.presence_issue = missing_calendar_scope(&core.config, account, state)
        .or_else(|| stored.and_then(|s| s.issue).filter(|_| wanted));
    Ok(())
}
