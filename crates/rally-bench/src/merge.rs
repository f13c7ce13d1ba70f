//! A partial run updates only what it measured: the sections of `BENCHMARKS.md` it wrote
//! replace theirs, every other section (an earlier run's, or one no `rally bench` writes,
//! e.g. the soak run) is kept verbatim, and `benchmarks.json` keeps the earlier figures
//! of the scenarios this run left out.

use serde_json::{Map, Value};

/// The top-level keys of `benchmarks.json` that hold one scenario's figures, grouped:
/// a group is kept from the earlier run only when this run left all of it out (Rally's
/// rows at Colyseus's counts belong to the Colyseus step).
const SCENARIOS: [&[&str]; 7] = [
    &["arena"],
    &["search"],
    &["idle"],
    &["reqresp"],
    &["colyseus", "rally_at_colyseus_counts"],
    &["abuse"],
    &["cluster"],
];

/// A section of a markdown report: its heading line (without `## `) and its text up to
/// the next heading, heading included.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    title: String,
    text: String,
}

/// Which section a heading names: its first word ("Arena-16", "Idle", "Colyseus", ...),
/// so a heading that carries a figure ("p99 <= 60 ms", "Colyseus 0.16") still matches
/// the same section of another run. "Abuse" is the older name of "Hardening".
fn section_key(title: &str) -> String {
    let first = title.split_whitespace().next().unwrap_or("");
    let first = first.trim_end_matches([':', ',']);
    match first {
        "Abuse" => "Hardening".to_owned(),
        other => other.to_owned(),
    }
}

/// Splits a report into its preamble (before the first `## `) and its sections.
fn split(md: &str) -> (String, Vec<Section>) {
    let mut preamble = String::new();
    let mut sections: Vec<Section> = Vec::new();
    for line in md.split_inclusive('\n') {
        if let Some(title) = line.strip_prefix("## ") {
            sections.push(Section {
                title: title.trim_end().to_owned(),
                text: String::new(),
            });
        }
        match sections.last_mut() {
            Some(s) => s.text.push_str(line),
            None => preamble.push_str(line),
        }
    }
    (preamble, sections)
}

/// The report to write: `new` (this run's report), with the sections of `old` (the file
/// as it was) that this run did not produce kept verbatim, in their old places. Returns
/// it and the titles of the sections kept.
pub fn markdown(old: &str, new: &str) -> (String, Vec<String>) {
    let (preamble, fresh) = split(new);
    let (_, earlier) = split(old);
    let fresh_keys: Vec<String> = fresh.iter().map(|s| section_key(&s.title)).collect();
    // The old order, with this run's sections in place of theirs.
    let mut merged: Vec<Section> = Vec::new();
    let mut kept = Vec::new();
    for s in &earlier {
        let key = section_key(&s.title);
        match fresh_keys.iter().position(|k| *k == key) {
            Some(i) => {
                if !merged.iter().any(|m| section_key(&m.title) == key) {
                    merged.push(fresh[i].clone());
                }
            }
            None => {
                kept.push(s.title.clone());
                merged.push(s.clone());
            }
        }
    }
    // This run's sections the old file did not have: after the section before them in
    // this run's order.
    for (i, s) in fresh.iter().enumerate() {
        if merged
            .iter()
            .any(|m| section_key(&m.title) == fresh_keys[i])
        {
            continue;
        }
        let at = fresh_keys[..i]
            .iter()
            .rev()
            .find_map(|k| merged.iter().position(|m| section_key(&m.title) == *k))
            .map_or(0, |p| p + 1);
        merged.insert(at, s.clone());
    }
    let mut out = preamble;
    for s in merged {
        // Each section ends with its own blank line; one is added where an old one ended
        // at the end of the file without it.
        if !out.ends_with("\n\n") && !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&s.text);
    }
    (out, kept)
}

/// The line the preamble gets when sections were kept from earlier runs.
pub fn kept_note(kept: &[String]) -> Option<String> {
    if kept.is_empty() {
        return None;
    }
    let names: Vec<String> = kept.iter().map(|t| format!("\"{t}\"")).collect();
    Some(format!(
        "- **Kept from earlier runs:** {} (not run by this command; kept verbatim from the previous version of this file, with the targets they measured; `benchmarks.json` keeps their figures)",
        names.join(", ")
    ))
}

/// The JSON to write: `new` (this run's), with the scenarios it left out (null or empty)
/// taken from `old`, and the targets of those scenarios kept (a target is this run's when
/// this run measured a target of the same name, see [`target_key`]).
pub fn json(old: &Value, new: Value) -> Value {
    let (Some(old), Value::Object(mut new)) = (old.as_object(), new.clone()) else {
        return new;
    };
    let mut kept = Vec::new();
    for group in SCENARIOS {
        if !group.iter().all(|k| is_empty(new.get(*k))) {
            continue;
        }
        for key in group {
            if let Some(v) = old.get(*key).filter(|v| !is_empty(Some(v))) {
                new.insert((*key).to_owned(), v.clone());
                kept.push(Value::from(*key));
            }
        }
    }
    let targets = merge_targets(old.get("targets"), new.get("targets"));
    new.insert("targets".to_owned(), targets);
    if !kept.is_empty() {
        new.insert("kept_from_earlier_runs".to_owned(), Value::Array(kept));
    }
    Value::Object(new)
}

/// The targets of `new`, then those of `old` that `new` did not measure.
pub fn merge_targets(old: Option<&Value>, new: Option<&Value>) -> Value {
    let fresh: Vec<Value> = new.and_then(Value::as_array).cloned().unwrap_or_default();
    let keys: Vec<String> = fresh.iter().map(|t| target_key(name(t))).collect();
    let mut out = fresh;
    for t in old.and_then(Value::as_array).into_iter().flatten() {
        if !keys.contains(&target_key(name(t))) {
            out.push(t.clone());
        }
    }
    Value::Array(out)
}

fn name(t: &Value) -> &str {
    t.get("target").and_then(Value::as_str).unwrap_or("")
}

/// Which target a description names, across runs whose figures differ: its first three
/// words without digits ("arena runs (tcp 1000, ws 1000): ..." -> "arena runs (tcp").
pub fn target_key(what: &str) -> String {
    what.split_whitespace()
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty() || search_is_empty(o),
        _ => false,
    }
}

/// The search's object always has its keys; it is empty when it has no runs.
fn search_is_empty(o: &Map<String, Value>) -> bool {
    o.get("runs")
        .and_then(Value::as_array)
        .is_some_and(|r| r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OLD: &str = "# Rally benchmarks\n\nold preamble\n\n## Targets\n\nold targets\n\n## Arena-16 @ 20 Hz\n\nold arena\n\n## Highest player count at p99 <= 60 ms\n\nold search\n\n## Hardening: abusive clients (separate run)\n\nold hardening\n\n## Soak (separate run)\n\nsoak text\n";

    #[test]
    fn a_partial_run_keeps_the_sections_it_did_not_write() {
        let new = "# Rally benchmarks\n\nnew preamble\n\n## Targets\n\nnew targets\n\n## Arena-16 @ 20 Hz\n\nnew arena\n\n## Idle connections\n\nnew idle\n";
        let (md, kept) = markdown(OLD, new);
        assert_eq!(
            md,
            "# Rally benchmarks\n\nnew preamble\n\n## Targets\n\nnew targets\n\n## Arena-16 @ 20 Hz\n\nnew arena\n\n## Idle connections\n\nnew idle\n\n## Highest player count at p99 <= 60 ms\n\nold search\n\n## Hardening: abusive clients (separate run)\n\nold hardening\n\n## Soak (separate run)\n\nsoak text\n"
        );
        assert_eq!(
            kept,
            vec![
                "Highest player count at p99 <= 60 ms",
                "Hardening: abusive clients (separate run)",
                "Soak (separate run)"
            ]
        );
    }

    #[test]
    fn an_abuse_run_replaces_the_hardening_section_in_place() {
        let new = "# Rally benchmarks\n\np\n\n## Targets\n\nt\n\n## Abuse\n\nnew abuse\n";
        let (md, _) = markdown(OLD, new);
        assert!(md.contains("## Abuse\n\nnew abuse\n\n## Soak"), "{md}");
        assert!(!md.contains("old hardening"));
        assert!(md.contains("old arena") && md.contains("old search"));
    }

    #[test]
    fn a_cluster_only_run_adds_its_section_and_keeps_every_other() {
        let new = "# Rally benchmarks\n\np\n\n## Targets\n\nt\n\n## Cluster: 3 nodes over NATS on this machine\n\nnew cluster\n";
        let (md, kept) = markdown(OLD, new);
        assert!(md.contains("old arena") && md.contains("old search") && md.contains("soak text"));
        assert!(md.contains("## Cluster: 3 nodes over NATS on this machine\n\nnew cluster\n"));
        assert_eq!(kept.len(), 4, "{kept:?}");
        // A second cluster run replaces the first's section in place.
        let again = new.replace("new cluster", "newer cluster");
        let (md2, _) = markdown(&md, &again);
        assert!(md2.contains("newer cluster") && !md2.contains("new cluster\n"));
        assert_eq!(md2.matches("## Cluster").count(), 1);
        let merged = json(
            &json!({"arena": [1], "cluster": {"nodes": 3}, "targets": []}),
            json!({"arena": [], "cluster": null, "targets": []}),
        );
        assert_eq!(merged["cluster"], json!({"nodes": 3}));
        assert_eq!(merged["arena"], json!([1]));
    }

    #[test]
    fn a_first_run_is_written_whole() {
        let new = "# R\n\np\n\n## Targets\n\nt\n";
        assert_eq!(markdown("", new), (new.to_owned(), Vec::new()));
    }

    #[test]
    fn json_keeps_scenarios_and_targets_this_run_left_out() {
        let old = json!({
            "date": "old", "arena": [1], "idle": {"connections": 10},
            "search": {"runs": [2]}, "abuse": null,
            "colyseus": [3], "rally_at_colyseus_counts": [4],
            "targets": [
                {"target": "arena runs (tcp 1000): zero errors", "measured": "old", "met": true},
                {"target": "10000 idle connected players in <= 30 MB", "measured": "old", "met": false}
            ]
        });
        let new = json!({
            "date": "new", "arena": [], "idle": {"connections": 20},
            "search": {"runs": [], "highest_rally": null}, "abuse": null,
            "colyseus": [5], "rally_at_colyseus_counts": [],
            "targets": [{"target": "10000 idle connected players in <= 30 MB", "measured": "new", "met": true}]
        });
        let merged = json(&old, new);
        assert_eq!(merged["date"], "new");
        assert_eq!(merged["arena"], json!([1]));
        assert_eq!(merged["search"], json!({"runs": [2]}));
        assert_eq!(merged["idle"], json!({"connections": 20}));
        // Colyseus ran: its group is this run's, even where one of its keys is empty.
        assert_eq!(merged["colyseus"], json!([5]));
        assert_eq!(merged["rally_at_colyseus_counts"], json!([]));
        let targets = merged["targets"].as_array().cloned().unwrap_or_default();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0]["measured"], "new");
        assert_eq!(targets[1]["measured"], "old");
        assert_eq!(merged["kept_from_earlier_runs"], json!(["arena", "search"]));
    }

    #[test]
    fn target_keys_ignore_figures() {
        assert_eq!(
            target_key("arena runs (tcp 1000, ws 1000): zero errors"),
            target_key("arena runs (tcp 48): zero errors")
        );
        assert_ne!(
            target_key("under flood: honest p99"),
            target_key("under slowloris: honest p99")
        );
    }
}
