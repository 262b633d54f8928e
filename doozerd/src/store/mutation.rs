//! Mutations: what consensus agrees on. CONTRACT.

use bytes::Bytes;

use super::Rev;

/// A change to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Write `body` to `path` if `rev` ≥ the file's rev (or `rev` = -1).
    Set {
        /// Target path.
        path: String,
        /// Condition.
        rev: Rev,
        /// New body.
        body: Bytes,
    },
    /// Delete `path` if `rev` ≥ the file's rev (or `rev` = -1).
    Del {
        /// Target path.
        path: String,
        /// Condition.
        rev: Rev,
    },
    /// Change nothing.
    Nop,
}

/// The encoding of [`Mutation::Nop`].
const NOP: &[u8] = b"nop:";

/// A byte string that is not an encoded mutation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed mutation: {0}")]
pub struct MutationError(pub String);

impl Mutation {
    /// Encodes as the Go original did: `REV:PATH=BODY`, `REV:PATH`, `nop:`.
    pub fn encode(&self) -> Bytes {
        match self {
            Mutation::Set { path, rev, body } => {
                let rev = rev.to_string();
                let mut out = Vec::with_capacity(rev.len() + path.len() + body.len() + 2);
                out.extend_from_slice(rev.as_bytes());
                out.push(b':');
                out.extend_from_slice(path.as_bytes());
                out.push(b'=');
                out.extend_from_slice(body);
                Bytes::from(out)
            }
            Mutation::Del { path, rev } => Bytes::from(format!("{rev}:{path}")),
            Mutation::Nop => Bytes::from_static(NOP),
        }
    }

    /// The mutation that, applied at `event.rev`, reproduces `event` on a
    /// copy of the store it came from (a slave following a CAL): a set or
    /// delete clobbers, anything else is a NOP. A failed mutation's event
    /// is the set of `/ctl/err`, so replaying it writes the same text.
    pub fn replay(event: &super::Event) -> Mutation {
        use doozer_proto::flags;
        match event.flags {
            flags::SET => Mutation::Set {
                path: event.path.to_string(),
                rev: doozer_proto::rev::CLOBBER,
                body: event.body.clone(),
            },
            flags::DEL => Mutation::Del {
                path: event.path.to_string(),
                rev: doozer_proto::rev::CLOBBER,
            },
            _ => Mutation::Nop,
        }
    }

    /// A NOP whose encoding no other proposal shares: `nop:` and `tag`.
    ///
    /// Consensus tells a node's own proposal from other values by its
    /// bytes, and fills seqns it gives up on with the plain NOP; a client's
    /// NOP encoded plainly would be taken for an old fill, and answered
    /// with a rev decided before it was sent.
    pub fn tagged_nop(tag: &str) -> Bytes {
        let mut out = Vec::with_capacity(NOP.len() + tag.len());
        out.extend_from_slice(NOP);
        out.extend_from_slice(tag.as_bytes());
        Bytes::from(out)
    }

    /// Decodes [`Mutation::encode`]'s output (and [`Mutation::tagged_nop`]'s).
    ///
    /// The path is not validated here: a bad path is a mutation that fails
    /// when applied (`BadPath` recorded at `/ctl/err`), as in the Go original,
    /// so every node reaches the same verdict. The body is copied out of
    /// `bytes`, so the store never pins a larger buffer.
    pub fn decode(bytes: &[u8]) -> Result<Mutation, MutationError> {
        if bytes.starts_with(NOP) {
            return Ok(Mutation::Nop);
        }
        let colon = bytes
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| MutationError("no ':'".into()))?;
        let rev = std::str::from_utf8(&bytes[..colon])
            .ok()
            .and_then(|r| r.parse::<Rev>().ok())
            .ok_or_else(|| MutationError("bad rev".into()))?;
        let rest = &bytes[colon + 1..];
        // Paths cannot contain `=`, so the first one ends the path and the
        // body may contain anything.
        let (path, body) = match rest.iter().position(|&b| b == b'=') {
            Some(eq) => (&rest[..eq], Some(&rest[eq + 1..])),
            None => (rest, None),
        };
        let path = std::str::from_utf8(path)
            .map_err(|_| MutationError("path is not UTF-8".into()))?
            .to_owned();
        Ok(match body {
            Some(body) => Mutation::Set {
                path,
                rev,
                body: Bytes::copy_from_slice(body),
            },
            None => Mutation::Del { path, rev },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodings_match_go() {
        let set = Mutation::Set {
            path: "/a/b".into(),
            rev: 12,
            body: Bytes::from_static(b"x=y:z"),
        };
        assert_eq!(&set.encode()[..], b"12:/a/b=x=y:z");
        let del = Mutation::Del {
            path: "/a".into(),
            rev: -1,
        };
        assert_eq!(&del.encode()[..], b"-1:/a");
        assert_eq!(&Mutation::Nop.encode()[..], b"nop:");
    }

    #[test]
    fn a_tagged_nop_is_a_nop_with_other_bytes() {
        let t = Mutation::tagged_nop("N1.7");
        assert_eq!(&t[..], b"nop:N1.7");
        assert_ne!(t, Mutation::Nop.encode());
        assert_eq!(Mutation::decode(&t), Ok(Mutation::Nop));
    }

    #[test]
    fn decodes() {
        assert_eq!(Mutation::decode(b"nop:"), Ok(Mutation::Nop));
        assert_eq!(
            Mutation::decode(b"0:/a="),
            Ok(Mutation::Set {
                path: "/a".into(),
                rev: 0,
                body: Bytes::new()
            })
        );
        assert_eq!(
            Mutation::decode(b"5:/a"),
            Ok(Mutation::Del {
                path: "/a".into(),
                rev: 5
            })
        );
        // A bad path still decodes; applying it fails with BadPath.
        assert_eq!(
            Mutation::decode(b"5:a b"),
            Ok(Mutation::Del {
                path: "a b".into(),
                rev: 5
            })
        );
    }

    #[test]
    fn rejects_garbage() {
        for b in [
            &b""[..],
            b"nop",
            b"no:x",
            b"x:/a",
            b":/a",
            b"/a",
            b"99999999999999999999:/a",
            b"1:\xff=",
        ] {
            assert!(Mutation::decode(b).is_err(), "{b:?}");
        }
    }

    fn arb_mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            Just(Mutation::Nop),
            (
                any::<i64>(),
                "(/[a-zA-Z0-9.-]{1,4}){0,3}|/",
                any::<Vec<u8>>()
            )
                .prop_map(|(rev, path, body)| Mutation::Set {
                    path,
                    rev,
                    body: Bytes::from(body)
                }),
            (any::<i64>(), "(/[a-zA-Z0-9.-]{1,4}){0,3}|/")
                .prop_map(|(rev, path)| Mutation::Del { path, rev }),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = Mutation::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_near_misses(s in "(nop|-?[0-9]{0,3}|x)[:=]{0,2}[/a=\\x00]{0,6}") {
            let _ = Mutation::decode(s.as_bytes());
        }

        #[test]
        fn round_trips(m in arb_mutation()) {
            prop_assert_eq!(Mutation::decode(&m.encode()), Ok(m));
        }
    }
}
