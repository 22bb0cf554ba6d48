//! Following a shared store: another node of the cluster connected, synced, disabled or
//! changed the status of an account, and this node's memory (states, index, presence,
//! schedule) must show it within seconds. Each change reloads only what it names, and a
//! book changed by another node's incremental sync is patched with that change alone; after
//! the store was out of reach everything is reloaded, since changes may have been missed. A reload
//! may race this node's own write of the same account: it never undoes it (see
//! `read_then_apply`), and the store sends this node its own notice of that write too.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::{Job, Shared};
use crate::book::contact::Source;
use crate::book::numbers::AccountIndex;
use crate::book::patch::{AccountBook, BookIdentity, Change as IndexChange};
use crate::core::{calendar_fetched, missing_calendar_scope, AccountState, Core};
use crate::error::{Error, Result};
use crate::google::calendar;
use crate::store::{Change, Followed};

/// Applies changes until the worker stops. A change that cannot be read now (the store went
/// away again) is kept and tried again a second later.
pub(super) fn follow(shared: &Shared, changes: &Receiver<Change>) {
    let mut failed: Option<Change> = None;
    let mut marks = Marks::new();
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
        // Debug builds only: lets a test hold each change back a while, as a follower busy
        // with a large book would, so that changes made meanwhile are read together.
        #[cfg(debug_assertions)]
        debug_delay("GI_DEBUG_FOLLOW_DELAY_MS");
        let started = Instant::now();
        match apply(shared, &change, &mut marks) {
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

/// Debug builds only: sleeps as many milliseconds as the environment variable `var` says, for
/// a test that needs the follower held at that point. Release builds have no hook.
#[cfg(debug_assertions)]
fn debug_delay(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|ms| ms.parse().ok()) {
        log::warn!("{var} holds the follower {ms} ms");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn apply(shared: &Shared, change: &Change, marks: &mut Marks) -> Result<()> {
    let core = &shared.core;
    match change {
        Change::Account(account) => {
            let reloaded = reload_account(shared, account)?;
            // A disabled account's marks go with it (each keeps a little of its old books).
            if !core.accounts.read().contains_key(account.as_str()) {
                marks.retain(|(marked, _), _| marked != account);
            } else if let Some(Reloaded::Connected { .. }) = reloaded {
                // A connection new to this node: whatever this node holds of the account is an
                // older connection's (when the disable and the connect were read together,
                // the disable was never seen as such), perhaps another Google user's, and the
                // new connection's first sync sends no notice of a source it leaves empty. So
                // every book is what the store has now.
                for source in Source::ALL {
                    rebuild_book(core, account, source, marks)?;
                }
            }
            Ok(())
        }
        Change::Contacts(account, source) => follow_book(core, account, *source, marks),
        Change::Presence(account) => reload_presence(core, account),
        Change::Everything => {
            let mut accounts: Vec<String> = core.accounts.read().keys().cloned().collect();
            accounts.extend(core.store.accounts()?.into_iter().map(|s| s.account));
            accounts.sort();
            accounts.dedup();
            for account in &accounts {
                reload_account(shared, account)?;
                // Changes may have been missed: no copy is known to be any change's.
                for source in Source::ALL {
                    rebuild_book(core, account, source, marks)?;
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
fn reload_account(shared: &Shared, account: &str) -> Result<Option<Reloaded>> {
    let core = &shared.core;
    let read = || -> Result<Option<AccountState>> {
        let Some(stored) = core.store.account(account)? else {
            return Ok(None);
        };
        let mut state = AccountState::from(stored);
        for (_, source, synced) in core.store.source_states(Some(account))? {
            state.sources[source as usize] = synced;
        }
        Ok(Some(state))
    };
    let outcome = read_then_apply(&core.accounts, account, read, |accounts, read| {
        let Some(mut state) = read else {
            return accounts.remove(account).map(|_| Reloaded::Gone);
        };
        let known = accounts
            .get(account)
            .filter(|known| known.connection_id == state.connection_id);
        let new_connection = known.is_none();
        match known {
            Some(known) => {
                state.syncing = known.syncing;
                state.presence_issue = known.presence_issue.clone();
                state.revision = known.revision;
            }
            None => state.presence_issue = missing_calendar_scope(&core.config, account, &state),
        }
        let fetch_calendar = calendar_fetched(&core.config, account, &state);
        accounts.insert(account.to_owned(), state);
        new_connection.then_some(Reloaded::Connected { fetch_calendar })
    })?;
    match &outcome {
        Some(Reloaded::Gone) => {
            shared.forget(account, Job::Contacts);
            shared.forget(account, Job::Presence);
            core.index.remove(account);
            core.presence.remove(account);
            log::info!("account {account}: disabled on another node; erased here too");
        }
        Some(Reloaded::Connected { fetch_calendar }) => {
            // An older connection's busy times may be another Google user's (the store dropped
            // them with the connect).
            core.presence.remove(account);
            shared.schedule(account, Job::Contacts);
            if *fetch_calendar {
                shared.schedule(account, Job::Presence);
            } else {
                shared.forget(account, Job::Presence);
            }
            log::info!("account {account}: connected on another node");
        }
        None => {}
    }
    Ok(outcome)
}

/// What a reload of an account changed beyond its state.
enum Reloaded {
    Gone,
    Connected { fetch_calendar: bool },
}

/// How many times a reload reads the store again when this node keeps changing the account
/// meanwhile, before it gives up until the follower's next retry.
const RELOAD_ATTEMPTS: usize = 20;

/// Reads the store, then applies what it read to the account's state under the accounts'
/// lock: but only if this node did not change the state between the two. Such a change
/// (its sync's outcome, a status) writes the store first and memory next, so a read that
/// began before it may not have seen it and would undo it in memory; the read is made again.
/// A change after the apply is safe: it updates the fields it sets on top of what was read.
fn read_then_apply<T, R>(
    accounts: &RwLock<HashMap<String, AccountState>>,
    account: &str,
    mut read: impl FnMut() -> Result<T>,
    apply: impl FnOnce(&mut HashMap<String, AccountState>, T) -> R,
) -> Result<R> {
    let version = |accounts: &HashMap<String, AccountState>| {
        accounts
            .get(account)
            .map(|state| (state.connection_id, state.revision))
    };
    for _ in 0..RELOAD_ATTEMPTS {
        let before = version(&accounts.read());
        let value = read()?;
        let mut accounts = accounts.write();
        if version(&accounts) == before {
            return Ok(apply(&mut accounts, value));
        }
    }
    Err(Error::storage(format!(
        "account {account} kept changing on this node while its state was read from the store"
    )))
}

/// Where this node's copy of each book stands against the store: the store's change it is the
/// result of, and which book in the index that copy is. A book this node changed itself since
/// (its own sync) is no longer that copy, and is rebuilt at the next change another node makes.
type Marks = HashMap<(String, Source), Mark>;

struct Mark {
    seq: i64,
    book: BookIdentity,
}

/// One source's contacts of the account: patched as the node that synced them patched its
/// own, when this node's copy is the book just before the store's latest change (what a
/// change costs the syncing node, it costs each follower); rebuilt from the store otherwise.
fn follow_book(core: &Core, account: &str, source: Source, marks: &mut Marks) -> Result<()> {
    let key = (account.to_owned(), source);
    let current = core.index.book(account, source);
    let Some((mark, current)) = marks
        .get(&key)
        .zip(current)
        .filter(|(mark, current)| mark.book.is(current))
    else {
        return rebuild_book(core, account, source, marks);
    };
    let (seq, identity) = (mark.seq, mark.book.clone());
    let mut patched = None;
    let followed = core
        .store
        .follow_book(account, source, seq, &mut |stored, change| {
            let index_change = IndexChange {
                replaced: &change.replaced,
                upserts: &change.upserts,
                deletions: &change.deletions,
            };
            patched = current.patched(
                &index_change,
                &change.group_names,
                only_groups(core, account, source),
                |e164s, nationals| stored.holders(account, source, e164s, nationals),
            )?;
            Ok(patched.is_some())
        })?;
    if let (Followed::Patched(seq), Some(book)) = (followed, patched) {
        let patched_identity = book.identity();
        // As in `rebuild_book`; and only over the copy it patched.
        let accounts = core.accounts.read();
        let size = book.patch_size();
        if accounts.contains_key(account)
            && core
                .index
                .replace_book_if(account, source, Some(&identity), Some(book))
        {
            log::debug!(
                "account {account}: another node's change to its {} patched into this node's copy ({size} contacts in the patch)",
                source.noun()
            );
            marks.insert(
                key,
                Mark {
                    seq,
                    book: patched_identity,
                },
            );
            return Ok(());
        }
    }
    rebuild_book(core, account, source, marks)
}

/// How many times a rebuild reads the store again when this node's own sync swaps in another
/// book meanwhile.
const REBUILD_ATTEMPTS: usize = 3;

/// One source's contacts of the account, rebuilt from the store.
///
/// Should this node's own sync swap in another book while the store is read, the rebuild is
/// made again from a fresh read: that sync may have patched a book that lacked the very change
/// this rebuild is for (another node's, not yet followed here), and since this node does not
/// hear its own contacts' notices, nothing else would set it right. A read made after the
/// sync's commit holds both changes. (It kept the sync's book instead: a contact another node
/// added did not answer here until some later change of that book.)
fn rebuild_book(core: &Core, account: &str, source: Source, marks: &mut Marks) -> Result<()> {
    for _ in 0..REBUILD_ATTEMPTS {
        if rebuild_book_once(core, account, source, marks)? {
            return Ok(());
        }
        log::debug!(
            "account {account}: this node synced its {} while it was read from the store; reading it again",
            source.noun()
        );
    }
    log::warn!(
        "account {account}: its {} kept changing on this node while it was rebuilt from the store; the next change rebuilds it",
        source.noun()
    );
    Ok(())
}

/// One attempt of `rebuild_book`: false when this node's own sync swapped in another book
/// while the store was read (nothing is replaced then).
fn rebuild_book_once(
    core: &Core,
    account: &str,
    source: Source,
    marks: &mut Marks,
) -> Result<bool> {
    let key = (account.to_owned(), source);
    marks.remove(&key);
    let before = core.index.book(account, source).map(|book| book.identity());
    // Debug builds only: lets a test hold a rebuild between noting the book it replaces and
    // reading the store, so that this node's own sync lands meanwhile.
    #[cfg(debug_assertions)]
    debug_delay("GI_DEBUG_REBUILD_DELAY_MS");
    let (loaded, group_names, seq) = core.store.book(account, source)?;
    let book = (!loaded.contacts.is_empty()).then(|| {
        AccountBook::new(AccountIndex::build_stored(
            &loaded.contacts,
            &loaded.ids,
            &group_names,
            only_groups(core, account, source),
        ))
    });
    let identity = book.as_ref().map(AccountBook::identity);
    let contacts = book.as_ref().map_or(0, |book| book.counts().0);
    // Swapped in only while the account is connected here, under the lock a disable takes to
    // erase it from memory: a disable on this node after the read must not be undone.
    let accounts = core.accounts.read();
    if !accounts.contains_key(account) {
        return Ok(true);
    }
    if !core
        .index
        .replace_book_if(account, source, before.as_ref(), book)
    {
        return Ok(false);
    }
    log::debug!(
        "account {account}: its {} reloaded from the store in full ({} contacts)",
        source.noun(),
        contacts
    );
    if let Some(identity) = identity {
        marks.insert(
            key,
            Mark {
                seq,
                book: identity,
            },
        );
    }
    Ok(true)
}

/// `contact_groups` filters the contacts source only: the others have no groups.
fn only_groups<'c>(core: &'c Core, account: &str, source: Source) -> Option<&'c [String]> {
    match source {
        Source::Contacts => core.config.settings_for(account).contact_groups.as_deref(),
        _ => None,
    }
}

/// The account's calendar presence and calendar problem, as the store has them now.
fn reload_presence(core: &Core, account: &str) -> Result<()> {
    let read = || Ok(core.store.presences(Some(account))?.into_iter().next());
    read_then_apply(&core.accounts, account, read, |accounts, stored| {
        let Some(state) = accounts.get_mut(account) else {
            core.presence.remove(account);
            return;
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn state(issue: Option<&str>) -> AccountState {
        AccountState::from(crate::store::StoredAccount {
            account: "example.com".into(),
            connection_id: 7,
            issue: issue.map(str::to_owned),
            last_sync: None,
            last_error: None,
            scopes: Vec::new(),
        })
    }

    /// The race CI once caught: the sync's outcome (yellow) was stored and set in memory while
    /// the follower read the store from just before, and the follower's apply turned the
    /// account green again until the next notice.
    #[test]
    fn a_read_from_before_a_local_change_is_read_again_and_does_not_undo_it() {
        let accounts = RwLock::new(HashMap::from([("example.com".to_owned(), state(None))]));
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            if reads.get() == 1 {
                // The store is read as it was; meanwhile this node stores its sync's outcome
                // and sets it in memory.
                let stale = state(None);
                accounts
                    .write()
                    .get_mut("example.com")
                    .unwrap()
                    .update(|s| s.issue = Some("the sync failed".into()));
                Ok(stale)
            } else {
                Ok(state(Some("the sync failed")))
            }
        };
        read_then_apply(&accounts, "example.com", read, |accounts, read| {
            accounts.insert("example.com".into(), read);
        })
        .unwrap();
        assert_eq!(reads.get(), 2, "read again after the local change");
        assert_eq!(
            accounts.read()["example.com"].issue.as_deref(),
            Some("the sync failed")
        );
    }

    #[test]
    fn a_node_that_keeps_changing_the_account_makes_the_reload_wait_for_a_retry() {
        let accounts = RwLock::new(HashMap::from([("example.com".to_owned(), state(None))]));
        let read = || {
            accounts
                .write()
                .get_mut("example.com")
                .unwrap()
                .update(|s| s.syncing = !s.syncing);
            Ok(state(None))
        };
        let err = read_then_apply(&accounts, "example.com", read, |_, _: AccountState| {
            unreachable!("a read older than the state is never applied")
        })
        .unwrap_err();
        assert!(err.message().contains("kept changing"), "{}", err.message());
    }
}
