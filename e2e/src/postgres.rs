//! Extra PostgreSQL servers that single tests own: started, stopped and restarted at will
//! (the stack's own server is shared by every test and must stay up). Initialised by the
//! same script as the stack's server, so they log every statement the same way.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection, postgres::PgConnectOptions};

use crate::{cluster::repo_root, unique_name};

/// A PostgreSQL server of one test; stopped and deleted when dropped.
pub struct PgServer {
    bin: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    password: String,
    child: Option<Child>,
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (apt-get install postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .context("no PostgreSQL bin directory with initdb")
}

/// What the postmaster prints when its port is taken.
const ADDRESS_IN_USE: &str = "Address already in use";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl PgServer {
    /// Initialises and starts a new server on a free loopback port.
    ///
    /// PostgreSQL cannot report a port the kernel chose, so the port is chosen first; when
    /// another process takes it before the server binds it, a new data directory is made on
    /// another port (up to three times).
    pub async fn start(label: &str) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_on_a_free_port(label).await {
                Err(error) if attempt < 3 && format!("{error:#}").contains(ADDRESS_IN_USE) => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_on_a_free_port(label: &str) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        // Under /tmp: the postgres user may not traverse the work tree's parents.
        let dir = std::env::temp_dir().join(unique_name(&format!("landlord-pg-{label}")));
        let port = free_port()?;
        let password = unique_name("pw");
        let mut init = Command::new(repo_root().join("e2e/scripts/postgres-init.sh"))
            .arg(&bin)
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running postgres-init.sh")?;
        if let Some(mut stdin) = init.stdin.take() {
            use std::io::Write;
            writeln!(stdin, "{password}")?;
        }
        let out = init.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "postgres-init.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Self {
            bin,
            dir,
            port,
            password,
            child: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Starts the (stopped) server again on its data and port, and waits until it answers.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the server is running");
        let mut command = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(self.bin.join("postgres"));
            c
        } else {
            Command::new(self.bin.join("postgres"))
        };
        let child = command
            .arg("-D")
            .arg(self.dir.join("data"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // What the postmaster says before its logging collector runs goes here.
            .stderr(std::fs::File::create(self.dir.join("postmaster.stderr"))?)
            .process_group(0)
            .spawn()
            .context("starting postgres")?;
        self.child = Some(child);
        for _ in 0..150 {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                self.child = None;
                let stderr = std::fs::read_to_string(self.dir.join("postmaster.stderr"));
                let log = self.log_text();
                let log_tail: Vec<&str> = log.lines().rev().take(8).collect();
                anyhow::bail!(
                    "postgres in {} exited with {}: {}{}",
                    self.dir.display(),
                    status?,
                    stderr.unwrap_or_default(),
                    log_tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            // Bounded: whatever else holds the port may accept and never answer.
            let connect = tokio::time::timeout(Duration::from_secs(2), self.connect_admin());
            if matches!(connect.await, Ok(Ok(_))) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "postgres in {} never accepted connections",
            self.dir.display()
        )
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits until it is gone.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // postgres exec'd in place of setpriv, so the pid is the postmaster's.
            let status = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()?;
            anyhow::ensure!(status.success(), "kill -INT postgres failed");
            child.wait()?;
        }
        Ok(())
    }

    /// Sends the postmaster `signal` (`STOP`, `CONT`).
    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the server is not running")?;
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} postgres failed");
        Ok(())
    }

    /// Hangs the postmaster (SIGSTOP), as a wedged server does: sessions already open keep
    /// answering (their backends run on), new connections wait forever.
    pub fn hang(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Lets a hung postmaster run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    /// Connection options of the superuser `landlord_admin`.
    pub fn admin_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("landlord_admin")
            .password(&self.password)
            .database("postgres")
    }

    /// The superuser's `postgres://` URL of database `postgres`.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://landlord_admin:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    pub async fn connect_admin(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect_with(&self.admin_options()).await?)
    }

    /// Creates a login role with CREATEROLE and CREATEDB but no superuser: what a managed
    /// PostgreSQL service gives its customers, and what Landlord is documented to need.
    pub async fn create_provisioner(&self, name: &str, password: &str) -> anyhow::Result<()> {
        let mut conn = self.connect_admin().await?;
        conn.execute(
            format!("CREATE ROLE \"{name}\" LOGIN CREATEROLE CREATEDB PASSWORD '{password}'")
                .as_str(),
        )
        .await?;
        conn.close().await?;
        Ok(())
    }

    /// The statement log (log_statement = all).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log/postgresql.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // A hung postmaster handles the stop signal only once it runs again.
        let _ = self.resume();
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose port another process holds exits at once, and says why in the words
    /// [`PgServer::start`] retries on; the server then starts again once the port is free.
    #[tokio::test]
    async fn a_server_whose_port_is_taken_fails_at_once_saying_so() -> anyhow::Result<()> {
        let mut server = PgServer::start("port-taken").await?;
        server.stop()?;
        let holder = std::net::TcpListener::bind(("127.0.0.1", server.port))?;
        let error = server.start_again().await.expect_err("the port is taken");
        assert!(format!("{error:#}").contains(ADDRESS_IN_USE), "{error:#}");
        drop(holder);
        server.start_again().await?;
        server.connect_admin().await?;
        Ok(())
    }
}
