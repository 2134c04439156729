//! Reading what Landlord's processes log (`--log-format json`, one object per line).

use std::{net::SocketAddr, path::Path};

/// The address a process logged that it listens on: the `field` of the first JSON log line
/// whose message is `message`, e.g. `("serving the API", "probe_address")`. `None` until
/// that line is written (or when the log cannot be read).
///
/// Test harnesses start processes on port 0 and read the port the kernel chose from here,
/// so that no other process can take it between choosing and binding.
pub fn bound_address(log: &Path, message: &str, field: &str) -> Option<SocketAddr> {
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == message)?["fields"][field]
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_line_with_the_message() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(crate::unique_name("logs-test"));
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("process.log");
        std::fs::write(
            &log,
            concat!(
                "{\"level\":\"INFO\",\"fields\":{\"message\":\"starting\",\"address\":\"127.0.0.1:1\"}}\n",
                "not json\n",
                "{\"level\":\"INFO\",\"fields\":{\"message\":\"serving\",\"address\":\"127.0.0.1:4242\"}}\n",
            ),
        )?;
        assert_eq!(
            bound_address(&log, "serving", "address"),
            Some("127.0.0.1:4242".parse()?)
        );
        assert_eq!(bound_address(&log, "serving", "probe_address"), None);
        assert_eq!(bound_address(&log, "stopped", "address"), None);
        assert_eq!(
            bound_address(&dir.join("absent.log"), "serving", "address"),
            None
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
