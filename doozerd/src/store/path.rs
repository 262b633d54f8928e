//! Paths and globs. CONTRACT: signatures below are what the server uses.
//!
//! Glob matching is a bit-parallel NFA (one bit per glob token, advanced one
//! path byte at a time), so a match costs O(path length × glob words), never
//! exponential however many `*` a glob holds. The same state lets a walk
//! prune a whole directory as soon as no continuation of its path can match.

use super::StoreError;

/// Longest path or glob accepted, in bytes. Not in the Go original; it bounds
/// the recursion depth of tree updates and the cost of matching a glob
/// against a path (both at most this long), so one client cannot stall the
/// node with a huge path or glob.
pub const MAX_PATH_LEN: usize = 4096;

/// Whether `b` may appear in a path name.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// Checks a path: `/` or `/name/name...`, names of `A-Z a-z 0-9 . -`.
pub fn validate_path(path: &str) -> Result<(), StoreError> {
    if path == "/" {
        return Ok(());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(StoreError::BadPath);
    };
    if path.len() > MAX_PATH_LEN {
        return Err(StoreError::BadPath);
    }
    // One pass over the bytes (this runs for every write, more than once):
    // an empty name (`//`, a trailing `/`, nothing after the root) or a
    // byte outside the name alphabet is refused.
    let mut name_empty = true;
    for &b in rest.as_bytes() {
        if b == b'/' {
            if name_empty {
                return Err(StoreError::BadPath);
            }
            name_empty = true;
        } else if is_name_byte(b) {
            name_empty = false;
        } else {
            return Err(StoreError::BadPath);
        }
    }
    if name_empty {
        return Err(StoreError::BadPath);
    }
    Ok(())
}

/// The names of a valid path, root first (`/` has none).
pub(crate) fn names(path: &str) -> impl Iterator<Item = &str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').filter(|n| !n.is_empty())
}

/// One element of a compiled glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A byte matching itself.
    Lit(u8),
    /// `?`: one byte other than `/`.
    One,
    /// `*`: a run of bytes other than `/`.
    Star,
    /// `**`: any run of bytes.
    AnyRun,
}

/// NFA state of a glob: bit `i` set means "tokens `..i` matched so far";
/// bit `len(tokens)` is acceptance.
pub(crate) type GlobState = Vec<u64>;

/// A compiled glob: `?` one char within a name, `*` a run within a name,
/// `**` a run across names, anything else (path characters) itself.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    tokens: usize,
    /// `u64` words per state.
    words: usize,
    /// `class[b]` indexes `masks` for a literal byte `b` (0: no token).
    class: [u8; 128],
    /// Per-class advance masks, then `one`, `star` (stay unless `/`),
    /// `any_run` (always stay), `skippable` (star tokens, which may match
    /// nothing); each `words` long.
    masks: Vec<u64>,
    classes: usize,
    /// Whether the glob has no wildcard (matching is then string equality).
    literal: bool,
    /// Length of the text before the first wildcard.
    prefix_len: usize,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl Glob {
    /// Compiles a glob; other characters or a missing leading `/` are
    /// `BadPath`.
    pub fn parse(glob: &str) -> Result<Glob, StoreError> {
        if !glob.starts_with('/') || glob.len() > MAX_PATH_LEN {
            return Err(StoreError::BadPath);
        }
        let bytes = glob.as_bytes();
        let mut toks = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let tok = match b {
                b'?' => Token::One,
                b'*' => {
                    // A run of two or more stars is `**`; keeping runs as one
                    // token also guarantees no two star tokens are adjacent,
                    // which the one-step epsilon closure relies on.
                    let run = bytes[i..].iter().take_while(|&&c| c == b'*').count();
                    i += run - 1;
                    if run >= 2 {
                        Token::AnyRun
                    } else {
                        Token::Star
                    }
                }
                b'/' => Token::Lit(b),
                _ if is_name_byte(b) => Token::Lit(b),
                _ => return Err(StoreError::BadPath),
            };
            toks.push(tok);
            i += 1;
        }

        let n = toks.len();
        let words = (n + 1).div_ceil(64);
        let mut class = [0u8; 128];
        let mut classes = 1; // class 0: bytes no literal token uses
        for t in &toks {
            if let Token::Lit(b) = *t {
                if class[b as usize] == 0 {
                    class[b as usize] = classes as u8;
                    classes += 1;
                }
            }
        }
        let mut masks = vec![0u64; (classes + 4) * words];
        for (i, t) in toks.iter().enumerate() {
            let block = match *t {
                Token::Lit(b) => class[b as usize] as usize,
                Token::One => classes,
                Token::Star => classes + 1,
                Token::AnyRun => classes + 2,
            };
            masks[block * words + i / 64] |= 1 << (i % 64);
            if matches!(t, Token::Star | Token::AnyRun) {
                masks[(classes + 3) * words + i / 64] |= 1 << (i % 64);
            }
        }
        let prefix_len = glob.find(['?', '*']).unwrap_or(glob.len());
        Ok(Glob {
            text: glob.to_owned(),
            tokens: n,
            words,
            class,
            masks,
            classes,
            literal: prefix_len == glob.len(),
            prefix_len,
        })
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        if self.literal {
            return path == self.text;
        }
        if !path.starts_with(&self.text[..self.prefix_len]) {
            return false;
        }
        let mut s = self.start();
        self.advance(&mut s, path.as_bytes()) && self.accepts(&s)
    }

    /// The glob text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The directory every match lies under: the literal prefix cut at its
    /// last `/` (`/` itself when that is the first one). Used to prune walks.
    pub fn base_dir(&self) -> &str {
        let prefix = &self.text[..self.prefix_len];
        match prefix.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &prefix[..i],
        }
    }

    /// The state before any byte is read.
    pub(crate) fn start(&self) -> GlobState {
        let mut s = vec![0u64; self.words];
        s[0] = 1;
        self.close(&mut s);
        s
    }

    /// Adds the states reachable by a star matching nothing. One step is
    /// enough because star tokens are never adjacent.
    fn close(&self, s: &mut [u64]) {
        let skip = self.block(self.classes + 3);
        let mut carry = 0;
        for (w, m) in s.iter_mut().zip(skip) {
            let c = *w & m;
            *w |= (c << 1) | carry;
            carry = c >> 63;
        }
    }

    fn block(&self, i: usize) -> &[u64] {
        &self.masks[i * self.words..(i + 1) * self.words]
    }

    /// Feeds `bytes` to the NFA; returns whether any state is still alive
    /// (false: no extension of what was read can match).
    pub(crate) fn advance(&self, s: &mut [u64], bytes: &[u8]) -> bool {
        let one = self.block(self.classes);
        let star = self.block(self.classes + 1);
        let any_run = self.block(self.classes + 2);
        for &b in bytes {
            let lit = self.block(self.class.get(b as usize).map_or(0, |&c| c as usize));
            let slash = b == b'/';
            let mut carry = 0;
            let mut alive = 0;
            for (k, w) in s.iter_mut().enumerate() {
                let (mut adv, mut stay) = (lit[k], any_run[k]);
                if !slash {
                    adv |= one[k];
                    stay |= star[k];
                }
                let a = *w & adv;
                let next = (a << 1) | carry | (*w & stay);
                carry = a >> 63;
                *w = next;
                alive |= next;
            }
            if alive == 0 {
                return false;
            }
            self.close(s);
        }
        s.iter().any(|&w| w != 0)
    }

    /// Whether the state has read a whole match.
    pub(crate) fn accepts(&self, s: &[u64]) -> bool {
        s[self.tokens / 64] & (1 << (self.tokens % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_paths() {
        for p in ["/", "/a", "/a/b/c", "/A-z.09", "/.", "/..", "/a/../b", "/-"] {
            assert_eq!(validate_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn bad_paths() {
        for p in [
            "", "a", "a/b", "//", "/a/", "/a//b", "/a b", "/a_b", "/a=b", "/é", "/a*", "/a?",
            "/a:b", "//a",
        ] {
            assert_eq!(validate_path(p), Err(StoreError::BadPath), "{p:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(validate_path(&long), Err(StoreError::BadPath));
        assert_eq!(validate_path(&long[..MAX_PATH_LEN]), Ok(()));
    }

    #[test]
    fn names_split() {
        assert_eq!(names("/").count(), 0);
        assert_eq!(names("/a/bc").collect::<Vec<_>>(), ["a", "bc"]);
    }

    #[test]
    fn bad_globs() {
        for g in ["", "a", "*", "/a b", "/a_", "/[a]", "/a\\b", "/é", "/a=b"] {
            assert_eq!(Glob::parse(g).err(), Some(StoreError::BadPath), "{g:?}");
        }
    }

    fn m(g: &str, p: &str) -> bool {
        Glob::parse(g).expect("valid glob").matches(p)
    }

    #[test]
    fn literal_globs() {
        assert!(m("/", "/"));
        assert!(m("/a/b", "/a/b"));
        assert!(!m("/a/b", "/a/bc"));
        assert!(!m("/a/b", "/a"));
        assert!(!m("/a", "/b"));
    }

    #[test]
    fn double_star() {
        assert!(m("/**", "/"));
        assert!(m("/**", "/a"));
        assert!(m("/**", "/a/b/c"));
        assert!(m("/a/**", "/a/b/c"));
        assert!(m("/a/**", "/a/b"));
        assert!(!m("/a/**", "/a"));
        assert!(!m("/a/**", "/ab/c"));
        assert!(m("/a/**/c", "/a/b/x/c"));
        assert!(m("/a/**c", "/a/c"));
        assert!(m("/a***", "/a/b"), "a run of 3 stars is **");
        assert!(m("/**/b", "/a/b"));
        assert!(!m("/**/b", "/a/bc"));
    }

    #[test]
    fn single_star() {
        assert!(m("/a/*", "/a/b"));
        assert!(m("/a/*", "/a/"));
        assert!(!m("/a/*", "/a/b/c"));
        assert!(!m("/a/*", "/a"));
        assert!(m("/*", "/"));
        assert!(!m("/*", "/a/b"));
        assert!(m("/a*b", "/ab"));
        assert!(m("/a*b", "/axxb"));
        assert!(!m("/a*b", "/ax/b"));
        assert!(m("/*/*", "/x/y"));
        assert!(!m("/*", "/x/y"));
    }

    #[test]
    fn question_mark() {
        assert!(m("/a?", "/ab"));
        assert!(!m("/a?", "/a"));
        assert!(!m("/a?", "/abc"));
        assert!(!m("/a?b", "/a/b"));
        assert!(m("/??", "/.-"));
    }

    #[test]
    fn many_stars_are_not_exponential() {
        let g = format!("/{}b", "*a".repeat(40));
        let p = format!("/{}", "a".repeat(3000));
        assert!(!m(&g, &p));
        let g = format!("/{}b", "**a".repeat(40));
        assert!(!m(&g, &p));
        assert!(m(&g, &format!("{p}b")));
    }

    #[test]
    fn long_globs_span_words() {
        // More than 64 tokens: state needs several words; carries must move
        // across word boundaries.
        let name = "x".repeat(100);
        let g = format!("/{name}/*/{name}?");
        assert!(m(&g, &format!("/{name}/abc/{name}z")));
        assert!(!m(&g, &format!("/{name}/a/b/{name}z")));
        let g = format!("/{}**", "y".repeat(63));
        assert!(m(&g, &format!("/{}/q/r", "y".repeat(63))));
    }

    #[test]
    fn base_dir() {
        let b = |g: &str| Glob::parse(g).expect("valid").base_dir().to_owned();
        assert_eq!(b("/ctl/**"), "/ctl");
        assert_eq!(b("/ctl/node/x*"), "/ctl/node");
        assert_eq!(b("/**"), "/");
        assert_eq!(b("/a*"), "/");
        assert_eq!(b("/a/b"), "/a");
        assert_eq!(b("/"), "/");
    }

    /// Obviously-correct exponential matcher for comparison.
    fn reference(g: &[u8], p: &[u8]) -> bool {
        match g {
            [] => p.is_empty(),
            [b'*', b'*', rest @ ..] => {
                let rest = {
                    let mut r = rest;
                    while let [b'*', tail @ ..] = r {
                        r = tail;
                    }
                    r
                };
                (0..=p.len()).any(|i| reference(rest, &p[i..]))
            }
            [b'*', rest @ ..] => {
                let run = p.iter().take_while(|&&c| c != b'/').count();
                (0..=run).any(|i| reference(rest, &p[i..]))
            }
            [b'?', rest @ ..] => matches!(p, [c, tail @ ..] if *c != b'/' && reference(rest, tail)),
            [c, rest @ ..] => matches!(p, [d, tail @ ..] if d == c && reference(rest, tail)),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(
            g in "/[ab/*?]{0,8}",
            p in "/[ab/]{0,8}",
        ) {
            let glob = Glob::parse(&g).expect("valid");
            prop_assert_eq!(glob.matches(&p), reference(g.as_bytes(), p.as_bytes()), "{} {}", g, p);
        }

        #[test]
        fn parse_never_panics(g in "\\PC{0,20}") {
            let _ = Glob::parse(&g).map(|g| g.matches("/a/b"));
        }
    }
}
