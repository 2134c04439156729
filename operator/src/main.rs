//! `landlord`: the Landlord operator and its tools.

#![forbid(unsafe_code)]

mod api;
mod http;
mod leader;
mod run;
mod telemetry;

use std::{io::Write, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Landlord provisions SaaS tenants on Kubernetes: one Tenant becomes an isolated, running
/// customer stack.
#[derive(Parser, Debug)]
#[command(name = "landlord", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: reconcile Tenants (and the rest) on the cluster of the kubeconfig, or
    /// in-cluster.
    Run(Box<run::RunArgs>),
    /// Serve Landlord's self-service HTTP API (`/v1`), acting as each caller.
    Api(Box<api::ApiArgs>),
    /// Print the CustomResourceDefinitions of Tenant, Service, Domain and FeatureFlagSet as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing one stream.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            telemetry::init(args.log_format)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run::run(*args))
        }
        Command::Api(args) => {
            telemetry::init(args.log_format)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(api::serve(*args))
        }
        Command::Crds { out_dir: None } => {
            let yaml = landlord_crds::generate::crds_yaml()?;
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(())
        }
        Command::Crds { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, yaml) in landlord_crds::generate::crd_files()? {
                let path = dir.join(name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
    }
}
