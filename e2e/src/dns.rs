//! The local stack's DNS server (Knot, authoritative for `LANDLORD_DNS_ZONE` and for the
//! zones added at run time): tests add and remove the TXT records that prove ownership of
//! their hostnames.

use std::path::Path;

use crate::{Cluster, cluster::run_script_args};

impl Cluster {
    /// Address of the DNS server, `127.0.0.1:<port>` (what `landlord run --dns-resolver` takes).
    pub fn dns_server(&self) -> &str {
        self.var("LANDLORD_DNS_SERVER")
    }

    /// The zone the DNS server serves; test hostnames live under it.
    pub fn dns_zone(&self) -> &str {
        self.var("LANDLORD_DNS_ZONE")
    }

    /// Adds a TXT record `name` (fully qualified, inside a zone the server serves) holding
    /// `value`. Errors, naming `dns add-zone`, for a name in no served zone.
    pub fn set_txt(&self, name: &str, value: &str) -> anyhow::Result<()> {
        run_script_args(self.dir(), &["dns", "set-txt", name, value])
    }

    /// Makes the server authoritative for `zone` too (a customer's zone, as its DNS provider
    /// would be); harmless when it already is.
    pub fn add_zone(&self, zone: &str) -> anyhow::Result<()> {
        run_script_args(self.dir(), &["dns", "add-zone", zone])
    }

    /// Removes the TXT record `name` holding `value`.
    pub fn unset_txt(&self, name: &str, value: &str) -> anyhow::Result<()> {
        run_script_args(self.dir(), &["dns", "unset-txt", name, value])
    }

    fn dir(&self) -> &Path {
        Path::new(self.var("LANDLORD_DEV_DIR"))
    }
}
