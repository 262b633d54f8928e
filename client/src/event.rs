//! Results of WAIT, WALK and STAT.

use std::io::{self, Write};

use bytes::Bytes;
use doozer_proto::{flags, rev, Response};

/// A change (from WAIT) or a file (from WALK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The file's path (`/` for a NOP).
    pub path: String,
    /// The revision of the change (WAIT) or of the file (WALK).
    pub rev: i64,
    /// The file body after the change (empty for a delete or a NOP).
    pub body: Bytes,
    /// The wire flags: [`flags::SET`], [`flags::DEL`] or 0.
    pub flags: i32,
}

impl Event {
    /// Builds an event from a WAIT or WALK response.
    pub fn from_response(r: Response) -> Event {
        Event {
            path: r.path.unwrap_or_default(),
            rev: r.rev.unwrap_or_default(),
            body: r.value.unwrap_or_default(),
            flags: r.flags.unwrap_or_default(),
        }
    }

    /// True if the change set the file.
    pub fn is_set(&self) -> bool {
        self.flags & flags::SET != 0
    }

    /// True if the change deleted the file.
    pub fn is_del(&self) -> bool {
        self.flags & flags::DEL != 0
    }

    /// `set`, `del` or empty (a NOP), as the `doozer` command prints it.
    pub fn kind(&self) -> &'static str {
        if self.is_set() {
            "set"
        } else if self.is_del() {
            "del"
        } else {
            ""
        }
    }

    /// Writes the record the `doozer wait`/`watch` commands print:
    /// `<path> <rev> <set|del|> <len>` LF `<body>` LF. The header is what
    /// Go's `fmt.Println(path, rev, sd, len)` gives, so a NOP has two spaces
    /// in the middle.
    ///
    /// ```
    /// let ev = doozer::Event { path: "/a".into(), rev: 3, body: "hi".into(), flags: doozer::flags::SET };
    /// let mut out = Vec::new();
    /// ev.write_record(&mut out).unwrap();
    /// assert_eq!(out, b"/a 3 set 2\nhi\n");
    /// ```
    pub fn write_record<W: Write>(&self, w: &mut W) -> io::Result<()> {
        writeln!(
            w,
            "{} {} {} {}",
            self.path,
            self.rev,
            self.kind(),
            self.body.len()
        )?;
        w.write_all(&self.body)?;
        w.write_all(b"\n")
    }
}

/// The answer to STAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Body length of a file, or number of entries of a directory.
    pub len: i32,
    /// Revision of a file, [`rev::DIR`] (-2) for a directory,
    /// [`rev::MISSING`] (0) if nothing is there.
    pub rev: i64,
}

impl Stat {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.rev == rev::DIR
    }

    /// True if a file or directory exists at the path.
    pub fn exists(&self) -> bool {
        self.rev != rev::MISSING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ev: &Event) -> String {
        let mut out = Vec::new();
        ev.write_record(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn records_match_go_println() {
        let set = Event {
            path: "/x/y".into(),
            rev: 12,
            body: Bytes::from_static(b"hello"),
            flags: flags::SET,
        };
        assert_eq!(record(&set), "/x/y 12 set 5\nhello\n");
        let del = Event {
            path: "/x".into(),
            rev: 13,
            body: Bytes::new(),
            flags: flags::DEL,
        };
        assert_eq!(record(&del), "/x 13 del 0\n\n");
        let nop = Event {
            path: "/".into(),
            rev: 7,
            body: Bytes::new(),
            flags: 0,
        };
        assert_eq!(record(&nop), "/ 7  0\n\n");
    }

    #[test]
    fn event_from_response_defaults_missing_fields() {
        let ev = Event::from_response(Response {
            path: Some("/a".into()),
            rev: Some(4),
            flags: Some(flags::SET),
            ..Default::default()
        });
        assert_eq!(ev.path, "/a");
        assert!(ev.body.is_empty());
        assert!(ev.is_set() && !ev.is_del());
    }

    #[test]
    fn stat_kinds() {
        assert!(Stat { len: 3, rev: -2 }.is_dir());
        assert!(!Stat { len: 0, rev: 0 }.exists());
        assert!(Stat { len: 0, rev: 5 }.exists());
    }
}
