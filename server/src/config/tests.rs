//! Flags, their values, and the configuration page against `--help`.

use super::*;

#[test]
fn sizes() {
    assert_eq!(parse_size("256MiB"), Ok(256 << 20));
    assert_eq!(parse_size("16 MB"), Ok(16 << 20));
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("65536"), Ok(65536));
    for bad in [
        "",
        "0",
        "lots",
        "5 parsecs",
        "-1MiB",
        "99999999999999999999GiB",
    ] {
        assert!(parse_size(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("5 parsecs").is_err());
    assert!(parse_positive_duration("0s").is_err());
    assert_eq!(parse_write_delay("0"), Ok(Duration::ZERO));
    assert_eq!(parse_write_delay("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(parse_write_delay("2s"), Err("must be at most 1s".into()));
}

#[test]
fn defaults_match_the_documentation() {
    let config = Config::defaults();
    assert_eq!(config.http.addr, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(config.rooms.history_size, 100);
    assert_eq!(
        config.guests.guest_refresh_grace,
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(
        config.connections.heartbeat_interval,
        Duration::from_secs(30)
    );
    assert_eq!(
        config.connections.heartbeat_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(config.connections.max_message_bytes, 65536);
    assert_eq!(
        (
            config.connections.rate_limit,
            config.connections.rate_limit_burst
        ),
        (20, 40)
    );
    assert_eq!(config.connections.write_delay, Duration::from_millis(20));
    assert!(!config.guests.no_guest_login);
}

#[test]
fn flags_override_defaults() {
    let config = Config::try_parse_from([
        "chorus",
        "--addr",
        "0.0.0.0:8080",
        "--heartbeat-interval",
        "200ms",
        "--no-guest-login",
    ])
    .unwrap();
    assert_eq!(config.http.addr.port(), 8080);
    assert_eq!(
        config.connections.heartbeat_interval,
        Duration::from_millis(200)
    );
    assert!(config.guests.no_guest_login);
    assert!(Config::try_parse_from(["chorus", "--rate-limit", "0"]).is_err());
}

/// One flag's row in `docs/configuration.md`: its section, variable and default.
struct DocumentedFlag {
    section: String,
    env: String,
    default: String,
}

/// The rows of `docs/configuration.md`'s flag tables, by flag.
fn documented_flags() -> std::collections::BTreeMap<String, DocumentedFlag> {
    let page = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ));
    let mut flags = std::collections::BTreeMap::new();
    let mut section = String::new();
    for line in page.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim().to_owned();
        }
        let Some(row) = line.strip_prefix("| `--") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(cells.len() >= 4, "a flag row has 4 cells: {line}");
        let flag = cells[0].trim_end_matches('`').to_owned();
        let row = DocumentedFlag {
            section: section.clone(),
            env: cells[1].trim_matches('`').to_owned(),
            default: cells[2].to_owned(),
        };
        assert!(
            flags.insert(flag.clone(), row).is_none(),
            "--{flag} has two rows"
        );
    }
    flags
}

/// `chorus --help` and the configuration page list the same flags, each with the
/// same variable, default and group.
#[test]
fn the_configuration_page_matches_the_flags() {
    use clap::CommandFactory;

    let mut documented = documented_flags();
    let command = Config::command();
    for arg in command.get_arguments() {
        let Some(flag) = arg.get_long() else { continue };
        let row = documented
            .remove(flag)
            .unwrap_or_else(|| panic!("--{flag} is missing from docs/configuration.md"));
        let env = arg.get_env().and_then(|env| env.to_str()).unwrap_or("");
        assert_eq!(row.env, env, "--{flag}: its variable");
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy())
            .collect();
        if !arg.get_action().takes_values() {
            assert_eq!(row.default, "off", "--{flag} is a switch: off by default");
        } else if defaults.is_empty() {
            assert!(
                !row.default.starts_with('`'),
                "--{flag} has no default, but the page gives {}",
                row.default
            );
        } else {
            assert_eq!(
                row.default,
                format!("`{}`", defaults.join(",")),
                "--{flag}: its default"
            );
        }
        let heading = arg
            .get_help_heading()
            .unwrap_or_else(|| panic!("--{flag} is in no group of --help"));
        assert_eq!(row.section, heading, "--{flag}: its group");
    }
    assert!(
        documented.is_empty(),
        "docs/configuration.md documents flags chorus does not have: {:?}",
        documented.keys().collect::<Vec<_>>()
    );
}
