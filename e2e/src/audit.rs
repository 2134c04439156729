//! The API server's audit log (the stack writes every request to `LANDLORD_AUDIT_LOG`):
//! what the operator wrote, in order. Tests use it to prove that an unchanged world causes
//! no writes, and in which order a deletion went.
//!
//! Places in the log are byte offsets: [`end`] marks one without reading the log (which
//! grows to hundreds of megabytes over a test run), and the readers parse only the complete
//! lines after a mark that can concern them.

use std::io::{Read, Seek, SeekFrom};

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

/// The log's end now, in bytes: the `from` of a later read that sees only what comes after.
pub fn end(cluster: &Cluster) -> anyhow::Result<u64> {
    let path = cluster.var("LANDLORD_AUDIT_LOG");
    Ok(std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("reading the audit log {path}: {e}"))?
        .len())
}

/// The completed requests (`stage: ResponseComplete`) from byte `from` on whose line holds
/// `needle`, parsed, and the offset after the last complete line (a line the API server is
/// still writing is left for the next read). A mark taken while the API server wrote a line
/// falls inside it: that line began before the mark and is left out.
fn completed(cluster: &Cluster, from: u64, needle: &str) -> anyhow::Result<(u64, Vec<Value>)> {
    let path = cluster.var("LANDLORD_AUDIT_LOG");
    let context = |e: std::io::Error| anyhow::anyhow!("reading the audit log {path}: {e}");
    let mut file = std::fs::File::open(path).map_err(context)?;
    let len = file.metadata().map_err(context)?.len();
    anyhow::ensure!(
        from <= len,
        "the audit log {path} is shorter ({len} bytes) than the mark {from}: it was made again"
    );
    // One byte before the mark: whether the mark is at a line's start.
    let before = from.saturating_sub(1);
    file.seek(SeekFrom::Start(before)).map_err(context)?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(context)?;
    let start = if from == 0 {
        0
    } else {
        text.iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |i| i + 1)
    };
    let complete = text
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1)
        .max(start);
    let text = std::str::from_utf8(&text[start..complete])?;
    let mut found = Vec::new();
    for line in text.lines().filter(|l| l.contains(needle)) {
        let entry: Value = serde_json::from_str(line)?;
        if entry["stage"] == "ResponseComplete" {
            found.push(entry);
        }
    }
    Ok((before + complete as u64, found))
}

/// The operator's completed writes from byte `from` on (Lease renewals left out: leader
/// election writes by design), and the offset to read from next.
fn writes(cluster: &Cluster, from: u64) -> anyhow::Result<(u64, Vec<Write>)> {
    let user = format!(
        "system:serviceaccount:{}:{}",
        operator::NAMESPACE,
        operator::SERVICE_ACCOUNT
    );
    let (next, entries) = completed(cluster, from, &user)?;
    let writes = entries
        .into_iter()
        .filter(|entry| entry["user"]["username"] == user.as_str())
        .filter_map(|entry| {
            let verb = entry["verb"].as_str().unwrap_or_default();
            let object = &entry["objectRef"];
            let resource = object["resource"].as_str().unwrap_or_default();
            (matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection"
            ) && resource != "leases")
                .then(|| Write {
                    verb: verb.into(),
                    resource: resource.into(),
                    namespace: object["namespace"].as_str().unwrap_or_default().into(),
                    name: object["name"].as_str().unwrap_or_default().into(),
                    code: entry["responseStatus"]["code"].as_i64(),
                })
        })
        .collect();
    Ok((next, writes))
}

/// The operator's writes from byte `from` on (a mark from [`end`]), as
/// `verb resource namespace/name`, and the offset to read from next.
pub fn operator_writes(cluster: &Cluster, from: u64) -> anyhow::Result<(u64, Vec<String>)> {
    let (next, writes) = writes(cluster, from)?;
    Ok((next, writes.iter().map(ToString::to_string).collect()))
}

/// The objects the operator deleted (successfully) from byte `from` on (a mark from
/// [`end`]), in order, as `resource namespace/name`.
pub fn operator_deletes(cluster: &Cluster, from: u64) -> anyhow::Result<Vec<String>> {
    let (_, writes) = writes(cluster, from)?;
    Ok(writes
        .into_iter()
        .filter(|w| w.verb == "delete" && w.code.is_some_and(|c| c < 300))
        .map(|w| format!("{} {}/{}", w.resource, w.namespace, w.name))
        .collect())
}

/// Every completed request (`stage: ResponseComplete`) on the object `resource/name`, as the
/// audit log's JSON entries, in order: who made it (`user`, `impersonatedUser`), its `verb`,
/// `auditID` and `responseStatus`. Reads the whole log, but parses only the lines naming
/// `name` (tests give their objects unique names).
pub fn requests_on(cluster: &Cluster, resource: &str, name: &str) -> anyhow::Result<Vec<Value>> {
    let (_, entries) = completed(cluster, 0, name)?;
    Ok(entries
        .into_iter()
        .filter(|e| e["objectRef"]["resource"] == resource && e["objectRef"]["name"] == name)
        .collect())
}

/// Every completed request on objects of `resource` (any name) from byte `from` on (a mark
/// from [`end`]), as the audit log's JSON entries, in order.
pub fn requests_on_resource(
    cluster: &Cluster,
    from: u64,
    resource: &str,
) -> anyhow::Result<Vec<Value>> {
    let (_, entries) = completed(cluster, from, resource)?;
    Ok(entries
        .into_iter()
        .filter(|e| e["objectRef"]["resource"] == resource)
        .collect())
}
