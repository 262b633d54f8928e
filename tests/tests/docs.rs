//! The project's docs cite themselves: every `NAME.md#anchor` written in
//! the docs, the README, code comments, scripts and the viewer's code names
//! a heading that exists, and every relative link between the docs names a
//! file that exists. Code explains itself by citing the docs by anchor, so
//! a renamed heading must not leave a dangling citation behind.
//!
//! Anchors are made as GitHub makes them from a heading: lower case, every
//! character but letters, digits, `_`, `-` and spaces dropped, spaces
//! turned into `-`, and a repeated one suffixed `-1`, `-2`, …

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside fenced code).
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let hashes = line.len() - line.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let s = slug(&line[hashes..]);
        let n = seen.entry(s.clone()).or_insert(0);
        out.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// Every text file the check reads: Markdown, Rust, JavaScript, HTML and
/// the scripts, outside build output and fuzz corpora.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && !matches!(name.as_str(), "target" | "corpus" | "artifacts")
            {
                sources(&path, out);
            }
        } else if [".md", ".rs", ".js", ".html", ".sh"]
            .iter()
            .any(|ext| name.ends_with(ext))
            || path.parent().is_some_and(|p| p.ends_with("scripts"))
        {
            out.push(path);
        }
    }
}

/// `NAME.md#anchor` citations in `text`: (line, file name, anchor).
fn citations(text: &str) -> Vec<(usize, String, String)> {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(".md#") {
            let name_start = rest[..at]
                .rfind(|c: char| !(word(c) || c == '.'))
                .map_or(0, |p| p + 1);
            let name = format!("{}.md", &rest[name_start..at]);
            let anchor: String = rest[at + 4..].chars().take_while(|&c| word(c)).collect();
            out.push((i + 1, name, anchor));
            rest = &rest[at + 4..];
        }
    }
    out
}

/// The Markdown files whose headings may be cited, by file name.
fn cited_files(root: &Path) -> HashMap<String, (PathBuf, HashSet<String>)> {
    let mut files = vec![root.join("README.md")];
    for e in fs::read_dir(root.join("docs")).expect("docs/ is readable") {
        let path = e.expect("docs/ entry").path();
        if path.extension().is_some_and(|x| x == "md") {
            files.push(path);
        }
    }
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).expect("a doc is readable");
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, (p.clone(), anchors(&text)))
        })
        .collect()
}

/// What a check found: how many references it checked, and the bad ones.
#[derive(Default)]
struct Tally {
    checked: usize,
    bad: Vec<String>,
}

impl Tally {
    /// Counts one reference; `shown` describes it if it is bad.
    fn count(&mut self, good: bool, shown: impl FnOnce() -> String) {
        self.checked += 1;
        if !good {
            self.bad.push(shown());
        }
    }

    /// Fails unless at least `min` `what` were checked and none was bad.
    fn assert_clean(self, min: usize, what: &str, problem: &str) {
        assert!(self.checked >= min, "only {} {what} found", self.checked);
        assert!(
            self.bad.is_empty(),
            "{} {what} {problem}:\n{}",
            self.bad.len(),
            self.bad.join("\n")
        );
    }
}

#[test]
fn every_cited_doc_anchor_names_a_heading() {
    let root = root();
    let docs = cited_files(&root);
    assert!(
        docs.contains_key("storage.md") && docs["storage.md"].1.contains("lazy-votes"),
        "the docs' headings were read: {:?}",
        docs.keys().collect::<Vec<_>>()
    );
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut tally = Tally::default();
    for path in &files {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        let shown = path.strip_prefix(&root).unwrap_or(path).display();
        for (line, name, anchor) in citations(&text) {
            // Only this project's docs; a citation of another file name
            // (an upstream project's) is not checked here.
            let Some((_, heads)) = docs.get(&name) else {
                continue;
            };
            tally.count(heads.contains(&anchor), || {
                format!("{shown}:{line}: {name}#{anchor}")
            });
        }
        if path.extension().is_some_and(|x| x == "md") {
            let own = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some((_, heads)) = docs.get(&own) {
                for (i, l) in text.lines().enumerate() {
                    for part in l.split("](#").skip(1) {
                        let anchor: String = part.chars().take_while(|&c| c != ')').collect();
                        tally.count(heads.contains(&anchor), || {
                            format!("{shown}:{}: #{anchor}", i + 1)
                        });
                    }
                }
            }
        }
    }
    tally.assert_clean(100, "citations", "name no heading");
}

#[test]
fn every_relative_link_between_docs_names_a_file() {
    let root = root();
    let mut tally = Tally::default();
    for (name, (path, _)) in cited_files(&root) {
        let text = fs::read_to_string(&path).expect("a doc is readable");
        let dir = path.parent().expect("a doc has a directory");
        for (i, line) in text.lines().enumerate() {
            for part in line.split("](").skip(1) {
                let target: String = part
                    .chars()
                    .take_while(|&c| !matches!(c, ')' | '#' | ' '))
                    .collect();
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                tally.count(dir.join(&target).exists(), || {
                    format!("{name}:{}: {target}", i + 1)
                });
            }
        }
    }
    tally.assert_clean(20, "links", "name no file");
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let heads = anchors(
        "# Storage: the data directory\n## `-d` and images\n```text\n# not a heading\n```\n## Runs\n## Runs\n",
    );
    let mut heads: Vec<_> = heads.into_iter().collect();
    heads.sort();
    assert_eq!(
        heads,
        [
            "-d-and-images",
            "runs",
            "runs-1",
            "storage-the-data-directory"
        ]
    );
    assert_eq!(
        citations("see docs/storage.md#lazy-votes, and (cluster.md#batching)."),
        [
            (1, "storage.md".to_string(), "lazy-votes".to_string()),
            (1, "cluster.md".to_string(), "batching".to_string())
        ]
    );
}
