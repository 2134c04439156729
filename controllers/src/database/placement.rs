//! Where a shared tenant's database goes: the recorded server (it never moves), the one the
//! spec names, or the least-loaded server with room. Pure.

use landlord_crds::conditions::Reason;
use std::collections::BTreeMap;

use super::config::ServerConfig;

/// Why no server can take the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The operator has no shared servers configured.
    NoServers,
    /// The named (or recorded) server is not in the operator's configuration.
    UnknownServer { name: String, recorded: bool },
    /// The spec names another server than the one the database already lives on.
    Moved { recorded: String, requested: String },
    /// Every eligible server is at capacity.
    Full { servers: Vec<String> },
}

impl Refusal {
    /// CamelCase reason of the `DatabaseReady` condition.
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::NoServers => Reason::NoDatabaseServers,
            Refusal::UnknownServer { .. } => Reason::ServerNotFound,
            Refusal::Moved { .. } => Reason::PlacementImmutable,
            Refusal::Full { .. } => Reason::CapacityFull,
        }
    }

    /// Message naming the field or server at fault.
    pub fn message(&self, servers: &[ServerConfig]) -> String {
        let known = servers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            Refusal::NoServers => {
                "the operator has no shared PostgreSQL servers configured (--database-servers)"
                    .into()
            }
            Refusal::UnknownServer {
                name,
                recorded: false,
            } => format!("spec.database.server: no server named {name:?}; configured: {known}"),
            Refusal::UnknownServer {
                name,
                recorded: true,
            } => format!(
                "status.database.server: the database lives on {name:?}, which is no longer configured"
            ),
            Refusal::Moved {
                recorded,
                requested,
            } => format!(
                "spec.database.server: the database lives on {recorded:?} and is never moved to {requested:?}; set it back to {recorded:?} or remove it"
            ),
            Refusal::Full { servers } => {
                format!(
                    "every eligible server is at capacity: {}",
                    servers.join(", ")
                )
            }
        }
    }
}

/// Chooses the server. `loads` counts the databases already placed on each server (other
/// tenants only).
pub fn place(
    servers: &[ServerConfig],
    recorded: Option<&str>,
    requested: Option<&str>,
    loads: &BTreeMap<String, u32>,
) -> Result<String, Refusal> {
    let load = |name: &str| loads.get(name).copied().unwrap_or(0);
    if let Some(recorded) = recorded {
        if let Some(requested) = requested.filter(|r| *r != recorded) {
            return Err(Refusal::Moved {
                recorded: recorded.into(),
                requested: requested.into(),
            });
        }
        return servers
            .iter()
            .find(|s| s.name == recorded)
            .map(|s| s.name.clone())
            .ok_or(Refusal::UnknownServer {
                name: recorded.into(),
                recorded: true,
            });
    }
    if servers.is_empty() {
        return Err(Refusal::NoServers);
    }
    let candidates: Vec<&ServerConfig> =
        match requested {
            Some(requested) => vec![servers.iter().find(|s| s.name == requested).ok_or(
                Refusal::UnknownServer {
                    name: requested.into(),
                    recorded: false,
                },
            )?],
            None => servers.iter().collect(),
        };
    candidates
        .iter()
        .filter(|s| load(&s.name) < s.capacity)
        // Least loaded relative to capacity; ties go to the earlier server in the list.
        // Compared as fractions by cross-multiplication, so no rounding decides.
        .min_by(|a, b| {
            (u64::from(load(&a.name)) * u64::from(b.capacity))
                .cmp(&(u64::from(load(&b.name)) * u64::from(a.capacity)))
        })
        .map(|s| s.name.clone())
        .ok_or_else(|| Refusal::Full {
            servers: candidates.iter().map(|s| s.name.clone()).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::config::SecretRef;

    fn server(name: &str, capacity: u32) -> ServerConfig {
        ServerConfig {
            name: name.into(),
            host: format!("{name}.db"),
            port: 5432,
            admin_secret: SecretRef {
                namespace: "ns".into(),
                name: name.into(),
            },
            capacity,
            ssl_mode: "prefer".into(),
            network: Default::default(),
        }
    }

    fn loads(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(n, l)| (n.to_string(), *l)).collect()
    }

    #[test]
    fn least_loaded_relative_to_capacity_wins() {
        let servers = [server("a", 10), server("b", 100)];
        assert_eq!(
            place(&servers, None, None, &loads(&[("a", 2), ("b", 5)])),
            Ok("b".into())
        );
        assert_eq!(
            place(&servers, None, None, &loads(&[])),
            Ok("a".into()),
            "ties: list order"
        );
        assert_eq!(
            place(&servers, None, None, &loads(&[("a", 1), ("b", 10)])),
            Ok("a".into())
        );
    }

    #[test]
    fn spreading_alternates_between_equal_servers() {
        let servers = [server("a", 10), server("b", 10)];
        let mut l = BTreeMap::new();
        for _ in 0..6 {
            let s = place(&servers, None, None, &l).expect("room");
            *l.entry(s).or_insert(0) += 1;
        }
        assert_eq!(l, loads(&[("a", 3), ("b", 3)]));
    }

    #[test]
    fn explicit_choice_is_honoured_unless_full_or_unknown() {
        let servers = [server("a", 1), server("b", 10)];
        assert_eq!(
            place(&servers, None, Some("a"), &loads(&[])),
            Ok("a".into())
        );
        assert_eq!(
            place(&servers, None, Some("a"), &loads(&[("a", 1)])),
            Err(Refusal::Full {
                servers: vec!["a".into()]
            })
        );
        let unknown = place(&servers, None, Some("z"), &loads(&[])).expect_err("unknown");
        assert_eq!(unknown.reason(), "ServerNotFound");
        assert!(
            unknown
                .message(&servers)
                .starts_with("spec.database.server")
        );
    }

    #[test]
    fn a_recorded_placement_never_moves() {
        let servers = [server("a", 1), server("b", 10)];
        // Even over capacity (it is already there) and with a lighter server around.
        assert_eq!(
            place(&servers, Some("a"), None, &loads(&[("a", 5)])),
            Ok("a".into())
        );
        assert_eq!(
            place(&servers, Some("a"), Some("a"), &loads(&[])),
            Ok("a".into())
        );
        let moved = place(&servers, Some("a"), Some("b"), &loads(&[])).expect_err("moved");
        assert_eq!(moved.reason(), "PlacementImmutable");
        let gone = place(&servers[1..], Some("a"), None, &loads(&[])).expect_err("gone");
        assert!(gone.message(&servers).starts_with("status.database.server"));
    }

    #[test]
    fn no_servers_and_all_full_are_reported() {
        assert_eq!(place(&[], None, None, &loads(&[])), Err(Refusal::NoServers));
        let servers = [server("a", 1), server("b", 1)];
        assert_eq!(
            place(&servers, None, None, &loads(&[("a", 1), ("b", 1)])).map_err(|r| r.reason()),
            Err(Reason::CapacityFull)
        );
    }
}
