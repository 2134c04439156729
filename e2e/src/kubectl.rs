//! `kubectl` from the local stack's multi-call binary, for what tests want to see exactly as
//! an admin sees it (`kubectl explain`, `kubectl get` columns).

use std::process::{Command, Output};

use anyhow::Context;

use crate::Cluster;

impl Cluster {
    /// Runs `kubectl` with the admin kubeconfig and returns its output, whatever its status.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(self.var("LANDLORD_LOCALK8S"))
            .arg("kubectl")
            .args(args)
            .env("KUBECONFIG", self.var("KUBECONFIG"))
            .output()
            .with_context(|| format!("running kubectl {}", args.join(" ")))
    }

    /// Runs `kubectl` and returns its stdout, failing with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.kubectl(args)?;
        anyhow::ensure!(
            output.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
