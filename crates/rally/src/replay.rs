//! `rally replay FILE`: runs a recorded match again on a fresh game of its kind and checks
//! every recorded state hash, the join answers and the result (`rally_record::verify`).
//!
//! Exit status: 0 when the whole match replayed with everything matching; 1 when the
//! replay diverged (the first diverging tick is named) or the file is not a readable
//! recording (the byte offset is named); 3 when the file holds only part of a match (the
//! server was killed, or the recording was cut) and that part matched. `--json` prints
//! each tick's states as JSON lines on stdout; `--speed X` paces them at X times real time.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Arg, ArgAction, ArgMatches, Command};
use rally_server::game::msgpack::Reader;
use rally_server::game::serde_json::{self, Value};
use rally_server::Games;

/// Exit status of a file that holds only part of a match, all of it matching.
const EXIT_INCOMPLETE: u8 = 3;
/// Nesting deeper than this in a state is shown as `null` (a bound on recursion).
const MAX_DEPTH: usize = 32;

pub(crate) fn command() -> Command {
    Command::new("replay")
        .about("Replay a match recording (recordings_dir) and check every recorded state hash")
        .arg(
            Arg::new("file")
                .value_name("FILE")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf)),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("print each tick's states as JSON lines: {\"tick\", \"state\", \"views\"}"),
        )
        .arg(
            Arg::new("speed")
                .long("speed")
                .value_name("X")
                .value_parser(clap::value_parser!(f64))
                .help("play at X times real time (1: as the match was played); default: as fast as possible"),
        )
}

pub(crate) fn run(m: &ArgMatches, games: &Games) -> anyhow::Result<ExitCode> {
    let path = m.get_one::<PathBuf>("file").context("FILE is required")?;
    let json = m.get_flag("json");
    let speed = m
        .get_one::<f64>("speed")
        .copied()
        .filter(|s| s.is_finite() && *s > 0.0);
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let shown = path.display();
    let mut version_note = None;
    // The recorded tick period, for `--speed`: set from the header.
    let period = std::cell::Cell::new(0.05);
    let mut stdout = std::io::stdout().lock();
    let make = |h: &rally_record::Header| {
        period.set(1.0 / f64::from(h.tick_hz));
        let game = games.make(&h.kind, &h.options)?;
        if game.version() != h.game_version {
            version_note = Some(format!(
                "recorded with {} version {:?}, replayed on version {:?}",
                h.kind,
                h.game_version,
                game.version()
            ));
        }
        Some(game)
    };
    let outcome = rally_record::verify(&bytes, make, |replay, step| {
        let rally_record::Step::Ticked(tick) = step else {
            return;
        };
        if let Some(speed) = speed {
            // The recorded tick rate, not the time the replay took: a replay is
            // instant next to a network match.
            let pause = Duration::from_secs_f64(period.get() / speed);
            std::thread::sleep(pause.min(Duration::from_secs(10)));
        }
        if json {
            let views: serde_json::Map<String, Value> = replay
                .views()
                .iter()
                .map(|(p, v)| (p.to_string(), to_json(v)))
                .collect();
            let state = if replay.room_state().is_empty() {
                Value::Null
            } else {
                to_json(replay.room_state())
            };
            let line = serde_json::json!({ "tick": tick, "state": state, "views": views });
            // A closed pipe (`| head`) ends the output, not the check.
            let _ = writeln!(stdout, "{line}");
        }
    });
    if let Some(note) = version_note {
        eprintln!("rally replay: note: {note}");
    }
    let report = match outcome {
        Ok(r) => r,
        // Diverged (the tick is named) or unreadable (the offset is named).
        Err(e) => {
            eprintln!("rally replay: {shown}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let h = &report.header;
    let what = format!(
        "{} match (room {}, seed {:#018x}, {} Hz): {} ticks replayed, {} state hashes match",
        h.kind, h.room_id, h.seed, h.tick_hz, report.ticks, report.hashes
    );
    match (report.ending, &report.truncated) {
        (Some(rally_record::Step::Ended(reason)), _) => {
            eprintln!(
                "rally replay: {shown}: {what}; ended ({}), result matches",
                reason.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        (Some(rally_record::Step::Cut(reason)), _) => {
            eprintln!(
                "rally replay: {shown}: {what}; the recording was cut there ({}): the rest of the match is not in the file",
                reason.name()
            );
            Ok(ExitCode::from(EXIT_INCOMPLETE))
        }
        (_, Some(e)) => {
            eprintln!(
                "rally replay: {shown}: {what}; the file stops inside a record at byte offset {} (the server stopped before finishing it)",
                e.offset
            );
            Ok(ExitCode::from(EXIT_INCOMPLETE))
        }
        _ => {
            eprintln!(
                "rally replay: {shown}: {what}; the file ends without its trailer (the server stopped before finishing it)"
            );
            Ok(ExitCode::from(EXIT_INCOMPLETE))
        }
    }
}

/// One MessagePack value as JSON, for `--json`: integers, floats, strings, arrays, maps
/// (keys shown as text); binary as an array of bytes; anything unreadable as `null`.
pub(crate) fn to_json(bytes: &[u8]) -> Value {
    value(&mut Reader::new(bytes), 0)
}

fn value(r: &mut Reader<'_>, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        let _ = r.skip_value();
        return Value::Null;
    }
    // Each reader call consumes only on success, so a try on a copy then a commit
    // tells the types apart without a public peek.
    macro_rules! attempt {
        ($read:ident, $wrap:expr) => {{
            let mut probe = r.clone();
            if let Ok(v) = probe.$read() {
                *r = probe;
                return $wrap(v);
            }
        }};
    }
    if r.try_nil() {
        return Value::Null;
    }
    attempt!(read_bool, Value::Bool);
    attempt!(read_u64, Value::from);
    attempt!(read_i64, Value::from);
    attempt!(read_f64, |f: f64| serde_json::Number::from_f64(f)
        .map_or(Value::Null, Value::Number));
    attempt!(read_str, |s: &str| Value::String(s.to_owned()));
    attempt!(read_bin, |b: &[u8]| Value::from(b.to_vec()));
    let mut probe = r.clone();
    if let Ok(n) = probe.read_array_len() {
        *r = probe;
        return Value::Array((0..n).map(|_| value(r, depth + 1)).collect());
    }
    let mut probe = r.clone();
    if let Ok(n) = probe.read_map_len() {
        *r = probe;
        let mut map = serde_json::Map::new();
        for _ in 0..n {
            let key = match value(r, depth + 1) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            map.insert(key, value(r, depth + 1));
        }
        return Value::Object(map);
    }
    let _ = r.skip_value();
    Value::Null
}

#[cfg(test)]
mod tests {
    use super::*;
    use rally_server::game::msgpack;

    #[test]
    fn states_convert_to_json() {
        let mut b = Vec::new();
        msgpack::write_map_len(&mut b, 2);
        msgpack::write_str(&mut b, "p");
        msgpack::write_array_len(&mut b, 3);
        msgpack::write_uint(&mut b, 7);
        msgpack::write_f32(&mut b, 1.5);
        msgpack::write_int(&mut b, -3);
        msgpack::write_str(&mut b, "ok");
        msgpack::write_bool(&mut b, true);
        assert_eq!(
            to_json(&b),
            serde_json::json!({"p": [7, 1.5, -3], "ok": true})
        );
        assert_eq!(to_json(&[0xc1]), Value::Null);
        assert_eq!(to_json(&[0x92, 0x01]), serde_json::json!([1, null]));
    }
}
