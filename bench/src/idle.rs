//! Idle CPU of a running process, from `/proc`: utime + stime over an interval without traffic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// CPU ticks and context switches of one thread (or of the whole process).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Sample {
    user: u64,
    system: u64,
    switches: u64,
}

/// `(utime, stime)` from a `/proc/.../stat` line; fields 14 and 15, counted after the `comm`
/// field, which is in parentheses and may contain spaces.
fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// Voluntary + involuntary context switches from a `/proc/.../status` text.
fn parse_switches(text: &str) -> u64 {
    text.lines()
        .filter(|line| line.starts_with("voluntary_ctxt_switches:") || line.starts_with("nonvoluntary_ctxt_switches:"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn read_sample(dir: &str) -> Option<Sample> {
    let (user, system) = parse_stat(&std::fs::read_to_string(format!("{dir}/stat")).ok()?)?;
    let switches = parse_switches(&std::fs::read_to_string(format!("{dir}/status")).ok()?);
    Some(Sample { user, system, switches })
}

/// Every thread of `pid`: tid → (name, sample). Threads may end while being read.
fn read_threads(pid: u32) -> BTreeMap<u64, (String, Sample)> {
    let mut threads = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return threads };
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|name| name.parse::<u64>().ok()) else { continue };
        let dir = format!("/proc/{pid}/task/{tid}");
        let name = std::fs::read_to_string(format!("{dir}/comm")).unwrap_or_default().trim().to_string();
        if let Some(sample) = read_sample(&dir) {
            threads.insert(tid, (name, sample));
        }
    }
    threads
}

/// Clock ticks per second of `/proc/.../stat` (`USER_HZ`, 100 on Linux/x86).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

pub async fn run(pid: u32, seconds: f64) -> anyhow::Result<()> {
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--seconds must be positive");
    }
    let process = format!("/proc/{pid}");
    let ticks = clock_ticks();
    let threads_before = read_threads(pid);
    let before = read_sample(&process).with_context(|| format!("cannot read {process}/stat"))?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let after = read_sample(&process).with_context(|| format!("{process} ended during the measurement"))?;
    let threads_after = read_threads(pid);
    let elapsed = started.elapsed().as_secs_f64();

    let used = (after.user + after.system).saturating_sub(before.user + before.system);
    let cpu_percent = used as f64 / ticks as f64 / elapsed * 100.0;
    // Context switches of the process's status count the main thread only; sum the threads.
    let switches: u64 = threads_after
        .iter()
        .map(|(tid, (_, sample))| {
            sample.switches.saturating_sub(threads_before.get(tid).map_or(0, |(_, before)| before.switches))
        })
        .sum();
    let mut by_name: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (tid, (name, sample)) in &threads_after {
        let base = threads_before.get(tid).map(|(_, before)| *before).unwrap_or_default();
        let entry = by_name.entry(name.as_str()).or_default();
        entry.0 += (sample.user + sample.system).saturating_sub(base.user + base.system);
        entry.1 += sample.switches.saturating_sub(base.switches);
    }
    let mut busiest: Vec<_> = by_name.into_iter().filter(|(_, (ticks, switches))| *ticks > 0 || *switches > 0).collect();
    busiest.sort_by(|a, b| (b.1).0.cmp(&(a.1).0).then((b.1).1.cmp(&(a.1).1)));
    let busiest: Vec<String> = busiest
        .iter()
        .take(8)
        .map(|(name, (ticks, switches))| format!("{name} {ticks} ticks/{:.1} cs/s", *switches as f64 / elapsed))
        .collect();
    println!(
        "idle: pid {pid} over {elapsed:.1}s: CPU {cpu_percent:.2}% of one core ({} user + {} system ticks of 1/{ticks} s), \
         {:.1} context switches/s over {} threads; by thread name: {}",
        after.user.saturating_sub(before.user),
        after.system.saturating_sub(before.system),
        switches as f64 / elapsed,
        threads_after.len(),
        if busiest.is_empty() { "none".to_string() } else { busiest.join(", ") },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "4242 (timely worker 0) S 1 4242 4242 0 -1 4194560 1234 0 0 0 57 13 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some((57, 13)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        assert!(read_sample("/proc/self").is_some());
        assert!(!read_threads(std::process::id()).is_empty());
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_switches(status), 13);
    }
}
