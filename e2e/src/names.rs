//! Names and namespaces of one test's own, so tests run in parallel on one cluster.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A DNS-label name unique to this test run: `<prefix>-<6 base36 characters>`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = nanos as u64
        ^ (u64::from(std::process::id()) << 32)
        ^ (u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)) * 0x9E37_79B9);
    let mut n = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut suffix = String::new();
    for _ in 0..6 {
        suffix.push(char::from_digit((n % 36) as u32, 36).expect("digit below 36"));
        n /= 36;
    }
    format!("{prefix}-{suffix}")
}

/// A namespace that lives as long as the test: created on `new`, deleted on `cleanup`.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> anyhow::Result<Self> {
        Self::with_labels(client, prefix, &[]).await
    }

    /// A namespace for an operator's `--platform-namespace` (labelled `landlord.dev/platform`,
    /// as the operator-scope admission policy requires).
    pub async fn platform(client: &Client, prefix: &str) -> anyhow::Result<Self> {
        Self::with_labels(client, prefix, &[("landlord.dev/platform", "true")]).await
    }

    async fn with_labels(
        client: &Client,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let name = unique_name(prefix);
        let labels = std::iter::once(("landlord.dev/e2e", "true"))
            .chain(labels.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    /// Deletes the namespace (without waiting for it to finish terminating).
    pub async fn cleanup(self) -> anyhow::Result<()> {
        Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::default())
            .await?;
        Ok(())
    }
}
