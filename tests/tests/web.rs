//! The web viewer on `-w` (docs/reference.md#web-viewer; contract in
//! docs/web.md), end to end: a real doozerd, the real `doozer` command
//! writing, and headless chromium (through chromedriver, see
//! `src/browser.rs`) reading the live page.
//!
//! What the page exposes for these tests (docs/web.md and web/src/assets):
//! `#status` with `data-state="connected|reconnecting|disconnected"` and
//! `data-rev="N"`; a row per file with `data-path="/full/path"` and child
//! elements `.name`, `.rev`, `.len`, `.body`; a row per directory with
//! `data-dir="/full/path"`; a highlighted row has class `changed`.
//!
//! Every wait is a poll with a deadline ([`WEB_DEADLINE`]); no fixed sleeps,
//! no timing assertions. The raw-HTTP tests (event stream, `/$metrics`,
//! `/$stats.json`) pin down the server side alone, so a failure tells
//! whether the server or the page is at fault.
//!
//! `DOOZER_SCREENSHOT=path` makes the XSS test also save a PNG of the
//! viewer there (docs/viewer.png was made that way).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use doozer_tests::browser::{http_get, http_request, Browser, WEB_DEADLINE};
use doozer_tests::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Helpers: the node, the CLI, the page
// ---------------------------------------------------------------------------

/// A fresh `-w` address on 127.0.0.1.
fn web_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// A node serving the viewer on a fresh port.
fn start_node() -> (Doozerd, SocketAddr) {
    let web = web_addr();
    let d = Doozerd::builder().web(&web.to_string()).start();
    (d, web)
}

fn url(web: SocketAddr, path: &str) -> String {
    format!("http://{web}{path}")
}

/// `doozer set PATH -1 < body`; returns the new rev.
fn set(d: &Doozerd, path: &str, body: &[u8]) -> i64 {
    let out = doozer(d, &["set", path, "-1"], body).ok();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("doozer set printed {out:?}"))
}

/// `doozer del PATH -1`.
fn del(d: &Doozerd, path: &str) {
    doozer(d, &["del", path, "-1"], b"").ok();
}

/// `doozer rev`.
fn node_rev(d: &Doozerd) -> i64 {
    let out = doozer(d, &["rev"], b"").ok();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("doozer rev printed {out:?}"))
}

/// The first run of digits in `text`, as a number (`"rev 12"` → 12).
fn first_int(text: &str) -> Option<i64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// One file row as the page shows it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    path: String,
    name: Option<String>,
    rev: Option<String>,
    len: Option<String>,
    body: Option<String>,
    changed: bool,
}

impl Row {
    fn rev(&self) -> Option<i64> {
        self.rev.as_deref().and_then(first_int)
    }
    fn len(&self) -> Option<i64> {
        self.len.as_deref().and_then(first_int)
    }
    fn body(&self) -> &str {
        self.body.as_deref().unwrap_or_default()
    }
}

/// Everything the tests read from the page, in one script call.
#[derive(Debug, Clone, PartialEq)]
struct Page {
    state: Option<String>,
    rev: Option<i64>,
    rows: Vec<Row>,
    dirs: Vec<String>,
}

impl Page {
    fn row(&self, path: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.path == path)
    }
    fn paths(&self) -> BTreeSet<String> {
        self.rows.iter().map(|r| r.path.clone()).collect()
    }
    fn connected(&self) -> bool {
        self.state.as_deref() == Some("connected")
    }
    /// Directory paths without a trailing slash (the root stays `/`).
    fn dirs(&self) -> BTreeSet<String> {
        self.dirs
            .iter()
            .map(|d| {
                if d.len() > 1 {
                    d.trim_end_matches('/').to_string()
                } else {
                    d.clone()
                }
            })
            .collect()
    }
}

const SNAPSHOT_JS: &str = r#"
const text = (r, c) => { const e = r.querySelector('.' + c); return e ? e.textContent : null; };
const s = document.getElementById('status');
return {
  state: s ? s.getAttribute('data-state') : null,
  rev: s ? s.getAttribute('data-rev') : null,
  rows: [...document.querySelectorAll('[data-path]')].map(r => ({
    path: r.getAttribute('data-path'),
    name: text(r, 'name'), rev: text(r, 'rev'), len: text(r, 'len'), body: text(r, 'body'),
    changed: r.classList.contains('changed'),
  })),
  dirs: [...document.querySelectorAll('[data-dir]')].map(d => d.getAttribute('data-dir')),
};
"#;

fn snapshot(b: &Browser) -> Page {
    let v = b.exec(SNAPSHOT_JS, &[]);
    let s = |v: &Value| v.as_str().map(str::to_string);
    Page {
        state: s(&v["state"]),
        rev: v["rev"].as_str().and_then(|r| r.trim().parse().ok()),
        rows: v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| Row {
                path: s(&r["path"]).unwrap_or_default(),
                name: s(&r["name"]),
                rev: s(&r["rev"]),
                len: s(&r["len"]),
                body: s(&r["body"]),
                changed: r["changed"] == Value::Bool(true),
            })
            .collect(),
        dirs: v["dirs"]
            .as_array()
            .expect("dirs")
            .iter()
            .filter_map(s)
            .collect(),
    }
}

/// Polls the page until `f` returns `Some` (up to [`WEB_DEADLINE`]);
/// panics with the last snapshot otherwise.
fn wait_page<T>(b: &Browser, what: &str, mut f: impl FnMut(&Page) -> Option<T>) -> T {
    let deadline = Instant::now() + WEB_DEADLINE;
    loop {
        let page = snapshot(b);
        if let Some(v) = f(&page) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {WEB_DEADLINE:?} waiting for: {what}\npage url: {}\nlast page: {page:#?}",
                b.url()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the row `path` satisfies `pred`; returns it.
fn wait_row(b: &Browser, path: &str, what: &str, pred: impl Fn(&Row) -> bool) -> Row {
    wait_page(b, &format!("{path}: {what}"), |p| {
        p.row(path).filter(|r| pred(r)).cloned()
    })
}

/// Starts recording every file row that gets (or is added with) class
/// `changed`, into `window.__changedSeen`, whatever the highlight's
/// duration.
fn record_highlights(b: &Browser) {
    b.exec(
        r#"
window.__changedSeen = [];
const note = e => {
  if (e.nodeType === 1) {
    const rows = [e, ...e.querySelectorAll('[data-path]')];
    for (const r of rows)
      if (r.hasAttribute && r.hasAttribute('data-path') && r.classList.contains('changed'))
        window.__changedSeen.push(r.getAttribute('data-path'));
  }
};
new MutationObserver(ms => {
  for (const m of ms) {
    if (m.type === 'attributes') note(m.target);
    for (const n of m.addedNodes || []) note(n);
  }
}).observe(document.documentElement,
  {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
return true;
"#,
        &[],
    );
}

fn highlighted(b: &Browser) -> BTreeSet<String> {
    b.exec("return window.__changedSeen || []", &[])
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Waits for the page to be connected with `data-rev` ≥ `rev`.
fn wait_connected_at(b: &Browser, rev: i64) -> Page {
    wait_page(
        b,
        &format!("status connected with data-rev >= {rev}"),
        |p| (p.connected() && p.rev.is_some_and(|r| r >= rev)).then(|| p.clone()),
    )
}

// ---------------------------------------------------------------------------
// Browser smoke test (no doozerd): tells a broken browser set-up apart from
// a broken viewer.
// ---------------------------------------------------------------------------

#[test]
fn the_browser_runs_scripts_in_a_static_page() {
    let b = Browser::start();
    b.goto("data:text/html,<title>t</title><p id=x data-v=3>hi &lt;b&gt;</p>");
    let v = b.exec(
        "return [document.title, document.getElementById('x').textContent, \
         document.getElementById('x').dataset.v, arguments[0] + 1]",
        &[json!(41)],
    );
    assert_eq!(v, json!(["t", "hi <b>", "3", 42]));
    let png = b.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "screenshot is a PNG");
}

// ---------------------------------------------------------------------------
// The live tree
// ---------------------------------------------------------------------------

#[test]
fn the_page_shows_the_tree_and_follows_sets_and_dels() {
    let (d, web) = start_node();
    let r_a = set(&d, "/web/a", b"alpha");
    let r_b = set(&d, "/web/b", b"beta");
    let r_c = set(&d, "/web/sub/c", b"gamma");
    let _r_gone = set(&d, "/web/gone", b"bye");
    set(&d, "/web/lonely/only", b"soon deleted");
    let uni = "h\u{e9}llo \u{2713} \u{65e5}\u{672c}";
    let r_uni = set(&d, "/web/uni", uni.as_bytes());
    set(&d, "/web/empty", b"");
    set(&d, "/web/lines", b"one\ntwo\n");

    let b = Browser::start();
    b.goto(&url(web, "/"));
    let page = wait_page(&b, "the files written before the page loaded", |p| {
        let ok = [
            ("/web/a", "alpha", r_a),
            ("/web/b", "beta", r_b),
            ("/web/sub/c", "gamma", r_c),
        ]
        .iter()
        .all(|(path, body, rev)| {
            p.row(path)
                .is_some_and(|r| r.body() == *body && r.rev() == Some(*rev))
        }) && p.row("/web/gone").is_some();
        ok.then(|| p.clone())
    });
    // Text bodies are shown exactly; the length is in bytes.
    let u = page.row("/web/uni").unwrap();
    assert_eq!(
        (u.body(), u.rev(), u.len()),
        (uni, Some(r_uni), Some(uni.len() as i64)),
        "{u:?}"
    );
    let e = page.row("/web/empty").unwrap();
    assert_eq!((e.body(), e.len()), ("", Some(0)), "{e:?}");
    let l = page.row("/web/lines").unwrap();
    // Newlines may show as visible `\n` escapes (viewer.js shows control
    // characters that way) or as line breaks.
    assert_eq!(l.body().replace("\\n", "\n"), "one\ntwo\n", "{l:?}");
    let c = page.row("/web/sub/c").unwrap();
    assert_eq!(c.name.as_deref().map(str::trim), Some("c"), "{c:?}");
    assert_eq!(c.len(), Some(5), "{c:?}");
    let dirs = page.dirs();
    assert!(
        dirs.contains("/web") && dirs.contains("/web/sub"),
        "directory rows {dirs:?}"
    );
    // /ctl is part of the root's tree too.
    assert!(
        page.paths().iter().any(|p| p.starts_with("/ctl/")),
        "{page:#?}"
    );
    wait_connected_at(&b, node_rev(&d));

    record_highlights(&b);
    let r_new = set(&d, "/web/new", b"fresh");
    let r_a2 = set(&d, "/web/a", b"alpha 2");
    del(&d, "/web/gone");
    // The only file of a directory: the directory goes with it.
    del(&d, "/web/lonely/only");
    let page = wait_page(&b, "a new row, a changed row and two deleted rows", |p| {
        let new = p
            .row("/web/new")
            .is_some_and(|r| r.body() == "fresh" && r.rev() == Some(r_new));
        let a = p
            .row("/web/a")
            .is_some_and(|r| r.body() == "alpha 2" && r.rev() == Some(r_a2));
        let gone = p.row("/web/gone").is_none() && p.row("/web/lonely/only").is_none();
        (new && a && gone).then(|| p.clone())
    });
    assert!(
        !page.dirs().contains("/web/lonely"),
        "the emptied directory still has a row: {:?}",
        page.dirs()
    );
    assert_eq!(page.row("/web/a").unwrap().len(), Some(7));
    // The untouched rows are still there, unchanged.
    let b_row = page.row("/web/b").unwrap();
    assert_eq!((b_row.body(), b_row.rev()), ("beta", Some(r_b)));
    let seen = highlighted(&b);
    assert!(
        seen.contains("/web/a") && seen.contains("/web/new"),
        "rows highlighted (class `changed`) since the writes: {seen:?}"
    );
    assert!(
        !seen.contains("/web/b"),
        "an untouched row was highlighted: {seen:?}"
    );

    let rev = node_rev(&d);
    let page = wait_connected_at(&b, rev);
    assert!(
        page.rev <= Some(node_rev(&d)),
        "page rev ahead of the node: {page:#?}"
    );
}

#[test]
fn bodies_are_text_never_markup_and_binary_bodies_show_their_length() {
    const EVIL: &str =
        r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>bold</b>"#;
    let (d, web) = start_node();
    set(&d, "/x/before", EVIL.as_bytes());
    set(&d, "/x/bin", &[0xff, 0xfe, 0x00]);
    // Ordinary files, for the screenshot.
    set(&d, "/app/db/url", b"postgres://db.internal:5432/app");
    set(&d, "/app/feature/dark-mode", b"on");
    set(&d, "/app/workers", b"8");

    let b = Browser::start();
    b.goto(&url(web, "/"));
    wait_row(&b, "/x/before", "the markup as text", |r| r.body() == EVIL);
    set(&d, "/x/after", EVIL.as_bytes());
    wait_row(&b, "/x/after", "the markup as text", |r| r.body() == EVIL);

    let bin = wait_row(&b, "/x/bin", "shown as binary", |r| {
        r.body().to_lowercase().contains("binary")
    });
    assert!(
        bin.body().contains("3 byte") && bin.len() == Some(3),
        "binary body should show its length (3 bytes): {bin:?}"
    );

    // One more change after the markup arrived, so anything it could have
    // scheduled (an image error handler) had its turn.
    let r_last = set(&d, "/x/last", b"last");
    wait_connected_at(&b, r_last);
    wait_row(&b, "/x/last", "present", |r| r.body() == "last");
    let v = b.exec(
        r#"
return {
  pwned: typeof window.__pwned,
  in_rows: document.querySelectorAll('[data-path] script, [data-path] img, [data-path] b').length,
  imgs: [...document.querySelectorAll('img')].filter(i => i.getAttribute('src') === 'x').length,
  bold: [...document.querySelectorAll('b')].filter(e => e.textContent === 'bold').length,
  scripts: [...document.scripts].filter(s => s.textContent.includes('__pwned')).length,
};
"#,
        &[],
    );
    assert_eq!(
        v,
        json!({"pwned": "undefined", "in_rows": 0, "imgs": 0, "bold": 0, "scripts": 0}),
        "markup in a body became elements"
    );

    if let Ok(path) = std::env::var("DOOZER_SCREENSHOT") {
        b.set_window_size(1100, 960);
        b.exec("document.querySelectorAll('.changed').forEach(e => e.classList.remove('changed')); return 0", &[]);
        std::fs::write(&path, b.screenshot()).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

#[test]
fn the_page_reconnects_to_a_restarted_node_and_starts_over() {
    let port = free_port();
    let web = web_addr();
    let mut d1 = Doozerd::builder().port(port).web(&web.to_string()).start();
    // Enough revs that the page's resume point is ahead of the new node's
    // store, which starts over from its first rev.
    let mut c = d1.raw();
    for i in 0..60 {
        c.must_set(&format!("/old/k{i:02}"), -1, b"x");
    }
    drop(c);
    let r_old = set(&d1, "/old/marker", b"first node");

    let b = Browser::start();
    b.goto(&url(web, "/"));
    wait_row(&b, "/old/marker", "from the first node", |r| {
        r.body() == "first node"
    });
    wait_connected_at(&b, r_old);

    d1.kill();
    wait_page(&b, "status not connected after the node died", |p| {
        matches!(p.state.as_deref(), Some("reconnecting" | "disconnected")).then_some(())
    });

    let d2 = Doozerd::builder().port(port).web(&web.to_string()).start();
    let r_new = set(&d2, "/new/marker", b"second node");
    assert!(
        r_new < r_old,
        "test set-up: the new node ({r_new}) should be behind the page's rev ({r_old})"
    );
    let page = wait_page(&b, "the second node's tree, connected", |p| {
        let new = p
            .row("/new/marker")
            .is_some_and(|r| r.body() == "second node" && r.rev() == Some(r_new));
        let old_gone = !p.paths().iter().any(|p| p.starts_with("/old/"));
        (new && old_gone && p.connected()).then(|| p.clone())
    });
    let rev_now = node_rev(&d2);
    assert!(
        page.rev.is_some_and(|r| r >= r_new && r <= rev_now),
        "data-rev should follow the new node ({r_new}..={rev_now}): {:?}",
        page.rev
    );
    // And it keeps following the new node.
    let r2 = set(&d2, "/new/second", b"2");
    wait_row(&b, "/new/second", "a change on the new node", |r| {
        r.rev() == Some(r2)
    });
    drop(d1);
}

#[test]
fn a_directory_page_shows_only_that_directory() {
    let (d, web) = start_node();
    let r_one = set(&d, "/a/one", b"1");
    set(&d, "/a/deep/two", b"2");
    set(&d, "/b/three", b"3");
    set(&d, "/top", b"t");
    set(&d, "/ab", b"not under /a/");

    let b = Browser::start();
    b.goto(&url(web, "/a/"));
    let want: BTreeSet<String> = ["/a/one", "/a/deep/two"].map(String::from).into();
    let page = wait_page(&b, "exactly the files under /a/", |p| {
        (p.paths() == want && p.connected()).then(|| p.clone())
    });
    assert_eq!(page.row("/a/one").unwrap().rev(), Some(r_one));
    let dirs = page.dirs();
    assert!(dirs.contains("/a/deep"), "{dirs:?}");
    assert!(
        !dirs.iter().any(|d| d == "/b" || d == "/ctl"),
        "directories outside /a/: {dirs:?}"
    );

    // A change outside /a/ before one inside: once the inside one shows,
    // the outside one has been passed over.
    let r_out = set(&d, "/b/late", b"x");
    let r_in = set(&d, "/a/late", b"y");
    assert!(r_out < r_in);
    let page = wait_page(&b, "/a/late", |p| p.row("/a/late").map(|_| p.clone()));
    let want: BTreeSet<String> = ["/a/one", "/a/deep/two", "/a/late"]
        .map(String::from)
        .into();
    assert_eq!(page.paths(), want);
    // A change outside the directory still moves the page's rev.
    let r_last = set(&d, "/b/last", b"z");
    wait_connected_at(&b, r_last);
    assert_eq!(snapshot(&b).paths(), want);
}

#[test]
fn a_directory_page_before_the_directory_exists() {
    let (d, web) = start_node();
    let b = Browser::start();
    b.goto(&url(web, "/later/"));
    let page = wait_connected_at(&b, node_rev(&d));
    assert!(page.rows.is_empty(), "{page:#?}");
    let r = set(&d, "/later/f", b"now");
    wait_row(&b, "/later/f", "created after the page loaded", |row| {
        row.body() == "now" && row.rev() == Some(r)
    });
    del(&d, "/later/f");
    wait_page(&b, "the page empty again", |p| {
        p.rows.is_empty().then_some(())
    });
}

#[test]
fn files_and_directories_swap_places() {
    let (d, web) = start_node();
    set(&d, "/t/d/x", b"in a dir");
    set(&d, "/t/f", b"a file");
    let b = Browser::start();
    b.goto(&url(web, "/t/"));
    wait_page(&b, "the first shape", |p| {
        (p.row("/t/d/x").is_some() && p.row("/t/f").is_some()).then_some(())
    });
    // The directory /t/d becomes a file, the file /t/f a directory.
    del(&d, "/t/d/x");
    let r_d = set(&d, "/t/d", b"now a file");
    del(&d, "/t/f");
    let r_y = set(&d, "/t/f/y", b"now in a dir");
    let page = wait_page(&b, "the swapped shape", |p| {
        let want: BTreeSet<String> = ["/t/d", "/t/f/y"].map(String::from).into();
        (p.paths() == want).then(|| p.clone())
    });
    assert_eq!(page.row("/t/d").unwrap().rev(), Some(r_d));
    assert_eq!(page.row("/t/f/y").unwrap().rev(), Some(r_y));
    let dirs = page.dirs();
    assert!(dirs.contains("/t/f") && !dirs.contains("/t/d"), "{dirs:?}");
    // A reload shows the same.
    b.goto(&url(web, "/t/"));
    let page2 = wait_page(&b, "the same after a reload", |p| {
        (p.paths() == page.paths() && p.connected()).then(|| p.clone())
    });
    assert_eq!(page2.dirs(), dirs);
}

#[test]
fn many_files_in_order_and_long_bodies() {
    let (d, web) = start_node();
    let mut c = d.raw();
    for i in 0..300 {
        c.must_set(
            &format!("/many/f{i:03}"),
            -1,
            format!("body {i}").as_bytes(),
        );
    }
    // Names where plain string order and depth-first name order differ
    // ('-' sorts before '/').
    set(&d, "/many/b/x", b"1");
    set(&d, "/many/b-c", b"2");
    let long: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    set(&d, "/many/long", long.as_bytes());
    let b = Browser::start();
    b.goto(&url(web, "/many/"));
    let page = wait_page(&b, "all 303 files", |p| {
        (p.rows.len() == 303 && p.connected()).then(|| p.clone())
    });
    // Every body right; rows in depth-first order of names (the stream's
    // listing order).
    for i in 0..300 {
        let r = page.row(&format!("/many/f{i:03}")).unwrap();
        assert_eq!(r.body(), format!("body {i}"));
    }
    let order: Vec<&str> = page.rows.iter().map(|r| r.path.as_str()).collect();
    let pos = |p: &str| order.iter().position(|x| *x == p).unwrap();
    assert!(pos("/many/b/x") < pos("/many/b-c"), "{order:?}");
    assert!(pos("/many/f000") < pos("/many/f001") && pos("/many/f299") < pos("/many/long"));
    // A long body: its length in full; if the text is cut, a click on it
    // shows all of it.
    let l = page.row("/many/long").unwrap();
    assert_eq!(l.len(), Some(1000));
    assert!(l.body().starts_with(&long[..100]), "{l:?}");
    if !l.body().contains(&long[..]) {
        b.exec(
            "document.querySelector('[data-path=\"/many/long\"] .body').click(); return 0",
            &[],
        );
        wait_row(&b, "/many/long", "the whole body after a click", |r| {
            r.body().contains(&long[..])
        });
    }
}

#[test]
fn a_file_path_redirects_to_its_directory_page() {
    let (d, web) = start_node();
    set(&d, "/cfg/name", b"v");
    let r = http_get(web, "/cfg/name");
    assert_eq!(r.status, 302, "{r:?}");
    let loc = r.header("location").unwrap_or_default();
    assert!(
        loc == "/cfg/#/cfg/name" || loc.ends_with(&format!("{web}/cfg/#/cfg/name")),
        "Location {loc:?}"
    );
    // In the browser: the directory page, showing the file.
    let b = Browser::start();
    b.goto(&url(web, "/cfg/name"));
    wait_row(&b, "/cfg/name", "shown after the redirect", |r| {
        r.body() == "v"
    });
    assert_eq!(b.url(), url(web, "/cfg/#/cfg/name"));
    assert_eq!(http_get(web, "/$nosuchpage").status, 404);
    assert_eq!(http_get(web, "/$assets/nosuch.js").status, 404);
    for asset in ["viewer.js", "viewer.css", "stats.js"] {
        assert_eq!(
            http_get(web, &format!("/$assets/{asset}")).status,
            200,
            "{asset}"
        );
    }
}

// ---------------------------------------------------------------------------
// The event stream, raw (server side alone)
// ---------------------------------------------------------------------------

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// A raw `GET /$events/...` connection, parsed as it arrives.
struct SseConn {
    stream: TcpStream,
    raw: Vec<u8>,
    head: Option<String>,
    chunked: bool,
    body: Vec<u8>,
}

impl SseConn {
    fn open(web: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseConn {
        let mut stream = TcpStream::connect(web).expect("connect to -w");
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {web}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        SseConn {
            stream,
            raw: Vec::new(),
            head: None,
            chunked: false,
            body: Vec::new(),
        }
    }

    /// Reads more bytes (up to `deadline`); false on timeout or EOF.
    fn fill(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        self.stream.set_read_timeout(Some(deadline - now)).unwrap();
        let mut chunk = [0u8; 65536];
        let n = match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        self.raw.extend_from_slice(&chunk[..n]);
        if self.head.is_none() {
            if let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.raw[..end]).into_owned();
                self.chunked = head
                    .to_ascii_lowercase()
                    .contains("transfer-encoding: chunked");
                self.raw.drain(..end + 4);
                self.head = Some(head);
            }
        }
        if self.head.is_some() {
            if self.chunked {
                // Move every complete chunk into the body.
                while let Some(nl) = self.raw.windows(2).position(|w| w == b"\r\n") {
                    let size_text = String::from_utf8_lossy(&self.raw[..nl]).into_owned();
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                            .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
                    if self.raw.len() < nl + 2 + size + 2 {
                        break;
                    }
                    self.body
                        .extend_from_slice(&self.raw[nl + 2..nl + 2 + size]);
                    self.raw.drain(..nl + 2 + size + 2);
                }
            } else {
                self.body.append(&mut self.raw);
            }
        }
        true
    }

    /// The response head (waits for it).
    fn head(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        while self.head.is_none() {
            assert!(
                self.fill(deadline),
                "no response head from the event stream"
            );
        }
        self.head.clone().unwrap()
    }

    /// The next event (comments skipped), or `None` after `timeout`.
    fn next_timeout(&mut self, timeout: Duration) -> Option<Sse> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8(self.body[..end].to_vec()).expect("UTF-8 stream");
                self.body.drain(..end + 2);
                let mut event = String::from("message");
                let mut id = None;
                let mut data = Vec::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event = value.to_string(),
                        "id" => id = Some(value.to_string()),
                        "data" => data.push(value.to_string()),
                        _ => {}
                    }
                }
                if (data.is_empty() && id.is_none()) || event == "ping" {
                    continue; // a keep-alive (`event: ping` or a comment)
                }
                let data = serde_json::from_str(&data.join("\n"))
                    .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {block:?}"));
                return Some(Sse { event, id, data });
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    fn next(&mut self) -> Sse {
        self.next_timeout(DEADLINE)
            .expect("an event within the deadline")
    }

    /// Events up to and including the first `ready`.
    fn until_ready(&mut self) -> Vec<Sse> {
        let mut out = Vec::new();
        loop {
            let e = self.next();
            let ready = e.event == "ready";
            out.push(e);
            if ready {
                return out;
            }
        }
    }

    /// The next event that is not a `rev` event.
    fn next_change(&mut self) -> Sse {
        loop {
            let e = self.next();
            if e.event != "rev" {
                return e;
            }
        }
    }
}

#[test]
fn the_event_stream_lists_then_follows_then_resumes() {
    let (d, web) = start_node();
    let r_b = set(&d, "/sse/b", b"bee");
    let r_a = set(&d, "/sse/a/x", b"ax");
    set(&d, "/sse/bin", &[0xff, 0xfe, 0x00]);
    set(&d, "/elsewhere", b"no");
    let rev = node_rev(&d);

    let mut s = SseConn::open(web, "/$events/sse/", &[]);
    let head = s.head();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let evs = s.until_ready();
    assert_eq!(evs[0].event, "reset", "{evs:#?}");
    assert_eq!(evs[0].data["rev"], json!(rev));
    let files: Vec<&Sse> = evs[1..evs.len() - 1].iter().collect();
    assert!(files.iter().all(|e| e.event == "file"), "{evs:#?}");
    let paths: Vec<&str> = files
        .iter()
        .map(|e| e.data["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/sse/a/x", "/sse/b", "/sse/bin"],
        "sorted depth-first"
    );
    assert_eq!(
        files[0].data,
        json!({"path": "/sse/a/x", "rev": r_a, "len": 2, "enc": "utf8", "body": "ax"})
    );
    assert_eq!(files[1].data["rev"], json!(r_b));
    assert_eq!(files[2].data["enc"], json!("base64"));
    assert_eq!(files[2].data["len"], json!(3));
    assert_eq!(files[2].data["body"], json!("//4A"));
    let ready = evs.last().unwrap();
    assert_eq!(ready.id.as_deref(), Some(rev.to_string().as_str()));
    assert_eq!(ready.data, json!({"rev": rev}));

    // Changes inside, and a change outside (a `rev` event at most).
    let r_out = set(&d, "/elsewhere", b"still no");
    let r_set = set(&d, "/sse/b", b"<b>bee</b>");
    del(&d, "/sse/a/x");
    let e = s.next_change();
    assert_eq!(e.event, "change", "{e:?}");
    assert_eq!(e.id, Some(r_set.to_string()));
    assert_eq!(
        e.data,
        json!({"path": "/sse/b", "rev": r_set, "len": 10, "enc": "utf8", "body": "<b>bee</b>", "kind": "set"})
    );
    let e = s.next_change();
    assert_eq!(e.event, "change", "{e:?}");
    assert_eq!(e.data["kind"], json!("del"));
    assert_eq!(e.data["path"], json!("/sse/a/x"));
    assert_eq!((&e.data["len"], &e.data["body"]), (&json!(0), &json!("")));
    let r_del: i64 = e.id.as_deref().unwrap().parse().unwrap();
    assert!(r_out < r_set && r_set < r_del);
    // An outside change alone moves the resume point with a `rev` event.
    let r_out2 = set(&d, "/elsewhere", b"again");
    let e = s.next();
    assert_eq!(
        (e.event.as_str(), e.id.clone(), e.data.clone()),
        ("rev", Some(r_out2.to_string()), json!({"rev": r_out2}))
    );

    // Resuming from a rev in history: `ready` at that rev, no listing, then
    // the changes after it.
    for (path, headers) in [
        (
            "/$events/sse/".to_string(),
            vec![("Last-Event-ID", r_set.to_string())],
        ),
        (format!("/$events/sse/?rev={r_set}"), vec![]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut s = SseConn::open(web, &path, &headers);
        let e = s.next();
        assert_eq!(
            (e.event.as_str(), e.id.clone(), e.data.clone()),
            ("ready", Some(r_set.to_string()), json!({"rev": r_set})),
            "{path} {headers:?}"
        );
        let e = s.next_change();
        assert_eq!(
            (
                e.event.as_str(),
                e.data["kind"].clone(),
                e.data["path"].clone()
            ),
            ("change", json!("del"), json!("/sse/a/x")),
            "{path} {headers:?}"
        );
    }

    // A resume point ahead of the store (a restarted node): start over.
    let mut s = SseConn::open(web, "/$events/sse/", &[("Last-Event-ID", "1000000")]);
    let evs = s.until_ready();
    assert_eq!(evs[0].event, "reset", "{evs:#?}");
    let paths: Vec<&str> = evs[1..evs.len() - 1]
        .iter()
        .map(|e| e.data["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/sse/b", "/sse/bin"]);
}

// ---------------------------------------------------------------------------
// Stats and metrics
// ---------------------------------------------------------------------------

fn metrics(web: SocketAddr) -> prometheus::Exposition {
    let r = http_get(web, "/$metrics");
    assert_eq!(r.status, 200, "{r:?}");
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "Content-Type {ct:?}"
    );
    prometheus::parse(&r.text()).unwrap_or_else(|e| {
        panic!(
            "/$metrics is not valid exposition format: {e}\n{}",
            r.text()
        )
    })
}

#[test]
fn metrics_are_valid_exposition_format_and_counters_move() {
    let (d, web) = start_node();
    let m1 = metrics(web);
    for f in m1.families.values() {
        // Ours, or the standard process metrics (`process_cpu_seconds_total`).
        assert!(
            f.name.starts_with("doozer_") || f.name.starts_with("process_"),
            "metric family {} lacks the doozer (or process) prefix",
            f.name
        );
        assert!(f.help.is_some(), "family {} has no HELP", f.name);
        if f.kind == "counter" {
            for s in &f.samples {
                assert!(s.value >= 0.0, "negative counter {s:?}");
            }
        }
    }
    let family_kind = |m: &prometheus::Exposition, name: &str| {
        m.family(name)
            .unwrap_or_else(|| panic!("no family {name}; have {:?}", m.families.keys()))
            .kind
            .clone()
    };
    assert_eq!(family_kind(&m1, REQUESTS), "counter");
    assert_eq!(family_kind(&m1, REV), "gauge");
    let requests1 = m1.sum(REQUESTS).unwrap_or(0.0);
    let rev1 = m1.value(REV, &[]).expect("rev gauge");
    assert_eq!(rev1 as i64, node_rev(&d));

    // Three commands: a write, a read and a rev.
    let r = set(&d, "/m/x", b"1");
    doozer(&d, &["get", "/m/x"], b"").ok();
    node_rev(&d);
    let m2 = metrics(web);
    let requests2 = m2.sum(REQUESTS).unwrap_or(0.0);
    assert!(
        requests2 >= requests1 + 3.0,
        "{REQUESTS}: {requests1} then {requests2} after three commands"
    );
    for (name, at_least) in [(WRITES, 1.0), (READS, 1.0)] {
        assert_eq!(family_kind(&m2, name), "counter");
        let (before, after) = (m1.sum(name).unwrap_or(0.0), m2.sum(name).unwrap_or(0.0));
        assert!(
            after >= before + at_least,
            "{name}: {before} then {after} after a set and a get"
        );
    }
    let rev2 = m2.value(REV, &[]).expect("rev gauge");
    assert!(
        rev2 > rev1 && rev2 as i64 >= r,
        "rev gauge {rev1} then {rev2}; the set made rev {r}"
    );
    // No counter went down.
    for f in m1.families.values().filter(|f| f.kind == "counter") {
        for s in &f.samples {
            let after = m2
                .samples(&s.name)
                .into_iter()
                .find(|s2| s2.labels == s.labels)
                .unwrap_or_else(|| panic!("counter sample {s:?} disappeared"));
            assert!(
                after.value >= s.value,
                "counter went down: {s:?} then {after:?}"
            );
        }
    }
}

/// The metric names the server exposes (doozerd/src/web.rs).
const REQUESTS: &str = "doozer_requests_total";
const REV: &str = "doozer_rev";
const WRITES: &str = "doozer_writes_total";
const READS: &str = "doozer_reads_total";

/// `/$metrics` has the standard `process_cpu_seconds_total`, which grows
/// with work, and `doozer bench -cpu WEB` reports the node's CPU per
/// operation from it; a web address that is not a viewer is an error.
#[test]
fn bench_reports_the_server_cpu_per_operation() {
    const CPU: &str = "process_cpu_seconds_total";
    let (d, web) = start_node();
    let before = metrics(web);
    assert_eq!(before.family(CPU).map(|f| f.kind.as_str()), Some("counter"));
    let cpu0 = before.value(CPU, &[]).expect("cpu counter");
    let out = doozer(
        &d,
        &[
            "bench",
            "-op",
            "set",
            "-n",
            "20000",
            "-cpu",
            &web.to_string(),
        ],
        b"",
    )
    .ok();
    let line = out
        .lines()
        .find(|l| l.starts_with("server CPU per op: "))
        .unwrap_or_else(|| panic!("no CPU line in {out}"));
    let us: f64 = line["server CPU per op: ".len()..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(us > 0.0 && us.is_finite(), "{line}");
    assert!(line.ends_with("µs (1 node)"), "{line}");
    let cpu1 = metrics(web).value(CPU, &[]).expect("cpu counter");
    assert!(cpu1 > cpu0, "{cpu0} -> {cpu1}");
    // The client port is no web viewer.
    let bad = doozer(
        &d,
        &[
            "bench",
            "-op",
            "set",
            "-n",
            "10",
            "-cpu",
            &d.addr().to_string(),
        ],
        b"",
    );
    bad.expect_code(2);
    assert!(bad.stderr.contains("-cpu"), "{}", bad.stderr);
}

#[test]
fn stats_json_matches_the_node() {
    let (d, web) = start_node();
    set(&d, "/s/x", b"1");
    let id = doozer(&d, &["self"], b"").ok().trim().to_string();
    let rev_before = node_rev(&d);
    let r = http_get(web, "/$stats.json");
    let rev_after = node_rev(&d);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{r:?}"
    );
    let v = r.json();
    assert_eq!(v["node_id"], json!(id), "{v:#}");
    let rev = v["rev"].as_i64().unwrap_or_else(|| panic!("rev: {v:#}"));
    assert!(
        rev_before <= rev && rev <= rev_after,
        "rev {rev} vs doozer rev {rev_before}..{rev_after}"
    );
    for key in ["cluster", "role", "version"] {
        assert!(v[key].is_string(), "{key}: {v:#}");
    }
    for key in [
        "uptime_s",
        "history_oldest",
        "history_revs",
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
    ] {
        assert!(v[key].is_number(), "{key}: {v:#}");
    }
    let cals = v["cals"].as_array().expect("cals");
    assert!(
        cals.iter().any(|c| c["id"] == json!(id)
            && c["addr"] == json!(d.addr().to_string())
            && c["applied"] == v["rev"]),
        "this node among the CALs, applied at the head rev: {v:#}"
    );
    assert!(v["consensus"].is_object(), "{v:#}");

    // No page open: no event stream.
    assert_eq!(v["event_streams"], json!(0), "{v:#}");

    // The stats page shows the node id (it fills itself from the JSON).
    let b = Browser::start();
    b.goto(&url(web, "/$stats"));
    poll_until(WEB_DEADLINE, "the stats page to show the node id", || {
        b.exec("return document.body.innerText", &[])
            .as_str()
            .filter(|t| t.contains(&id))
            .map(drop)
    });

    // The viewer holds one event stream open.
    // (`web_clients` counts the stats request itself too.)
    b.goto(&url(web, "/"));
    let counts = |web| {
        let v = http_get(web, "/$stats.json").json();
        (v["event_streams"].as_i64(), v["web_clients"].as_i64())
    };
    poll_until(
        WEB_DEADLINE,
        "one event stream while the viewer is open",
        || (counts(web) == (Some(1), Some(2))).then_some(()),
    );
    // Closing the browser closes it (navigating away need not: chromium
    // may keep the page, connection included, in its back/forward cache).
    drop(b);
    poll_until(
        WEB_DEADLINE,
        "no web client and no stream after the browser closed",
        || (counts(web) == (Some(0), Some(1))).then_some(()),
    );
}

/// `event_streams` counts open streams only: a closed one leaves the
/// count at once, also when a new stream takes its connection slot (a page
/// reconnecting). (An earlier doozerd kept closed streams in its list until
/// the next write or ping, and twice after a slot was reused.)
#[test]
fn a_closed_event_stream_is_no_longer_counted() {
    let (d, web) = start_node();
    let streams = || http_get(web, "/$stats.json").json()["event_streams"].as_i64();
    let mut a = SseConn::open(web, "/$events/", &[]);
    a.until_ready();
    assert_eq!(streams(), Some(1));
    drop(a);
    poll_until(
        DEADLINE,
        "event_streams back to 0 after the client left",
        || (streams() == Some(0)).then_some(()),
    );
    // A stream replacing a closed one (a page reconnecting).
    let mut a = SseConn::open(web, "/$events/", &[]);
    a.until_ready();
    drop(a);
    let mut b = SseConn::open(web, "/$events/", &[]);
    b.until_ready();
    let r = set(&d, "/one", b"1");
    assert_eq!(b.next_change().id, Some(r.to_string()));
    // The node hears of the close on its own time: once, in a full CI run
    // on a loaded machine, the count read here was still 2. The deadline
    // (10 s) is below the 15 s ping the earlier doozerd waited for, and a
    // count that stays 2 (a stream counted twice) still fails.
    poll_until(DEADLINE, "event_streams at 1 with one stream open", || {
        (streams() == Some(1)).then_some(())
    });
    assert_eq!(streams(), Some(1), "one stream open");
}

/// A HEAD of an event stream gets the head alone and no stream (the
/// node closes the connection and counts no stream); a HEAD of an invalid
/// directory gets a 404 head without its body (found by fuzzing).
#[test]
fn head_of_an_event_stream_answers_a_head_and_opens_no_stream() {
    let (d, web) = start_node();
    set(&d, "/h/a", b"1");
    for (path, status) in [("/$events/h/", 200), ("/$events/a%20b/", 404)] {
        // Read to the end: a stream kept open fails at the deadline.
        let r = http_request(web, "HEAD", path, None, DEADLINE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, status, "{path}");
        assert!(r.body.is_empty(), "{path}: a body: {:?}", r.body);
    }
    let stats = http_get(web, "/$stats.json").json();
    assert_eq!(stats["event_streams"].as_i64(), Some(0), "{stats}");
}

/// A stats request answered in the same loop iteration that hears a
/// stream's client leave does not count that stream (the stats are
/// gathered before that iteration's writes close it). The node is
/// stopped while the stream closes and the request is sent on a
/// connection it accepted before, so one iteration sees both.
#[test]
fn a_stream_closed_in_the_iteration_of_a_stats_request_is_not_counted() {
    use doozer_tests::cluster::{cont_pid, stop_pid};
    let (d, web) = start_node();
    let mut a = SseConn::open(web, "/$events/", &[]);
    a.until_ready();
    let mut stats = TcpStream::connect(web).expect("connect to -w");
    // Accepted (the node answers another request after it) before the
    // node stops.
    assert_eq!(
        http_get(web, "/$stats.json").json()["event_streams"].as_i64(),
        Some(1)
    );
    stop_pid(d.pid());
    drop(a);
    stats
        .write_all(format!("GET /$stats.json HTTP/1.1\r\nHost: {web}\r\n\r\n").as_bytes())
        .expect("send the request");
    cont_pid(d.pid());
    stats
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let mut reply = Vec::new();
    let _ = stats.read_to_end(&mut reply); // the node closes after the reply
    let resp = doozer_tests::browser::parse_response(&reply, true)
        .unwrap_or_else(|| panic!("no HTTP reply: {}", String::from_utf8_lossy(&reply)));
    let json = resp.json();
    assert_eq!(json["event_streams"].as_i64(), Some(0), "{json}");
}

#[test]
fn a_resume_point_older_than_the_history_window_starts_over() {
    let web = web_addr();
    let d = Doozerd::builder()
        .web(&web.to_string())
        .args(["-hist", "5"])
        .start();
    let r_first = set(&d, "/h/f", b"0");
    let mut c = d.raw();
    for i in 1..=20 {
        c.must_set("/h/f", -1, format!("{i}").as_bytes());
    }
    let rev = c.rev();
    let mut s = SseConn::open(
        web,
        "/$events/h/",
        &[("Last-Event-ID", &r_first.to_string())],
    );
    let evs = s.until_ready();
    assert_eq!(evs[0].event, "reset", "{evs:#?}");
    assert_eq!(evs[0].data, json!({"rev": rev}));
    assert_eq!(evs.len(), 3, "{evs:#?}");
    assert_eq!(evs[1].data["body"], json!("20"));
    assert_eq!(evs[2].id, Some(rev.to_string()));
    // A resume point inside the window: no listing.
    let mut s = SseConn::open(web, &format!("/$events/h/?rev={}", rev - 2), &[]);
    let e = s.next();
    assert_eq!(
        (e.event.as_str(), e.id),
        ("ready", Some((rev - 2).to_string()))
    );
    let e = s.next_change();
    assert_eq!(e.data["body"], json!("19"), "{e:?}");
}

#[test]
fn a_stream_that_stops_reading_is_closed_and_the_node_carries_on() {
    let (d, web) = start_node();
    let mut stalled = SseConn::open(web, "/$events/big/", &[]);
    let evs = stalled.until_ready();
    let ready: i64 = evs.last().unwrap().id.as_deref().unwrap().parse().unwrap();
    // Far more than the kernel's socket buffers and the node's output
    // bound, while the stream is not read.
    let body = vec![b'x'; 40_000];
    let mut c = d.raw();
    for i in 0..1000 {
        c.must_set(&format!("/big/f{}", i % 10), -1, &body);
    }
    let last = c.rev();
    // The node still answers, its stream count drops, and a fresh stream
    // gets the whole current listing.
    let streams = || http_get(web, "/$stats.json").json()["event_streams"].as_i64();
    poll_until(WEB_DEADLINE, "the stalled stream to be dropped", || {
        (streams() == Some(0)).then_some(())
    });
    let mut fresh = SseConn::open(web, "/$events/big/", &[]);
    let evs = fresh.until_ready();
    assert_eq!(evs[0].data, json!({"rev": last}));
    assert_eq!(evs.len(), 12, "reset, ten files, ready");
    // What the stalled stream did get is well-formed and in order, then
    // it ends (the client would reconnect and resume).
    let mut prev = ready;
    let mut n = 0;
    while let Some(e) = stalled.next_timeout(DEADLINE) {
        assert_eq!(e.event, "change", "{:?}", e.event);
        let id: i64 = e.id.as_deref().unwrap().parse().unwrap();
        assert!(id > prev && id <= last, "id {id} after {prev}");
        assert_eq!(e.data["len"], json!(body.len()));
        prev = id;
        n += 1;
    }
    assert!(
        prev < last,
        "the stalled stream got everything ({n} events); was it ever closed?"
    );
}

#[test]
fn garbage_and_unknown_peer_datagrams_are_dropped_and_counted() {
    let (d, web) = start_node();
    let peer_stats = || -> Value {
        let r = http_get(web, "/$stats.json");
        let v: Value = serde_json::from_slice(&r.body).expect("stats json");
        v["consensus"].clone()
    };
    let before = peer_stats();
    assert_eq!(before["datagrams_dropped"], json!(0), "{before:#}");
    assert_eq!(before["messages_ignored"], json!(0), "{before:#}");

    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    // Three datagrams that are not envelopes: a bad wire type, a truncated
    // field, and a lone varint key.
    for garbage in [&[0x0b, 0xff][..], &[0x0a, 0x05, 1], &[0x80]] {
        sock.send_to(garbage, d.addr()).expect("send");
    }
    // A well-formed envelope with two messages, from a sender that is no
    // peer of this single-node cluster.
    sock.send_to(&[0x0a, 1, b'x', 0x0a, 0], d.addr())
        .expect("send");

    let after = poll_until(Duration::from_secs(10), "peer counters", || {
        let v = peer_stats();
        (v["datagrams_dropped"] == json!(3) && v["messages_ignored"] == json!(2)).then_some(v)
    });
    assert_eq!(after["datagrams_dropped"], json!(3), "{after:#}");
    // Without a secret nothing is sealed, so nothing is unauthenticated.
    assert_eq!(after["datagrams_unauthenticated"], json!(0), "{after:#}");
    let metrics = String::from_utf8(http_get(web, "/$metrics").body).expect("utf8");
    assert!(
        metrics.contains("\ndoozer_peer_datagrams_dropped_total 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ndoozer_peer_messages_ignored_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ndoozer_peer_datagrams_unauthenticated_total 0\n"),
        "{metrics}"
    );
    // and the node still serves
    assert_eq!(doozer(&d, &["get", "/ctl/name"], b"").ok(), "local");
}

// ---------------------------------------------------------------------------
// The cluster page, the charts, a file's history, the tree at a past rev
// (docs/web.md). Hooks: the cluster page has a row per node
// `tr[data-node=<id>][data-health=ok|waiting|behind|silent|slave]` with a
// `.role` cell, and `#verdict[data-health=healthy|checking|unhealthy|
// unknown]`; each chart is `canvas[data-series=<column>]` with
// `data-points`, `data-last` and `data-sum` of what it drew; a history row
// is `tr[data-rev][data-kind]` with a `.body` cell; the tree at a rev has
// the tree page's `[data-path]` rows. `DOOZER_SCREENSHOTS=dir` saves a PNG
// of each page there (docs/*.png were made that way).
// ---------------------------------------------------------------------------

/// Markup written into bodies: it must show as text on every page.
const EVIL: &str =
    r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>bold</b>"#;

/// Checks that no markup from a body became elements on the page.
fn assert_markup_is_text(b: &Browser, page: &str) {
    let v = b.exec(
        r#"
return {
  pwned: typeof window.__pwned,
  imgs: [...document.querySelectorAll('img')].filter(i => i.getAttribute('src') === 'x').length,
  bold: [...document.querySelectorAll('b')].filter(e => e.textContent === 'bold').length,
  scripts: [...document.scripts].filter(s => s.textContent.includes('__pwned')).length,
  shown: document.body.textContent.includes('<img src=x onerror='),
};
"#,
        &[],
    );
    assert_eq!(
        v,
        json!({"pwned": "undefined", "imgs": 0, "bold": 0, "scripts": 0, "shown": true}),
        "{page}: markup in a body became elements (or is not shown as text)"
    );
}

/// Saves a PNG of the page as `<DOOZER_SCREENSHOTS>/<name>.png`, if set.
fn screenshot(b: &Browser, name: &str, height: u32) {
    let Some(dir) = std::env::var_os("DOOZER_SCREENSHOTS") else {
        return;
    };
    b.set_window_size(1100, height);
    // Let layout and the charts settle at the new size.
    b.exec("window.dispatchEvent(new Event('resize')); return 0", &[]);
    let path = std::path::Path::new(&dir).join(format!("{name}.png"));
    std::fs::write(&path, b.screenshot())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// One node row of the cluster page.
#[derive(Debug, Clone)]
struct NodeRow {
    id: String,
    health: String,
    role: String,
    text: String,
}

/// The cluster page: its verdict, its rows, its problems.
#[derive(Debug, Clone)]
struct ClusterPage {
    state: Option<String>,
    verdict: String,
    verdict_text: String,
    rows: Vec<NodeRow>,
    problems: Vec<String>,
}

impl ClusterPage {
    fn row(&self, id: &str) -> Option<&NodeRow> {
        self.rows.iter().find(|r| r.id == id)
    }
}

fn cluster_page(b: &Browser) -> ClusterPage {
    let v = b.exec(
        r#"
const s = document.getElementById('status');
const v = document.getElementById('verdict');
return {
  state: s.getAttribute('data-state'),
  verdict: v.getAttribute('data-health'),
  verdict_text: v.textContent,
  rows: [...document.querySelectorAll('tr[data-node]')].map(r => ({
    id: r.getAttribute('data-node'), health: r.getAttribute('data-health'),
    role: r.querySelector('.role').textContent, text: r.textContent,
  })),
  problems: [...document.querySelectorAll('#problems li')].map(l => l.textContent),
};
"#,
        &[],
    );
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    ClusterPage {
        state: v["state"].as_str().map(str::to_string),
        verdict: s(&v["verdict"]),
        verdict_text: s(&v["verdict_text"]),
        rows: v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| NodeRow {
                id: s(&r["id"]),
                health: s(&r["health"]),
                role: s(&r["role"]),
                text: s(&r["text"]),
            })
            .collect(),
        problems: v["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .map(s)
            .collect(),
    }
}

fn wait_cluster<T>(b: &Browser, what: &str, mut f: impl FnMut(&ClusterPage) -> Option<T>) -> T {
    let deadline = Instant::now() + WEB_DEADLINE;
    loop {
        let page = cluster_page(b);
        if let Some(v) = f(&page) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {WEB_DEADLINE:?} waiting for: {what}\nlast page: {page:#?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_cluster_page_lists_every_node_and_marks_a_stopped_cal_unhealthy() {
    use doozer_tests::cluster::Cluster;
    let mut c = Cluster::start_with_web(3, &[]);
    let slave = c.attach(0, &[]);
    let web = c.d(0).web().expect("node 0 serves the viewer");
    let b = Browser::start();
    b.goto(&url(web, "/$cluster"));
    let ids: Vec<String> = (0..3).map(|i| c.id(i).to_string()).collect();
    let slave_id = c.id(slave).to_string();
    let page = wait_cluster(&b, "three pulsing CALs, a slave, healthy", |p| {
        let cals_ok = ids.iter().enumerate().all(|(i, id)| {
            p.row(id)
                .is_some_and(|r| r.health == "ok" && r.role == format!("CAL slot {i}"))
        });
        let slave_ok = p
            .row(&slave_id)
            .is_some_and(|r| r.health == "slave" && r.role == "slave");
        (cals_ok && slave_ok && p.verdict == "healthy").then(|| p.clone())
    });
    assert_eq!(page.state.as_deref(), Some("connected"), "{page:#?}");
    assert!(page.verdict_text.contains("healthy"), "{page:#?}");
    assert!(page.problems.is_empty(), "{page:#?}");
    // The node files' values, as `doozer status` shows them.
    let own = page.row(&ids[0]).unwrap();
    assert!(
        own.text.contains(&c.d(0).addr().to_string()) && own.text.contains("true"),
        "{own:?}"
    );
    // A stopped CAL: its pulses stop; the page says so in words.
    c.stop(2);
    let page = wait_cluster(&b, "the stopped CAL silent, the cluster unhealthy", |p| {
        let silent = p.row(&ids[2]).is_some_and(|r| r.health == "silent");
        (silent && p.verdict == "unhealthy").then(|| p.clone())
    });
    assert!(page.verdict_text.contains("UNHEALTHY"), "{page:#?}");
    assert!(
        page.row(&ids[2]).unwrap().text.contains("silent"),
        "{page:#?}"
    );
    assert!(
        page.problems
            .iter()
            .any(|p| p.contains(&ids[2]) && p.contains("silent")),
        "a problem names the silent CAL: {page:#?}"
    );
    // The two others still pulse: a majority is alive.
    assert!(
        !page.problems.iter().any(|p| p.contains("majority")),
        "{page:#?}"
    );
    screenshot(&b, "cluster", 800);

    // A node file holding markup (any client may write under /ctl): text.
    set(c.d(0), "/ctl/node/XSSNODE/hostname", EVIL.as_bytes());
    let page = wait_cluster(&b, "the node with markup in a file", |p| {
        p.row("XSSNODE").map(|_| p.clone())
    });
    let evil = page.row("XSSNODE").unwrap();
    assert!(
        evil.text.contains(EVIL) && evil.health == "slave",
        "{evil:?}"
    );
    assert_markup_is_text(&b, "/$cluster");

    // Running again, it pulses again and the cluster is healthy.
    c.cont(2);
    wait_cluster(&b, "the CAL pulsing again, healthy", |p| {
        let ok = p.row(&ids[2]).is_some_and(|r| r.health == "ok");
        (ok && p.verdict == "healthy").then_some(())
    });
}

/// What a chart drew: points, the increase of its counter over the
/// samples the page holds (`data-increase`), and the canvas as a PNG.
fn chart(b: &Browser, series: &str) -> (i64, f64, String) {
    let v = b.exec(
        "const c = document.querySelector(`canvas[data-series=\"${arguments[0]}\"]`); \
         return c ? [Number(c.getAttribute('data-points')), Number(c.getAttribute('data-increase')), c.toDataURL()] : null",
        &[json!(series)],
    );
    (
        v[0].as_i64().unwrap_or(0),
        v[1].as_f64().unwrap_or(0.0),
        v[2].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn the_stats_charts_draw_the_last_minutes_and_move_with_writes() {
    let (d, web) = start_node();
    // The node keeps the samples: the JSON grows by one a second.
    let first = http_get(web, "/$samples.json").json();
    for key in [
        "t",
        "writes",
        "reads",
        "waits_pending",
        "clients",
        "rev",
        "rss_bytes",
    ] {
        assert!(first[key].is_array(), "{key}: {first:#}");
    }
    assert_eq!(first["kept"], json!(900), "{first:#}");

    let b = Browser::start();
    b.goto(&url(web, "/$stats"));
    for series in [
        "writes",
        "reads",
        "waits_pending",
        "clients",
        "rev",
        "rss_bytes",
    ] {
        poll_until(WEB_DEADLINE, &format!("the {series} chart drawn"), || {
            (chart(&b, series).0 >= 1).then_some(())
        });
    }
    let (points, increase, png) = chart(&b, "writes");
    // A burst of writes: the writes/s line rises, and the canvas changes.
    let mut c = d.raw();
    for i in 0..200 {
        c.must_set(&format!("/chart/k{}", i % 10), -1, b"x");
    }
    let (points2, increase2, png2) = poll_until(WEB_DEADLINE, "the writes chart to rise", || {
        let now = chart(&b, "writes");
        (now.1 >= increase + 200.0 && now.0 > points).then_some(now)
    });
    assert!(
        points2 > points && increase2 > increase,
        "{points}/{increase} then {points2}/{increase2}"
    );
    assert_ne!(png, png2, "the canvas did not change");
    // (The rev read once: the pulses move it on every second.)
    let r_last = c.rev();
    poll_until(WEB_DEADLINE, "the rev chart to reach the writes", || {
        let v = b.exec(
            "return Number(document.querySelector('canvas[data-series=\"rev\"]').getAttribute('data-last'))",
            &[],
        );
        (v.as_f64().unwrap_or(0.0) >= r_last as f64).then_some(())
    });
    screenshot(&b, "stats", 900);

    // A page opened now gets the past minutes at once (from the node).
    let b2 = Browser::start();
    b2.goto(&url(web, "/$stats"));
    poll_until(
        WEB_DEADLINE,
        "a fresh page to draw the earlier writes",
        || {
            let (p, s, _) = chart(&b2, "writes");
            (p >= points2 - 1 && s >= 200.0).then_some(())
        },
    );
}

/// A history row: rev, kind, body text.
fn history_rows(b: &Browser) -> Vec<(i64, String, String)> {
    b.exec(
        "return [...document.querySelectorAll('tr[data-rev]')].map(r => \
           [Number(r.getAttribute('data-rev')), r.getAttribute('data-kind'), r.querySelector('.body').textContent])",
        &[],
    )
    .as_array()
    .expect("rows")
    .iter()
    .map(|r| {
        (
            r[0].as_i64().unwrap_or(-1),
            r[1].as_str().unwrap_or_default().to_string(),
            r[2].as_str().unwrap_or_default().to_string(),
        )
    })
    .collect()
}

#[test]
fn a_files_history_lists_its_earlier_revs_and_bodies() {
    let (d, web) = start_node();
    let r1 = set(&d, "/h/f", b"first");
    let r2 = set(&d, "/h/f", EVIL.as_bytes());
    set(&d, "/h/other", b"not this file");
    del(&d, "/h/f");
    let r_del = node_rev(&d);
    let r3 = set(&d, "/h/f", b"third");

    // The JSON alone.
    let h = http_get(web, "/$history.json?path=%2Fh%2Ff").json();
    let revs: Vec<i64> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rev"].as_i64().unwrap())
        .collect();
    assert_eq!(revs, [r3, r_del, r2, r1], "{h:#}");
    // Cut after two versions: `next` goes on from just before the second.
    let h = http_get(web, "/$history.json?path=/h/f&limit=2").json();
    assert_eq!(h["next"], json!(r_del - 1), "{h:#}");
    let rest = http_get(web, &format!("/$history.json?path=/h/f&rev={}", r_del - 1)).json();
    assert_eq!(rest["entries"][0]["rev"], json!(r2), "{rest:#}");
    assert_eq!(rest["entries"][0]["body"], json!(EVIL), "{rest:#}");
    for bad in [
        "/$history.json",
        "/$history.json?path=h",
        "/$history.json?path=/h/f&rev=abc",
        "/$history.json?path=/h/f&limit=0",
    ] {
        let r = http_get(web, bad);
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    assert_eq!(
        http_get(web, "/$history.json?path=/h/f&rev=999999").status,
        404
    );

    let b = Browser::start();
    b.goto(&url(web, "/$history?path=/h/f"));
    let want = vec![
        (r3, "set".to_string(), "third".to_string()),
        (r_del, "del".to_string(), "(deleted)".to_string()),
        (r2, "set".to_string(), EVIL.to_string()),
        (r1, "set".to_string(), "first".to_string()),
    ];
    poll_until(WEB_DEADLINE, "the history rows", || {
        (history_rows(&b) == want).then_some(())
    });
    assert_markup_is_text(&b, "/$history");
    // A new version shows up by itself.
    let r4 = set(&d, "/h/f", b"fourth");
    poll_until(WEB_DEADLINE, "the new version on top", || {
        let rows = history_rows(&b);
        (rows.first().is_some_and(|r| r.0 == r4 && r.2 == "fourth") && rows.len() == 5)
            .then_some(())
    });
    screenshot(&b, "history", 620);
    // A bad path: a clear message, no rows.
    b.goto(&url(web, "/$history?path=not-a-path"));
    poll_until(WEB_DEADLINE, "the refusal shown", || {
        let v = b.exec("return document.getElementById('message').textContent", &[]);
        v.as_str()
            .filter(|t| t.contains("not a file path"))
            .map(drop)
    });
    assert!(history_rows(&b).is_empty());
}

#[test]
fn the_tree_at_a_past_rev_shows_a_file_deleted_since() {
    let (d, web) = start_node();
    let r_gone = set(&d, "/p/gone", EVIL.as_bytes());
    let r_kept = set(&d, "/p/kept", b"kept");
    set(&d, "/elsewhere", b"x");
    del(&d, "/p/gone");
    let head = node_rev(&d);

    let t = http_get(web, &format!("/$tree.json?dir=/p/&rev={r_kept}")).json();
    assert_eq!(t["files"][0]["path"], json!("/p/gone"), "{t:#}");
    assert_eq!(t["files"][0]["rev"], json!(r_gone), "{t:#}");
    assert_eq!(http_get(web, "/$tree.json?dir=/p").status, 400);
    assert_eq!(http_get(web, "/$tree.json?dir=/p/&rev=x").status, 400);
    assert_eq!(
        http_get(web, &format!("/$tree.json?dir=/p/&rev={}", head + 100)).status,
        404
    );

    let b = Browser::start();
    b.goto(&url(web, &format!("/$tree?dir=/p/&rev={r_kept}")));
    let page = wait_page(&b, "the deleted file at the past rev", |p| {
        let want: BTreeSet<String> = ["/p/gone", "/p/kept"].map(String::from).into();
        (p.paths() == want && p.rev == Some(r_kept)).then(|| p.clone())
    });
    let gone = page.row("/p/gone").unwrap();
    assert_eq!((gone.body(), gone.rev()), (EVIL, Some(r_gone)), "{gone:?}");
    assert_markup_is_text(&b, "/$tree");
    screenshot(&b, "tree-at-rev", 560);

    // The rev field: at the head the file is gone.
    b.exec(
        "const f = document.getElementById('rev'); f.value = arguments[0]; \
         f.dispatchEvent(new Event('change')); return 0",
        &[json!(head)],
    );
    wait_page(&b, "the head: the file gone", |p| {
        let want: BTreeSet<String> = ["/p/kept"].map(String::from).into();
        (p.paths() == want && p.rev == Some(head)).then_some(())
    });
    // The slider, back to the past rev.
    b.exec(
        "const s = document.getElementById('slider'); s.value = arguments[0]; \
         s.dispatchEvent(new Event('input')); return [s.min, s.max]",
        &[json!(r_kept)],
    );
    wait_page(&b, "the past rev again through the slider", |p| {
        (p.row("/p/gone").is_some() && p.rev == Some(r_kept)).then_some(())
    });
    assert!(b.url().contains(&format!("rev={r_kept}")), "{}", b.url());
    // Outside the window: said in words.
    b.goto(&url(web, &format!("/$tree?dir=/p/&rev={}", head + 1000)));
    poll_until(WEB_DEADLINE, "the refusal shown", || {
        let v = b.exec("return document.getElementById('message').textContent", &[]);
        v.as_str()
            .filter(|t| t.contains("after the head"))
            .map(drop)
    });
}

#[test]
fn the_new_pages_reconnect_to_a_restarted_node() {
    let port = free_port();
    let web = web_addr();
    let mut d1 = Doozerd::builder().port(port).web(&web.to_string()).start();
    set(&d1, "/r/f", b"before");
    let state = |b: &Browser| {
        b.exec(
            "return document.getElementById('status').getAttribute('data-state')",
            &[],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    };
    let wait_state = |b: &Browser, page: &str, want: &[&str]| {
        poll_until(WEB_DEADLINE, &format!("{page}: status {want:?}"), || {
            let s = state(b);
            want.contains(&s.as_str()).then_some(())
        });
    };
    // The cluster page follows an event stream; the history and past-tree
    // pages poll (doozer.every in common.js).
    let pages = ["/$cluster", "/$history?path=/r/f", "/$tree?dir=/r/"];
    let browsers: Vec<Browser> = pages
        .iter()
        .map(|page| {
            let b = Browser::start();
            b.goto(&url(web, page));
            wait_state(&b, page, &["connected"]);
            b
        })
        .collect();
    d1.kill();
    for (b, page) in browsers.iter().zip(pages) {
        wait_state(b, page, &["reconnecting", "disconnected"]);
    }
    let d2 = Doozerd::builder().port(port).web(&web.to_string()).start();
    let r = set(&d2, "/r/f", b"after");
    for (b, page) in browsers.iter().zip(pages) {
        wait_state(b, page, &["connected"]);
    }
    // And they show the new node's data.
    poll_until(WEB_DEADLINE, "the history of the new node", || {
        let rows = history_rows(&browsers[1]);
        (rows
            .first()
            .is_some_and(|row| row.0 == r && row.2 == "after"))
        .then_some(())
    });
    let id = doozer(&d2, &["self"], b"").ok().trim().to_string();
    wait_cluster(&browsers[0], "the new node listed", |p| {
        p.row(&id).map(drop)
    });
    drop(d1);
}

#[test]
fn the_cluster_page_flags_a_free_slot_and_a_lost_majority() {
    let (d, web) = start_node();
    let id = doozer(&d, &["self"], b"").ok().trim().to_string();
    let b = Browser::start();
    b.goto(&url(web, "/$cluster"));
    wait_cluster(&b, "one pulsing CAL, healthy", |p| {
        let ok = p.row(&id).is_some_and(|r| r.health == "ok");
        (ok && p.verdict == "healthy").then_some(())
    });
    // A slot the operator added, and no slave to take it.
    doozer(&d, &["set", "/ctl/cal/9", "0"], b"").ok();
    let page = wait_cluster(&b, "the free slot as a problem", |p| {
        (p.verdict == "unhealthy").then(|| p.clone())
    });
    assert!(
        page.problems
            .iter()
            .any(|p| p.contains("slot 9") && p.contains("free") && p.contains("no slave")),
        "{page:#?}"
    );
    // A slot naming a node that never pulses (no such process): it turns
    // silent, and one CAL of two alive is no majority. (The node cannot
    // decide anything more either, so its own pulses stop too.)
    doozer(&d, &["set", "/ctl/cal/8", "0"], b"GHOSTNODE").ok();
    let page = wait_cluster(&b, "the ghost CAL silent, no majority", |p| {
        let ghost = p.row("GHOSTNODE").is_some_and(|r| r.health == "silent");
        let no_majority = p.problems.iter().any(|x| x.contains("NO majority"));
        (ghost && no_majority).then(|| p.clone())
    });
    assert_eq!(page.verdict, "unhealthy", "{page:#?}");
    assert_eq!(page.row("GHOSTNODE").unwrap().role, "CAL slot 8");
}
