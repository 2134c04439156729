//! An API server outage for one client: a TCP proxy on 127.0.0.1 in front of the API server
//! that a test can cut (every open connection is closed and new ones are closed at once, as
//! when the API server is down) and restore. TLS passes through untouched, so the client
//! verifies the API server's own certificate (which names 127.0.0.1).
//!
//! Other tests sharing the cluster are not affected: only the process given
//! [`ApiOutage::kubeconfig`] talks through the proxy. The proxy has a thread and runtime of
//! its own, so that a test blocking its own (one-thread) runtime never stalls the traffic
//! it proxies, which would look like an outage the test did not make.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::unique_name;

/// The proxy; dropping it stops it.
pub struct ApiOutage {
    cut: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    kubeconfig: PathBuf,
}

impl ApiOutage {
    /// Starts a proxy to the API server that `kubeconfig` names (its `server: https://host:port`
    /// line) and writes a copy of `kubeconfig`, beside it, that goes through the proxy.
    pub async fn start(kubeconfig: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .with_context(|| format!("{} names no https server", kubeconfig.display()))?
            .trim_matches('"')
            .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let proxy = listener.local_addr()?;
        let proxied = kubeconfig.with_file_name(format!("{}.kubeconfig", unique_name("outage")));
        std::fs::write(
            &proxied,
            text.replace(
                &format!("https://{server}"),
                &format!("https://127.0.0.1:{}", proxy.port()),
            ),
        )?;
        let (cut, cut_rx) = watch::channel(false);
        let (stop, mut stop_rx) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let client = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((client, _)) => client,
                            Err(_) => return,
                        },
                        _ = stop_rx.wait_for(|stop| *stop) => return,
                    };
                    if *cut_rx.borrow() {
                        drop(client);
                        continue;
                    }
                    let mut cut_rx = cut_rx.clone();
                    let server = server.clone();
                    tokio::spawn(async move {
                        let Ok(mut upstream) = TcpStream::connect(&server).await else {
                            return;
                        };
                        let mut client = client;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = cut_rx.wait_for(|cut| *cut) => {}
                        }
                    });
                }
            })
        });
        Ok(Self {
            cut,
            stop,
            kubeconfig: proxied,
        })
    }

    /// The kubeconfig whose requests go through the proxy.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server is "down": open connections close, new ones are closed at once.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// The API server is back.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for ApiOutage {
    fn drop(&mut self) {
        // Open connections close, and the proxy's thread ends with its runtime.
        self.cut.send_replace(true);
        self.stop.send_replace(true);
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}
