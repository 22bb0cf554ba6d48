//! A real PostgreSQL server of its own, for a test, `host-sim cluster` or the bench, started
//! from Debian's `postgresql` package: `initdb` and `pg_ctl` in a temporary directory,
//! listening on 127.0.0.1 only, with password authentication (so that tests can check the
//! password never shows). The server refuses to run as root, so as root it runs as the
//! package's `postgres` user. Stopped and erased on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The password of the tests' database user: tests search every message for it.
pub const PASSWORD: &str = "pw-Zq8-never-shown";
pub const USER: &str = "gi";

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = server_binaries();
        let dir = tempfile::Builder::new()
            .prefix("gi-pg-")
            .tempdir()
            .expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot hand {} to the postgres user; install Debian's postgresql package, which creates it: sudo apt-get install postgresql",
                dir.path().display()
            );
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if as_postgres {
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&pwfile)
                .status()
                .unwrap();
        }
        let server = PgServer {
            port: free_port(),
            bin,
            as_postgres,
            dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                server.data().to_str().unwrap(),
                "-U",
                USER,
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a new, empty database on this server.
    pub fn new_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "gi_{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test server");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a database");
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{USER}:{PASSWORD}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// A client for looking into the store.
    pub fn client(&self, url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls).expect("connect to the test server")
    }

    /// Stops the server at once (as a crash or a network cut looks to its clients).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts it (again), on the same port, and waits until it takes connections.
    pub fn start_again(&self) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -F -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Turns TLS on, with a certificate for 127.0.0.1 from a CA of its own (made with
    /// `openssl`, which Debian's postgresql package brings along), restarts, and returns the
    /// CA's certificate file, for a URL's `sslrootcert`.
    pub fn enable_tls(&self) -> PathBuf {
        let tls = self.dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run openssl ({e}); install it with: sudo apt-get install openssl"
                    )
                });
            assert!(
                output.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &new_key[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=google-integration test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"],
                &new_key[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            tls.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        // The server refuses a key others may read, or one another user owns.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            tls.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        if self.as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .args([tls.join("server.key"), tls.join("server.pem")])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            tls.join("server.pem").display(),
            tls.join("server.key").display()
        ));
        std::fs::write(&conf, text).unwrap();
        self.stop();
        self.start_again();
        tls.join("ca.pem")
    }

    /// One of the server's programs, run as the user the server runs as.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} failed: {}{}\nserver log: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Whether Debian's PostgreSQL server is installed here.
pub fn installed() -> bool {
    newest_binaries().is_some()
}

/// Starts a server of its own and makes a database in it, for host-sim (not the tests, which
/// want a panic): an error that says how to install the server, or what failed. `otherwise`
/// says what the caller could do instead.
pub fn private_server(otherwise: &str) -> Result<(PgServer, String), String> {
    if !installed() {
        return Err(format!(
            "no PostgreSQL server here (/usr/lib/postgresql/*/bin/initdb is missing): install it with sudo apt-get install postgresql, or {otherwise}"
        ));
    }
    let server = std::panic::catch_unwind(PgServer::start)
        .map_err(|_| "the private PostgreSQL server did not start (see above)".to_string())?;
    let url = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.new_database()))
        .map_err(|_| "cannot make a database in the private PostgreSQL server".to_string())?;
    Ok((server, url))
}

/// The newest installed server's programs, or a failure that says how to install them.
fn server_binaries() -> PathBuf {
    newest_binaries().unwrap_or_else(|| {
        panic!(
            "this test needs a PostgreSQL server, and /usr/lib/postgresql/*/bin/initdb is missing: install it with `sudo apt-get install postgresql` (tests/run-all and .ci/run install it)"
        )
    })
}

fn newest_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().port()
}

/// Writes a token key (32 random bytes, 0600) at `path`, as an administrator would.
pub fn write_key(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    std::fs::write(path, key).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
