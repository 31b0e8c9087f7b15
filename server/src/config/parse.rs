//! The values flags take: durations, sizes, networks.

use std::time::Duration;

use ipnet::IpNet;

/// Parses `250ms`, `30s`, `5m`, `24h`, `7d`, or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 5m, 24h or 7d"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}; use ms, s, m, h or d"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{text:?}: {err}"))
}

/// A size: bytes (`65536`) or with a unit, `KiB`, `MiB`, `GiB` (powers of 1024; `KB`,
/// `MB`, `GB` and `K`, `M`, `G` are read the same way).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 256MiB, 16MiB or 65536"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(scale)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} must be more than zero and less than the address space"))
}

/// `10.0.0.0/8`, `fd00::/8`, or a single address (`10.0.0.1`).
pub(super) fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or CIDR block like 10.0.0.0/8"))
}

pub(super) fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err("must be greater than zero".into()),
        duration => Ok(duration),
    }
}

/// A write delay is a latency every member of a busy room pays: a second is already far more
/// than any stream of frames needs to be gathered.
pub(super) fn parse_write_delay(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        delay if delay > Duration::from_secs(1) => Err("must be at most 1s".into()),
        delay => Ok(delay),
    }
}
