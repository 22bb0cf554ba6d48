//! `host-sim`: the Vodia PBX's side of the Google Integration plugin. It loads the plugin's
//! cdylib the way the PBX does (every call through the C ABI), serves the PBX's Google
//! Integration page, and brings a fake Google on 127.0.0.1 so the whole flow runs offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench;
mod cluster;
mod demo;
mod fault;
mod progress;
mod seed;
mod serve;
mod signal;
mod sim;
mod web;

#[derive(Parser)]
#[command(
    name = "host-sim",
    version,
    about = "The Vodia PBX's side of the Google Contacts caller-ID plugin, with a fake Google on 127.0.0.1",
    long_about = "Loads the Google Integration plugin (libgoogle_integration.so) the way the Vodia PBX \
does, through its C ABI, and shows it working: connecting an account through Google's consent \
page, syncing contacts, and naming incoming callers.\n\n\
Start with `host-sim demo`. Nothing leaves this machine unless `serve --google` is asked for."
)]
struct Cli {
    /// The plugin library to load [default: libgoogle_integration.so beside this executable,
    /// where `cargo build --workspace` puts it]
    #[arg(long, global = true, value_name = "PATH")]
    plugin: Option<PathBuf>,

    /// Print the plugin's log lines up to this level (1 error, 2 warn, 3 info, 4 debug, 5 trace)
    #[arg(long, global = true, value_name = "LEVEL", default_value_t = 2,
          value_parser = clap::value_parser!(i32).range(0..=5))]
    log_level: i32,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect accounts through the fake Google, sync a seeded address book, simulate incoming
    /// calls, then serve the Google Integration page
    Demo(demo::DemoArgs),
    /// Serve the Google Integration page with the fake Google (or the real one with --google)
    Serve(serve::ServeArgs),
    /// Simulate one incoming call against a data_dir, offline, and print what the phone shows
    Call(CallArgs),
    /// Search an account's address book in a data_dir, offline, as the phone's directory does:
    /// words of names, companies and groups, digits of numbers, or --keypad digits (dial by name)
    Search(SearchArgs),
    /// Inject a fault into the fake Google of a running `host-sim serve` or `demo`
    Fault(fault::FaultArgs),
    /// Measure lookups, syncs, open time and memory through the C ABI, each against its baseline
    Bench(bench::BenchArgs),
    /// (used by bench) open a data_dir in a fresh process and report time and memory
    #[command(hide = true)]
    OpenProbe(bench::OpenProbeArgs),
    /// Two plugin nodes on one PostgreSQL store: a connect and a sync on one show on the other,
    /// and when one is killed mid-sync the other takes its accounts over
    Cluster(cluster::ClusterArgs),
    /// (used by cluster) node A: open the plugin and answer one-line commands on stdin
    #[command(hide = true)]
    ClusterNode(cluster::NodeArgs),
}

#[derive(Args)]
struct CallArgs {
    /// The PBX account that receives the call: a domain (example.com) or a user (example.com/40)
    account: String,
    /// The caller's number as the SIP From header or a person gives it, e.g. "+44 20 7946 0958"
    number: String,
    /// The plugin's data_dir, as kept by `host-sim serve --data-dir DIR` or `demo --data-dir DIR`
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// ISO 3166 region used to read numbers written without a country code
    #[arg(long, default_value = "US")]
    region: String,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
host-sim search example.com mül --data-dir DIR              Müller, by name, company or group\n  \
host-sim search example.com customers --data-dir DIR        the contact group Customers\n  \
host-sim search example.com 6855 --keypad --data-dir DIR    M-U-L-L on a phone keypad\n  \
host-sim search example.com/40 --offset 20 --data-dir DIR   everything, the second page")]
struct SearchArgs {
    /// The PBX account whose address book is searched (its own contacts, then its domain's)
    account: String,
    /// Words that must each start a word of the name, company or groups (accents and case
    /// ignored), or 3+ digits of a number; with --keypad, digits 2-9. None: everything
    #[arg(default_value = "")]
    query: String,
    /// Read QUERY as phone keypad digits 2-9 (abc 2, def 3, ... wxyz 9) spelling the start of a
    /// name or company
    #[arg(long)]
    keypad: bool,
    /// Skip this many rows (paging)
    #[arg(long, value_name = "N", default_value_t = 0)]
    offset: usize,
    /// Print at most this many rows
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    limit: u16,
    /// The plugin's data_dir, as kept by `host-sim serve --data-dir DIR` or `demo --data-dir DIR`
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// ISO 3166 region used to read numbers written without a country code
    #[arg(long, default_value = "US")]
    region: String,
}

/// The address the web page listens on by default.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Parses `--bind`: `HOST:PORT`, or a bare port for 127.0.0.1.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let s = s.replace("localhost:", "127.0.0.1:");
    s.parse().map_err(|_| {
        format!("`{s}` is not an address to listen on: give IP:PORT like 127.0.0.1:8080, or a port")
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    signal::install();
    sim::set_log_level(cli.log_level);
    let plugin_path = cli
        .plugin
        .clone()
        .unwrap_or_else(host_sim::plugin::default_library_path);
    let log_level = cli.log_level;
    let result = match cli.command {
        Command::Demo(args) => demo::run(&plugin_path, args),
        Command::Serve(args) => serve::run(&plugin_path, args),
        Command::Call(args) => call(&plugin_path, &args),
        Command::Search(args) => search(&plugin_path, &args),
        Command::Fault(args) => fault::run(&args),
        Command::Bench(args) => sim::load(&plugin_path).and_then(|api| bench::run(api, &args)),
        Command::OpenProbe(args) => {
            host_sim::plugin::Api::load(&plugin_path).and_then(|api| bench::open_probe(&api, &args))
        }
        Command::Cluster(args) => cluster::run(&plugin_path, log_level, args),
        Command::ClusterNode(args) => cluster::node(&plugin_path, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("host-sim: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `host-sim call`: opens the data_dir with Google's endpoints on a dead loopback port, so the
/// lookup is answered from the stored contacts and nothing leaves the machine.
fn call(plugin_path: &std::path::Path, args: &CallArgs) -> Result<(), String> {
    let plugin = open_offline(plugin_path, &args.data_dir, &args.region, &args.account)?;
    println!("Incoming call for {} from {}", args.account, args.number);
    let (caller, took) = sim::ring(&plugin, &args.account, &args.number)?;
    println!(
        "{}",
        sim::phone_display(caller.as_ref(), &args.number, took)
    );
    Ok(())
}

/// `host-sim search`: `gi_search_contacts` on the stored contacts, offline like `call`.
fn search(plugin_path: &std::path::Path, args: &SearchArgs) -> Result<(), String> {
    let plugin = open_offline(plugin_path, &args.data_dir, &args.region, &args.account)?;
    let mode = if args.keypad { "keypad" } else { "text" };
    println!(
        "Address book of {}, {mode} search {:?}",
        args.account, args.query
    );
    let page = sim::search(
        &plugin,
        &args.account,
        &args.query,
        args.keypad,
        args.offset,
        usize::from(args.limit),
    )
    .map_err(|e| format!("the search failed ({:?}): {}", e.code, e.message))?;
    for line in sim::search_lines(&page.rows, "  ") {
        println!("{line}");
    }
    if page.total == 0 {
        println!("  no contact matches");
    } else if page.rows.is_empty() && args.offset >= page.total {
        println!(
            "  (--offset {} is past the last row: {} match)",
            args.offset, page.total
        );
    }
    println!(
        "{}",
        sim::search_summary(page.rows.len(), page.total, args.offset)
    );
    Ok(())
}

/// Opens the plugin on a data_dir with Google's endpoints on a dead loopback port, so it
/// answers from the stored contacts and nothing leaves the machine; notes when `account` is
/// not connected there.
fn open_offline(
    plugin_path: &std::path::Path,
    data_dir: &std::path::Path,
    region: &str,
    account: &str,
) -> Result<host_sim::plugin::Plugin<'static>, String> {
    // gi_open would create a missing data_dir: check first, so a typo is not an empty store.
    match std::fs::metadata(data_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "--data-dir {} is a file, not a directory: give the data_dir of a \
                 `host-sim serve --data-dir DIR` or `host-sim demo --data-dir DIR` run",
                data_dir.display()
            ))
        }
        Err(e) => {
            return Err(format!(
                "the data_dir {} does not exist ({e}): give the data_dir of a \
                 `host-sim serve --data-dir DIR` or `host-sim demo --once --data-dir DIR` run, \
                 where an account was connected",
                data_dir.display()
            ))
        }
    }
    let api = sim::load(plugin_path)?;
    let config = sim::offline_config(data_dir, region)?;
    let plugin = sim::open(api, &config)?;
    let status = sim::status(&plugin, account)?;
    if status["status"] == "disconnected" {
        eprintln!(
            "note: {account} is not connected in {}; only its domain's contacts can match",
            data_dir.display()
        );
    }
    Ok(plugin)
}
