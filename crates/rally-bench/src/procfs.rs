//! What `/proc` says about a process: CPU time and resident memory, and the machine's facts.

use std::time::Instant;

use anyhow::Context as _;

/// CPU time (user + system, all threads) a process has used so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    // After the name: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {n} of /proc/{pid}/stat"))
    };
    Ok(field(14)? + field(15)?)
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmRSS in /proc/<pid>/status")
}

/// Measures a process's CPU use between [`CpuMeter::start`] and [`CpuMeter::cores`].
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: u32,
    ticks: u64,
    at: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid` now.
    pub fn start(pid: u32) -> anyhow::Result<CpuMeter> {
        Ok(CpuMeter {
            pid,
            ticks: cpu_ticks(pid)?,
            at: Instant::now(),
        })
    }

    /// CPU-seconds used per wall second since the start: 1.0 is one core kept busy.
    pub fn cores(&self) -> anyhow::Result<f64> {
        let ticks = cpu_ticks(self.pid)?.saturating_sub(self.ticks);
        let secs = self.at.elapsed().as_secs_f64();
        let hz = rustix::param::clock_ticks_per_second() as f64;
        Ok(ticks as f64 / hz / secs.max(1e-9))
    }
}

/// The facts about this machine a reader needs to weigh the figures.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Total memory, in bytes.
    pub memory: u64,
    /// Kernel release.
    pub kernel: String,
    /// Open-file limit (soft, hard) after raising the soft one.
    pub nofile: (u64, u64),
}

impl Machine {
    /// Reads the facts; what cannot be read is reported as "unknown" or 0.
    pub fn read() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
            kernel,
            nofile: rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_bytes(me).expect("rss") > 0);
        let meter = CpuMeter::start(me).expect("meter");
        // Burn a little CPU so the figure is above zero.
        let mut x = 0u64;
        let until = Instant::now() + std::time::Duration::from_millis(200);
        while Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let cores = meter.cores().expect("cores");
        // Above zero, and not more than this one busy thread can use: on a loaded machine
        // (tests run beside builds) the busy loop may get well under a whole core.
        assert!(cores > 0.0 && cores < 1.5, "{cores}");
    }
}
