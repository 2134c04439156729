//! Finding (or starting) the local stack and connecting to it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{Context, bail};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

/// The running local stack, as described by its env file.
#[derive(Clone, Debug)]
pub struct Cluster {
    vars: BTreeMap<String, String>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The local stack of this test run: started by the first caller if it is not running yet.
/// Panics with the cluster script's own report when the stack cannot be brought up, so a test
/// that needs it fails loudly instead of skipping.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(|| Cluster::ensure_up().map_err(|e| format!("{e:#}"))) {
        Ok(cluster) => cluster,
        Err(e) => panic!("the local control plane is not available: {e}"),
    }
}

/// State directory of the stack the tests share: `LANDLORD_DEV_DIR`, or
/// `<repo>/target/landlord-dev`.
pub fn main_dir() -> PathBuf {
    std::env::var("LANDLORD_DEV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target/landlord-dev"))
}

/// Root of the repository (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e crate lives inside the workspace")
        .to_path_buf()
}

impl Cluster {
    /// Runs `e2e/cluster up` (which returns at once when the stack is already healthy) and
    /// reads the env file it writes.
    pub fn ensure_up() -> anyhow::Result<Self> {
        Self::up_in(&main_dir())
    }

    /// Brings up (or finds) the stack whose state lives in `dir`: a second, independent
    /// stack for tests that must not share the default one.
    pub fn up_in(dir: &Path) -> anyhow::Result<Self> {
        Self::up_in_with(dir, &[])
    }

    /// Like `up_in`, with extra environment variables for `e2e/cluster up`, e.g.
    /// `LANDLORD_DEV_UPSTREAM_CRDS=none` for a stack without Gateway API and cert-manager.
    pub fn up_in_with(dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        run_script_env(dir, &["up"], env)?;
        Self::from_env_file(&dir.join("env"))
    }

    /// Stops this stack and deletes its state (`e2e/cluster clean`).
    pub fn clean(&self) -> anyhow::Result<()> {
        run_script(Path::new(self.var("LANDLORD_DEV_DIR")), "clean")
    }

    /// Reads the `export NAME=value` lines the cluster script writes.
    pub fn from_env_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            vars: parse_env(&text),
        })
    }

    /// A variable of the env file, e.g. `KUBECONFIG` or `LANDLORD_POSTGRES_URL`.
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} is missing from the local stack's env file"))
    }

    /// Every variable of the env file, to hand to a child process.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// A client with the admin credential.
    pub async fn client(&self) -> anyhow::Result<Client> {
        client_for(Path::new(self.var("KUBECONFIG"))).await
    }

    /// A client with the non-admin credential (user `landlord-dev-user`), for RBAC tests.
    pub async fn user_client(&self) -> anyhow::Result<Client> {
        client_for(Path::new(self.var("LANDLORD_KUBECONFIG_USER"))).await
    }

    /// The user name of the non-admin credential.
    pub fn user_name(&self) -> &'static str {
        "landlord-dev-user"
    }
}

/// Runs `e2e/cluster <command>` for the stack whose state lives in `dir`; on failure the
/// error carries the script's own report (which component failed, where its log is).
pub fn run_script(dir: &Path, command: &str) -> anyhow::Result<()> {
    run_script_args(dir, &[command])
}

/// Runs `e2e/cluster <args...>` for the stack whose state lives in `dir`.
pub fn run_script_args(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    run_script_env(dir, args, &[])
}

/// Runs `e2e/cluster <args...>` with extra environment variables (e.g.
/// `LANDLORD_DEV_UPSTREAM_CRDS=none`). A stack other than [`main_dir`]'s starts without
/// real nodes (`LANDLORD_DEV_REAL_NODES=0`: one stack per machine may have them) unless
/// `env` says otherwise.
pub fn run_script_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let command = args.join(" ");
    let script = repo_root().join("e2e/cluster");
    let mut cmd = Command::new("bash");
    if dir != main_dir() {
        cmd.env("LANDLORD_DEV_REAL_NODES", "0");
    }
    let output = cmd
        .arg(&script)
        .args(args)
        .env("LANDLORD_DEV_DIR", dir)
        .envs(env.iter().copied())
        .output()
        .with_context(|| format!("running {} {command}", script.display()))?;
    if !output.status.success() {
        bail!(
            "`e2e/cluster {command}` failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(name, value)| (name.trim().to_string(), unquote(value.trim())))
        .collect()
}

fn unquote(value: &str) -> String {
    for quote in ['\'', '"'] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_string();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines_are_parsed_with_and_without_quotes() {
        let vars = parse_env(
            "# comment\nexport KUBECONFIG='/x/kubeconfig'\nexport A=\"b c\"\nexport N=1\nOTHER=2\n",
        );
        assert_eq!(
            vars.get("KUBECONFIG").map(String::as_str),
            Some("/x/kubeconfig")
        );
        assert_eq!(vars.get("A").map(String::as_str), Some("b c"));
        assert_eq!(vars.get("N").map(String::as_str), Some("1"));
        assert!(!vars.contains_key("OTHER"));
    }
}
