//! One calendar fetch of one account: its primary calendar's busy times over the next day,
//! kept in the store and then in memory. A failure never blanks a presence still fresh:
//! what was known stays until it is three intervals old.

use std::time::Instant;

use super::session::{Session, SyncEnd, SyncFailure};
use super::{Job, Shared};
use crate::core::unix_now;
use crate::google::calendar;
use crate::presence::BusyTimes;
use crate::store::CalendarOutcome;

pub(super) fn run_presence(shared: &Shared, account: &str) -> SyncEnd {
    let core = &shared.core;
    let Some(connection_id) = core.connection_id(account) else {
        return SyncEnd::Done;
    };
    let started = Instant::now();
    let mut session = Session::new(shared, account, connection_id, Job::Presence);
    let from = unix_now();
    let calendar_url = &core.config.google.calendar_url;
    let fetched = session.call(|token| calendar::fetch_busy(&core.http, calendar_url, token, from));
    let result = fetched.and_then(|periods| {
        let busy = BusyTimes::new(periods, unix_now(), from + calendar::WINDOW_SECS);
        let count = busy.periods().len();
        let landed = core.store.save_presence(
            account,
            connection_id,
            CalendarOutcome::Answer(&busy),
            &mut || core.presence.set(account, busy.clone()),
        )?;
        if landed {
            Ok(count)
        } else {
            Err(SyncFailure::Abandoned)
        }
    });
    match result {
        Ok(count) => {
            core.update_state(account, connection_id, |s| s.presence_issue = None);
            log::debug!(
                "account {account}: calendar fetched, {count} busy period(s) in the next 24 h, in {} ms",
                started.elapsed().as_millis()
            );
        }
        Err(SyncFailure::Issue(reason) | SyncFailure::Denied(reason)) => {
            core.record_presence_issue(account, connection_id, &reason)
        }
        // A grant cut down at Google after a good answer: presence is unknown at once, as
        // for a scope unticked at consent, not told from busy times the grant no longer
        // covers until they are stale.
        Err(SyncFailure::NotGranted(reason)) => {
            core.forget_presence(account, connection_id, &reason)
        }
        Err(SyncFailure::ExpiredSyncToken) | Err(SyncFailure::Abandoned) => {
            log::debug!(
                "account {account}: calendar fetch abandoned (closing, disabled or reconnected)"
            )
        }
        Err(SyncFailure::Deferred { wait, reason }) => return SyncEnd::Deferred { wait, reason },
    }
    SyncEnd::Done
}
