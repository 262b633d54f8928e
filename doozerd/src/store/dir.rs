//! A directory of the tree: a persistent B+tree of [`Entry`]s by name.
//!
//! Built for memory (docs/benchmarks.md#memory): an entry is one
//! allocation holding its name, rev and body (or, for a directory, its
//! own [`Dir`]), and the tree's nodes hold up to 14 pointers each.
//! A change copies only the nodes on the way to it (a few, each a few
//! hundred bytes) where an older version still shares them, so a kept
//! revision costs that path and nothing more, and one version changed in
//! place (nobody else holding it) copies nothing.
//!
//! Every node keeps how many entries lie under it, so the `n`-th name of
//! a directory is found in O(log n), and its first entry, so a search
//! finds its way among a node's children without going further down.

use std::cmp::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;
use triomphe::{Arc, ThinArc};

use super::Rev;

/// Most entries in a leaf, and most children of an inner node: with one
/// more slot for an insertion's overflow, a node takes 152 bytes (a
/// 160-byte block of the C allocator).
const MAX: usize = 14;
/// Fewest entries (children) a node other than the root keeps after a
/// removal; fewer, and it is joined with a neighbour.
const MIN: usize = MAX / 4;

/// What an [`Entry`] holds besides its name and body.
#[derive(Clone)]
struct Head {
    /// The rev that wrote a file (0 for a directory).
    rev: Rev,
    /// A directory's entries (empty for a file).
    dir: Dir,
    /// Bytes of the name at the start of the slice; the body follows.
    name_len: u32,
    /// Whether this is a directory (then `dir` holds its entries).
    is_dir: bool,
}

/// One name in a directory, with its file (rev and body) or its
/// subdirectory, in one shared allocation; cloning it is O(1).
#[derive(Clone)]
pub struct Entry(ThinArc<Head, u8>);

impl Entry {
    /// A file `name` holding `body`, written by `rev`.
    pub(crate) fn file(name: &str, body: &[u8], rev: Rev) -> Entry {
        Entry::new(name, body, rev, Dir::new(), false)
    }

    /// A directory `name` holding `dir` (not empty).
    pub(crate) fn dir(name: &str, dir: Dir) -> Entry {
        Entry::new(name, &[], 0, dir, true)
    }

    fn new(name: &str, body: &[u8], rev: Rev, dir: Dir, is_dir: bool) -> Entry {
        // Names are at most a path's length (docs/reference.md#paths).
        let name_len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        let head = Head {
            rev,
            dir,
            name_len,
            is_dir,
        };
        // Allocated zeroed, then the name and the body copied in (a
        // byte-by-byte iterator would cost more than the copies).
        let len = name.len() + body.len();
        let mut arc = ThinArc::from_header_and_iter(head, std::iter::repeat_n(0u8, len));
        arc.with_arc_mut(|a| {
            if let Some(data) = Arc::get_mut(a) {
                let (n, b) = data.slice_mut().split_at_mut(name.len());
                n.copy_from_slice(name.as_bytes());
                b.copy_from_slice(body);
            }
        });
        Entry(arc)
    }

    fn head(&self) -> &Head {
        &self.0.header.header
    }

    fn name_bytes(&self) -> &[u8] {
        let slice = &self.0.slice;
        &slice[..(self.head().name_len as usize).min(slice.len())]
    }

    /// The name (one path component).
    pub fn name(&self) -> &str {
        // Made from a &str in `new`, so this never falls back.
        std::str::from_utf8(self.name_bytes()).unwrap_or_default()
    }

    /// A file's rev (0 for a directory).
    pub(crate) fn rev(&self) -> Rev {
        self.head().rev
    }

    /// A file's body (empty for a directory).
    pub(crate) fn body(&self) -> &[u8] {
        let slice = &self.0.slice;
        &slice[self.name_bytes().len()..]
    }

    /// A file's body as shared [`Bytes`], without copying it.
    pub(crate) fn body_bytes(&self) -> Bytes {
        if self.body().is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(BodyOf(self.clone()))
    }

    /// A directory's entries, or `None` for a file.
    pub(crate) fn as_dir(&self) -> Option<&Dir> {
        let head = self.head();
        head.is_dir.then_some(&head.dir)
    }

    /// Runs `f` on this directory entry's [`Dir`] to change it: in place
    /// when nobody else holds this entry, else on a copy in a new entry
    /// that replaces this one (the old version keeps the old one). `None`
    /// for a file, `f` not run.
    pub(crate) fn with_dir_mut<R>(&mut self, f: impl FnOnce(&mut Dir) -> R) -> Option<R> {
        if !self.head().is_dir {
            return None;
        }
        let mut f = Some(f);
        let done = self.0.with_arc_mut(|arc| {
            let head = Arc::get_mut(arc)?.header_mut();
            f.take().map(|f| f(&mut head.dir))
        });
        if done.is_some() {
            return done;
        }
        let copy = Entry::dir(self.name(), self.head().dir.clone());
        *self = copy;
        self.0.with_arc_mut(|arc| {
            // Just made, so nobody else holds it.
            let head = Arc::get_mut(arc)?.header_mut();
            f.take().map(|f| f(&mut head.dir))
        })
    }

    fn cmp_name(&self, name: &[u8]) -> Ordering {
        self.name_bytes().cmp(name)
    }
}

impl std::ops::Deref for Entry {
    type Target = str;

    fn deref(&self) -> &str {
        self.name()
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name())
            .field("rev", &self.rev())
            .field("body_len", &self.body().len())
            .field("dir", &self.as_dir().map(Dir::len))
            .finish()
    }
}

/// An entry's body as the owner of a [`Bytes`].
struct BodyOf(Entry);

impl AsRef<[u8]> for BodyOf {
    fn as_ref(&self) -> &[u8] {
        self.0.body()
    }
}

/// Entries (leaf) or children (inner node); one more than [`MAX`] fits
/// inline, so an insertion overflows in place before it splits.
type Slots<T> = SmallVec<[T; MAX + 1]>;

#[derive(Clone)]
enum Node {
    /// Entries sorted by name.
    Leaf(Slots<Entry>),
    /// Children in name order.
    Inner(Inner),
}

#[derive(Clone)]
struct Inner {
    /// Entries under this node.
    len: usize,
    /// The first entry under this node (its first child's).
    first: Entry,
    /// The children, all at one depth.
    kids: Slots<Arc<Node>>,
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Inner(inner) => inner.len,
        }
    }

    /// Entries of a leaf, children of an inner node.
    fn width(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Inner(inner) => inner.kids.len(),
        }
    }

    fn first(&self) -> Option<&Entry> {
        match self {
            Node::Leaf(entries) => entries.first(),
            Node::Inner(inner) => Some(&inner.first),
        }
    }

    /// The slots from `at` on, split off (the node keeps the rest).
    fn split_at(&mut self, at: usize) -> Node {
        match self {
            Node::Leaf(entries) => Node::Leaf(entries.drain(at..).collect()),
            Node::Inner(inner) => {
                let kids: Slots<Arc<Node>> = inner.kids.drain(at..).collect();
                let len = kids.iter().map(|k| k.len()).sum();
                inner.len -= len;
                // Both halves hold at least one child.
                let first = kids[0].first().unwrap_or(&inner.first).clone();
                Node::Inner(Inner { len, first, kids })
            }
        }
    }

    /// Splits an overfull node: in half, or, when it grew at its end
    /// (names written in ascending order, as a bulk load often is),
    /// leaving only [`MIN`] slots to the right, so such a directory's
    /// nodes end up nearly full rather than half full.
    fn split(&mut self, grew_at_end: bool) -> Node {
        let width = self.width();
        let at = if grew_at_end { width - MIN } else { width / 2 };
        self.split_at(at)
    }

    /// `right` (a node of the same kind, after this one) appended.
    fn absorb(&mut self, right: Node) {
        match (self, right) {
            (Node::Leaf(entries), Node::Leaf(more)) => entries.extend(more),
            (Node::Inner(inner), Node::Inner(more)) => {
                inner.len += more.len;
                inner.kids.extend(more.kids);
            }
            // Siblings are always at the same depth, so of the same kind.
            _ => debug_assert!(false, "dir: joined nodes of different kinds"),
        }
    }
}

impl Inner {
    /// The child whose names range holds `name`.
    fn kid_for(&self, name: &[u8]) -> usize {
        // The last child whose first entry is not after `name`.
        self.kids
            .partition_point(|k| {
                k.first()
                    .is_some_and(|e| e.cmp_name(name) != Ordering::Greater)
            })
            .saturating_sub(1)
    }

    /// Joins child `i` with a neighbour when it has too few slots, then
    /// splits the pair again if it is too wide (so a join with a full
    /// neighbour is a move of some slots).
    fn mend(&mut self, i: usize) {
        if self.kids[i].width() >= MIN || self.kids.len() < 2 {
            return;
        }
        let left = if i > 0 { i - 1 } else { i };
        let right = Arc::unwrap_or_clone(self.kids.remove(left + 1));
        let merged = Arc::make_mut(&mut self.kids[left]);
        merged.absorb(right);
        if merged.width() > MAX {
            let split = merged.split(false);
            self.kids.insert(left + 1, Arc::new(split));
        }
    }

    /// Takes the first child's first entry as this node's.
    fn refresh_first(&mut self) {
        if let Some(first) = self.kids.first().and_then(|k| k.first()) {
            self.first = first.clone();
        }
    }
}

/// A directory's entries: a persistent ordered map from name to
/// [`Entry`]. Cloning is O(1); a change copies the O(log n) nodes on its
/// way that another clone still shares.
#[derive(Clone, Default)]
pub struct Dir {
    root: Option<Arc<Node>>,
}

impl Dir {
    /// The empty directory.
    pub fn new() -> Dir {
        Dir::default()
    }

    /// Entries in the directory.
    pub fn len(&self) -> usize {
        self.root.as_ref().map_or(0, |r| r.len())
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        let name = name.as_bytes();
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Inner(inner) => node = &inner.kids[inner.kid_for(name)],
                Node::Leaf(entries) => {
                    let i = entries.binary_search_by(|e| e.cmp_name(name)).ok()?;
                    return entries.get(i);
                }
            }
        }
    }

    /// Runs `f` on the entry named `name`, to change it or put a new
    /// entry of that name in its place; `None` (`f` not run) if there is
    /// none. One search: the nodes on the way are copied where another
    /// clone shares them even when `name` is missing (the caller then
    /// inserts it, which copies the same nodes), and each node's first
    /// entry is taken again afterwards, so no node keeps the entry `f`
    /// replaced alive.
    pub(crate) fn update<R>(&mut self, name: &str, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        update_in(self.root.as_mut()?, name.as_bytes(), f)
    }

    /// The `n`-th entry in name order.
    pub fn nth(&self, mut n: usize) -> Option<&Entry> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Leaf(entries) => return entries.get(n),
                Node::Inner(inner) => {
                    let mut next = None;
                    for kid in &inner.kids {
                        if n < kid.len() {
                            next = Some(kid);
                            break;
                        }
                        n -= kid.len();
                    }
                    node = next?;
                }
            }
        }
    }

    /// This directory with `entry` in it, in place of any entry of the
    /// same name, which is returned. Nodes on the way are copied only if
    /// another clone shares them.
    pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
        let unchecked = self.insert_checked(entry, |_| Ok::<(), std::convert::Infallible>(()));
        match unchecked {
            Ok(old) => old,
            Err(never) => match never {},
        }
    }

    /// Like [`Dir::insert`], if `check` allows it, given the entry of the
    /// same name (if any): one search for both. On `check`'s error the
    /// directory holds what it held (the nodes on the way may have been
    /// copied, unchanged).
    pub(crate) fn insert_checked<E>(
        &mut self,
        entry: Entry,
        check: impl FnOnce(Option<&Entry>) -> Result<(), E>,
    ) -> Result<Option<Entry>, E> {
        let Some(root) = self.root.as_mut() else {
            check(None)?;
            let mut leaf = Slots::new();
            leaf.push(entry);
            self.root = Some(Arc::new(Node::Leaf(leaf)));
            return Ok(None);
        };
        let (old, split) = insert_in(root, entry, &mut Some(check))?;
        if let Some(right) = split {
            // The root split: a new root above the two halves.
            let left = root.clone();
            let Some(first) = left.first().cloned() else {
                return Ok(old); // unreachable: split halves are not empty
            };
            let len = left.len() + right.len();
            let mut kids = Slots::new();
            kids.extend([left, Arc::new(right)]);
            *root = Arc::new(Node::Inner(Inner { len, first, kids }));
        }
        Ok(old)
    }

    /// This directory without the entry named `name`, which is returned
    /// (nothing changes, and nothing is copied, if there is none).
    pub fn remove(&mut self, name: &str) -> Option<Entry> {
        self.get(name)?;
        let root = self.root.as_mut()?;
        let old = remove_in(root, name.as_bytes());
        // A root left with one child gives way to it; an empty one goes.
        loop {
            let next = match self.root.as_deref() {
                Some(Node::Inner(inner)) if inner.kids.len() == 1 => Some(inner.kids[0].clone()),
                Some(node) if node.len() == 0 => None,
                _ => break,
            };
            self.root = next;
        }
        old
    }

    /// Every entry in name order.
    pub fn iter(&self) -> Iter<'_> {
        let mut it = Iter { stack: Vec::new() };
        if let Some(root) = self.root.as_deref() {
            it.stack.push((root, 0));
        }
        it
    }

    /// The entries from `name` on (`inclusive`) or after it, in name order.
    pub fn iter_from(&self, name: &str, inclusive: bool) -> Iter<'_> {
        let name = name.as_bytes();
        let mut it = Iter { stack: Vec::new() };
        let Some(mut node) = self.root.as_deref() else {
            return it;
        };
        loop {
            match node {
                Node::Inner(inner) => {
                    let i = inner.kid_for(name);
                    it.stack.push((node, i + 1));
                    node = &inner.kids[i];
                }
                Node::Leaf(entries) => {
                    let at = entries.partition_point(|e| match e.cmp_name(name) {
                        Ordering::Less => true,
                        Ordering::Equal => !inclusive,
                        Ordering::Greater => false,
                    });
                    it.stack.push((node, at));
                    return it;
                }
            }
        }
    }
}

/// What [`insert_in`] did: the entry it replaced, and the node split off
/// to the right if the node grew too wide.
type Inserted = (Option<Entry>, Option<Node>);

/// Puts `entry` under `node`, if `check` (taken when the leaf is reached)
/// allows it given the entry of the same name.
fn insert_in<E>(
    node: &mut Arc<Node>,
    entry: Entry,
    check: &mut Option<impl FnOnce(Option<&Entry>) -> Result<(), E>>,
) -> Result<Inserted, E> {
    let node = Arc::make_mut(node);
    // Whether the new slot is this node's last.
    let mut at_end = false;
    let old = match node {
        Node::Leaf(entries) => {
            let found = entries.binary_search_by(|e| e.cmp_name(entry.name_bytes()));
            if let Some(check) = check.take() {
                check(found.ok().map(|i| &entries[i]))?;
            }
            match found {
                Ok(i) => return Ok((Some(std::mem::replace(&mut entries[i], entry)), None)),
                Err(i) => {
                    at_end = i == entries.len();
                    entries.insert(i, entry);
                }
            }
            None
        }
        Node::Inner(inner) => {
            let i = inner.kid_for(entry.name_bytes());
            let (old, split) = insert_in(&mut inner.kids[i], entry, check)?;
            if old.is_none() {
                inner.len += 1;
            }
            if let Some(right) = split {
                at_end = i + 1 == inner.kids.len();
                inner.kids.insert(i + 1, Arc::new(right));
            }
            // Only the first child's first entry is this node's: a change
            // anywhere else leaves it (and its refcount) alone.
            if i == 0 {
                inner.refresh_first();
            }
            old
        }
    };
    let split = (node.width() > MAX).then(|| node.split(at_end));
    Ok((old, split))
}

/// [`Dir::update`] under `node`.
fn update_in<R>(node: &mut Arc<Node>, name: &[u8], f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
    match Arc::make_mut(node) {
        Node::Leaf(entries) => {
            let i = entries.binary_search_by(|e| e.cmp_name(name)).ok()?;
            Some(f(&mut entries[i]))
        }
        Node::Inner(inner) => {
            let i = inner.kid_for(name);
            let done = update_in(&mut inner.kids[i], name, f)?;
            if i == 0 {
                inner.refresh_first();
            }
            Some(done)
        }
    }
}

/// Removes the entry named `name` (which exists) from under `node`.
fn remove_in(node: &mut Arc<Node>, name: &[u8]) -> Option<Entry> {
    match Arc::make_mut(node) {
        Node::Leaf(entries) => {
            let i = entries.binary_search_by(|e| e.cmp_name(name)).ok()?;
            Some(entries.remove(i))
        }
        Node::Inner(inner) => {
            let i = inner.kid_for(name);
            let old = remove_in(&mut inner.kids[i], name)?;
            inner.len -= 1;
            inner.mend(i);
            // `mend` joins child i with the one before it, or (i = 0)
            // the one after: the first child's first entry stays unless
            // the removal was in it.
            if i == 0 {
                inner.refresh_first();
            }
            Some(old)
        }
    }
}

/// A directory's entries in name order, from [`Dir::iter`] or
/// [`Dir::iter_from`].
pub struct Iter<'a> {
    /// The nodes on the way down, each with its next slot.
    stack: Vec<(&'a Node, usize)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        loop {
            let (node, at) = self.stack.last_mut()?;
            let i = *at;
            *at += 1;
            match node {
                Node::Leaf(entries) => match entries.get(i) {
                    Some(e) => return Some(e),
                    None => {
                        self.stack.pop();
                    }
                },
                Node::Inner(inner) => match inner.kids.get(i) {
                    Some(kid) => self.stack.push((kid, 0)),
                    None => {
                        self.stack.pop();
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Checks the B+tree's invariants under `node`: sorted, counted,
    /// `first` right, widths within bounds (the root may be narrower),
    /// all leaves at one depth (returned).
    fn check(node: &Node, root: bool) -> usize {
        let w = node.width();
        assert!(w <= MAX, "too wide: {w}");
        assert!(root || w >= MIN, "too narrow: {w}");
        match node {
            Node::Leaf(entries) => {
                assert!(entries.windows(2).all(|p| p[0].name() < p[1].name()));
                0
            }
            Node::Inner(inner) => {
                assert!(inner.kids.len() >= 2 || !root, "root with one child");
                assert_eq!(inner.len, inner.kids.iter().map(|k| k.len()).sum::<usize>());
                let depths: Vec<usize> = inner.kids.iter().map(|k| check(k, false)).collect();
                assert!(depths.windows(2).all(|p| p[0] == p[1]), "uneven");
                let first = inner.kids[0].first().map(Entry::name);
                assert_eq!(Some(inner.first.name()), first);
                // The very entry, not an older one of that name (which
                // would keep a replaced body, or directory, alive).
                let same = inner.kids[0]
                    .first()
                    .is_some_and(|e| e.0.as_ptr() == inner.first.0.as_ptr());
                assert!(same, "first is a stale entry");
                let lasts_before_firsts = inner.kids.windows(2).all(|p| {
                    let last = Dir {
                        root: Some(p[0].clone()),
                    }
                    .iter()
                    .last()
                    .cloned();
                    last.map(|l| l.name().to_string()) < p[1].first().map(|f| f.name().to_string())
                });
                assert!(lasts_before_firsts, "children overlap");
                depths[0] + 1
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u16, u8),
        Del(u16),
        /// A new entry put in place of an existing one through
        /// [`Dir::update`], as a write into a subdirectory does.
        Swap(u16, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u16..600, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u16..600).prop_map(Op::Del),
            2 => (0u16..600, any::<u8>()).prop_map(|(k, v)| Op::Swap(k, v)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every version behaves like an ordered map, and an older
        /// version is unchanged by changes to a newer one.
        #[test]
        fn dir_is_a_persistent_ordered_map(ops in prop::collection::vec(op(), 1..1500)) {
            let mut dir = Dir::new();
            let mut model: BTreeMap<String, u8> = BTreeMap::new();
            let mut kept: Vec<(Dir, BTreeMap<String, u8>)> = Vec::new();
            for (n, op) in ops.iter().enumerate() {
                match op {
                    Op::Put(k, v) => {
                        let name = format!("k{k}");
                        let old = dir.insert(Entry::file(&name, &[*v], Rev::from(*v)));
                        prop_assert_eq!(old.map(|e| e.body()[0]), model.insert(name, *v));
                    }
                    Op::Del(k) => {
                        let name = format!("k{k}");
                        let old = dir.remove(&name);
                        prop_assert_eq!(old.map(|e| e.body()[0]), model.remove(&name));
                    }
                    Op::Swap(k, v) => {
                        let name = format!("k{k}");
                        let new = Entry::file(&name, &[*v], Rev::from(*v));
                        let old = dir.update(&name, |e| std::mem::replace(e, new).body()[0]);
                        let want = model.get_mut(&name).map(|m| std::mem::replace(m, *v));
                        prop_assert_eq!(old, want);
                    }
                }
                if n % 97 == 0 {
                    kept.push((dir.clone(), model.clone()));
                }
            }
            kept.push((dir, model));
            for (dir, model) in &kept {
                if let Some(root) = dir.root.as_deref() {
                    check(root, true);
                }
                prop_assert_eq!(dir.len(), model.len());
                let got: Vec<(String, u8)> =
                    dir.iter().map(|e| (e.name().to_string(), e.body()[0])).collect();
                let want: Vec<(String, u8)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
                prop_assert_eq!(&got, &want);
                for (i, (k, v)) in want.iter().enumerate() {
                    prop_assert_eq!(dir.get(k).map(|e| e.body()[0]), Some(*v));
                    prop_assert_eq!(dir.nth(i).map(|e| e.name()), Some(k.as_str()));
                }
                prop_assert!(dir.nth(want.len()).is_none());
                for probe in ["k", "k1", "k10", "k300", "k599", "k6", "l", ""] {
                    for inclusive in [true, false] {
                        let got: Vec<&str> =
                            dir.iter_from(probe, inclusive).map(|e| e.name()).collect();
                        let want: Vec<&str> = model
                            .keys()
                            .filter(|k| if inclusive { k.as_str() >= probe } else { k.as_str() > probe })
                            .map(String::as_str)
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
        }
    }

    /// Filled, then emptied in a scattered order: every node stays within
    /// its bounds on the way down, a version kept when full is unchanged,
    /// and the emptied directory holds no node.
    #[test]
    fn a_dir_shrinks_back_to_nothing() {
        let n = 3000;
        let mut dir = Dir::new();
        for k in 0..n {
            dir.insert(Entry::file(&format!("{k:05}"), b"x", k));
        }
        let full = dir.clone();
        let mut left: std::collections::BTreeSet<i64> = (0..n).collect();
        for (i, k) in (0..n).map(|i| (i * 7919) % n).enumerate() {
            let name = format!("{k:05}");
            assert_eq!(dir.remove(&name).map(|e| e.rev()), Some(k));
            assert!(dir.remove(&name).is_none(), "removed twice");
            left.remove(&k);
            if i % 50 == 0 {
                if let Some(root) = dir.root.as_deref() {
                    check(root, true);
                }
                let revs: Vec<i64> = dir.iter().map(Entry::rev).collect();
                assert_eq!(revs, left.iter().copied().collect::<Vec<_>>());
            }
        }
        assert!(dir.root.is_none() && dir.is_empty());
        assert_eq!(full.len(), n as usize);
        let revs: Vec<i64> = full.iter().map(Entry::rev).collect();
        assert_eq!(revs, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn an_entry_keeps_name_rev_and_body_in_one_place() {
        let e = Entry::file("name", b"body", 7);
        assert_eq!((e.name(), e.rev(), e.body()), ("name", 7, &b"body"[..]));
        assert_eq!(e.body_bytes(), Bytes::from_static(b"body"));
        assert!(e.as_dir().is_none());
        let mut sub = Dir::new();
        sub.insert(e.clone());
        let d = Entry::dir("d", sub);
        assert_eq!(d.as_dir().map(Dir::len), Some(1));
        assert_eq!((d.name(), d.body()), ("d", &b""[..]));
        assert_eq!(Entry::file("", b"", 1).body_bytes(), Bytes::new());
    }

    /// The figures docs/benchmarks.md#memory counts on.
    #[test]
    fn a_node_and_an_entry_head_stay_small() {
        assert_eq!(std::mem::size_of::<Node>(), 144);
        assert_eq!(std::mem::size_of::<Head>(), 24);
    }
}
