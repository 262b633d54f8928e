//! Assets of the doozer web viewer, embedded in the `doozerd` binary so the
//! viewer works offline (contract: `docs/web.md`).
//!
//! Plain HTML, CSS and JavaScript, no build step and nothing loaded from
//! outside: the pages load only `/$assets/...`. Names and bodies from the
//! store reach the page as text (`textContent`, text nodes), never as HTML.

/// The live tree page, served for `/` and every `/<dir>/` (its script reads
/// the directory from `location.pathname` and follows `/$events/<dir>/`).
pub const INDEX_HTML: &str = include_str!("assets/index.html");

/// The stats page, served at `/$stats` (its script polls `/$stats.json`).
pub const STATS_HTML: &str = include_str!("assets/stats.html");

/// The cluster page, served at `/$cluster` (its script follows
/// `/$events/ctl/` and judges the nodes' health from their pulses).
pub const CLUSTER_HTML: &str = include_str!("assets/cluster.html");

/// A file's history, served at `/$history?path=P` (its script polls
/// `/$history.json`).
pub const HISTORY_HTML: &str = include_str!("assets/history.html");

/// A directory as it was at a past rev, served at `/$tree?dir=D&rev=N`
/// (its script reads `/$tree.json`).
pub const TREE_HTML: &str = include_str!("assets/tree.html");

/// The script of the tree page, served at `/$assets/viewer.js`.
pub const VIEWER_JS: &str = include_str!("assets/viewer.js");

/// The style sheet of both pages, served at `/$assets/viewer.css`.
pub const VIEWER_CSS: &str = include_str!("assets/viewer.css");

/// The script of the stats page, served at `/$assets/stats.js`.
pub const STATS_JS: &str = include_str!("assets/stats.js");

/// What the cluster, history and past-tree pages share (building elements
/// as text, showing bodies, the connection status, retrying), served at
/// `/$assets/common.js`.
pub const COMMON_JS: &str = include_str!("assets/common.js");

/// The script of the cluster page, served at `/$assets/cluster.js`.
pub const CLUSTER_JS: &str = include_str!("assets/cluster.js");

/// The script of the history page, served at `/$assets/history.js`.
pub const HISTORY_JS: &str = include_str!("assets/history.js");

/// The script of the past-tree page, served at `/$assets/tree.js`.
pub const TREE_JS: &str = include_str!("assets/tree.js");

/// The names served under `/$assets/`, with their content types.
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("viewer.js", "text/javascript; charset=utf-8", VIEWER_JS),
    ("viewer.css", "text/css; charset=utf-8", VIEWER_CSS),
    ("stats.js", "text/javascript; charset=utf-8", STATS_JS),
    ("common.js", "text/javascript; charset=utf-8", COMMON_JS),
    ("cluster.js", "text/javascript; charset=utf-8", CLUSTER_JS),
    ("history.js", "text/javascript; charset=utf-8", HISTORY_JS),
    ("tree.js", "text/javascript; charset=utf-8", TREE_JS),
];

/// The asset served at `/$assets/<name>`: its content type and bytes, or
/// `None` for an unknown name.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, body)| (*content_type, body.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGES: &[(&str, &str)] = &[
        ("index.html", INDEX_HTML),
        ("stats.html", STATS_HTML),
        ("cluster.html", CLUSTER_HTML),
        ("history.html", HISTORY_HTML),
        ("tree.html", TREE_HTML),
    ];

    /// Every text of the viewer: pages and assets.
    fn all() -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = PAGES.to_vec();
        v.extend(ASSETS.iter().map(|(n, _, body)| (*n, *body)));
        v
    }

    /// The values of `attr="..."` in `html`.
    fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        let needle = format!("{attr}=\"");
        html.match_indices(&needle)
            .map(|(i, _)| {
                let rest = &html[i + needle.len()..];
                &rest[..rest.find('"').expect("closing quote")]
            })
            .collect()
    }

    #[test]
    fn every_asset_exists_and_is_not_empty() {
        for (name, _, _) in ASSETS {
            let (content_type, body) = asset(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(!body.is_empty(), "{name} is empty");
            assert!(
                content_type.contains("charset=utf-8"),
                "{name}: {content_type}"
            );
        }
        assert_eq!(
            asset("viewer.js").unwrap().0,
            "text/javascript; charset=utf-8"
        );
        assert_eq!(asset("viewer.css").unwrap().0, "text/css; charset=utf-8");
        for (name, page) in PAGES {
            assert!(page.starts_with("<!doctype html>"), "{name}");
            assert!(page.contains("<meta charset=\"utf-8\">"), "{name}");
        }
    }

    #[test]
    fn unknown_assets_are_none() {
        for name in [
            "",
            "index.html",
            "stats.html",
            "../lib.rs",
            "viewer.js/",
            "VIEWER.JS",
        ] {
            assert!(asset(name).is_none(), "{name:?}");
        }
    }

    #[test]
    fn pages_load_only_embedded_assets() {
        for (name, page) in PAGES {
            let mut refs = attr_values(page, "src");
            refs.extend(
                attr_values(page, "href")
                    .into_iter()
                    .filter(|h| page.contains(&format!("<link rel=\"stylesheet\" href=\"{h}\""))),
            );
            assert!(!refs.is_empty(), "{name} loads nothing");
            for r in refs {
                let asset_name = r
                    .strip_prefix("/$assets/")
                    .unwrap_or_else(|| panic!("{name} loads {r}"));
                assert!(asset(asset_name).is_some(), "{name} loads missing {r}");
            }
        }
        assert!(INDEX_HTML.contains("src=\"/$assets/viewer.js\""));
        assert!(INDEX_HTML.contains("href=\"/$assets/viewer.css\""));
        assert!(STATS_HTML.contains("src=\"/$assets/stats.js\""));
    }

    #[test]
    fn nothing_points_outside() {
        for (name, text) in all() {
            let lower = text.to_ascii_lowercase();
            for bad in ["http://", "https://", "//fonts.", "@import", "url("] {
                assert!(!lower.contains(bad), "{name} contains {bad}");
            }
        }
    }

    #[test]
    fn scripts_never_parse_html() {
        for (name, text) in all() {
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "DOMParser",
                "createContextualFragment",
                "eval(",
                "new Function",
            ] {
                assert!(!text.contains(bad), "{name} uses {bad}");
            }
        }
    }

    #[test]
    fn pages_carry_the_test_hooks() {
        for (_, page) in PAGES {
            assert!(page.contains("id=\"status\""));
            assert!(page.contains("data-state="));
            assert!(page.contains("data-rev="));
        }
        for hook in [
            "data-path",
            "data-dir",
            "'changed'",
            "'name'",
            "'rev'",
            "'len'",
            "'body'",
        ] {
            assert!(VIEWER_JS.contains(hook), "viewer.js lacks {hook}");
        }
        for state in ["connected", "reconnecting", "disconnected"] {
            assert!(VIEWER_JS.contains(&format!("'{state}'")), "{state}");
        }
        for event in ["reset", "file", "ready", "change", "rev"] {
            assert!(VIEWER_JS.contains(&format!("{event}: function")), "{event}");
        }
        assert!(VIEWER_JS.contains("'/$events' + dir"));
        assert!(STATS_JS.contains("'/$stats.json'"));
        assert!(STATS_JS.contains("'/$samples.json"));
        assert!(CLUSTER_JS.contains("'/$events' + layout.dir"));
        assert!(CLUSTER_JS.contains("'/$stats.json'"));
        assert!(HISTORY_JS.contains("'/$history.json"));
        assert!(TREE_JS.contains("'/$tree.json"));
        for page in [CLUSTER_HTML, HISTORY_HTML, TREE_HTML] {
            assert!(page.contains("src=\"/$assets/common.js\""));
        }
    }

    #[test]
    fn stats_page_shows_every_field_of_the_contract() {
        for field in [
            "node_id",
            "cluster",
            "role",
            "version",
            "uptime_s",
            "pulse_s",
            "timeout_s",
            "rev",
            "history_oldest",
            "history_revs",
            "cals",
            "clients",
            "web_clients",
            "waits_pending",
            "memory_rss_bytes",
            "store_files",
            "store_bytes",
            "requests",
            "reads",
            "writes",
            "waits",
            "errors",
            "consensus.instances_in_flight",
            "consensus.proposals",
            "consensus.fills",
            "consensus.retries",
            "consensus.messages_sent",
            "consensus.messages_received",
            "consensus.datagrams_dropped",
            "consensus.datagrams_unauthenticated",
        ] {
            assert!(STATS_JS.contains(&format!("'{field}'")), "{field}");
        }
        for cal_field in ["c.slot", "c.id", "c.addr", "c.applied"] {
            assert!(STATS_JS.contains(cal_field), "{cal_field}");
        }
    }
}
