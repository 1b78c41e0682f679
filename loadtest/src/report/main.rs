//! `parley-bench-report DIR [--svg FILE]`: reads the JSON summaries that
//! `loadtest/compare.sh` leaves in DIR (`<scenario>-<server>.json`), prints
//! the tables of docs/benchmarks.md (each Parley figure beside the Node peer's
//! from the same run, with the ratio) and draws the main comparison as SVG.
//!
//! The SVG is written by hand: a few rectangles and labels, where a plotting
//! crate would need a font backend to lay the text out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Summaries by (scenario, server).
type Runs = BTreeMap<(String, String), Value>;

const ROOMS: [(&str, &str); 5] = [
    ("rooms-100x2000", "100 members × 2 000 msgs"),
    ("rooms-1000x500", "1 000 × 500"),
    ("rooms-5000x100", "5 000 × 100"),
    ("rooms-1000x500-w1", "1 000 × 500, window 1"),
    ("rooms-1000x500-room", "1 000 × 500, paced by the room"),
];

fn load(dir: &Path) -> Result<Runs, String> {
    let mut runs = Runs::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some((scenario, server)) = stem.rsplit_once('-') else { continue };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let all: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(first) = all.as_array().and_then(|a| a.first()) {
            runs.insert((scenario.to_owned(), server.to_owned()), first.clone());
        }
    }
    Ok(runs)
}

fn figure(runs: &Runs, scenario: &str, server: &str, key: &str) -> Option<f64> {
    runs.get(&(scenario.to_owned(), server.to_owned()))?.get(key)?.as_f64()
}

fn show(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v >= 10_000.0 => format!("{:.0} k", v / 1000.0),
        Some(v) if v >= 100.0 || (v >= 10.0 && v.fract() == 0.0) => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// How many times better Parley is: `lower_is_better` divides Node by Parley.
fn ratio(parley: Option<f64>, node: Option<f64>, lower_is_better: bool) -> String {
    match (parley, node) {
        (Some(p), Some(n)) if p > 0.0 && n > 0.0 => {
            format!("{:.1}×", if lower_is_better { n / p } else { p / n })
        }
        _ => "–".into(),
    }
}

fn rooms_table(runs: &Runs) -> String {
    let mut out = String::from(
        "| room (1 publisher, window 10 unless said) | metric | Parley | Node `ws` | Parley's advantage |\n|---|---|---|---|---|\n",
    );
    let metrics = [
        ("deliveries_per_second", "deliveries/s", false),
        ("p50_ms", "p50 latency, ms", true),
        ("p99_ms", "p99 latency, ms", true),
        ("cpu_us_per_delivery", "server CPU per delivery, µs", true),
    ];
    for (scenario, label) in ROOMS {
        for (key, metric, lower) in metrics {
            let (p, n) = (figure(runs, scenario, "parley", key), figure(runs, scenario, "node", key));
            let _ = writeln!(out, "| {label} | {metric} | {} | {} | {} |", show(p), show(n), ratio(p, n, lower));
        }
        let lost = |server| {
            let run = runs.get(&(scenario.to_owned(), String::from(server)));
            run.map(|r| {
                format!(
                    "{}/{} delivered, {} lost",
                    r["deliveries"].as_u64().unwrap_or(0),
                    r["deliveries_expected"].as_u64().unwrap_or(0),
                    r["lost"].as_u64().unwrap_or(0)
                )
            })
            .unwrap_or_else(|| "–".into())
        };
        let _ = writeln!(out, "| {label} | deliveries | {} | {} | |", lost("parley"), lost("node"));
    }
    out
}

fn other_table(runs: &Runs) -> String {
    let mut out = String::from("| measure | Parley | Node `ws` | Parley's advantage |\n|---|---|---|---|\n");
    let rows = [
        ("idle-10000", "idle_kib_per_connection", "idle memory per connection, KiB (10 000 in 100 rooms)"),
        ("rooms-5000x100", "join_seconds", "5 000 members joined into one room, s"),
    ];
    for (scenario, key, label) in rows {
        let (p, n) = (figure(runs, scenario, "parley", key), figure(runs, scenario, "node", key));
        let _ = writeln!(out, "| {label} | {} | {} | {} |", show(p), show(n), ratio(p, n, true));
    }
    out
}

/// One room over one process, then the same room split over two on Redis.
fn cross_table(runs: &Runs) -> String {
    let mut out = String::from(
        "| 1 000 members × 500 msgs, 2 publishers | deliveries/s | p50 ms | p99 ms | server CPU per delivery, µs | delivered |\n|---|---|---|---|---|---|\n",
    );
    for (server, label) in [("parley", "one process"), ("parley2", "two processes on Redis (members split)")] {
        let get = |key| figure(runs, "cross-1000x500", server, key);
        let delivered = runs.get(&("cross-1000x500".to_owned(), server.to_owned())).map_or("–".into(), |r| {
            format!("{}/{}", r["deliveries"].as_u64().unwrap_or(0), r["deliveries_expected"].as_u64().unwrap_or(0))
        });
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {delivered} |",
            show(get("deliveries_per_second")),
            show(get("p50_ms")),
            show(get("p99_ms")),
            show(get("cpu_us_per_delivery")),
        );
    }
    out
}

fn http_table(runs: &Runs) -> String {
    let mut out = String::from(
        "| run | `/users/me` requests | p50 µs | p99 µs | server CPU per request, µs | logins |\n|---|---|---|---|---|---|\n",
    );
    for (scenario, label) in [("http-me", "`me` alone"), ("http-me-logins", "`me` beside a login storm")] {
        let get = |key| figure(runs, scenario, "parley", key);
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} |",
            show(get("me_requests")),
            show(get("me_p50_us")),
            show(get("me_p99_us")),
            show(get("cpu_us_per_request")),
            show(get("logins"))
        );
    }
    out
}

/// One panel of grouped bars: Parley beside Node for each group.
struct Panel<'a> {
    title: &'a str,
    groups: Vec<(String, Option<f64>, Option<f64>)>,
}

const PARLEY_COLOUR: &str = "#2b6cb0";
const NODE_COLOUR: &str = "#dd8a2b";

fn svg(panels: &[Panel]) -> String {
    let (panel_w, panel_h, top, bottom) = (320.0, 300.0, 60.0, 70.0);
    let width = panel_w * panels.len() as f64 + 20.0;
    let height = top + panel_h + bottom;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">Parley beside a Node `ws` server, \
         same machine, same run (lower is better)</text>\n\
         <rect x=\"10\" y=\"32\" width=\"12\" height=\"12\" fill=\"{PARLEY_COLOUR}\"/>\
         <text x=\"26\" y=\"43\">Parley</text>\
         <rect x=\"80\" y=\"32\" width=\"12\" height=\"12\" fill=\"{NODE_COLOUR}\"/>\
         <text x=\"96\" y=\"43\">Node ws</text>\n"
    );
    for (index, panel) in panels.iter().enumerate() {
        let left = 10.0 + index as f64 * panel_w;
        let base = top + panel_h - 20.0;
        let plot_h = panel_h - 60.0;
        let max = panel.groups.iter().flat_map(|(_, p, n)| [p, n]).filter_map(|v| *v).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
            left + panel_w / 2.0,
            top + 10.0,
            panel.title
        );
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#555\"/>",
            left + 10.0,
            left + panel_w - 20.0
        );
        let group_w = (panel_w - 30.0) / panel.groups.len().max(1) as f64;
        for (g, (label, parley, node)) in panel.groups.iter().enumerate() {
            let group_left = left + 10.0 + g as f64 * group_w;
            let bar_w = (group_w * 0.35).min(40.0);
            for (k, (value, colour)) in [(parley, PARLEY_COLOUR), (node, NODE_COLOUR)].into_iter().enumerate() {
                let x = group_left + group_w / 2.0 - bar_w + k as f64 * bar_w;
                let Some(value) = value else { continue };
                let h = if max > 0.0 { value / max * plot_h } else { 0.0 };
                let _ = writeln!(
                    out,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{colour}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                    base - h,
                    bar_w - 2.0,
                    x + bar_w / 2.0 - 1.0,
                    base - h - 3.0,
                    show(Some(*value))
                );
            }
            for (line, part) in label.split(", ").enumerate() {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{part}</text>",
                    group_left + group_w / 2.0,
                    base + 14.0 + line as f64 * 12.0
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// A panel with one pair of bars.
fn single(runs: &Runs, title: &'static str, label: String, scenario: &str, key: &str) -> Panel<'static> {
    let pair = |server| figure(runs, scenario, server, key);
    Panel { title, groups: vec![(label, pair("parley"), pair("node"))] }
}

/// Who joined, when a server let fewer than all of them in.
fn joined(runs: &Runs, scenario: &str) -> String {
    let members = |server| figure(runs, scenario, server, "members").unwrap_or(0.0);
    match (members("parley"), members("node")) {
        (p, n) if n < p => format!("one room, Node: {} joined", show(Some(n))),
        _ => "one room".into(),
    }
}

fn panels(runs: &Runs) -> Vec<Panel<'static>> {
    let rooms = |key: &'static str| -> Vec<(String, Option<f64>, Option<f64>)> {
        let short = ["100 members", "1 000", "5 000", "1 000, window 1", "1 000, room-paced"];
        ROOMS
            .iter()
            .zip(short)
            .map(|((scenario, _), label)| {
                (label.to_owned(), figure(runs, scenario, "parley", key), figure(runs, scenario, "node", key))
            })
            .collect()
    };
    vec![
        Panel { title: "server CPU per delivery, µs", groups: rooms("cpu_us_per_delivery") },
        Panel { title: "p99 latency, ms", groups: rooms("p99_ms") },
        single(runs, "idle KiB per connection", "10 000 in 100 rooms".into(), "idle-10000", "idle_kib_per_connection"),
        single(runs, "join 5 000 members, s", joined(runs, "rooms-5000x100"), "rooms-5000x100", "join_seconds"),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: parley-bench-report DIR [--svg FILE]");
        std::process::exit(2);
    };
    let runs = match load(Path::new(dir)) {
        Ok(runs) => runs,
        Err(problem) => {
            eprintln!("parley-bench-report: {problem}");
            std::process::exit(1);
        }
    };
    println!("{}\n{}\n{}\n{}", rooms_table(&runs), other_table(&runs), cross_table(&runs), http_table(&runs));
    if let Some(at) = args.iter().position(|a| a == "--svg") {
        let Some(path) = args.get(at + 1) else {
            eprintln!("--svg needs a file");
            std::process::exit(2);
        };
        if let Err(error) = std::fs::write(path, svg(&panels(&runs))) {
            eprintln!("parley-bench-report: {path}: {error}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn runs() -> Runs {
        let mut runs = Runs::new();
        let run = |cpu: f64, p99: f64| json!({"cpu_us_per_delivery": cpu, "p99_ms": p99, "deliveries": 10, "deliveries_expected": 10, "lost": 0});
        runs.insert(("rooms-1000x500".into(), "parley".into()), run(0.8, 20.0));
        runs.insert(("rooms-1000x500".into(), "node".into()), run(8.0, 150.0));
        runs
    }

    #[test]
    fn tables_set_each_figure_beside_the_peers_with_the_ratio() {
        let table = rooms_table(&runs());
        assert!(table.contains("| 1 000 × 500 | server CPU per delivery, µs | 0.80 | 8.00 | 10.0× |"), "{table}");
        assert!(table.contains("| 1 000 × 500 | p99 latency, ms | 20 | 150 | 7.5× |"), "{table}");
        assert!(table.contains("| 100 members × 2 000 msgs | p99 latency, ms | – | – | – |"), "{table}");
    }

    #[test]
    fn the_cross_process_table_sets_two_processes_beside_one() {
        let mut runs = runs();
        let run =
            json!({"deliveries_per_second": 250000.0, "p99_ms": 40.0, "deliveries": 8, "deliveries_expected": 10});
        runs.insert(("cross-1000x500".into(), "parley2".into()), run);
        let table = cross_table(&runs);
        assert!(table.contains("| two processes on Redis (members split) | 250 k | – | 40 | – | 8/10 |"), "{table}");
        assert!(table.contains("| one process | – | – | – | – | – |"), "{table}");
    }

    #[test]
    fn the_plot_has_a_bar_per_measured_figure_and_none_for_missing_ones() {
        let drawn = svg(&panels(&runs()));
        assert!(drawn.starts_with("<svg"));
        // Two figures each for CPU and p99 in the one measured room.
        assert_eq!(drawn.matches("<rect x=").count() - 2, 4, "{drawn}");
        assert!(drawn.contains(">0.80<") && drawn.contains(">150<"));
    }

    #[test]
    fn summaries_are_read_by_scenario_and_server() {
        let dir = std::env::temp_dir().join(format!("parley-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rooms-1000x500-w1-node.json"), r#"[{"p99_ms": 12.5}]"#).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a summary").unwrap();
        let runs = load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(figure(&runs, "rooms-1000x500-w1", "node", "p99_ms"), Some(12.5));
        assert_eq!(runs.len(), 1);
    }
}
