//! The integration tests live in `it/`. This library holds what the benchmark harnesses in
//! `examples/` share.

pub mod bench {
    //! Figures and the BENCHMARKS.md file, for the benchmark harnesses.

    use std::time::Duration;

    /// The peak resident set of this process (VmHWM), in MiB; 0 where /proc is not there.
    pub fn peak_rss_mib() -> f64 {
        status_mib("/proc/self/status", "VmHWM:")
    }

    /// The peak resident set (VmHWM) of process `pid`, in MiB; 0 where /proc is not there.
    pub fn peak_rss_mib_of(pid: u32) -> f64 {
        status_mib(&format!("/proc/{pid}/status"), "VmHWM:")
    }

    /// The resident set of this process now (VmRSS), in MiB: a reset peak starts from it.
    pub fn rss_now_mib() -> f64 {
        status_mib("/proc/self/status", "VmRSS:")
    }

    fn status_mib(status: &str, field: &str) -> f64 {
        std::fs::read_to_string(status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// The `p`th percentile (nearest rank) of sorted samples.
    pub fn pct(sorted: &[Duration], p: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    /// `4.2 ms`, `37 ms`, `12.5 s`.
    pub fn ms(d: Duration) -> String {
        let ms = d.as_secs_f64() * 1000.0;
        if ms < 10.0 {
            format!("{ms:.1} ms")
        } else if ms < 10_000.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{:.1} s", d.as_secs_f64())
        }
    }

    /// Replaces the section that starts with the line `heading` in the file `path` (relative
    /// to the repository) up to the next `## ` heading, or adds it before `## Earlier
    /// figures` (at the end when there is none).
    pub fn write_section(path: &str, heading: &str, section: &str) -> std::io::Result<()> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        let current = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            "# Benchmarks\n\nFigures printed and written by the benchmark harnesses; rerun them \
             to refresh.\n\n"
                .into()
        });
        // A heading is a whole line.
        let find = |h: &str| {
            current.match_indices(h).map(|(i, _)| i).find(|&i| {
                (i == 0 || current[..i].ends_with('\n')) && current[i + h.len()..].starts_with('\n')
            })
        };
        let out = match find(heading) {
            Some(start) => {
                let rest = &current[start + heading.len()..];
                let end = rest
                    .find("\n## ")
                    .map_or(current.len(), |i| start + heading.len() + i + 1);
                let sep = if end < current.len() { "\n" } else { "" };
                format!("{}{section}{sep}{}", &current[..start], &current[end..])
            }
            None => match find("## Earlier figures") {
                Some(at) => format!("{}{section}\n{}", &current[..at], &current[at..]),
                None => {
                    let sep = if current.ends_with("\n\n") || current.is_empty() {
                        ""
                    } else if current.ends_with('\n') {
                        "\n"
                    } else {
                        "\n\n"
                    };
                    format!("{current}{sep}{section}")
                }
            },
        };
        std::fs::write(&path, out)
    }
}
