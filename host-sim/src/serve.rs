//! `host-sim serve`: the Google Integration page, long-running, with the fake Google (seeded
//! as in the demo, no account connected) or, with `--google`, Google itself.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::web::{App, Listener, Mode};
use crate::{parse_bind, seed, sim, DEFAULT_BIND};

pub const CLIENT_ID_VAR: &str = "GI_CLIENT_ID";
pub const CLIENT_SECRET_VAR: &str = "GI_CLIENT_SECRET";

#[derive(Args)]
#[command(
    after_help = "With --google, create an OAuth client of type \"Web application\" in the \
Google Cloud console (APIs & Services > Credentials), enable the People API, add the redirect URI \
(http://127.0.0.1:8080/google/callback by default) to its Authorized redirect URIs, and run:\n\n  \
GI_CLIENT_ID=….apps.googleusercontent.com GI_CLIENT_SECRET=… host-sim serve --google"
)]
pub struct ServeArgs {
    /// Where the page listens, IP:PORT or a port (0: any free port, printed at start)
    #[arg(long, default_value = DEFAULT_BIND, value_name = "IP:PORT")]
    bind: String,
    /// Keep the plugin's data in DIR across runs; default: a temporary directory removed at exit
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Use Google's real endpoints, with the OAuth client from the environment variables
    /// GI_CLIENT_ID and GI_CLIENT_SECRET, instead of the fake Google
    #[arg(long)]
    google: bool,
    /// The redirect URI registered for the client at Google [default: http://IP:PORT/google/callback
    /// of --bind]; it must lead to this server's /google/callback
    #[arg(long, value_name = "URL", requires = "google")]
    redirect_uri: Option<String>,
    /// ISO 3166 region for numbers written without a country code
    #[arg(long, default_value = "US")]
    region: String,
}

pub fn run(plugin_path: &Path, args: ServeArgs) -> Result<(), String> {
    let bind = parse_bind(&args.bind)?;
    let credentials = if args.google {
        Some(google_credentials()?)
    } else {
        None
    };
    let api = sim::load(plugin_path)?;
    let listener = Listener::bind(bind)?;
    if !bind.ip().is_loopback() {
        println!(
            "warning: listening on {bind}: the page has no login, so anyone who reaches this \
             address can connect and disable accounts. Use 127.0.0.1 unless you mean it."
        );
    }
    let temp;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("host-sim-serve-")
                .tempdir()
                .map_err(|e| format!("cannot make a temporary data_dir: {e}"))?;
            temp.path().join("data")
        }
    };
    println!(
        "host-sim serve: plugin {} version {}",
        plugin_path.display(),
        api.version()
    );
    println!(
        "  data_dir: {}{}",
        data_dir.display(),
        if args.data_dir.is_none() {
            " (temporary, removed at exit)"
        } else {
            ""
        }
    );

    let fake;
    let (plugin, app_fake, mode, redirect_uri) = match credentials {
        Some((client_id, secret)) => {
            if args.redirect_uri.is_none() && bind.port() == 0 {
                println!(
                    "warning: with port 0 the redirect URI changes every run, and Google accepts \
                     only the ones listed for the client: give --bind with a fixed port"
                );
            }
            let redirect_uri = args
                .redirect_uri
                .clone()
                .unwrap_or_else(|| listener.callback_uri());
            let config =
                sim::google_config(&client_id, &secret, &redirect_uri, &data_dir, &args.region);
            let plugin = sim::open_remembering(api, &config)?;
            println!("  Google: the real one, client {client_id}");
            println!("  redirect URI (must be listed for the client at Google): {redirect_uri}");
            (plugin, None, Mode::Google, redirect_uri)
        }
        None => {
            let redirect_uri = listener.callback_uri();
            let (started, secret) = sim::start_fake(&redirect_uri);
            fake = started;
            let config = sim::fake_config(&fake, &secret, &redirect_uri, &data_dir, &args.region);
            let plugin = sim::open_remembering(api, &config)?;
            let users: Vec<&str> = seed::USERS.iter().map(|u| u.email).collect();
            println!(
                "  fake Google: {} (users {})",
                fake.base_url(),
                users.join(", ")
            );
            (plugin, Some(&fake), Mode::Fake, redirect_uri)
        }
    };
    let app = App::new(
        &plugin,
        app_fake,
        mode,
        redirect_uri,
        data_dir.display().to_string(),
        &seed::ACCOUNTS,
    );
    println!("Google Integration page: {}/", listener.base_url());
    println!("Press Ctrl-C to stop.");
    listener.serve(&app);
    println!("Stopping: closing the plugin.");
    Ok(())
}

fn google_credentials() -> Result<(String, String), String> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (get(CLIENT_ID_VAR), get(CLIENT_SECRET_VAR)) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(format!(
            "--google needs your OAuth client: set {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR} to the \
             client ID and secret of a \"Web application\" client from the Google Cloud console \
             (APIs & Services > Credentials), with this server's /google/callback among its \
             Authorized redirect URIs. See `host-sim serve --help`."
        )),
    }
}
