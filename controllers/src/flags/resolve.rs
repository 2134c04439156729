//! A tenant's effective feature flags: a pure function of the tenant and the FeatureFlagSets
//! that apply to it.
//!
//! The rules, in order:
//!
//! 1. A set in the platform namespace applies to the tenants its `selector` picks; a missing
//!    or empty selector picks every tenant. A set in the tenant's own namespace applies to that
//!    tenant (its selector, if any, is ignored).
//! 2. Sets are ordered by `priority`, highest first, ties broken by name (ascending), so the
//!    outcome never depends on the order the API server lists them in.
//! 3. For each flag key, the first platform set (in that order) that defines it wins. The key
//!    is locked when any applicable platform set defining it with the winning type says
//!    `locked: true`: one set's kill switch is not undone by another set that forgot the lock.
//! 4. The tenant's own sets then override platform flags, first set first, except locked
//!    flags: such an override is ignored and reported (`LockedOverride`).
//! 5. A definition whose type differs from the definition that takes precedence over it is
//!    never merged: the definition with precedence is served and the other is ignored and
//!    reported (`TypeConflict`). Services are written against one type per key, so the
//!    platform's (or the higher-priority) type is the one they expect.
//! 6. The served flag picks its variant by the rules in order, first match wins; a rule's
//!    criteria (tiers, plans, tenants, matchLabels) must all match, and a rule with none
//!    matches every tenant. Reason `STATIC` when the flag has no rules, `TARGETING_MATCH`
//!    when a rule matched, `DEFAULT` when none did.

use std::{collections::BTreeMap, fmt};

use crate::drift::canonical;
use kube::ResourceExt;
use landlord_crds::{
    FeatureFlagSet, Tenant,
    flags::{Flag, FlagType, FlagValue, TenantSelector},
    tenant::Tier,
};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What targeting sees of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantFacts {
    pub name: String,
    pub tier: Tier,
    pub plan: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl TenantFacts {
    pub fn of(tenant: &Tenant) -> Self {
        Self {
            name: tenant.name_any(),
            tier: tenant.spec.tier,
            plan: tenant.spec.plan.clone(),
            labels: tenant.labels().clone(),
        }
    }
}

/// Whether every criterion given in `selector` matches the tenant. No criteria: every tenant;
/// an empty list of tiers, plans or tenants: no tenant.
pub fn matches(selector: &TenantSelector, tenant: &TenantFacts) -> bool {
    let TenantSelector {
        tiers,
        plans,
        tenants,
        match_labels,
    } = selector;
    // A list that is given must hold the tenant's value: an empty list matches no tenant
    // (the schema refuses it; one stored before that rule selects nobody, not everybody).
    tiers.as_ref().is_none_or(|t| t.contains(&tenant.tier))
        && plans
            .as_ref()
            .is_none_or(|p| tenant.plan.as_ref().is_some_and(|plan| p.contains(plan)))
        && tenants.as_ref().is_none_or(|t| t.contains(&tenant.name))
        && match_labels
            .iter()
            .all(|(k, v)| tenant.labels.get(k) == Some(v))
}

/// Whether a platform set applies to the tenant.
pub fn selects(set: &FeatureFlagSet, tenant: &TenantFacts) -> bool {
    set.spec
        .selector
        .as_ref()
        .is_none_or(|selector| matches(selector, tenant))
}

/// `<namespace>/<name>` of a set: how flags name their source and problems name sets.
pub fn set_id(set: &FeatureFlagSet) -> String {
    format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any())
}

/// Why a flag has the value it has, in OpenFeature's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no targeting rules.
    Static,
    /// The flag has rules but none matched: the default variant.
    Default,
    /// A targeting rule matched.
    TargetingMatch,
}

/// One effective flag, as tenant-runtime serves it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EffectiveFlag {
    #[serde(rename = "type")]
    pub type_: FlagType,
    pub value: Value,
    pub variant: String,
    pub reason: Reason,
    /// `<namespace>/<FeatureFlagSet name>` of the definition that was served.
    pub source: String,
}

/// Something about the sets that the tenant's flags cannot honour; reported, never hidden.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// Two sets define `flag` with different types; `kept` has precedence and is served.
    TypeConflict {
        flag: String,
        kept: String,
        kept_type: FlagType,
        ignored: String,
        ignored_type: FlagType,
    },
    /// A tenant set overrides a flag a platform set locked; the override is ignored.
    LockedOverride {
        flag: String,
        locked_by: String,
        ignored: String,
    },
    /// The served definition cannot be evaluated (the API server's validation should make
    /// this impossible); the flag is left out.
    InvalidFlag {
        flag: String,
        set: String,
        why: String,
    },
}

impl Problem {
    /// The CamelCase reason a condition reports for this problem.
    pub fn reason(&self) -> landlord_crds::conditions::Reason {
        use landlord_crds::conditions::Reason;
        match self {
            Problem::TypeConflict { .. } => Reason::FlagConflict,
            Problem::LockedOverride { .. } => Reason::LockedFlagOverride,
            Problem::InvalidFlag { .. } => Reason::InvalidFlag,
        }
    }

    pub fn flag(&self) -> &str {
        match self {
            Problem::TypeConflict { flag, .. }
            | Problem::LockedOverride { flag, .. }
            | Problem::InvalidFlag { flag, .. } => flag,
        }
    }

    /// Whether the problem names the set `id`.
    pub fn involves(&self, id: &str) -> bool {
        match self {
            Problem::TypeConflict { kept, ignored, .. } => kept == id || ignored == id,
            Problem::LockedOverride {
                locked_by, ignored, ..
            } => locked_by == id || ignored == id,
            Problem::InvalidFlag { set, .. } => set == id,
        }
    }

    /// The set whose definition is not served because of the problem.
    pub fn ignored_set(&self) -> &str {
        match self {
            Problem::TypeConflict { ignored, .. } | Problem::LockedOverride { ignored, .. } => {
                ignored
            }
            Problem::InvalidFlag { set, .. } => set,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TypeConflict {
                flag,
                kept,
                kept_type,
                ignored,
                ignored_type,
            } => write!(
                f,
                "flag {flag} is {} in {kept} but {} in {ignored}; {kept} takes precedence and the definition in {ignored} is ignored",
                type_name(*kept_type),
                type_name(*ignored_type)
            ),
            Problem::LockedOverride {
                flag,
                locked_by,
                ignored,
            } => write!(
                f,
                "flag {flag} is locked by {locked_by}; the override in {ignored} is ignored"
            ),
            Problem::InvalidFlag { flag, set, why } => {
                write!(f, "flag {flag} in {set} is left out: {why}")
            }
        }
    }
}

pub fn type_name(type_: FlagType) -> &'static str {
    match type_ {
        FlagType::Boolean => "boolean",
        FlagType::String => "string",
        FlagType::Integer => "integer",
        FlagType::Float => "float",
        FlagType::Object => "object",
    }
}

/// A tenant's effective flags and the problems found on the way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolution {
    pub flags: BTreeMap<String, EffectiveFlag>,
    pub problems: Vec<Problem>,
    /// The sets that applied to the tenant, in precedence order (platform sets first).
    pub sets: Vec<String>,
}

impl Resolution {
    /// Hex SHA-256 of the canonical JSON (keys sorted, no whitespace) of the `flags` object:
    /// equal flags give an equal revision, whatever order the sets were listed in.
    pub fn revision(&self) -> String {
        let value = serde_json::to_value(&self.flags).unwrap_or(Value::Null);
        let digest = Sha256::digest(canonical(&value).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Sets in precedence order: priority descending, then name ascending.
fn ordered<'a>(sets: impl IntoIterator<Item = &'a FeatureFlagSet>) -> Vec<&'a FeatureFlagSet> {
    let mut sets: Vec<_> = sets.into_iter().collect();
    sets.sort_by(|a, b| {
        b.spec
            .priority
            .cmp(&a.spec.priority)
            .then_with(|| a.name_any().cmp(&b.name_any()))
            .then_with(|| a.namespace().cmp(&b.namespace()))
    });
    sets
}

/// The definition of a key that currently takes precedence.
struct Winner<'a> {
    set: String,
    flag: &'a Flag,
    locked_by: Option<String>,
}

/// Resolves the effective flags of `tenant`. `platform` are the sets of the platform
/// namespace (all of them: the selectors are applied here), `own` the sets of the tenant's
/// namespace.
pub fn resolve<'a>(
    tenant: &TenantFacts,
    platform: impl IntoIterator<Item = &'a FeatureFlagSet>,
    own: impl IntoIterator<Item = &'a FeatureFlagSet>,
) -> Resolution {
    resolve_keys(tenant, platform, own, |_| true)
}

/// [`resolve`] restricted to the flag keys `wanted` accepts: the other keys are neither
/// served nor checked. (A set's status needs only its own keys, for each of its tenants.)
pub fn resolve_keys<'a>(
    tenant: &TenantFacts,
    platform: impl IntoIterator<Item = &'a FeatureFlagSet>,
    own: impl IntoIterator<Item = &'a FeatureFlagSet>,
    wanted: impl Fn(&str) -> bool,
) -> Resolution {
    let platform = ordered(platform.into_iter().filter(|s| selects(s, tenant)));
    let own = ordered(own);
    let mut problems = Vec::new();

    let mut from_platform: BTreeMap<&str, Winner> = BTreeMap::new();
    for set in &platform {
        let id = set_id(set);
        for flag in set.spec.flags.iter().filter(|f| wanted(&f.name)) {
            match from_platform.get_mut(flag.name.as_str()) {
                None => {
                    from_platform.insert(
                        &flag.name,
                        Winner {
                            set: id.clone(),
                            flag,
                            locked_by: flag.locked.then(|| id.clone()),
                        },
                    );
                }
                Some(winner) if winner.flag.type_ != flag.type_ => {
                    problems.push(conflict(winner, &id, flag));
                }
                Some(winner) => {
                    if flag.locked && winner.locked_by.is_none() {
                        winner.locked_by = Some(id.clone());
                    }
                }
            }
        }
    }

    let mut from_tenant: BTreeMap<&str, Winner> = BTreeMap::new();
    for set in &own {
        let id = set_id(set);
        for flag in set.spec.flags.iter().filter(|f| wanted(&f.name)) {
            let key = flag.name.as_str();
            if let Some(platform_winner) = from_platform.get(key) {
                if let Some(locked_by) = &platform_winner.locked_by {
                    problems.push(Problem::LockedOverride {
                        flag: flag.name.clone(),
                        locked_by: locked_by.clone(),
                        ignored: id.clone(),
                    });
                    continue;
                }
                if platform_winner.flag.type_ != flag.type_ {
                    problems.push(conflict(platform_winner, &id, flag));
                    continue;
                }
            }
            match from_tenant.get(key) {
                None => {
                    from_tenant.insert(
                        key,
                        Winner {
                            set: id.clone(),
                            flag,
                            locked_by: None,
                        },
                    );
                }
                Some(winner) if winner.flag.type_ != flag.type_ => {
                    problems.push(conflict(winner, &id, flag));
                }
                Some(_) => {}
            }
        }
    }

    let mut flags = BTreeMap::new();
    let keys: std::collections::BTreeSet<&str> = from_platform
        .keys()
        .chain(from_tenant.keys())
        .copied()
        .collect();
    for key in keys {
        let Some(winner) = from_tenant.get(key).or_else(|| from_platform.get(key)) else {
            continue;
        };
        match evaluate(winner.flag, tenant) {
            Ok((variant, value, reason)) => {
                flags.insert(
                    key.to_string(),
                    EffectiveFlag {
                        type_: winner.flag.type_,
                        value,
                        variant,
                        reason,
                        source: winner.set.clone(),
                    },
                );
            }
            Err(why) => problems.push(Problem::InvalidFlag {
                flag: key.to_string(),
                set: winner.set.clone(),
                why,
            }),
        }
    }

    Resolution {
        flags,
        problems,
        sets: platform.iter().chain(&own).map(|s| set_id(s)).collect(),
    }
}

fn conflict(winner: &Winner, ignored: &str, flag: &Flag) -> Problem {
    Problem::TypeConflict {
        flag: flag.name.clone(),
        kept: winner.set.clone(),
        kept_type: winner.flag.type_,
        ignored: ignored.to_string(),
        ignored_type: flag.type_,
    }
}

/// The variant, value and reason a flag serves to the tenant.
fn evaluate(flag: &Flag, tenant: &TenantFacts) -> Result<(String, Value, Reason), String> {
    let (variant, reason) = if flag.rules.is_empty() {
        (&flag.default_variant, Reason::Static)
    } else {
        match flag.rules.iter().find(|r| matches(&r.when, tenant)) {
            Some(rule) => (&rule.variant, Reason::TargetingMatch),
            None => (&flag.default_variant, Reason::Default),
        }
    };
    let value = flag
        .variants
        .get(variant)
        .ok_or_else(|| format!("variant {variant} is not one of its variants"))?;
    let value = typed(flag.type_, value)
        .ok_or_else(|| format!("variant {variant} has no {} value", type_name(flag.type_)))?;
    if let Value::Object(_) = &value {
        let bytes = crate::drift::canonical(&value).len();
        if bytes > MAX_OBJECT_VALUE_BYTES {
            return Err(format!(
                "variant {variant}'s object value takes {bytes} bytes of JSON, more than the {MAX_OBJECT_VALUE_BYTES} a flag value may"
            ));
        }
    }
    Ok((variant.clone(), value, reason))
}

/// The largest object value a tenant is served, in bytes of compact JSON. The CRD bounds a
/// string value to 4096 characters and an object to 64 top-level properties, but not its
/// depth; a larger object is left out and reported (`InvalidFlag`) rather than sent to every
/// runtime that serves the tenant.
pub const MAX_OBJECT_VALUE_BYTES: usize = 16 * 1024;

/// The JSON value of a variant, when it holds a value of the flag's type.
fn typed(type_: FlagType, value: &FlagValue) -> Option<Value> {
    match type_ {
        FlagType::Boolean => value.boolean.map(Value::Bool),
        FlagType::String => value.string.clone().map(Value::String),
        FlagType::Integer => value.integer.map(Value::from),
        FlagType::Float => value
            .float
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        FlagType::Object => value.object.clone().map(Value::Object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(namespace: &str, name: &str, spec: Value) -> FeatureFlagSet {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "FeatureFlagSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }))
        .expect("set fixture")
    }

    #[test]
    fn an_empty_list_selects_no_tenant_and_an_absent_one_every_tenant() {
        for empty in [
            json!({"tenants": []}),
            json!({"plans": []}),
            json!({"tiers": []}),
        ] {
            let selector: TenantSelector = serde_json::from_value(empty.clone()).expect("selector");
            assert!(
                !matches(&selector, &acme(Tier::Shared, Some("pro"))),
                "{empty} selected acme"
            );
            let platform = set(
                "landlord-platform",
                "s",
                json!({
                    "selector": empty,
                    "flags": [{"name": "f", "type": "boolean", "defaultVariant": "on",
                               "variants": {"on": {"boolean": true}}}]
                }),
            );
            assert!(!selects(&platform, &acme(Tier::Shared, Some("pro"))));
        }
        assert!(matches(
            &TenantSelector::default(),
            &acme(Tier::Shared, Some("pro"))
        ));
        let named: TenantSelector =
            serde_json::from_value(json!({"tenants": ["acme"]})).expect("selector");
        assert!(matches(&named, &acme(Tier::Shared, Some("pro"))));
    }

    fn platform(name: &str, priority: i32, flags: Value) -> FeatureFlagSet {
        set(
            "landlord-platform",
            name,
            json!({"priority": priority, "flags": flags}),
        )
    }

    fn own(name: &str, flags: Value) -> FeatureFlagSet {
        set("tenant-acme", name, json!({"flags": flags}))
    }

    fn boolean(name: &str, default: bool) -> Value {
        json!({"name": name, "type": "boolean",
               "variants": {"on": {"boolean": true}, "off": {"boolean": false}},
               "defaultVariant": if default {"on"} else {"off"}})
    }

    fn string(name: &str, value: &str) -> Value {
        json!({"name": name, "type": "string",
               "variants": {"v": {"string": value}}, "defaultVariant": "v"})
    }

    fn acme(tier: Tier, plan: Option<&str>) -> TenantFacts {
        TenantFacts {
            name: "acme".into(),
            tier,
            plan: plan.map(str::to_string),
            labels: BTreeMap::from([("segment".into(), "wholesale".into())]),
        }
    }

    fn value(r: &Resolution, key: &str) -> Value {
        r.flags
            .get(key)
            .map(|f| f.value.clone())
            .unwrap_or_default()
    }

    fn source(r: &Resolution, key: &str) -> String {
        r.flags
            .get(key)
            .map(|f| f.source.clone())
            .unwrap_or_default()
    }

    #[test]
    fn higher_priority_platform_set_wins_and_ties_break_by_name() {
        let low = platform("a-low", 10, json!([boolean("beta", false)]));
        let high = platform("z-high", 20, json!([boolean("beta", true)]));
        let r = resolve(&acme(Tier::Shared, None), [&low, &high], []);
        assert_eq!(value(&r, "beta"), json!(true));
        assert_eq!(source(&r, "beta"), "landlord-platform/z-high");
        assert!(r.problems.is_empty());

        let b = platform("b", 5, json!([string("color", "blue")]));
        let a = platform("a", 5, json!([string("color", "amber")]));
        for order in [[&a, &b], [&b, &a]] {
            let r = resolve(&acme(Tier::Shared, None), order, []);
            assert_eq!(value(&r, "color"), json!("amber"));
            assert_eq!(
                r.sets,
                ["landlord-platform/a", "landlord-platform/b"].map(String::from)
            );
        }
    }

    #[test]
    fn tenant_set_overrides_unlocked_platform_flags_and_adds_its_own() {
        let p = platform(
            "defaults",
            100,
            json!([string("search", "postgres"), boolean("beta", false)]),
        );
        let t = own(
            "overrides",
            json!([string("search", "opensearch"), boolean("mine", true)]),
        );
        let r = resolve(&acme(Tier::Shared, None), [&p], [&t]);
        assert_eq!(value(&r, "search"), json!("opensearch"));
        assert_eq!(source(&r, "search"), "tenant-acme/overrides");
        assert_eq!(value(&r, "beta"), json!(false));
        assert_eq!(source(&r, "beta"), "landlord-platform/defaults");
        assert_eq!(value(&r, "mine"), json!(true));
        assert!(r.problems.is_empty());
        assert_eq!(
            r.sets,
            ["landlord-platform/defaults", "tenant-acme/overrides"].map(String::from)
        );
    }

    #[test]
    fn locked_flag_keeps_the_platform_value_and_reports_the_override() {
        let mut kill = boolean("payments", true);
        kill["locked"] = json!(true);
        let p = platform("defaults", 100, json!([kill]));
        let t = own("overrides", json!([boolean("payments", false)]));
        let r = resolve(&acme(Tier::Shared, None), [&p], [&t]);
        assert_eq!(value(&r, "payments"), json!(true));
        assert_eq!(source(&r, "payments"), "landlord-platform/defaults");
        assert_eq!(
            r.problems,
            [Problem::LockedOverride {
                flag: "payments".into(),
                locked_by: "landlord-platform/defaults".into(),
                ignored: "tenant-acme/overrides".into(),
            }]
        );
        let message = r.problems[0].to_string();
        assert!(message.contains("payments") && message.contains("tenant-acme/overrides"));
        assert_eq!(r.problems[0].reason(), "LockedFlagOverride");
    }

    #[test]
    fn a_lock_in_a_lower_priority_set_still_locks_the_flag() {
        let high = platform("high", 50, json!([boolean("payments", true)]));
        let mut locked = boolean("payments", false);
        locked["locked"] = json!(true);
        let low = platform("low", 10, json!([locked]));
        let t = own("overrides", json!([boolean("payments", false)]));
        let r = resolve(&acme(Tier::Shared, None), [&high, &low], [&t]);
        assert_eq!(value(&r, "payments"), json!(true));
        assert_eq!(source(&r, "payments"), "landlord-platform/high");
        assert!(matches!(
            &r.problems[..],
            [Problem::LockedOverride { locked_by, .. }] if locked_by == "landlord-platform/low"
        ));
    }

    #[test]
    fn a_lock_in_a_set_that_does_not_select_the_tenant_does_not_apply() {
        let p = platform("defaults", 10, json!([boolean("payments", true)]));
        let mut locked = boolean("payments", true);
        locked["locked"] = json!(true);
        let other = set(
            "landlord-platform",
            "enterprise-only",
            json!({"priority": 5, "selector": {"plans": ["enterprise"]}, "flags": [locked]}),
        );
        let t = own("overrides", json!([boolean("payments", false)]));
        let r = resolve(&acme(Tier::Shared, Some("pro")), [&p, &other], [&t]);
        assert_eq!(value(&r, "payments"), json!(false));
        assert!(r.problems.is_empty());
    }

    #[test]
    fn selectors_pick_platform_sets_by_plan_tier_name_and_labels() {
        let mk = |name: &str, selector: Value| {
            set(
                "landlord-platform",
                name,
                json!({"selector": selector, "flags": [string(name, "yes")]}),
            )
        };
        let sets = [
            mk("all", json!({})),
            mk("pro", json!({"plans": ["pro"]})),
            mk("enterprise", json!({"plans": ["enterprise"]})),
            mk("dedicated", json!({"tiers": ["dedicated"]})),
            mk("acme-only", json!({"tenants": ["acme"]})),
            mk(
                "wholesale",
                json!({"matchLabels": {"segment": "wholesale"}}),
            ),
            mk("retail", json!({"matchLabels": {"segment": "retail"}})),
            mk(
                "pro-and-dedicated",
                json!({"plans": ["pro"], "tiers": ["dedicated"]}),
            ),
        ];
        let mut no_selector = mk("unset", json!({}));
        no_selector.spec.selector = None;
        let r = resolve(
            &acme(Tier::Shared, Some("pro")),
            sets.iter().chain([&no_selector]),
            [],
        );
        let keys: Vec<&str> = r.flags.keys().map(String::as_str).collect();
        assert_eq!(keys, ["acme-only", "all", "pro", "unset", "wholesale"]);
    }

    #[test]
    fn rules_target_by_plan_and_tier_first_match_wins() {
        let p = platform(
            "defaults",
            0,
            json!([{
                "name": "checkout", "type": "string",
                "variants": {"old": {"string": "v1"}, "new": {"string": "v2"}, "vip": {"string": "v3"}},
                "defaultVariant": "old",
                "rules": [
                    {"tiers": ["dedicated"], "plans": ["enterprise"], "variant": "vip"},
                    {"plans": ["pro", "enterprise"], "variant": "new"},
                    {"tiers": ["dedicated"], "variant": "new"},
                ]
            }]),
        );
        let case = |tier, plan| {
            let r = resolve(&acme(tier, plan), [&p], []);
            let f = r.flags.get("checkout").cloned().expect("flag");
            (f.variant, f.reason)
        };
        assert_eq!(
            case(Tier::Dedicated, Some("enterprise")),
            ("vip".into(), Reason::TargetingMatch)
        );
        assert_eq!(
            case(Tier::Shared, Some("enterprise")),
            ("new".into(), Reason::TargetingMatch)
        );
        assert_eq!(
            case(Tier::Shared, Some("pro")),
            ("new".into(), Reason::TargetingMatch)
        );
        assert_eq!(
            case(Tier::Dedicated, Some("free")),
            ("new".into(), Reason::TargetingMatch)
        );
        assert_eq!(
            case(Tier::Shared, Some("free")),
            ("old".into(), Reason::Default)
        );
        // No plan never matches a rule on plans.
        assert_eq!(case(Tier::Shared, None), ("old".into(), Reason::Default));
    }

    #[test]
    fn rules_target_by_tenant_name_and_labels() {
        let p = platform(
            "defaults",
            0,
            json!([{
                "name": "limit", "type": "integer",
                "variants": {"small": {"integer": 50}, "large": {"integer": 500}, "huge": {"integer": 5000}},
                "defaultVariant": "small",
                "rules": [
                    {"tenants": ["globex"], "variant": "huge"},
                    {"matchLabels": {"segment": "wholesale", "region": "eu"}, "variant": "huge"},
                    {"matchLabels": {"segment": "wholesale"}, "variant": "large"},
                ]
            }]),
        );
        let r = resolve(&acme(Tier::Shared, None), [&p], []);
        assert_eq!(value(&r, "limit"), json!(500));
        let mut globex = acme(Tier::Shared, None);
        globex.name = "globex".into();
        assert_eq!(value(&resolve(&globex, [&p], []), "limit"), json!(5000));
        let mut eu = acme(Tier::Shared, None);
        eu.labels.insert("region".into(), "eu".into());
        assert_eq!(value(&resolve(&eu, [&p], []), "limit"), json!(5000));
        let mut plain = acme(Tier::Shared, None);
        plain.labels.clear();
        let r = resolve(&plain, [&p], []);
        assert_eq!(
            (value(&r, "limit"), r.flags["limit"].reason),
            (json!(50), Reason::Default)
        );
    }

    #[test]
    fn a_flag_without_rules_is_static() {
        let p = platform("defaults", 0, json!([boolean("beta", true)]));
        let r = resolve(&acme(Tier::Shared, None), [&p], []);
        assert_eq!(r.flags["beta"].reason, Reason::Static);
        assert_eq!(r.flags["beta"].variant, "on");
    }

    #[test]
    fn type_conflict_between_platform_sets_keeps_the_higher_priority_and_names_both() {
        let a = platform("a", 20, json!([boolean("beta", true)]));
        let b = platform("b", 10, json!([string("beta", "yes")]));
        let r = resolve(&acme(Tier::Shared, None), [&b, &a], []);
        assert_eq!(value(&r, "beta"), json!(true));
        assert_eq!(r.flags["beta"].type_, FlagType::Boolean);
        assert_eq!(
            r.problems,
            [Problem::TypeConflict {
                flag: "beta".into(),
                kept: "landlord-platform/a".into(),
                kept_type: FlagType::Boolean,
                ignored: "landlord-platform/b".into(),
                ignored_type: FlagType::String,
            }]
        );
        let message = r.problems[0].to_string();
        assert!(
            message.contains("landlord-platform/a")
                && message.contains("landlord-platform/b")
                && message.contains("boolean")
                && message.contains("string"),
            "{message}"
        );
        assert_eq!(r.problems[0].reason(), "FlagConflict");
    }

    #[test]
    fn tenant_set_of_another_type_is_ignored_and_reported() {
        let p = platform("defaults", 0, json!([boolean("beta", false)]));
        let t = own("overrides", json!([string("beta", "on")]));
        let r = resolve(&acme(Tier::Shared, None), [&p], [&t]);
        assert_eq!(value(&r, "beta"), json!(false));
        assert!(matches!(
            &r.problems[..],
            [Problem::TypeConflict { kept, ignored, .. }]
                if kept == "landlord-platform/defaults" && ignored == "tenant-acme/overrides"
        ));
    }

    #[test]
    fn type_conflict_between_tenant_sets_keeps_the_first_by_priority() {
        let mut first = own("b-first", json!([string("mine", "x")]));
        first.spec.priority = 5;
        let second = own("a-second", json!([boolean("mine", true)]));
        let r = resolve(&acme(Tier::Shared, None), [], [&second, &first]);
        assert_eq!(value(&r, "mine"), json!("x"));
        assert!(matches!(
            &r.problems[..],
            [Problem::TypeConflict { kept, .. }] if kept == "tenant-acme/b-first"
        ));
    }

    #[test]
    fn values_of_every_type_are_served_as_typed_json() {
        let p = platform(
            "defaults",
            0,
            json!([
                {"name": "i", "type": "integer", "variants": {"v": {"integer": -7}}, "defaultVariant": "v"},
                {"name": "f", "type": "float", "variants": {"v": {"float": 1.0}}, "defaultVariant": "v"},
                {"name": "o", "type": "object", "variants": {"v": {"object": {"rpm": 600, "tags": ["a"]}}}, "defaultVariant": "v"},
            ]),
        );
        let r = resolve(&acme(Tier::Shared, None), [&p], []);
        assert_eq!(value(&r, "i"), json!(-7));
        assert_eq!(
            serde_json::to_string(&r.flags["f"].value).ok().as_deref(),
            Some("1.0")
        );
        assert_eq!(value(&r, "o"), json!({"rpm": 600, "tags": ["a"]}));
        let serialized = serde_json::to_value(&r.flags["f"]).expect("serialize");
        assert_eq!(
            serialized,
            json!({"type": "float", "value": 1.0, "variant": "v", "reason": "STATIC", "source": "landlord-platform/defaults"})
        );
    }

    #[test]
    fn an_object_value_larger_than_the_bound_is_left_out_and_reported() {
        let big = "x".repeat(MAX_OBJECT_VALUE_BYTES);
        let p = platform(
            "defaults",
            0,
            json!([{"name": "theme", "type": "object", "variants": {"v": {"object": {"nested": {"logo": big}}}}, "defaultVariant": "v"},
                   {"name": "small", "type": "object", "variants": {"v": {"object": {"nested": {"logo": "a.svg"}}}}, "defaultVariant": "v"}]),
        );
        let r = resolve(&acme(Tier::Shared, None), [&p], []);
        assert_eq!(r.flags.keys().collect::<Vec<_>>(), ["small"]);
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].reason(), "InvalidFlag");
        assert!(
            r.problems[0].to_string().contains("theme"),
            "{}",
            r.problems[0]
        );
        assert!(
            r.problems[0].to_string().contains("16384"),
            "{}",
            r.problems[0]
        );
    }

    #[test]
    fn a_definition_that_cannot_be_evaluated_is_left_out_and_reported() {
        let p = platform(
            "defaults",
            0,
            json!([{"name": "x", "type": "integer", "variants": {"v": {"string": "nope"}}, "defaultVariant": "v"},
                   {"name": "y", "type": "boolean", "variants": {"v": {"boolean": true}}, "defaultVariant": "missing"}]),
        );
        let r = resolve(&acme(Tier::Shared, None), [&p], []);
        assert!(r.flags.is_empty());
        assert_eq!(r.problems.len(), 2);
        assert!(r.problems.iter().all(|p| p.reason() == "InvalidFlag"));
    }

    #[test]
    fn resolving_some_keys_gives_the_same_answer_for_those_keys() {
        let a = platform("a", 20, json!([boolean("beta", true), string("s", "x")]));
        let b = platform("b", 10, json!([string("beta", "yes"), string("t", "y")]));
        let t = own("mine", json!([string("s", "z"), string("u", "w")]));
        let facts = acme(Tier::Shared, None);
        let all = resolve(&facts, [&a, &b], [&t]);
        let some = resolve_keys(&facts, [&a, &b], [&t], |k| k == "beta" || k == "s");
        assert_eq!(some.flags.keys().collect::<Vec<_>>(), ["beta", "s"]);
        assert_eq!(some.flags["beta"], all.flags["beta"]);
        assert_eq!(some.flags["s"], all.flags["s"]);
        assert_eq!(some.problems, all.problems);
    }

    #[test]
    fn revision_depends_only_on_the_flags() {
        let a = platform("a", 1, json!([boolean("beta", true), string("s", "x")]));
        let b = platform("b", 0, json!([string("t", "y")]));
        let one = resolve(&acme(Tier::Shared, None), [&a, &b], []);
        let two = resolve(&acme(Tier::Shared, None), [&b, &a], []);
        assert_eq!(one.revision(), two.revision());
        assert_eq!(one.revision().len(), 64);
        assert!(one.revision().chars().all(|c| c.is_ascii_hexdigit()));
        let changed = platform("a", 1, json!([boolean("beta", false), string("s", "x")]));
        let three = resolve(&acme(Tier::Shared, None), [&changed, &b], []);
        assert_ne!(one.revision(), three.revision());
        // The revision is the SHA-256 of the canonical JSON of the flags object.
        let expected =
            Sha256::digest(canonical(&serde_json::to_value(&one.flags).expect("json")).as_bytes());
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(one.revision(), hex);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut inner = serde_json::Map::new();
        inner.insert("z".into(), json!(1));
        inner.insert("a".into(), json!([{"y": 2, "b": 1.5}]));
        let value = json!({"k": Value::Object(inner), "b": "s\"q"});
        assert_eq!(
            canonical(&value),
            r#"{"b":"s\"q","k":{"a":[{"b":1.5,"y":2}],"z":1}}"#
        );
    }
}
