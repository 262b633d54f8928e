//! What the store still remembers, for the viewer: a file's past versions
//! (`/$history.json`) and a directory as it was at a past rev
//! (`/$tree.json`), both within the history window (`-hist`) and both
//! bounded in size (docs/web.md#history, docs/web.md#tree-at-a-rev).

use serde_json::json;

use super::{body_json, dir_glob};
use crate::store::{validate_path, Rev, Store};
use doozer_proto::flags;

/// Versions listed per `/$history.json` answer unless `limit` says
/// otherwise.
pub const HISTORY_DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const HISTORY_MAX_LIMIT: usize = 1000;
/// Bytes of bodies per `/$history.json` answer: beyond it the answer is cut
/// (at least one version is always given) and says where to go on.
pub const HISTORY_MAX_BYTES: usize = 1 << 20;
/// Revs looked through per answer for the change that deleted a file: a
/// file absent for a long stretch of a large window costs one answer this
/// much at most; the page goes on from `next`.
pub const HISTORY_MAX_SCAN: Rev = 100_000;
/// Files listed per `/$tree.json` answer.
pub const TREE_MAX_FILES: usize = 5000;
/// Bytes of bodies per `/$tree.json` answer.
pub const TREE_MAX_BYTES: usize = 4 << 20;

/// A request the viewer refuses: the HTTP status and a one-line reason.
pub type Refusal = (u16, String);

/// `rev` (default: the head) if it is within the history window, else
/// why not (404: the rev exists or will, but cannot be read here now).
fn rev_in_window(store: &Store, rev: Option<Rev>) -> Result<Rev, Refusal> {
    let (head, oldest) = (store.rev(), store.oldest_rev());
    let rev = rev.unwrap_or(head);
    if rev > head {
        return Err((404, format!("rev {rev} is after the head rev {head}")));
    }
    if rev < oldest {
        return Err((
            404,
            format!("rev {rev} is older than the history window (oldest kept rev {oldest})"),
        ));
    }
    Ok(rev)
}

/// The versions of file `path`, newest first, as of rev `from` (default:
/// the head) back to the oldest kept rev: each SET with its body, each DEL.
/// The oldest version listed may be older than the window (its body is
/// still what the oldest kept rev holds); it says so
/// (`"before_window": true`). At most `limit` versions and about
/// [`HISTORY_MAX_BYTES`] of bodies: a cut answer gives `next`, the rev to
/// ask `from` for the rest.
pub fn history(
    store: &Store,
    path: &str,
    from: Option<Rev>,
    limit: Option<usize>,
) -> Result<serde_json::Value, Refusal> {
    if path == "/" || validate_path(path).is_err() {
        return Err((400, "path: not a file path".to_string()));
    }
    let limit = limit.unwrap_or(HISTORY_DEFAULT_LIMIT);
    if limit == 0 || limit > HISTORY_MAX_LIMIT {
        return Err((400, format!("limit: 1 to {HISTORY_MAX_LIMIT}")));
    }
    let start = rev_in_window(store, from)?;
    let oldest = store.oldest_rev();
    let mut entries = Vec::new();
    let mut bytes = 0;
    let mut at = start;
    // Where to go on from, when cut short; `None` once the window's start
    // was reached.
    let mut next = None;
    while at >= oldest {
        if entries.len() >= limit {
            next = Some(at);
            break;
        }
        let snap = store.snapshot(Some(at)).map_err(|_| {
            // `at` is within the window: the store holds its snapshot.
            (500, format!("rev {at}: no snapshot"))
        })?;
        match snap.get(path) {
            Ok((body, rev)) if rev > 0 => {
                if !entries.is_empty() && bytes + body.len() > HISTORY_MAX_BYTES {
                    next = Some(at);
                    break;
                }
                bytes += body.len();
                let mut e = body_json(&body);
                e["rev"] = json!(rev);
                e["kind"] = json!("set");
                e["before_window"] = json!(rev < oldest);
                entries.push(e);
                // The versions before the oldest kept rev are gone.
                if rev <= oldest {
                    break;
                }
                at = rev - 1;
            }
            // Missing or a directory at `at`: the change that removed the
            // file, if it is at or after the oldest kept rev.
            _ => {
                let stop = oldest.max(at - HISTORY_MAX_SCAN + 1);
                let found = (stop..=at).rev().find(|&r| {
                    store
                        .event(r)
                        .is_some_and(|e| e.flags == flags::DEL && &*e.path == path)
                });
                match found {
                    Some(r) => {
                        entries.push(json!({
                            "rev": r, "kind": "del", "len": 0, "enc": "utf8", "body": "",
                            "before_window": false,
                        }));
                        at = r - 1;
                    }
                    None if stop > oldest => {
                        next = Some(stop - 1);
                        break;
                    }
                    None => break,
                }
            }
        }
    }
    Ok(json!({
        "path": path,
        "head": store.rev(),
        "oldest": oldest,
        "from": start,
        "limit": limit,
        "entries": entries,
        "next": next,
    }))
}

/// Every file under directory `dir` (ending in `/`) as of rev `rev`
/// (default: the head), in the event stream's listing order, at most
/// [`TREE_MAX_FILES`] files and about [`TREE_MAX_BYTES`] of bodies
/// (`"truncated": true` when cut).
pub fn tree_at(store: &Store, dir: &str, rev: Option<Rev>) -> Result<serde_json::Value, Refusal> {
    let glob =
        dir_glob(dir).ok_or_else(|| (400, "dir: not a directory path ending in /".to_string()))?;
    let rev = rev_in_window(store, rev)?;
    let snap = store
        .snapshot(Some(rev))
        .map_err(|_| (500, format!("rev {rev}: no snapshot")))?;
    let mut files = Vec::new();
    let mut bytes = 0;
    let mut truncated = false;
    for f in snap.walk_iter(&glob) {
        if files.len() >= TREE_MAX_FILES || bytes + f.body.len() > TREE_MAX_BYTES {
            truncated = true;
            break;
        }
        bytes += f.body.len();
        let mut obj = body_json(&f.body);
        obj["path"] = json!(f.path);
        obj["rev"] = json!(f.rev);
        files.push(obj);
    }
    Ok(json!({
        "dir": dir,
        "rev": rev,
        "head": store.rev(),
        "oldest": store.oldest_rev(),
        "files": files,
        "truncated": truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mutation;
    use bytes::Bytes;

    fn set(s: &mut Store, path: &str, body: &[u8]) -> Rev {
        let rev = s.rev() + 1;
        s.apply(
            rev,
            &Mutation::Set {
                path: path.into(),
                rev: -1,
                body: Bytes::copy_from_slice(body),
            },
        );
        rev
    }

    fn del(s: &mut Store, path: &str) -> Rev {
        let rev = s.rev() + 1;
        s.apply(
            rev,
            &Mutation::Del {
                path: path.into(),
                rev: -1,
            },
        );
        rev
    }

    /// `(rev, kind, body)` of each entry.
    fn versions(v: &serde_json::Value) -> Vec<(Rev, String, String)> {
        v["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["rev"].as_i64().unwrap(),
                    e["kind"].as_str().unwrap().to_string(),
                    e["body"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn v(rev: Rev, kind: &str, body: &str) -> (Rev, String, String) {
        (rev, kind.into(), body.into())
    }

    #[test]
    fn history_lists_sets_and_dels_newest_first() {
        let mut s = Store::new(100);
        let r1 = set(&mut s, "/f", b"one");
        set(&mut s, "/other", b"x");
        let r2 = set(&mut s, "/f", b"<b>two</b>");
        let d = del(&mut s, "/f");
        set(&mut s, "/other", b"y");
        let r3 = set(&mut s, "/f", b"three");
        let h = history(&s, "/f", None, None).unwrap();
        assert_eq!(
            versions(&h),
            [
                v(r3, "set", "three"),
                v(d, "del", ""),
                v(r2, "set", "<b>two</b>"),
                v(r1, "set", "one")
            ]
        );
        assert_eq!(h["next"], json!(null));
        assert_eq!(h["head"], json!(s.rev()));
        // From a past rev: only what was there then.
        let h = history(&s, "/f", Some(d - 1), None).unwrap();
        assert_eq!(
            versions(&h),
            [v(r2, "set", "<b>two</b>"), v(r1, "set", "one")]
        );
        // A file that never was: nothing.
        assert!(versions(&history(&s, "/nope", None, None).unwrap()).is_empty());
    }

    #[test]
    fn history_stops_at_the_window_and_says_what_is_older() {
        let mut s = Store::new(5);
        set(&mut s, "/f", b"old");
        for _ in 0..10 {
            set(&mut s, "/pad", b"");
        }
        let r = set(&mut s, "/f", b"new");
        for _ in 0..2 {
            set(&mut s, "/pad", b"");
        }
        let h = history(&s, "/f", None, None).unwrap();
        assert_eq!(versions(&h), [v(r, "set", "new"), v(1, "set", "old")]);
        assert_eq!(h["entries"][1]["before_window"], json!(true));
        assert_eq!(h["entries"][0]["before_window"], json!(false));
    }

    #[test]
    fn history_is_cut_by_limit_and_goes_on_from_next() {
        let mut s = Store::new(100);
        let revs: Vec<Rev> = (0..10)
            .map(|i| set(&mut s, "/f", format!("{i}").as_bytes()))
            .collect();
        let h = history(&s, "/f", None, Some(3)).unwrap();
        assert_eq!(versions(&h).len(), 3);
        let next = h["next"].as_i64().expect("next");
        assert_eq!(next, revs[6]);
        let rest = history(&s, "/f", Some(next), Some(100)).unwrap();
        assert_eq!(versions(&rest).len(), 7);
        assert_eq!(rest["next"], json!(null));
    }

    #[test]
    fn history_and_tree_refuse_bad_input_with_4xx() {
        let mut s = Store::new(3);
        for _ in 0..10 {
            set(&mut s, "/f", b"x");
        }
        for (path, from, limit) in [
            ("/", None, None),
            ("", None, None),
            ("f", None, None),
            ("/a b", None, None),
            ("/f/", None, None),
            ("/f", Some(1), None),
            ("/f", Some(11), None),
            ("/f", Some(-1), None),
            ("/f", None, Some(0)),
            ("/f", None, Some(HISTORY_MAX_LIMIT + 1)),
        ] {
            let e = history(&s, path, from, limit).expect_err(path);
            assert!(e.0 == 400 || e.0 == 404, "{path} {from:?}: {e:?}");
        }
        for (dir, rev) in [("/f", None), ("x/", None), ("/", Some(1)), ("/", Some(99))] {
            let e = tree_at(&s, dir, rev).expect_err(dir);
            assert!(e.0 == 400 || e.0 == 404, "{dir} {rev:?}: {e:?}");
        }
    }

    #[test]
    fn the_tree_at_a_past_rev_holds_what_was_deleted_since() {
        let mut s = Store::new(100);
        let r = set(&mut s, "/d/gone", b"<script>x</script>");
        set(&mut s, "/d/kept", b"k");
        set(&mut s, "/elsewhere", b"e");
        del(&mut s, "/d/gone");
        let paths = |v: &serde_json::Value| -> Vec<String> {
            v["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap().to_string())
                .collect()
        };
        let now = tree_at(&s, "/d/", None).unwrap();
        assert_eq!(paths(&now), ["/d/kept"]);
        let then = tree_at(&s, "/d/", Some(r + 1)).unwrap();
        assert_eq!(paths(&then), ["/d/gone", "/d/kept"]);
        assert_eq!(then["files"][0]["body"], json!("<script>x</script>"));
        assert_eq!(then["files"][0]["rev"], json!(r));
        assert_eq!(then["rev"], json!(r + 1));
        assert_eq!(then["truncated"], json!(false));
        assert_eq!(
            paths(&tree_at(&s, "/", Some(0)).unwrap()),
            Vec::<String>::new()
        );
    }
}
