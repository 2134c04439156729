//! The FeatureFlagSet: typed feature flags with variants and targeting rules.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{schema, tenant::Tier};

/// Typed feature flags. A set in the platform namespace applies to the tenants its selector
/// picks, by priority; a set in a tenant's namespace applies to that tenant only and cannot
/// override a flag the platform locked. Landlord writes each tenant's effective flags into
/// its namespace, and tenant-runtime serves them over OFREP.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "FeatureFlagSet",
    plural = "featureflagsets",
    shortname = "ffs",
    category = "landlord",
    namespaced,
    status = "FeatureFlagSetStatus",
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Flags", type_ = "integer", json_path = ".status.flags"),
    printcolumn(name = "Tenants", type_ = "integer", json_path = ".status.tenants"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FeatureFlagSetSpec {
    /// Platform sets only: which tenants the set applies to. Absent, or with no criteria,
    /// selects every tenant; an empty list of tiers, plans or tenants is refused. Ignored on a set in a tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<TenantSelector>,
    /// A higher priority wins for a flag defined in several sets (platform sets among
    /// themselves, a tenant's own sets among themselves); equal priorities go by name. A
    /// tenant's own sets override platform flags that are not locked.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i32,
    /// The flags.
    #[schemars(length(min = 1, max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub flags: Vec<Flag>,
}

/// Selects tenants. All given criteria must match; a list that is given must name at least
/// one value (an empty list is refused rather than read as "every tenant").
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSelector {
    /// Tenants of these tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2), extend("x-kubernetes-list-type" = "set"))]
    pub tiers: Option<Vec<Tier>>,
    /// Tenants on these plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), extend("x-kubernetes-list-type" = "set"), inner(length(min = 1, max = 63)))]
    pub plans: Option<Vec<String>>,
    /// Tenants by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), extend("x-kubernetes-list-type" = "set"), inner(length(min = 1, max = 63)))]
    pub tenants: Option<Vec<String>>,
    /// Tenants whose labels include all of these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub match_labels: BTreeMap<String, String>,
}

/// A typed feature flag: a set of named variants, a default variant, and rules that pick
/// another variant for some tenants.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.defaultVariant in self.variants")
        .message("spec.flags[].defaultVariant must name one of the flag's variants").field_path(".defaultVariant"),
    validation = Rule::new("!has(self.rules) || self.rules.all(r, r.variant in self.variants)")
        .message("spec.flags[].rules[].variant must name one of the flag's variants").field_path(".rules"),
    validation = Rule::new("self.variants.all(k, self.type == 'boolean' ? has(self.variants[k].boolean) : self.type == 'string' ? has(self.variants[k].string) : self.type == 'integer' ? has(self.variants[k].integer) : self.type == 'float' ? has(self.variants[k].float) : has(self.variants[k].object))")
        .message("spec.flags[].variants: every variant's value must be of the flag's declared type (set the field named after spec.flags[].type)").field_path(".variants"),
)]
pub struct Flag {
    /// Key of the flag, as OpenFeature clients ask for it.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_.-]*$")
    )]
    pub name: String,
    /// Type of the flag's values: boolean, string, integer, float or object.
    #[serde(rename = "type")]
    pub type_: FlagType,
    /// What the flag is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Named values of the flag, e.g. `on: {boolean: true}`.
    #[schemars(extend("maxProperties" = 32, "minProperties" = 1))]
    #[x_kube(validation = Rule::new("self.all(k, k.size() <= 63 && k.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))").message("spec.flags[].variants keys must be alphanumeric names of at most 63 characters"))]
    pub variants: BTreeMap<String, FlagValue>,
    /// The variant served when no rule matches.
    #[schemars(length(min = 1, max = 63))]
    pub default_variant: String,
    /// Targeting rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rules: Vec<TargetingRule>,
    /// Platform sets only: a locked flag cannot be overridden by a tenant's own set (the
    /// override is ignored and reported). A flag locked in any platform set that applies to a
    /// tenant is locked for that tenant.
    #[serde(default)]
    pub locked: bool,
}

/// Type of a flag.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum FlagType {
    Boolean,
    String,
    Integer,
    Float,
    Object,
}

/// A flag value: exactly one field is set, the one named after the flag's type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.boolean), has(self.string), has(self.integer), has(self.float), has(self.object)].filter(x, x).size() == 1").message("a flag value sets exactly one of boolean, string, integer, float or object"))]
pub struct FlagValue {
    /// A boolean value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean: Option<bool>,
    /// A string value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub string: Option<String>,
    /// An integer value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<i64>,
    /// A floating-point value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float: Option<f64>,
    /// A JSON object value: at most 64 top-level properties and 16 KiB of compact JSON (a
    /// larger one is left out and reported as `InvalidFlag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::flag_object")]
    pub object: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A targeting rule: when every given criterion matches the tenant, serve `variant`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetingRule {
    /// The criteria; an empty selector matches every tenant.
    #[serde(flatten)]
    pub when: TenantSelector,
    /// The variant to serve.
    #[schemars(length(min = 1, max = 63))]
    pub variant: String,
}

/// Observed state of a FeatureFlagSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureFlagSetStatus {
    /// The .metadata.generation that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Number of flags in the set.
    #[serde(default)]
    pub flags: i32,
    /// Number of tenants the set applies to.
    #[serde(default)]
    pub tenants: i32,
    /// Ready, and Conflict when a flag's type differs from another set's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}
