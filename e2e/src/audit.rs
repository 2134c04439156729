//! The API server's audit log (the stack writes every request to `LANDLORD_AUDIT_LOG`):
//! what the operator wrote, in order. Tests use it to prove that an unchanged world causes
//! no writes, and in which order a deletion went.

use serde_json::Value;

use crate::{Cluster, operator};

/// One write by the operator, as `verb resource namespace/name`.
struct Write {
    verb: String,
    resource: String,
    namespace: String,
    name: String,
    /// The HTTP status the API server answered with.
    code: Option<i64>,
}

impl std::fmt::Display for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}/{}",
            self.verb, self.resource, self.namespace, self.name
        )
    }
}

/// The operator's completed writes from line `from_line` on (Lease renewals left out:
/// leader election writes by design), and the log's length in lines.
fn writes(cluster: &Cluster, from_line: usize) -> anyhow::Result<(usize, Vec<Write>)> {
    let path = cluster.var("LANDLORD_AUDIT_LOG");
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the audit log {path}: {e}"))?;
    let user = format!(
        "system:serviceaccount:{}:{}",
        operator::NAMESPACE,
        operator::SERVICE_ACCOUNT
    );
    let lines: Vec<&str> = text.lines().collect();
    let mut writes = Vec::new();
    for line in lines.iter().skip(from_line) {
        let entry: Value = serde_json::from_str(line)?;
        let verb = entry["verb"].as_str().unwrap_or_default();
        let object = &entry["objectRef"];
        let resource = object["resource"].as_str().unwrap_or_default();
        if entry["stage"] == "ResponseComplete"
            && entry["user"]["username"] == user.as_str()
            && matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
            && resource != "leases"
        {
            writes.push(Write {
                verb: verb.into(),
                resource: resource.into(),
                namespace: object["namespace"].as_str().unwrap_or_default().into(),
                name: object["name"].as_str().unwrap_or_default().into(),
                code: entry["responseStatus"]["code"].as_i64(),
            });
        }
    }
    Ok((lines.len(), writes))
}

/// The operator's writes from line `from_line` on, as `verb resource namespace/name`, and
/// the log's length (the `from_line` of the next call).
pub fn operator_writes(
    cluster: &Cluster,
    from_line: usize,
) -> anyhow::Result<(usize, Vec<String>)> {
    let (len, writes) = writes(cluster, from_line)?;
    Ok((len, writes.iter().map(ToString::to_string).collect()))
}

/// The objects the operator deleted (successfully), in order, as `resource namespace/name`.
pub fn operator_deletes(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let (_, writes) = writes(cluster, 0)?;
    Ok(writes
        .into_iter()
        .filter(|w| w.verb == "delete" && w.code.is_some_and(|c| c < 300))
        .map(|w| format!("{} {}/{}", w.resource, w.namespace, w.name))
        .collect())
}

/// Every completed request (`stage: ResponseComplete`) on the object `resource/name`, as the
/// audit log's JSON entries, in order: who made it (`user`, `impersonatedUser`), its `verb`,
/// `auditID` and `responseStatus`.
pub fn requests_on(cluster: &Cluster, resource: &str, name: &str) -> anyhow::Result<Vec<Value>> {
    Ok(requests_on_resource(cluster, resource)?
        .into_iter()
        .filter(|e| e["objectRef"]["name"] == name)
        .collect())
}

/// Every completed request on objects of `resource` (any name), as the audit log's JSON
/// entries, in order.
pub fn requests_on_resource(cluster: &Cluster, resource: &str) -> anyhow::Result<Vec<Value>> {
    let path = cluster.var("LANDLORD_AUDIT_LOG");
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the audit log {path}: {e}"))?;
    let mut found = Vec::new();
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line)?;
        if entry["stage"] == "ResponseComplete" && entry["objectRef"]["resource"] == resource {
            found.push(entry);
        }
    }
    Ok(found)
}
