//! The instances of catalog Services as the controllers see them: the label-selected,
//! every-namespace caches of the four kinds an instance consists of (Deployment, Service,
//! PodDisruptionBudget, HorizontalPodAutoscaler), and which instance each change touched.
//! The Service controller reads them for the pool, the Tenant controller for dedicated
//! instances; both write through `service::workload`.

use std::{collections::BTreeMap, fmt::Debug, sync::Arc};

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::{
    apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::Service as KubeService, policy::v1::PodDisruptionBudget,
};
use kube::{
    Resource, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};

use super::{Shared, Synced};
use crate::labels;

/// Label selector of every instance of every catalog Service.
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=landlord,landlord.dev/service";

/// Label-selected caches of the objects catalog Service instances consist of.
pub struct Caches {
    pub deployments: Store<Deployment>,
    pub services: Store<KubeService>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    /// Whether all four have listed.
    pub synced: super::Synced,
}

/// Which instance an event was about: its namespace and labels.
#[derive(Clone, Debug)]
pub struct Touched {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Whether it was a Deployment (whose status carries readiness).
    pub deployment: bool,
}

impl Touched {
    /// The catalog Service the object is an instance of.
    pub fn service(&self) -> Option<&str> {
        self.labels.get(labels::SERVICE).map(String::as_str)
    }

    /// The tenant of a dedicated instance; `None` for the pool.
    pub fn tenant(&self) -> Option<&str> {
        self.labels.get(labels::TENANT).map(String::as_str)
    }
}

impl Caches {
    pub async fn wait_until_ready(&self) {
        self.synced.wait().await;
    }

    /// The Deployment of a catalog Service's instance in a namespace.
    pub fn deployment(&self, namespace: &str, service: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&ObjectRef::new(service).within(namespace))
    }

    /// Names of the catalog Services that have any object in a namespace.
    pub fn instances_in(&self, namespace: &str) -> Vec<String> {
        fn names<K: Resource<DynamicType = ()> + Clone>(
            store: &Store<K>,
            namespace: &str,
        ) -> Vec<String> {
            store
                .state()
                .iter()
                .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
                .filter_map(|o| o.meta().labels.as_ref()?.get(labels::SERVICE).cloned())
                .collect()
        }
        let mut all = names(&self.deployments, namespace);
        all.extend(names(&self.services, namespace));
        all.extend(names(&self.disruption_budgets, namespace));
        all.extend(names(&self.autoscalers, namespace));
        all.sort();
        all.dedup();
        all
    }
}

/// The objects catalog Service instances consist of (label-selected, every namespace).
pub struct Workloads {
    pub deployments: Shared<Deployment>,
    pub services: Shared<KubeService>,
    pub disruption_budgets: Shared<PodDisruptionBudget>,
    pub autoscalers: Shared<HorizontalPodAutoscaler>,
}

impl Workloads {
    /// The caches.
    pub fn caches(&self) -> Caches {
        Caches {
            deployments: self.deployments.store(),
            services: self.services.store(),
            disruption_budgets: self.disruption_budgets.store(),
            autoscalers: self.autoscalers.store(),
            synced: Synced::all([
                self.deployments.synced(),
                self.services.synced(),
                self.disruption_budgets.synced(),
                self.autoscalers.synced(),
            ]),
        }
    }

    /// Which instance each change touched, from now on.
    pub fn touched(&self) -> impl Stream<Item = Touched> + Send + 'static {
        fn of<K>(shared: &Shared<K>) -> futures::stream::BoxStream<'static, Touched>
        where
            K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
        {
            shared
                .touched()
                .map(|object| Touched {
                    namespace: object.namespace().unwrap_or_default(),
                    labels: object.labels().clone(),
                    deployment: K::kind(&()) == "Deployment",
                })
                .boxed()
        }
        stream::select_all([
            of(&self.deployments),
            of(&self.services),
            of(&self.disruption_budgets),
            of(&self.autoscalers),
        ])
    }
}
