//! Rendering the status report: the human table of `ringrelay status` and the
//! server-rendered status page (HTML with an inline SVG coverage timeline, no JavaScript).

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use super::model::{AccountStatus, DeliveryView, GapView, StatusReport};

/// A left-aligned text table.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as aligned lines.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut l = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                if i + 1 == widths.len() {
                    l.push_str(cell);
                } else {
                    let _ = write!(l, "{cell:<width$}  ");
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&self.header);
        for row in &self.rows {
            line(row);
        }
        out
    }
}

/// "3d 4h", "12m", "45s": a short human duration.
pub fn human_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    let (sign, secs) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    let text = match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    format!("{sign}{text}")
}

fn ago(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |t| format!("{} ago", human_duration(now - t)),
    )
}

fn expires_in(now: DateTime<Utc>, account: &AccountStatus) -> String {
    match account.subscription.as_ref().and_then(|s| s.expires_at) {
        Some(at) if at > now => human_duration(at - now),
        Some(_) => "expired".to_owned(),
        None => "-".to_owned(),
    }
}

/// Which replica keeps each account and runs the processor (shown when leases exist).
fn replicas_text(report: &StatusReport) -> String {
    let held = report.processor.is_some() || report.accounts.iter().any(|a| a.keeper.is_some());
    if !held {
        return String::new();
    }
    let lease = |l: &super::model::LeaseView| {
        if l.live {
            format!("until {}", l.expires_at.format("%H:%M:%S"))
        } else {
            format!(
                "lapsed at {} (free to take)",
                l.expires_at.format("%H:%M:%S")
            )
        }
    };
    let mut table = Table::new(&["ACCOUNT", "KEPT BY", "LEASE"]);
    for a in &report.accounts {
        match &a.keeper {
            Some(k) => table.row(vec![a.id.clone(), k.owner.clone(), lease(k)]),
            None => table.row(vec![a.id.clone(), "-".to_owned(), "not held".to_owned()]),
        }
    }
    let mut out = String::from("\n");
    out.push_str(&table.render());
    match &report.processor {
        Some(p) => {
            let _ = writeln!(out, "processor: {} ({})", p.owner, lease(p));
        }
        None => out.push_str("processor: not running\n"),
    }
    out
}

/// The human form of `ringrelay status`.
pub fn status_text(report: &StatusReport) -> String {
    let now = report.generated_at;
    let mut accounts = Table::new(&[
        "ACCOUNT",
        "SUBSCRIPTION",
        "STATUS",
        "EXPIRES IN",
        "LAST EVENT",
        "EVENTS/1H",
        "OPEN GAPS",
        "BACKFILLS PENDING",
    ]);
    for a in &report.accounts {
        let (id, status) = a.subscription.as_ref().map_or_else(
            || ("-".to_owned(), "none".to_owned()),
            |s| (s.id.clone(), s.status.clone()),
        );
        accounts.row(vec![
            a.id.clone(),
            id,
            status,
            expires_in(now, a),
            ago(now, a.last_event_at),
            a.events_last_hour.to_string(),
            a.open_gaps().to_string(),
            a.pending_backfills().to_string(),
        ]);
    }
    let mut out = accounts.render();
    for a in &report.accounts {
        if let Some(e) = &a.extensions {
            let _ = writeln!(out, "  {}: {}", a.id, e.summary());
        }
        for problem in &a.problems {
            let _ = writeln!(out, "  {}: {problem}", a.id);
        }
    }
    out.push_str(&replicas_text(report));
    if !report.sinks.is_empty() {
        out.push('\n');
        let mut sinks = Table::new(&["SINK", "TYPE", "STATE", "PENDING", "DEAD", "DELIVERED"]);
        for s in &report.sinks {
            sinks.row(vec![
                s.name.clone(),
                s.kind.clone(),
                s.disabled
                    .as_ref()
                    .map_or_else(|| "enabled".to_owned(), |r| format!("disabled: {r}")),
                s.pending.to_string(),
                s.dead.to_string(),
                s.delivered.to_string(),
            ]);
        }
        out.push_str(&sinks.render());
    }
    out
}

/// The human form of `ringrelay deliveries list`.
pub fn deliveries_text(now: DateTime<Utc>, deliveries: &[DeliveryView]) -> String {
    if deliveries.is_empty() {
        return "no deliveries match\n".to_owned();
    }
    let mut t = Table::new(&[
        "ID",
        "SINK",
        "ACCOUNT",
        "TYPE",
        "STATE",
        "ATTEMPTS",
        "NEXT",
        "LAST ERROR",
    ]);
    for d in deliveries {
        t.row(vec![
            d.id.to_string(),
            d.sink.clone(),
            d.account.clone(),
            d.activity_type.clone(),
            d.state.clone(),
            d.attempts.to_string(),
            d.next_attempt_at.map_or_else(
                || "-".to_owned(),
                |at| {
                    if at > now {
                        format!("in {}", human_duration(at - now))
                    } else {
                        "due".to_owned()
                    }
                },
            ),
            d.last_error.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const TIMELINE_WIDTH: f64 = 720.0;

/// The coverage timeline of one account over `[start, now]` as inline SVG: green where
/// covered, red for an open or not yet backfilled gap, amber for a backfilled gap.
pub fn timeline_svg(gaps: &[GapView], start: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let span = (now - start).num_milliseconds().max(1) as f64;
    let x = |t: DateTime<Utc>| {
        let t = t.clamp(start, now);
        (t - start).num_milliseconds() as f64 / span * TIMELINE_WIDTH
    };
    let w = TIMELINE_WIDTH;
    let mut svg = format!(
        r##"<svg class="timeline" role="img" aria-label="coverage timeline" width="{w}" height="28" viewBox="0 0 {w} 28"><rect x="0" y="4" width="{w}" height="16" fill="#2e9e5b"><title>covered</title></rect>"##
    );
    for gap in gaps {
        let until = gap.until.unwrap_or(now);
        if until < start {
            continue;
        }
        let (x0, x1) = (x(gap.from), x(until));
        let (class, colour, what) = match (gap.until, gap.backfilled_at) {
            (_, Some(_)) => ("backfilled", "#e0a030", "gap, backfilled"),
            (None, None) => ("gap", "#c0392b", "gap, open"),
            (Some(_), None) => ("gap", "#c0392b", "gap, backfill pending"),
        };
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x0:.1}" y="4" width="{w:.1}" height="16" fill="{colour}"><title>{what}: {from} to {to} ({reason})</title></rect>"#,
            w = (x1 - x0).max(2.0),
            from = gap.from.format("%Y-%m-%d %H:%M:%S"),
            to = gap
                .until
                .map_or_else(|| "now".to_owned(), |u| u.format("%H:%M:%S").to_string()),
            reason = escape(&gap.reason),
        );
    }
    svg.push_str("</svg>");
    svg
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border-bottom:1px solid #ddd;\
padding:.3rem .7rem;text-align:left}th{background:#f4f4f4}.ok{color:#2e7d32}.bad{color:#c0392b}\
.account{border:1px solid #ddd;border-radius:6px;padding:1rem;margin-bottom:1rem}\
.legend span{display:inline-block;width:12px;height:12px;margin:0 .3rem 0 1rem}";

/// The status page: accounts with their coverage timelines, sinks, and the deliveries
/// given (typically the failed ones) with retry buttons.
pub fn status_page(report: &StatusReport, deliveries: &[DeliveryView]) -> String {
    let now = report.generated_at;
    let earliest = report
        .accounts
        .iter()
        .flat_map(|a| a.gaps.iter().map(|g| g.from))
        .min();
    let start = earliest.map_or(now - Duration::hours(24), |e| {
        (e - Duration::minutes(10)).min(now - Duration::hours(1))
    });
    let mut h = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ringrelay status</title>\
<style>{STYLE}</style></head><body><h1>ringrelay</h1><p>Generated {} · <a href=\"/\">refresh</a> · \
<a href=\"/api/v1/status\">JSON</a> · <form method=\"post\" action=\"/logout\" style=\"display:inline\">\
<button>log out</button></form></p><h2>Accounts</h2>",
        now.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if let Some(p) = &report.processor {
        let _ = write!(
            h,
            "<p>Processor on replica <code>{}</code></p>",
            escape(&p.owner)
        );
    }
    let _ = write!(
        h,
        "<p class=\"legend\">Timeline from {} to now:<span style=\"background:#2e9e5b\"></span>covered\
<span style=\"background:#c0392b\"></span>gap<span style=\"background:#e0a030\"></span>gap, backfilled</p>",
        start.format("%Y-%m-%d %H:%M UTC")
    );
    for a in &report.accounts {
        let state = if a.covered() {
            "<span class=\"ok\">covered</span>"
        } else {
            "<span class=\"bad\">not covered</span>"
        };
        let sub = a.subscription.as_ref().map_or_else(
            || "no subscription".to_owned(),
            |s| {
                format!(
                    "subscription <code>{}</code> {} · expires in {}",
                    escape(&s.id),
                    escape(&s.status),
                    expires_in(now, a)
                )
            },
        );
        let _ = write!(
            h,
            "<section class=\"account\" id=\"account-{id}\"><h3>{id} · {state}</h3><p>{sub}{kept} · last event {last} · {n} events in the last hour · {open} open gaps · {pending} backfills pending</p>{svg}",
            id = escape(&a.id),
            kept = a.keeper.as_ref().map_or_else(String::new, |k| format!(
                " · kept by replica <code>{}</code>",
                escape(&k.owner)
            )),
            last = ago(now, a.last_event_at),
            n = a.events_last_hour,
            open = a.open_gaps(),
            pending = a.pending_backfills(),
            svg = timeline_svg(&a.gaps, start, now),
        );
        if let Some(e) = &a.extensions {
            let _ = write!(h, "<p class=\"extensions\">{}</p>", escape(&e.summary()));
            if !e.not_covered.is_empty() {
                h.push_str("<details><summary>extensions not covered</summary><table class=\"extensions\"><tr><th>extension</th><th>number</th><th>name</th><th>why</th></tr>");
                for x in &e.not_covered {
                    let _ = write!(
                        h,
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(&x.id),
                        escape(x.number.as_deref().unwrap_or("-")),
                        escape(&x.name),
                        escape(&x.reason)
                    );
                }
                h.push_str("</table></details>");
            }
        }
        if !a.problems.is_empty() {
            h.push_str("<ul class=\"problems\">");
            for p in &a.problems {
                let _ = write!(h, "<li class=\"bad\">{}</li>", escape(p));
            }
            h.push_str("</ul>");
        }
        if !a.gaps.is_empty() {
            h.push_str("<table class=\"gaps\"><tr><th>gap from</th><th>until</th><th>reason</th><th>backfill</th></tr>");
            for g in &a.gaps {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    g.from.format("%Y-%m-%d %H:%M:%S"),
                    g.until.map_or_else(
                        || "open".to_owned(),
                        |u| u.format("%Y-%m-%d %H:%M:%S").to_string()
                    ),
                    escape(&g.reason),
                    g.backfilled_at.map_or_else(
                        || "pending".to_owned(),
                        |_| format!("done, {} activities", g.backfilled_activities)
                    ),
                );
            }
            h.push_str("</table>");
        }
        h.push_str("</section>");
    }
    h.push_str("<h2>Sinks</h2><table class=\"sinks\"><tr><th>sink</th><th>type</th><th>state</th><th>pending</th><th>dead</th><th>delivered</th></tr>");
    for s in &report.sinks {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.name),
            escape(&s.kind),
            s.disabled.as_ref().map_or_else(
                || "enabled".to_owned(),
                |r| format!("disabled: {}", escape(r))
            ),
            s.pending,
            s.dead,
            s.delivered
        );
    }
    h.push_str("</table><h2>Failed deliveries</h2>");
    if deliveries.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table class=\"deliveries\"><tr><th>id</th><th>sink</th><th>account</th><th>type</th><th>state</th><th>attempts</th><th>last error</th><th></th></tr>");
        for d in deliveries {
            let _ = write!(
                h,
                "<tr id=\"delivery-{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"state\">{}</td><td>{}</td><td>{}</td>\
<td><form method=\"post\" action=\"/ui/deliveries/{id}/retry\"><button class=\"retry\" type=\"submit\">retry</button></form></td></tr>",
                escape(&d.sink),
                escape(&d.account),
                escape(&d.activity_type),
                escape(&d.state),
                d.attempts,
                escape(d.last_error.as_deref().unwrap_or("")),
                id = d.id,
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>");
    h
}

/// The login form of the status page.
pub fn login_page(error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"bad\">{}</p>", escape(e))
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ringrelay: log in</title>\
<style>{STYLE}</style></head><body><h1>ringrelay</h1>{error}<form method=\"post\" action=\"/login\">\
<label>Admin token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\"></label> \
<button type=\"submit\" id=\"login\">Log in</button></form></body></html>"
    )
}
