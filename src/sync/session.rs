//! What a sync and a calendar fetch share: one account's access to Google for one run. A
//! request goes out with the account's access token (refreshed when it is near its end or
//! Google rejects it), and transient failures are retried with exponential backoff and
//! jitter, honouring `Retry-After`, before anything is reported.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Job, Shared, MAX_RETRIES};
use crate::config::DomainSettings;
use crate::core::unix_now;
use crate::google::api::ApiError;
use crate::google::oauth::{self, RefreshFailure};

/// The longest pause honoured from `Retry-After` within one run; a longer one ends the run
/// and the next attempt is scheduled when Google asked (it still counts as a retry).
pub(super) const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Refresh an access token this long before Google says it expires.
const EXPIRY_MARGIN_SECS: i64 = 60;

/// How a run ended, for the schedule.
pub enum SyncEnd {
    /// Landed, failed (the status says why) or abandoned: next one at the interval.
    Done,
    /// Google asked to wait longer than a run waits: try again after `wait`.
    Deferred { wait: Duration, reason: String },
    /// A run asked for (a connect, Sync now) could not start now (another node of a cluster
    /// runs it, or the store is out of reach): ask again after `wait`, as asked still, without
    /// counting a retry.
    AskAgain { wait: Duration },
}

/// Why a run ended without landing.
pub(super) enum SyncFailure {
    /// An administrator must act (yellow !): the reason says what to do.
    Issue(String),
    /// Google says the grant does not cover the API (yellow !, the reason says to grant
    /// it): what was fetched under it is no longer the account's to tell.
    NotGranted(String),
    /// Google refuses this connection the API for good (403: the API disabled, the user
    /// denied; the directory asked by an account outside Workspace): an administrator must
    /// act (yellow !), and what an older connection fetched is not this one's to show.
    Denied(String),
    /// The sync token expired: the caller runs one full sync instead.
    ExpiredSyncToken,
    /// The plugin is closing, or the account was disabled or reconnected meanwhile.
    Abandoned,
    /// Google asked (`Retry-After`) to wait longer than a run waits.
    Deferred { wait: Duration, reason: String },
}

impl From<crate::error::Error> for SyncFailure {
    fn from(e: crate::error::Error) -> SyncFailure {
        SyncFailure::Issue(e.message().to_owned())
    }
}

/// One account's access to Google for one run of a job.
pub(super) struct Session<'a> {
    pub shared: &'a Shared,
    pub account: &'a str,
    pub connection_id: i64,
    pub settings: &'a DomainSettings,
    pub job: Job,
    access_token: Option<String>,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        shared: &'a Shared,
        account: &'a str,
        connection_id: i64,
        job: Job,
    ) -> Session<'a> {
        Session {
            shared,
            account,
            connection_id,
            settings: shared.core.config.settings_for(account),
            job,
            access_token: None,
        }
    }

    /// One request to a Google API with the account's access token, refreshing the token
    /// once on a 401 and retrying transient failures with exponential backoff and jitter,
    /// honouring `Retry-After`.
    pub(super) fn call<T>(
        &mut self,
        request: impl Fn(&str) -> Result<T, ApiError>,
    ) -> Result<T, SyncFailure> {
        let core = &self.shared.core;
        let mut retries = 0;
        let mut refreshed_after_401 = false;
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Err(SyncFailure::Abandoned);
            }
            // After a 429 for this OAuth client (met by any of its accounts), wait it out; a
            // pause longer than a run waits defers the run instead, without a request (a
            // worker would sit idle for it, and the request would meet the 429 again).
            let quota = self.quota();
            if let Some(left) = core
                .http
                .budget()
                .quota_pause_left(&quota)
                .filter(|left| *left > MAX_PAUSE)
            {
                return Err(SyncFailure::Deferred {
                    wait: left,
                    reason: format!(
                        "Google's {} quota for the OAuth client is spent: every account of that client waits {} s more, as Google asked",
                        self.job.api(),
                        left.as_secs()
                    ),
                });
            }
            if !core.http.wait_for_quota(&quota) {
                return Err(SyncFailure::Abandoned);
            }
            let outcome = match self.access_token(false) {
                Ok(token) => request(&token),
                Err(failure) => Err(failure),
            };
            let (message, retry_after) = match outcome {
                Ok(answer) => return Ok(answer),
                Err(ApiError::Unauthorized) if !refreshed_after_401 => {
                    log::debug!(
                        "account {}: access token rejected; refreshing it",
                        self.account
                    );
                    self.access_token = None;
                    match self.access_token(true) {
                        Ok(_) => {
                            refreshed_after_401 = true;
                            continue;
                        }
                        // Google's token endpoint failing is retried like any failure (the
                        // next try meets the 401 again and refreshes again), not an issue.
                        Err(ApiError::Transient {
                            message,
                            retry_after,
                            ..
                        }) => (message, retry_after),
                        Err(other) => return Err(self.failure(other)),
                    }
                }
                Err(ApiError::Transient {
                    message,
                    retry_after,
                    quota_exhausted,
                }) => {
                    if quota_exhausted {
                        // The quota is the OAuth client's: every account of it pauses as long
                        // as Google asked (the contract). A pause longer than a run waits
                        // defers this account's run (below), and every other account's at its
                        // next request (above), without a request: no worker sits out an
                        // hour, and no account spends a request to meet the same 429. (Only
                        // the backoff, for the others, used to be paused: each then sent its
                        // own request into the spent quota.)
                        let pause = retry_after
                            .unwrap_or_else(|| backoff(core.config.retry_base, retries, None));
                        log::warn!(
                            "account {}: Google's {} quota for the OAuth client is spent; every account of that client pauses {} ms",
                            self.account,
                            self.job.api(),
                            pause.as_millis()
                        );
                        core.http.budget().pause_quota(&self.quota(), pause);
                    }
                    (message, retry_after)
                }
                Err(ApiError::ExpiredSyncToken) => return Err(SyncFailure::ExpiredSyncToken),
                Err(other) => return Err(self.failure(other)),
            };
            if let Some(wait) = retry_after.filter(|wait| *wait > MAX_PAUSE) {
                // Not slept here (a worker would sit idle for it): the schedule runs the
                // account again when Google allows, and counts it as a retry.
                return Err(SyncFailure::Deferred {
                    wait,
                    reason: message,
                });
            }
            if retries == MAX_RETRIES {
                let message = self.job.naming_its_api(message);
                return Err(SyncFailure::Issue(format!(
                    "{message}; still failing after {MAX_RETRIES} retries. The plugin tries again at the next {} (every {} s) or on Sync now; if it persists, check the PBX's internet access and Google's status page",
                    self.job.noun(),
                    self.job.interval(&core.config).as_secs()
                )));
            }
            let pause = backoff(core.config.retry_base, retries, retry_after);
            log::warn!(
                "account {}: {message}; retry {} of {MAX_RETRIES} in {} ms",
                self.account,
                retries + 1,
                pause.as_millis()
            );
            if !self.pause(pause) {
                return Err(SyncFailure::Abandoned);
            }
            retries += 1;
        }
    }

    /// What a 429 `RESOURCE_EXHAUSTED` pauses: the OAuth client's quota of the API this job
    /// asks (a contacts sync the People API's, a calendar fetch the Calendar API's). Google
    /// keeps a project's quotas per API, so a spent People API quota pauses no calendar fetch,
    /// whose answer would go stale meanwhile.
    fn quota(&self) -> String {
        format!("{} {}", self.settings.client_id, self.job.claim_name())
    }

    pub(super) fn failure(&self, error: ApiError) -> SyncFailure {
        match error {
            ApiError::ExpiredSyncToken => SyncFailure::ExpiredSyncToken,
            ApiError::NotGranted(reason) => {
                SyncFailure::NotGranted(self.job.naming_its_api(reason))
            }
            ApiError::Forbidden(reason) => SyncFailure::Denied(self.job.naming_its_api(reason)),
            other => SyncFailure::Issue(self.job.naming_its_api(other.message())),
        }
    }

    /// A usable access token: the stored one while it is valid, else a refreshed one (which
    /// is stored; the refresh token is kept, since Google does not resend it).
    pub(super) fn access_token(&mut self, force_refresh: bool) -> Result<String, ApiError> {
        if let (Some(token), false) = (&self.access_token, force_refresh) {
            return Ok(token.clone());
        }
        let core = &self.shared.core;
        let tokens = core
            .store
            .tokens(self.account, self.connection_id)
            .map_err(|e| ApiError::Refused(e.message().to_owned()))?
            .ok_or_else(|| ApiError::Refused("the account was disconnected meanwhile".into()))?;
        let now = unix_now();
        if !force_refresh {
            if let (Some(token), Some(expires)) = (&tokens.access_token, tokens.access_expires_at) {
                if expires - EXPIRY_MARGIN_SECS > now {
                    self.access_token = Some(token.clone());
                    return Ok(token.clone());
                }
            }
        }
        let granted = oauth::refresh(
            &core.http,
            self.settings,
            &core.config.google,
            &tokens.refresh_token,
            now,
        )
        .map_err(|failure| match failure {
            RefreshFailure::GrantDead(_) => ApiError::Forbidden(
                "Google no longer accepts this account's authorization (invalid_grant): the user removed the PBX's access, the refresh token expired, or the OAuth consent screen is in \"Testing\", where tokens expire after 7 days. Click \"Get auth code\" to reconnect, and publish the consent screen to production so it does not recur".into(),
            ),
            RefreshFailure::Unreachable(e) => ApiError::Transient {
                message: e.message().to_owned(),
                retry_after: None,
                quota_exhausted: false,
            },
            RefreshFailure::Refused(e) => ApiError::Refused(e.message().to_owned()),
        })?;
        core.store
            .update_access_token(
                self.account,
                self.connection_id,
                &granted.access_token,
                granted.expires_at,
                granted.refresh_token.as_deref(),
            )
            .map_err(|e| ApiError::Refused(e.message().to_owned()))?;
        log::debug!("account {}: access token refreshed", self.account);
        self.access_token = Some(granted.access_token.clone());
        Ok(granted.access_token)
    }

    /// Sleeps for a backoff; false when the plugin is closing.
    pub(super) fn pause(&self, duration: Duration) -> bool {
        let mut guard = self.shared.pause_lock.lock();
        if self.shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        self.shared.pause_wake.wait_for(&mut guard, duration);
        !self.shared.stopping.load(Ordering::SeqCst)
    }
}

/// The pause before retry `retry` (0-based): `base · 2^retry` with up to 50% random jitter,
/// so many PBXs hit by the same outage do not retry in step, but never less than what
/// Google asked for in `Retry-After`.
fn backoff(base: Duration, retry: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = base.saturating_mul(1 << retry.min(16));
    let jitter = exponential.mul_f64(rand::random::<f64>() * 0.5);
    let pause = exponential + jitter;
    match retry_after {
        Some(asked) => pause.max(asked),
        None => pause,
    }
    .min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        for retry in 0..3 {
            let pause = backoff(base, retry, None);
            let floor = base * (1 << retry);
            assert!(pause >= floor && pause <= floor.mul_f64(1.5), "{pause:?}");
        }
        assert!(backoff(base, 0, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(backoff(base, 0, Some(Duration::from_secs(600))), MAX_PAUSE);
    }
}
