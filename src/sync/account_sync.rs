//! One sync of one account: its configured sources side by side, each with every page
//! fetched first (refreshing the access token and retrying transient failures), then landed
//! in one transaction and one index swap of its own, so that one source failing leaves the
//! others current.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::session::{Session, SyncEnd, SyncFailure};
use super::{Job, Shared};
use crate::book::contact::{Contact, Source};
use crate::book::numbers::{AccountIndex, GroupNames};
use crate::book::patch::Change as IndexChange;
use crate::core::{source_problem, unix_now, Core};
use crate::google::oauth;
use crate::google::people::{self, Change};
use crate::store::{Landing, StoredSyncToken};

/// The most pages one sync follows (the contract's 1,000: a million contacts at Google's
/// page size). A reply that keeps sending page tokens past it is not Google's.
pub const MAX_PAGES: usize = 1000;

pub(super) fn run_sync(shared: &Shared, account: &str) -> SyncEnd {
    let core = &shared.core;
    let Some(connection_id) = core.connection_id(account) else {
        return SyncEnd::Done;
    };
    core.update_state(account, connection_id, |s| s.syncing = true);
    let sources = &core.config.settings_for(account).sources;
    // The sources sync side by side, each on a thread of its own (the first on this one):
    // they share nothing but the store's lock, so the directory's pages come in while the
    // contacts are written, and an account of every source takes about as long as its
    // biggest source rather than the sum.
    let results: Vec<(Source, Result<Synced, SyncFailure>)> = std::thread::scope(|scope| {
        let others: Vec<_> = sources[1..]
            .iter()
            .map(|&source| {
                let spawned = std::thread::Builder::new()
                    .name("gi-sync-source".into())
                    .spawn_scoped(scope, move || {
                        (source, sync_source(shared, account, connection_id, source))
                    });
                (source, spawned)
            })
            .collect();
        let first = (
            sources[0],
            sync_source(shared, account, connection_id, sources[0]),
        );
        let mut results = vec![first];
        for (source, spawned) in others {
            results.push(match spawned {
                // A panic in a source's sync is the sync's: the worker reports it.
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // No thread to be had: this one syncs it after the first.
                Err(e) => {
                    log::warn!("account {account}: no thread for syncing {} beside the others ({e}); syncing them in turn", source.noun());
                    (source, sync_source(shared, account, connection_id, source))
                }
            });
        }
        results
    });
    // Done only once its outcome is recorded: whoever sees `syncing` false sees the result.
    let end = record_outcome(core, account, connection_id, results);
    core.update_state(account, connection_id, |s| s.syncing = false);
    end
}

/// Records how each source's sync ended, and the account's status from them all.
fn record_outcome(
    core: &Core,
    account: &str,
    connection_id: i64,
    results: Vec<(Source, Result<Synced, SyncFailure>)>,
) -> SyncEnd {
    let mut problems: Vec<String> = Vec::new();
    let mut latest_landing: Option<i64> = None;
    let mut deferred: Option<SyncEnd> = None;
    for (source, result) in results {
        // Whether the failure says this connection cannot read the source at all.
        let (problem, unreadable) = match result {
            Ok(synced) => {
                latest_landing = latest_landing.max(Some(synced.at));
                core.source_synced(account, connection_id, source, synced.at);
                continue;
            }
            Err(SyncFailure::Issue(reason)) => (reason, false),
            Err(SyncFailure::NotGranted(reason) | SyncFailure::Denied(reason)) => (reason, true),
            Err(SyncFailure::ExpiredSyncToken) => (
                "Google expired the sync token again during a full sync; press Sync now to retry"
                    .into(),
                false,
            ),
            Err(SyncFailure::Abandoned) => {
                log::debug!("account {account}: sync abandoned (closing, disabled or reconnected)");
                return SyncEnd::Done;
            }
            Err(SyncFailure::Deferred { wait, reason }) => {
                // The sources that landed stay landed; the rerun's syncs of them are
                // incremental, and cost a request each when nothing changed.
                let longer = match &deferred {
                    Some(SyncEnd::Deferred { wait: other, .. }) => wait > *other,
                    _ => true,
                };
                if longer {
                    deferred = Some(SyncEnd::Deferred { wait, reason });
                }
                continue;
            }
        };
        // One source failing leaves the others current: its own last error, and the account
        // yellow with the reason (the source named when it is not the contacts). A source
        // the connection cannot read (its scope not granted, the directory of an account
        // outside Workspace) no longer shows what an older connection, perhaps another
        // Google user, fetched of it; one failing for now (5xx, a broken reply) keeps its
        // contacts, as any failed sync does: a reconnect, the way out of `invalid_grant`,
        // is no reason to erase a grant's colleagues while Google has a bad hour.
        if unreadable && source != Source::Contacts {
            core.forget_older_source(account, connection_id, source);
        }
        core.source_failed(account, connection_id, source, &problem);
        let problem = source_problem(source, &problem);
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    // The times the store wrote, not the time of this summing up: a reload of the account
    // from a shared store (its follower hears this node's own notices) must read the same
    // last sync, or the status would step back a second after showing it.
    if let Some(at) = latest_landing {
        core.update_state(account, connection_id, |s| {
            s.last_sync = s.last_sync.max(Some(at))
        });
    }
    if !problems.is_empty() {
        core.record_issue(account, connection_id, &problems.join("; "));
    } else if deferred.is_none() {
        core.clear_issue(account, connection_id);
    }
    // A source Google asked to wait for runs again when it allows, whatever the others did.
    deferred.unwrap_or(SyncEnd::Done)
}

/// A source's sync that landed.
struct Synced {
    /// When it landed: the last sync the store wrote for the source (Unix seconds).
    at: i64,
}

/// One source's sync, start to end, with a session of its own with Google.
fn sync_source(
    shared: &Shared,
    account: &str,
    connection_id: i64,
    source: Source,
) -> Result<Synced, SyncFailure> {
    let core = &shared.core;
    // A grant without the source's scope (unticked on Google's consent screen) cannot read
    // it: say so without asking Google. (An older store kept no scopes: then Google is asked,
    // and its 403 says the same.)
    let scope = oauth::scope_of(source);
    let granted = core
        .accounts
        .read()
        .get(account)
        .is_none_or(|s| s.scopes.is_empty() || s.scopes.iter().any(|s| s == scope));
    if !granted {
        return Err(SyncFailure::NotGranted(
            people::api_of(source).scope_fix().to_owned(),
        ));
    }
    let started = Instant::now();
    let mut session = Session::new(shared, account, connection_id, Job::Contacts);
    SourceSync {
        session: &mut session,
        source,
    }
    .run()
    .map(|(summary, at)| {
        log::info!(
            "account {account}: {}: {summary} in {} ms",
            source.name(),
            started.elapsed().as_millis()
        );
        Synced { at }
    })
}

/// One sync of one source of an account.
struct SourceSync<'s, 'a> {
    session: &'s mut Session<'a>,
    source: Source,
}

impl SourceSync<'_, '_> {
    /// What the sync did, for the log, and when it landed.
    fn run(&mut self) -> Result<(String, i64), SyncFailure> {
        // Debug builds only: lets a test make a sync panic, to show that a bug in a sync
        // leaves the account yellow and not "syncing" forever. Release builds have no hook.
        #[cfg(debug_assertions)]
        if std::env::var("GI_DEBUG_PANIC_IN_SYNC")
            .is_ok_and(|account| account == self.session.account)
        {
            panic!("a panic injected by GI_DEBUG_PANIC_IN_SYNC");
        }
        let core = &self.session.shared.core;
        let stored_token = core.store.sync_token(
            self.session.account,
            self.session.connection_id,
            self.source,
        )?;
        let region = &self.session.settings.region;
        let asked = people::asked_of(self.source, region);
        let stored_token = stored_token.filter(|stored| {
            let Some(stored_asked) = stored.asked.as_deref().filter(|&a| a != asked) else {
                return stored.asked.is_some();
            };
            match people::region_of_asked(stored_asked).filter(|&r| r != region.region()) {
                Some(before) => log::info!(
                    "account {}: the numbers of {} were read in region {before}, and the configuration now says {}; running one full sync of them, so that every number is read in {}",
                    self.session.account,
                    self.source.noun(),
                    region.region(),
                    region.region()
                ),
                None => log::info!(
                    "account {}: the last sync of {} asked Google for other fields than this release does; running one full sync of them, so that every contact has all it needs",
                    self.session.account,
                    self.source.noun()
                ),
            }
            false
        });
        if let Some(StoredSyncToken { token, .. }) = stored_token {
            match self.fetch_all(Some(&token)) {
                Ok((changes, next)) => {
                    let groups = self.fetch_group_names()?;
                    return self.commit(false, changes, next, groups);
                }
                Err(SyncFailure::ExpiredSyncToken) => log::info!(
                    "account {}: Google expired the sync token of {}; running one full sync of them",
                    self.session.account,
                    self.source.noun()
                ),
                Err(other) => return Err(other),
            }
        }
        let (changes, next) = self.fetch_all(None)?;
        let groups = self.fetch_group_names()?;
        self.commit(true, changes, next, groups)
    }

    /// Every page of the source (all of its people, or the changes since `sync_token`), in
    /// page order. Stops at `MAX_PAGES` pages or at a page token seen before: a reply that
    /// leads in circles or never ends is not Google's, and the account turns yellow.
    fn fetch_all(
        &mut self,
        sync_token: Option<&str>,
    ) -> Result<(Vec<Change>, Option<String>), SyncFailure> {
        let mut changes = Vec::new();
        let mut page_token: Option<String> = None;
        let mut seen_tokens: HashSet<String> = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = self.fetch_page(sync_token, page_token.as_deref())?;
            for person in page.people {
                // A person's former names go before it, as deletions: a later listing of one
                // of them (as a person of its own) still wins, in page order.
                changes.extend(
                    person
                        .previous_resource_names()
                        .iter()
                        .filter(|previous| **previous != person.resource_name())
                        .map(|previous| Change::Delete(previous.clone())),
                );
                changes.push(person.into_change(&self.session.settings.region));
            }
            match page.next_page_token {
                Some(next) => {
                    if !seen_tokens.insert(next.clone()) {
                        return Err(SyncFailure::Issue(format!(
                            "the People API sent a page token it had sent before, so its pages never end; the sync stopped after {} pages and nothing was changed. Press Sync now to retry; if it persists, something between the PBX and Google alters the replies",
                            seen_tokens.len() + 1
                        )));
                    }
                    page_token = Some(next);
                }
                None => return Ok((changes, page.next_sync_token)),
            }
        }
        Err(SyncFailure::Issue(format!(
            "the People API sent more than {MAX_PAGES} pages (over a million contacts), more than Google's contact limit allows; the sync stopped and nothing was changed. Press Sync now to retry; if it persists, something between the PBX and Google alters the replies"
        )))
    }

    /// One page of the source (see `call` for the retries).
    fn fetch_page(
        &mut self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<people::Page, SyncFailure> {
        let core = &self.session.shared.core;
        let source = self.source;
        self.session.call(|token| {
            people::fetch_page(
                &core.http,
                &core.config.google.people_url,
                source,
                token,
                sync_token,
                page_token,
            )
        })
    }

    /// The names of the account's contact groups, asked at every sync of its contacts so
    /// that a renamed group shows its new name. The other sources have no groups.
    fn fetch_group_names(&mut self) -> Result<GroupNames, SyncFailure> {
        if self.source != Source::Contacts {
            return Ok(GroupNames::new());
        }
        let core = &self.session.shared.core;
        self.session.call(|token| {
            people::fetch_group_names(&core.http, &core.config.google.people_url, token)
        })
    }

    /// Lands the fetched changes in one transaction and swaps the account's index in the
    /// same step. Returns what it did, for the log, and the time it wrote as the last sync.
    fn commit(
        &self,
        full: bool,
        changes: Vec<Change>,
        next_sync_token: Option<String>,
        group_names: GroupNames,
    ) -> Result<(String, i64), SyncFailure> {
        if self.session.shared.stopping.load(Ordering::SeqCst) {
            return Err(SyncFailure::Abandoned);
        }
        let (upserts, mut deletions) = last_change_of_each(changes);
        if full {
            deletions.clear(); // a full sync replaces everything: nothing to delete
        }
        let core = &self.session.shared.core;
        let account = self.session.account;
        let source = self.source;
        let asked = people::asked_of(source, &self.session.settings.region);
        let landing = Landing {
            source,
            replace_all: full,
            upserts: &upserts,
            deletions: &deletions,
            sync_token: next_sync_token.as_deref(),
            sync_asked: &asked,
            group_names: &group_names,
        };
        // `contact_groups` filters the contacts source only: the others have no groups.
        let only_groups = match source {
            Source::Contacts => self.session.settings.contact_groups.as_deref(),
            _ => None,
        };
        // A full sync's index is built here from the contacts it fetched (the store will hold
        // exactly those), outside the store's lock, where another source's sync may be
        // writing; it gets the store's ids once they are assigned. (Positions stand in for
        // them meanwhile: see `AccountIndex::with_store_ids`.)
        let building = Instant::now();
        let mut prebuilt = full.then(|| {
            let positions: Vec<u64> = (0..upserts.len() as u64).collect();
            AccountIndex::build_stored(&upserts, &positions, &group_names, only_groups)
        });
        let built_in = building.elapsed();
        let started = Instant::now();
        let mut landed = None;
        let now = unix_now();
        let committed = core.store.commit_sync(
            account,
            self.session.connection_id,
            &landing,
            now,
            &mut |stored, committed| {
                let written = started.elapsed();
                // A book a failed build left behind the store is rebuilt even when nothing
                // changed this time.
                let behind = core
                    .index
                    .book(account, source)
                    .is_some_and(|b| b.rebuild_due());
                if !committed.contacts_changed && !committed.groups_changed && !behind {
                    // Nothing to patch or rebuild: the index in memory is this state.
                    let counts = core.index.source_counts(account, source);
                    landed = Some((counts, Landed::Kept, [written; 2]));
                    return Ok(());
                }
                // An incremental sync patches the index in proportion to what changed; a full
                // sync, new group names (every member's text changes) or a patch grown too
                // big rebuild it from the store.
                let current = core.index.book(account, source);
                if let Some(current) = current.filter(|_| !full && !committed.groups_changed && !behind) {
                    let change = IndexChange {
                        replaced: &committed.replaced,
                        upserts: &upserts,
                        deletions: &deletions,
                    };
                    let patched = current.patched(&change, &group_names, only_groups, |e, n| {
                        stored.holders(account, source, e, n)
                    });
                    match patched {
                        Ok(Some(book)) => {
                            let counts = book.counts();
                            let size = book.patch_size();
                            core.index.replace_book(account, source, book);
                            let took = [written, started.elapsed()];
                            landed = Some((counts, Landed::Patched(size), took));
                            return Ok(());
                        }
                        Ok(None) => {}
                        // The changes are committed: the index must follow them, so a failed
                        // patch rebuilds (and a failed rebuild fails the sync; the next one
                        // rebuilds again).
                        Err(error) => log::warn!(
                            "{account}: patching the index failed ({error}); rebuilding it from the store"
                        ),
                    }
                }
                // Nothing may patch the book in memory from now on: should this build fail, it
                // stays behind the store until a build succeeds.
                if let Some(book) = core.index.book(account, source) {
                    book.mark_rebuild_due();
                }
                let (index, how) = match prebuilt.take() {
                    Some(index) => (index.with_store_ids(&committed.upsert_ids), Landed::Built),
                    None => {
                        let loaded = stored.contacts_of(account, source)?;
                        let index = AccountIndex::build_stored(
                            &loaded.contacts,
                            &loaded.ids,
                            &group_names,
                            only_groups,
                        );
                        (index, Landed::Rebuilt)
                    }
                };
                let counts = (index.contact_count(), index.number_count());
                core.index.replace(account, source, index);
                landed = Some((counts, how, [written, started.elapsed()]));
                Ok(())
            },
        );
        if committed.is_err() && landed.is_none() {
            // The store may have committed all the same (PostgreSQL: the reply to COMMIT lost
            // with the connection), with the next sync token, while the book in memory did
            // not follow: the next sync, incremental from that token, must rebuild it from the
            // store, not patch it. (A node hears no notice of its own syncs.)
            // With no book yet (the source's first landing, or none at the open), an empty
            // one stands in, marked: the next sync would otherwise find nothing changed and
            // keep "the index in memory", which is none, for good.
            if core.index.book(account, source).is_none() {
                core.index.replace(
                    account,
                    source,
                    AccountIndex::build_with(&[], &group_names, None),
                );
            }
            if let Some(book) = core.index.book(account, source) {
                book.mark_rebuild_due();
            }
        }
        committed?;
        let Some(((contacts, numbers), landed, [written, indexed])) = landed else {
            return Err(SyncFailure::Abandoned);
        };
        // Where the time went, for whoever tunes a slow sync: write, then index.
        let index_ms = (indexed - written).as_secs_f64() * 1000.0;
        let phases = match landed {
            Landed::Kept => format!(
                "nothing changed: only the sync token was written, in {} µs; the index is kept",
                written.as_micros()
            ),
            Landed::Patched(size) => format!(
                "written in {} ms, index patched in {index_ms:.2} ms ({size} contacts in the patch)",
                written.as_millis()
            ),
            Landed::Rebuilt => format!(
                "written in {} ms, index rebuilt from the store in {index_ms:.1} ms",
                written.as_millis()
            ),
            Landed::Built => format!(
                "index built in {:.1} ms, written in {} ms, swapped in {index_ms:.1} ms",
                built_in.as_secs_f64() * 1000.0,
                written.as_millis()
            ),
        };
        let summary = if full {
            format!("full sync: {contacts} contacts, {numbers} numbers ({phases})")
        } else {
            format!(
                "incremental sync: {} changed, {} deleted; {contacts} contacts, {numbers} numbers ({phases})",
                upserts.len(),
                deletions.len()
            )
        };
        Ok((summary, now))
    }
}

/// What became of the index when a sync landed.
enum Landed {
    /// Nothing changed: the index in memory stays.
    Kept,
    /// Patched; the patch now holds this many contacts.
    Patched(usize),
    /// Rebuilt from the store.
    Rebuilt,
    /// Built from a full sync's contacts before they were written.
    Built,
}

/// What a sync's changes come to, person by person: a person listed more than once counts
/// once, as its last listing in page order says (an upsert then a delete is a delete; a delete
/// then an upsert is an upsert). Each resource name is then in at most one of the two lists,
/// so the store may apply them in any order.
fn last_change_of_each(changes: Vec<Change>) -> (Vec<Contact>, Vec<String>) {
    let mut seen: HashSet<String> = HashSet::with_capacity(changes.len());
    let mut upserts = Vec::new();
    let mut deletions = Vec::new();
    for change in changes.into_iter().rev() {
        let resource_name = match &change {
            Change::Upsert(contact) => &contact.resource_name,
            Change::Delete(resource_name) => resource_name,
        };
        if !seen.insert(resource_name.clone()) {
            continue; // an earlier listing of someone listed again later
        }
        match change {
            Change::Upsert(contact) => upserts.push(contact),
            Change::Delete(resource_name) => deletions.push(resource_name),
        }
    }
    upserts.reverse();
    deletions.reverse();
    (upserts, deletions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(resource_name: &str, name: &str) -> Change {
        Change::Upsert(Contact {
            resource_name: resource_name.into(),
            name: name.into(),
            company: String::new(),
            numbers: vec![],
            groups: vec![],
        })
    }

    #[test]
    fn the_last_listing_of_a_person_wins() {
        let (upserts, deletions) = last_change_of_each(vec![
            upsert("people/a", "first"),
            upsert("people/b", "b"),
            upsert("people/a", "second"),
            upsert("people/c", "c"),
            Change::Delete("people/c".into()),
            Change::Delete("people/d".into()),
            upsert("people/d", "back"),
        ]);
        let names: Vec<(&str, &str)> = upserts
            .iter()
            .map(|c| (c.resource_name.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("people/b", "b"),
                ("people/a", "second"),
                ("people/d", "back")
            ]
        );
        assert_eq!(deletions, ["people/c"]);
    }
}
