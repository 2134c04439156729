//! `e2e/cluster down` leaves no process behind. Runs a second, independent stack in its own
//! state directory so the shared one keeps serving the other tests.

use std::{collections::BTreeSet, path::Path};

use landlord_e2e::{cluster::repo_root, unique_name};

fn run(command: &str, dir: &Path) -> anyhow::Result<()> {
    landlord_e2e::cluster::run_script(dir, command)
}

/// Parent pid of every live process (zombies count as gone).
fn processes() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after_name = &stat[stat.rfind(')')? + 2..];
            let mut fields = after_name.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            (state != "Z").then_some((pid, ppid))
        })
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The stack's processes: those in its pid files, those whose command line names its
/// directories, and all their descendants.
fn stack_processes(dir: &Path, pg_dir: &str) -> BTreeSet<u32> {
    let dir_text = dir.to_string_lossy().to_string();
    let mut stack: BTreeSet<u32> = std::fs::read_dir(dir.join("pids"))
        .into_iter()
        .flatten()
        .filter_map(|e| {
            std::fs::read_to_string(e.ok()?.path())
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    let all = processes();
    stack.retain(|pid| all.iter().any(|(p, _)| p == pid));
    for (pid, _) in &all {
        let line = cmdline(*pid);
        if line.contains(&dir_text) || (!pg_dir.is_empty() && line.contains(pg_dir)) {
            stack.insert(*pid);
        }
    }
    loop {
        let before = stack.len();
        for (pid, ppid) in &all {
            if stack.contains(ppid) {
                stack.insert(*pid);
            }
        }
        if stack.len() == before {
            return stack;
        }
    }
}

#[test]
fn cluster_down_leaves_no_process_behind() -> anyhow::Result<()> {
    let dir = repo_root()
        .join("target")
        .join(unique_name("landlord-dev-down"));
    run("up", &dir)?;
    let pg_dir = std::fs::read_link(dir.join("postgres"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let running = stack_processes(&dir, &pg_dir);
    let names: BTreeSet<String> = running.iter().map(|p| cmdline(*p)).collect();
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "postgres",
        "nats-server",
        "knotd",
    ] {
        assert!(
            names.iter().any(|n| n.contains(component)),
            "{component} is not running after up: {names:#?}"
        );
    }
    run("down", &dir)?;
    let left: Vec<String> = stack_processes(&dir, &pg_dir)
        .iter()
        .map(|p| format!("{p}: {}", cmdline(*p)))
        .collect();
    // `clean` also removes the state directory and PostgreSQL's directory in /tmp.
    let _ = run("clean", &dir);
    assert!(
        left.is_empty(),
        "processes left after down:\n{}",
        left.join("\n")
    );
    Ok(())
}
