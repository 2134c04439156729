//! A tenant's effective flags as Landlord writes them: key `flags.json` of the ConfigMap
//! `landlord-flags` in the tenant's namespace.
//!
//! ```json
//! {"tenant": "acme", "revision": "<sha256>", "flags": {
//!   "new-checkout": {"type": "boolean", "value": true, "variant": "on",
//!                    "reason": "TARGETING_MATCH", "source": "landlord-platform/checkout"}}}
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Name of the ConfigMap that holds a tenant's effective flags.
pub const CONFIG_MAP: &str = "landlord-flags";
/// Its key.
pub const KEY: &str = "flags.json";

/// The effective flags of one tenant.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct FlagsDocument {
    pub tenant: String,
    #[serde(default)]
    pub revision: String,
    #[serde(default)]
    pub flags: BTreeMap<String, Flag>,
}

/// One flag, already evaluated for the tenant by the operator.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Flag {
    #[serde(rename = "type")]
    pub kind: FlagType,
    pub value: Value,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// The declared type of a flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    Boolean,
    String,
    Integer,
    Float,
    Object,
}

impl Flag {
    /// Whether the value is of the declared type (an integer is also a valid float).
    pub fn well_typed(&self) -> bool {
        match self.kind {
            FlagType::Boolean => self.value.is_boolean(),
            FlagType::String => self.value.is_string(),
            FlagType::Integer => self.value.is_i64() || self.value.is_u64(),
            FlagType::Float => self.value.is_number(),
            FlagType::Object => self.value.is_object(),
        }
    }
}

/// Why a flags document cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("ConfigMap {CONFIG_MAP} has no key {KEY}")]
    MissingKey,
    #[error("{KEY} of ConfigMap {CONFIG_MAP} is not a flags document: {0}")]
    Malformed(String),
    #[error("{KEY} of ConfigMap {CONFIG_MAP} is for tenant {found}, not {expected}")]
    WrongTenant { expected: String, found: String },
}

impl FlagsDocument {
    /// Reads the document of `tenant` from the ConfigMap's data.
    pub fn from_data(
        tenant: &str,
        data: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, DocumentError> {
        let text = data
            .and_then(|d| d.get(KEY))
            .ok_or(DocumentError::MissingKey)?;
        let document: FlagsDocument =
            serde_json::from_str(text).map_err(|e| DocumentError::Malformed(e.to_string()))?;
        if document.tenant != tenant {
            return Err(DocumentError::WrongTenant {
                expected: tenant.to_string(),
                found: document.tenant,
            });
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn data(text: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(KEY.to_string(), text.to_string())])
    }

    #[test]
    fn the_contract_format_is_read() {
        let doc = FlagsDocument::from_data(
            "acme",
            Some(&data(
                r#"{"tenant":"acme","revision":"ab12","flags":{
                    "dark-mode":{"type":"boolean","value":true,"variant":"on","reason":"STATIC","source":"p/ui"},
                    "limits":{"type":"object","value":{"max":3},"variant":"pro","reason":"TARGETING_MATCH","source":"p/limits"}}}"#,
            )),
        )
        .unwrap();
        assert_eq!(doc.revision, "ab12");
        assert_eq!(doc.flags["dark-mode"].kind, FlagType::Boolean);
        assert_eq!(doc.flags["limits"].value["max"], 3);
        assert!(doc.flags.values().all(Flag::well_typed));
    }

    #[test]
    fn a_document_of_another_tenant_or_without_the_key_is_refused() {
        assert_eq!(
            FlagsDocument::from_data("acme", Some(&data(r#"{"tenant":"globex","flags":{}}"#))),
            Err(DocumentError::WrongTenant {
                expected: "acme".into(),
                found: "globex".into()
            })
        );
        assert_eq!(
            FlagsDocument::from_data("acme", None),
            Err(DocumentError::MissingKey)
        );
        assert!(matches!(
            FlagsDocument::from_data("acme", Some(&data("{"))),
            Err(DocumentError::Malformed(_))
        ));
    }

    #[test]
    fn values_are_checked_against_their_declared_type() {
        let flag = |kind, value| Flag {
            kind,
            value,
            variant: None,
            reason: None,
            source: None,
        };
        assert!(flag(FlagType::Integer, 3.into()).well_typed());
        assert!(!flag(FlagType::Integer, 3.5.into()).well_typed());
        assert!(flag(FlagType::Float, 3.into()).well_typed());
        assert!(!flag(FlagType::String, true.into()).well_typed());
        assert!(!flag(FlagType::Object, serde_json::json!([1])).well_typed());
    }
}
