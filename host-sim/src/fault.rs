//! `host-sim fault`: tells the fake Google of a running `host-sim serve` or `demo` to misbehave,
//! through the same JSON endpoint as the page's developer panel.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args)]
pub struct FaultArgs {
    /// The page of the running host-sim (on this machine)
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    server: String,
    #[command(subcommand)]
    what: FaultKind,
}

#[derive(Subcommand)]
enum FaultKind {
    /// The Google user removes the app's access: every token dies, and the account shows the
    /// yellow ! at its next sync ("Sync now")
    Revoke {
        /// The Google user, e.g. alice@example.com
        email: String,
    },
    /// The next COUNT People API calls answer STATUS; the plugin retries with backoff and
    /// turns yellow only after three retries
    People {
        /// 429, 500, 502, 503 or 504
        status: u16,
        /// Which list fails: contacts (people.connections), directory
        /// (people.listDirectoryPeople) or other_contacts (otherContacts.list); the other
        /// sources keep syncing
        #[arg(long, default_value = "contacts")]
        source: String,
        /// How many calls fail
        #[arg(long, default_value_t = 3)]
        count: u64,
        /// Every call fails until `host-sim fault clear`
        #[arg(long)]
        sticky: bool,
    },
    /// The People API answers 403 SERVICE_DISABLED (not enabled for the project) until cleared
    PeopleDisabled,
    /// The user's sync tokens expire: the next sync starts over with a full one
    ExpireSyncTokens {
        /// The Google user, e.g. alice@example.com
        email: String,
    },
    /// Every access token expires: the plugin refreshes at its next call
    ExpireAccessTokens,
    /// Book a meeting in the user's Google Calendar: busy from START to END, each an RFC 3339
    /// time (2026-11-29T20:00:00Z, 2026-11-29T21:00:00+01:00) or minutes from now (+1 +31: from
    /// one minute to 31 minutes from now; -5 is five minutes ago)
    #[command(after_help = "Examples:\n  \
host-sim fault busy alice@example.com +1 +31    a meeting from 1 to 31 minutes from now\n  \
host-sim fault busy alice@example.com -5 +25    one under way: busy now, for 25 more minutes\n  \
host-sim fault busy alice@example.com 2026-11-29T20:00:00Z 2026-11-29T21:00:00Z")]
    Busy {
        /// The Google user, e.g. alice@example.com
        email: String,
        /// When the meeting starts: RFC 3339, or +MINUTES / -MINUTES from now
        #[arg(allow_hyphen_values = true)]
        start: String,
        /// When it ends (after START): RFC 3339, or +MINUTES / -MINUTES from now
        #[arg(allow_hyphen_values = true)]
        end: String,
    },
    /// Cancel every meeting of the user: their calendar is free
    Free {
        /// The Google user, e.g. alice@example.com
        email: String,
    },
    /// The Calendar API answers 403 SERVICE_DISABLED (not enabled for the project) until cleared
    CalendarDisabled,
    /// Drop every queued and sticky fault
    Clear,
}

pub fn run(args: &FaultArgs) -> Result<(), String> {
    let body = match &args.what {
        FaultKind::Revoke { email } => json!({"action": "revoke", "email": email}),
        FaultKind::People {
            status,
            source,
            count,
            sticky,
        } => json!({
            "action": if *sticky { "people-sticky" } else { "people-status" },
            "status": status, "count": count, "source": source,
        }),
        FaultKind::PeopleDisabled => json!({"action": "people-disabled"}),
        FaultKind::ExpireSyncTokens { email } => {
            json!({"action": "expire-sync-tokens", "email": email})
        }
        FaultKind::ExpireAccessTokens => json!({"action": "expire-access-tokens"}),
        // The times go as typed: the server reads them, so that the CLI and the page agree.
        FaultKind::Busy { email, start, end } => {
            json!({"action": "busy", "email": email, "start": start, "end": end})
        }
        FaultKind::Free { email } => json!({"action": "free", "email": email}),
        FaultKind::CalendarDisabled => json!({"action": "calendar-disabled"}),
        FaultKind::Clear => json!({"action": "clear"}),
    };
    let reply = post_json(&args.server, "/api/fault", &body)?;
    match reply["done"].as_str() {
        Some(done) => {
            println!("{done}");
            Ok(())
        }
        None => Err(reply["error"]
            .as_str()
            .unwrap_or("the server gave no answer")
            .to_string()),
    }
}

/// A POST to a host-sim on this machine; refuses any other host.
fn post_json(server: &str, path: &str, body: &Value) -> Result<Value, String> {
    let url = url::Url::parse(server).map_err(|e| {
        format!("--server {server} is not a URL ({e}): give e.g. http://127.0.0.1:8080")
    })?;
    let host = url.host_str().unwrap_or_default().to_string();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() != "http" || !loopback {
        return Err(format!(
            "--server {server}: host-sim fault talks to a host-sim on this machine only (http://127.0.0.1:PORT)"
        ));
    }
    let port = url.port().unwrap_or(80);
    let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| format!("{host} does not resolve to a loopback address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
        format!("cannot reach host-sim at {server} ({e}): is `host-sim serve` or `host-sim demo` running there?")
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("no answer from {server}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.") {
        return Err(format!("{server} is not a host-sim page"));
    }
    serde_json::from_str(payload).map_err(|_| {
        format!("{server} answered something other than host-sim's JSON: is it host-sim?")
    })
}
