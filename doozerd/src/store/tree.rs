//! The persistent tree. CONTRACT: signatures below are what the server uses.
//!
//! A directory is a persistent B+tree from name to entry ([`super::dir`]),
//! so a change copies only the O(log n) nodes on the way to the changed
//! entry in each directory along the path; everything else is shared with
//! older snapshots. A set into a directory of 100,000 files costs about as
//! much as into a small one, and a kept revision costs only that path.

use std::fmt;

use bytes::Bytes;
use doozer_proto::rev as wire_rev;
use smallvec::SmallVec;

use super::dir::{Dir, Entry};
use super::path::{names, validate_path, GlobState};
use super::{Glob, Rev, StoreError};

/// What a path names in a snapshot.
enum Found<'a> {
    File(&'a Entry),
    Dir(&'a Dir),
    Missing,
}

/// One revision of the tree; cloning is O(1).
#[derive(Clone)]
pub struct Snapshot {
    root: Dir,
    rev: Rev,
    /// Files in the tree (kept up to date by set/del, for stats).
    files: u64,
    /// Bytes of all file bodies.
    bytes: u64,
    /// The sum (wrapping) of every file's [`file_digest`]: equal trees
    /// have equal digests, and a change costs O(1) to account for.
    digest: u64,
}

/// One file's share of a tree's digest: a stable 64-bit hash (xxh3, the
/// same on every machine and version) of its path, rev and body: the
/// body hashed with a seed made of the path and the rev. Two one-shot
/// hashes cost a fraction of a streaming hasher's set-up, on every write.
fn file_digest(path: &str, rev: Rev, body: &[u8]) -> u64 {
    use xxhash_rust::xxh3::xxh3_64_with_seed;
    xxh3_64_with_seed(body, xxh3_64_with_seed(path.as_bytes(), rev as u64))
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole tree would be unreadable; the rev identifies it.
        f.debug_struct("Snapshot")
            .field("rev", &self.rev)
            .field("root_entries", &self.root.len())
            .finish()
    }
}

/// One file found by [`Snapshot::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// Full path of the file.
    pub path: String,
    /// Its body.
    pub body: Bytes,
    /// Its rev.
    pub rev: Rev,
}

/// Whether a write conditioned on `cond` may replace a file at rev `cur`
/// (0 when missing).
fn check_rev(cond: Rev, cur: Rev) -> Result<(), StoreError> {
    if cond == wire_rev::CLOBBER || cond >= cur {
        Ok(())
    } else {
        Err(StoreError::RevMismatch)
    }
}

/// The directories along `names` (the root first, then the parent of each
/// further name), up to the last name's parent: missing ones are `empty`.
/// Iterative, like the rebuilds below, so deep paths need no deep stack.
fn descend<'a>(root: &'a Dir, names: &[&str], empty: &'a Dir) -> Result<Vec<&'a Dir>, StoreError> {
    let mut dirs = Vec::with_capacity(names.len());
    dirs.push(root);
    let mut dir = root;
    for name in names.iter().take(names.len().saturating_sub(1)) {
        dir = match dir.get(name) {
            Some(e) => e.as_dir().ok_or(StoreError::NotDir)?,
            None => empty,
        };
        dirs.push(dir);
    }
    Ok(dirs)
}

/// The directories from `root` to the parent of the file at `names`, and
/// that file if it exists, once `cond` is checked against its rev (a
/// missing file has rev 0). The root itself, or a directory at `names`, is
/// `IsDir`; a file on the way is `NotDir`.
fn leaf_dirs<'a>(
    root: &'a Dir,
    names: &[&str],
    cond: Rev,
    empty: &'a Dir,
) -> Result<(Vec<&'a Dir>, Option<Entry>), StoreError> {
    let Some(leaf) = names.last() else {
        // Only the root has no names, and it is a directory.
        return Err(StoreError::IsDir);
    };
    let dirs = descend(root, names, empty)?;
    let exists = match dirs.last().and_then(|parent| parent.get(leaf)) {
        Some(e) if e.as_dir().is_some() => return Err(StoreError::IsDir),
        Some(file) => {
            check_rev(cond, file.rev())?;
            Some(file.clone())
        }
        None => {
            check_rev(cond, wire_rev::MISSING)?;
            None
        }
    };
    Ok((dirs, exists))
}

/// `root` without the file at `names`, if `cond` allows, and the file
/// removed: `Ok(None)` if nothing changed (it was missing). Directories
/// left empty are removed.
fn del_in(root: &Dir, names: &[&str], cond: Rev) -> Result<Option<(Dir, Entry)>, StoreError> {
    let empty = Dir::new();
    let (dirs, old) = leaf_dirs(root, names, cond, &empty)?;
    let Some(old) = old else {
        return Ok(None); // deleting a missing file changes nothing
    };
    let (Some(leaf), Some(parent)) = (names.last(), dirs.last()) else {
        return Err(StoreError::IsDir); // unreachable: leaf_dirs checked
    };
    let mut cur = (*parent).clone();
    cur.remove(leaf);
    let last = names.len() - 1;
    for (dir, name) in dirs[..last].iter().zip(&names[..last]).rev() {
        let mut up = (*dir).clone();
        if cur.is_empty() {
            // Directories exist only while they hold something.
            up.remove(name);
        } else {
            up.insert(Entry::dir(name, cur));
        }
        cur = up;
    }
    Ok(Some((cur, old)))
}

/// Writes `file` into `dir` under the directories `parents`, if `cond`
/// allows it (see [`check_rev`]), creating the missing directories and
/// changing in place every node and entry nobody else shares: the file
/// it replaced, if any. One search per directory on the way. On error
/// `dir` holds what it held (its nodes on the way may have been copied,
/// and a shared directory entry replaced by an equal one).
///
/// Recursive, one level per directory; paths are at most
/// [`super::path::MAX_PATH_LEN`] bytes, which dropping a tree recurses
/// through anyway (`deepest_paths_work_on_a_small_stack`).
fn set_at(
    dir: &mut Dir,
    parents: &[&str],
    file: Entry,
    cond: Rev,
) -> Result<Option<Entry>, StoreError> {
    let Some((name, rest)) = parents.split_first() else {
        return dir.insert_checked(file, |old| match old {
            Some(e) if e.as_dir().is_some() => Err(StoreError::IsDir),
            Some(e) => check_rev(cond, e.rev()),
            None => check_rev(cond, wire_rev::MISSING),
        });
    };
    // Taken by whichever way the write goes on.
    let mut file = Some(file);
    let mut take = || file.take().ok_or(StoreError::IsDir); // never twice
    let through = dir.update(name, |entry| {
        entry
            .with_dir_mut(|sub| set_at(sub, rest, take()?, cond))
            .unwrap_or(Err(StoreError::NotDir))
    });
    match through {
        Some(done) => done,
        None => {
            // Made aside and put in only once the file is in it, so a
            // refused write leaves no empty directory behind.
            let mut sub = Dir::new();
            let old = set_at(&mut sub, rest, take()?, cond)?;
            dir.insert(Entry::dir(name, sub));
            Ok(old)
        }
    }
}

impl Snapshot {
    /// The empty tree at rev 0.
    pub(crate) fn empty() -> Snapshot {
        Snapshot {
            root: Dir::new(),
            rev: 0,
            files: 0,
            bytes: 0,
            digest: 0,
        }
    }

    /// The same tree, labelled as revision `rev` (for changes that change
    /// nothing).
    pub(crate) fn at_rev(&self, rev: Rev) -> Snapshot {
        Snapshot {
            rev,
            ..self.clone()
        }
    }

    /// This tree with `body` written at `path` (if `cond` allows), as
    /// revision `rev`: a clone changed in place, so exactly the nodes on
    /// the way, which this tree shares, are copied.
    pub(crate) fn set(
        &self,
        path: &str,
        body: &Bytes,
        cond: Rev,
        rev: Rev,
    ) -> Result<Snapshot, StoreError> {
        let mut t = self.clone();
        t.set_in_place(path, body, cond, rev)?;
        Ok(t)
    }

    /// Counts, in files, bytes and digest, `body` written at `path` by
    /// `rev` in place of `old` (if there was a file), and labels the tree
    /// `rev`.
    fn count_set(&mut self, path: &str, old: Option<Entry>, body: &Bytes, rev: Rev) {
        if let Some(old) = old {
            self.files -= 1;
            self.bytes -= old.body().len() as u64;
            self.digest = self
                .digest
                .wrapping_sub(file_digest(path, old.rev(), old.body()));
        }
        self.files += 1;
        self.bytes += body.len() as u64;
        self.digest = self.digest.wrapping_add(file_digest(path, rev, body));
        self.rev = rev;
    }

    /// Like [`Snapshot::set`], but changing this tree in place: the
    /// directories on the way are copied only where another version still
    /// shares them (copy-on-write), so with no other version (a
    /// replay that keeps no history) a write copies and frees nothing. On
    /// error the tree is unchanged.
    pub(crate) fn set_in_place(
        &mut self,
        path: &str,
        body: &Bytes,
        cond: Rev,
        rev: Rev,
    ) -> Result<(), StoreError> {
        validate_path(path)?;
        let names: SmallVec<[&str; 8]> = names(path).collect();
        let Some((leaf, parents)) = names.split_last() else {
            return Err(StoreError::IsDir); // the root
        };
        let old = set_at(&mut self.root, parents, Entry::file(leaf, body, rev), cond)?;
        self.count_set(path, old, body, rev);
        Ok(())
    }

    /// This tree without the file at `path` (if `cond` allows), as revision
    /// `rev`.
    pub(crate) fn del(&self, path: &str, cond: Rev, rev: Rev) -> Result<Snapshot, StoreError> {
        validate_path(path)?;
        let names: Vec<&str> = names(path).collect();
        Ok(match del_in(&self.root, &names, cond)? {
            Some((root, old)) => Snapshot {
                root,
                rev,
                files: self.files - 1,
                bytes: self.bytes - old.body().len() as u64,
                digest: self
                    .digest
                    .wrapping_sub(file_digest(path, old.rev(), old.body())),
            },
            None => self.at_rev(rev),
        })
    }

    /// What `path` names; a path through a file is missing.
    fn find(&self, path: &str) -> Result<Found<'_>, StoreError> {
        validate_path(path)?;
        let mut dir = &self.root;
        let mut names = names(path).peekable();
        while let Some(name) = names.next() {
            let Some(entry) = dir.get(name) else {
                return Ok(Found::Missing);
            };
            match entry.as_dir() {
                Some(sub) => dir = sub,
                None if names.peek().is_none() => return Ok(Found::File(entry)),
                None => return Ok(Found::Missing),
            }
        }
        Ok(Found::Dir(dir))
    }

    /// Number of files in the tree.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Total bytes of all file bodies in the tree.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A digest of every file (path, rev, body): equal trees have equal
    /// digests, whatever order their changes came in; CALs compare them to
    /// find a node that diverged.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The revision this snapshot is of.
    pub fn rev(&self) -> Rev {
        self.rev
    }

    /// A file's body and rev; a missing file is `(empty, 0)`; a directory is
    /// `IsDir`; a path under a file is missing too.
    pub fn get(&self, path: &str) -> Result<(Bytes, Rev), StoreError> {
        match self.find(path)? {
            Found::File(file) => Ok((file.body_bytes(), file.rev())),
            Found::Dir(_) => Err(StoreError::IsDir),
            Found::Missing => Ok((Bytes::new(), wire_rev::MISSING)),
        }
    }

    /// `(len, rev)`: a file's body length and rev; a directory's entry count
    /// and `rev::DIR`; missing `(0, 0)`.
    pub fn stat(&self, path: &str) -> Result<(usize, Rev), StoreError> {
        Ok(match self.find(path)? {
            Found::File(file) => (file.body().len(), file.rev()),
            Found::Dir(dir) => (dir.len(), wire_rev::DIR),
            Found::Missing => (0, wire_rev::MISSING),
        })
    }

    /// The `offset`-th entry name (sorted) of a directory: `NoEnt` if
    /// missing, `NotDir` for a file, `Range` past the end.
    ///
    /// Costs O(log n): every node of a directory counts its entries.
    pub fn getdir(&self, path: &str, offset: usize) -> Result<String, StoreError> {
        match self.find(path)? {
            Found::Dir(dir) => dir
                .nth(offset)
                .map(|e| e.name().to_string())
                .ok_or(StoreError::Range),
            Found::File(..) => Err(StoreError::NotDir),
            Found::Missing => Err(StoreError::NoEnt),
        }
    }

    /// Every entry name of a directory, sorted: `NoEnt` if missing,
    /// `NotDir` for a file. The entries are shared with the tree, not
    /// copied; each derefs to its name.
    pub fn dir_names(&self, path: &str) -> Result<Vec<Entry>, StoreError> {
        match self.find(path)? {
            Found::Dir(dir) => Ok(dir.iter().cloned().collect()),
            Found::File(..) => Err(StoreError::NotDir),
            Found::Missing => Err(StoreError::NoEnt),
        }
    }

    /// The `offset`-th file matching `glob`, in sorted depth-first order;
    /// `Range` past the end.
    pub fn walk(&self, glob: &Glob, offset: usize) -> Result<WalkEntry, StoreError> {
        self.walk_iter(glob).nth(offset).ok_or(StoreError::Range)
    }

    /// Every file matching `glob`, in sorted depth-first order.
    pub fn walk_all(&self, glob: &Glob) -> Vec<WalkEntry> {
        self.walk_iter(glob).collect()
    }

    /// The files matching `glob`, lazily, in sorted depth-first order:
    /// children sorted bytewise by name, a directory's files at its place
    /// among its siblings. Only the glob's literal base directory is
    /// visited, and a directory is skipped as soon as no path under it can
    /// match.
    pub fn walk_iter<'a>(&'a self, glob: &'a Glob) -> WalkIter<'a> {
        let mut it = WalkIter {
            glob,
            stack: Vec::new(),
            path: String::new(),
            scratch: Vec::new(),
        };
        let base = glob.base_dir();
        let Ok(Found::Dir(dir)) = self.find(base) else {
            // Matches lie strictly under `base`, so a file or nothing there
            // means no matches.
            return it;
        };
        if base != "/" {
            it.path.push_str(base);
        }
        let mut state = glob.start();
        let mut dir_path = it.path.clone();
        dir_path.push('/');
        if !glob.advance(&mut state, dir_path.as_bytes()) {
            return it;
        }
        // Among the base's children only names starting with the rest of
        // the literal prefix can match; seek to them instead of scanning.
        let name_prefix: &'a str = {
            let text = glob.as_str();
            let lit_end = text.find(['?', '*']).unwrap_or(text.len());
            &text[dir_path.len().min(lit_end)..lit_end]
        };
        let children: Children<'a> = if name_prefix.is_empty() {
            Box::new(dir.iter())
        } else {
            Box::new(
                dir.iter_from(name_prefix, true)
                    .take_while(move |e| e.name().starts_with(name_prefix)),
            )
        };
        let base_len = it.path.len();
        it.stack.push(Frame {
            children,
            base_len,
            state,
        });
        it
    }
}

impl Snapshot {
    /// The files matching `glob` that come after the file `after` in walk
    /// order (`after` is a match of an earlier walk of the same glob): a
    /// walk resumed where it stopped, at the cost of the path's depth, not
    /// of the files before it.
    pub fn walk_after<'a>(&'a self, glob: &'a Glob, after: &'a str) -> WalkIter<'a> {
        let mut it = self.walk_iter(glob);
        let base = glob.base_dir();
        let rel = if base == "/" {
            after.strip_prefix('/')
        } else {
            after.strip_prefix(base).and_then(|r| r.strip_prefix('/'))
        };
        let (Some(rel), Some(frame)) = (rel, it.stack.pop()) else {
            return it;
        };
        let names: Vec<&str> = rel.split('/').collect();
        let Ok(Found::Dir(mut dir)) = self.find(base) else {
            return it;
        };
        let mut state = frame.state;
        let prefix = name_prefix(glob);
        for (i, name) in names.iter().enumerate() {
            let children: Children<'a> = Box::new(
                dir.iter_from(name, false)
                    .take_while(move |e| i > 0 || e.name().starts_with(prefix)),
            );
            let base_len = it.path.len();
            it.stack.push(Frame {
                children,
                base_len,
                state: state.clone(),
            });
            // Go down into `name` if it is a directory the glob can enter.
            let Some(sub) = dir.get(name).and_then(Entry::as_dir) else {
                break;
            };
            let mut next = state.clone();
            if !glob.advance(&mut next, name.as_bytes()) || !glob.advance(&mut next, b"/") {
                break;
            }
            it.path.push('/');
            it.path.push_str(name);
            state = next;
            dir = sub;
        }
        it
    }
}

/// What the names directly under a glob's base directory must start with
/// (the rest of its literal prefix).
fn name_prefix(glob: &Glob) -> &str {
    let text = glob.as_str();
    let base = glob.base_dir();
    let dir_len = if base == "/" { 1 } else { base.len() + 1 };
    let lit_end = text.find(['?', '*']).unwrap_or(text.len());
    &text[dir_len.min(lit_end)..lit_end]
}

/// Iterator over one directory's entries in name order.
type Children<'a> = Box<dyn Iterator<Item = &'a Entry> + 'a>;

/// A directory being walked.
struct Frame<'a> {
    children: Children<'a>,
    /// Length of the directory's path in [`WalkIter::path`] (0 for root).
    base_len: usize,
    /// Glob state after reading the directory's path and a `/`.
    state: GlobState,
}

/// The files matching a glob, from [`Snapshot::walk_iter`].
pub struct WalkIter<'a> {
    glob: &'a Glob,
    stack: Vec<Frame<'a>>,
    /// The path of the entry being looked at.
    path: String,
    scratch: GlobState,
}

impl Iterator for WalkIter<'_> {
    type Item = WalkEntry;

    fn next(&mut self) -> Option<WalkEntry> {
        loop {
            let frame = self.stack.last_mut()?;
            let Some(entry) = frame.children.next() else {
                self.stack.pop();
                continue;
            };
            self.path.truncate(frame.base_len);
            let name = entry.name();
            self.path.push('/');
            self.path.push_str(name);
            self.scratch.clone_from(&frame.state);
            if !self.glob.advance(&mut self.scratch, name.as_bytes()) {
                continue;
            }
            match entry.as_dir() {
                None => {
                    if self.glob.accepts(&self.scratch) {
                        return Some(WalkEntry {
                            path: self.path.clone(),
                            body: entry.body_bytes(),
                            rev: entry.rev(),
                        });
                    }
                }
                Some(dir) => {
                    let mut state = self.scratch.clone();
                    if self.glob.advance(&mut state, b"/") {
                        let base_len = self.path.len();
                        self.stack.push(Frame {
                            children: Box::new(dir.iter()),
                            base_len,
                            state,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn tree(files: &[&str]) -> Snapshot {
        let mut s = Snapshot::empty();
        for (i, f) in files.iter().enumerate() {
            s = s
                .set(f, &b(f), wire_rev::CLOBBER, i as Rev + 1)
                .expect("set");
        }
        s
    }

    fn walk(s: &Snapshot, g: &str) -> Vec<String> {
        let g = Glob::parse(g).expect("glob");
        s.walk_all(&g).into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn get_and_stat() {
        let s = tree(&["/a/b", "/c"]);
        assert_eq!(s.get("/a/b"), Ok((b("/a/b"), 1)));
        assert_eq!(s.get("/c"), Ok((b("/c"), 2)));
        assert_eq!(s.get("/x"), Ok((Bytes::new(), 0)));
        assert_eq!(s.get("/c/d"), Ok((Bytes::new(), 0)), "through a file");
        assert_eq!(s.get("/a"), Err(StoreError::IsDir));
        assert_eq!(s.get("/"), Err(StoreError::IsDir));
        assert_eq!(s.get("a"), Err(StoreError::BadPath));
        assert_eq!(s.stat("/a/b"), Ok((4, 1)));
        assert_eq!(s.stat("/a"), Ok((1, wire_rev::DIR)));
        assert_eq!(s.stat("/"), Ok((2, wire_rev::DIR)));
        assert_eq!(s.stat("/nope"), Ok((0, 0)));
        assert_eq!(s.stat("/c/d"), Ok((0, 0)));
        assert_eq!(s.stat("/a/"), Err(StoreError::BadPath));
        assert_eq!(Snapshot::empty().stat("/"), Ok((0, wire_rev::DIR)));
    }

    #[test]
    fn getdir_order_and_errors() {
        let s = tree(&["/d/b", "/d/a0", "/d/a-", "/d/a/x", "/d/B", "/f"]);
        let names: Vec<String> = (0..5).map(|i| s.getdir("/d", i).expect("entry")).collect();
        assert_eq!(names, ["B", "a", "a-", "a0", "b"]);
        assert_eq!(s.getdir("/d", 5), Err(StoreError::Range));
        assert_eq!(s.getdir("/", 0), Ok("d".into()));
        assert_eq!(s.getdir("/", 1), Ok("f".into()));
        assert_eq!(s.getdir("/", 2), Err(StoreError::Range));
        assert_eq!(s.getdir("/f", 0), Err(StoreError::NotDir));
        assert_eq!(s.getdir("/x", 0), Err(StoreError::NoEnt));
        assert_eq!(s.getdir("/f/g", 0), Err(StoreError::NoEnt));
        assert_eq!(s.getdir("//", 0), Err(StoreError::BadPath));
        assert_eq!(Snapshot::empty().getdir("/", 0), Err(StoreError::Range));
        let all: Vec<String> = s
            .dir_names("/d")
            .expect("dir")
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(all, names);
        assert_eq!(s.dir_names("/f").err(), Some(StoreError::NotDir));
        assert_eq!(s.dir_names("/x").err(), Some(StoreError::NoEnt));
    }

    /// GETDIR at any offset of a large directory, at two revs: the
    /// entry counts kept in the directory's nodes find the right name,
    /// and an earlier name added at a later rev shifts the later ones.
    #[test]
    fn getdir_at_far_offsets_follows_each_rev() {
        let names: Vec<String> = (0..200).map(|i| format!("/d/f{i:03}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let old = tree(&refs);
        for off in [0, 63, 64, 100, 199] {
            assert_eq!(old.getdir("/d", off), Ok(format!("f{off:03}")));
        }
        assert_eq!(old.getdir("/d", 200), Err(StoreError::Range));
        let new = old.set("/d/a", &b("x"), -1, 201).expect("set");
        assert_eq!(new.getdir("/d", 0), Ok("a".to_string()));
        assert_eq!(new.getdir("/d", 100), Ok("f099".to_string()));
        assert_eq!(new.getdir("/d", 200), Ok("f199".to_string()));
        assert_eq!(old.getdir("/d", 100), Ok("f100".to_string()));
        assert_eq!(new.getdir("/nope", 100), Err(StoreError::NoEnt));
    }

    #[test]
    fn walk_order_is_depth_first_by_name() {
        let s = tree(&["/a0", "/a-", "/a/b", "/a/a/z", "/b", "/a/c"]);
        assert_eq!(
            walk(&s, "/**"),
            ["/a/a/z", "/a/b", "/a/c", "/a-", "/a0", "/b"]
        );
        assert_eq!(walk(&s, "/*"), ["/a-", "/a0", "/b"]);
        assert_eq!(walk(&s, "/a/*"), ["/a/b", "/a/c"]);
        assert_eq!(walk(&s, "/a/**"), ["/a/a/z", "/a/b", "/a/c"]);
        assert_eq!(walk(&s, "/a?"), ["/a-", "/a0"]);
        assert_eq!(walk(&s, "/a*"), ["/a-", "/a0"]);
        assert_eq!(walk(&s, "/a**"), ["/a/a/z", "/a/b", "/a/c", "/a-", "/a0"]);
        assert_eq!(walk(&s, "/**/b"), ["/a/b"], "needs two slashes");
        assert_eq!(walk(&s, "/a/b"), ["/a/b"]);
        assert_eq!(
            walk(&s, "/a"),
            Vec::<String>::new(),
            "a directory is no file"
        );
        assert_eq!(walk(&s, "/"), Vec::<String>::new());
        assert_eq!(walk(&s, "/b/**"), Vec::<String>::new(), "under a file");
        assert_eq!(walk(&s, "/x/**"), Vec::<String>::new());
        assert_eq!(walk(&s, "/a/a/*"), ["/a/a/z"]);
    }

    #[test]
    fn walk_offsets() {
        let s = tree(&["/x/1", "/x/2", "/y"]);
        let g = Glob::parse("/**").expect("glob");
        let e = s.walk(&g, 1).expect("second");
        assert_eq!(
            e,
            WalkEntry {
                path: "/x/2".into(),
                body: b("/x/2"),
                rev: 2
            }
        );
        assert_eq!(s.walk(&g, 2).map(|e| e.path), Ok("/y".into()));
        assert_eq!(s.walk(&g, 3), Err(StoreError::Range));
    }

    #[test]
    fn walk_with_name_prefix_seek() {
        let s = tree(&["/ctl/node/a", "/ctl/nodes", "/ctl/nod", "/ctl/x", "/cta"]);
        assert_eq!(walk(&s, "/ctl/node*"), ["/ctl/nodes"]);
        assert_eq!(walk(&s, "/ctl/node**"), ["/ctl/node/a", "/ctl/nodes"]);
        assert_eq!(
            walk(&s, "/ctl/**"),
            ["/ctl/nod", "/ctl/node/a", "/ctl/nodes", "/ctl/x"]
        );
        assert_eq!(walk(&s, "/ct*"), ["/cta"]);
    }

    #[test]
    fn set_rules() {
        let s = tree(&["/a/b"]);
        assert_eq!(s.set("/a", &b("x"), -1, 2).err(), Some(StoreError::IsDir));
        assert_eq!(s.set("/", &b("x"), -1, 2).err(), Some(StoreError::IsDir));
        assert_eq!(
            s.set("/a/b/c", &b("x"), -1, 2).err(),
            Some(StoreError::NotDir)
        );
        assert_eq!(
            s.set("/a/b/c/d", &b("x"), -1, 2).err(),
            Some(StoreError::NotDir)
        );
        assert_eq!(
            s.set("/a/b", &b("x"), 0, 2).err(),
            Some(StoreError::RevMismatch)
        );
        assert_eq!(s.set("a", &b("x"), -1, 2).err(), Some(StoreError::BadPath));
        let t = s.set("/a/b", &b("x"), 1, 2).expect("rev equal");
        assert_eq!(t.get("/a/b"), Ok((b("x"), 2)));
        assert_eq!(s.get("/a/b"), Ok((b("/a/b"), 1)), "old snapshot unchanged");
        let t = t.set("/a/b", &b("y"), 100, 3).expect("rev above");
        assert_eq!(t.get("/a/b"), Ok((b("y"), 3)));
        assert_eq!(t.set("/new", &b("y"), 0, 4).map(|s| s.rev()), Ok(4));
        assert_eq!(
            t.set("/new", &b("y"), -2, 4).err(),
            Some(StoreError::RevMismatch)
        );
    }

    /// A write refused on the in-place path (the one the store takes
    /// between kept revs) leaves the tree as it was: no directory made
    /// for it, no count or digest changed.
    #[test]
    fn a_refused_set_in_place_changes_nothing() {
        let mut s = tree(&["/a/b"]);
        let digest = s.digest();
        for (path, cond, err) in [
            ("/n/e/w", -2, StoreError::RevMismatch),
            ("/a/new/x", -2, StoreError::RevMismatch),
            ("/a/b/c", -1, StoreError::NotDir),
            ("/a", -1, StoreError::IsDir),
            ("/a/b", 0, StoreError::RevMismatch),
        ] {
            assert_eq!(s.set_in_place(path, &b("x"), cond, 9), Err(err), "{path}");
            assert_eq!(s.stat("/"), Ok((1, wire_rev::DIR)), "{path}");
            assert_eq!(s.stat("/a"), Ok((1, wire_rev::DIR)), "{path}");
            assert_eq!(s.get("/a/b"), Ok((b("/a/b"), 1)), "{path}");
            assert_eq!((s.files(), s.digest(), s.rev()), (1, digest, 1), "{path}");
        }
        s.set_in_place("/n/e/w", &b("x"), 0, 9).expect("set");
        assert_eq!(s.get("/n/e/w"), Ok((b("x"), 9)));
        assert_eq!(s.stat("/"), Ok((2, wire_rev::DIR)));
    }

    #[test]
    fn del_rules_and_dir_removal() {
        let s = tree(&["/a/b/c", "/a/d", "/e"]);
        assert_eq!(s.del("/a", -1, 4).err(), Some(StoreError::IsDir));
        assert_eq!(s.del("/", -1, 4).err(), Some(StoreError::IsDir));
        assert_eq!(s.del("/e/f", -1, 4).err(), Some(StoreError::NotDir));
        assert_eq!(s.del("/a/d", 1, 4).err(), Some(StoreError::RevMismatch));
        assert_eq!(s.del("/a//d", -1, 4).err(), Some(StoreError::BadPath));
        for cond in [-1, 0, 7] {
            let t = s.del("/zz/y", cond, 4).expect("missing is fine");
            assert_eq!(t.stat("/"), Ok((2, wire_rev::DIR)));
        }
        let t = s.del("/a/b/c", 1, 4).expect("del");
        assert_eq!(t.stat("/a/b"), Ok((0, 0)), "emptied dir removed");
        assert_eq!(t.stat("/a"), Ok((1, wire_rev::DIR)));
        let t = t.del("/a/d", -1, 5).expect("del");
        assert_eq!(t.stat("/a"), Ok((0, 0)), "removed recursively");
        assert_eq!(t.stat("/"), Ok((1, wire_rev::DIR)));
        let t = t.del("/e", 3, 6).expect("del");
        assert_eq!(t.stat("/"), Ok((0, wire_rev::DIR)));
        assert_eq!(s.get("/a/b/c").map(|g| g.1), Ok(1), "old snapshot kept");
    }

    #[test]
    fn deepest_paths_work_on_a_small_stack() {
        // Del is iterative; set and dropping a tree recurse (entry, node),
        // bounded by the path length limit. Check the deepest path fits
        // Rust's default 2 MiB thread stack even unoptimized (release
        // needs under 512 KiB since set recurses; it was under 256 KiB
        // when set was iterative).
        let deep = "/a".repeat(crate::store::path::MAX_PATH_LEN / 2);
        let handle = std::thread::Builder::new()
            .stack_size(2048 * 1024)
            .spawn(move || {
                let s = Snapshot::empty()
                    .set(&deep, &b("x"), -1, 1)
                    .expect("deep set");
                assert_eq!(s.get(&deep).map(|g| g.1), Ok(1));
                let g = Glob::parse("/**").expect("glob");
                assert_eq!(s.walk_all(&g).len(), 1);
                let t = s.del(&deep, -1, 2).expect("deep del");
                assert_eq!(t.stat("/"), Ok((0, wire_rev::DIR)));
                drop(t);
                drop(s);
            })
            .expect("spawn");
        assert!(handle.join().is_ok());
    }
}
