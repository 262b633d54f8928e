//! Per-connection protocol state: what the connection may do (its grant
//! from the secrets) and which of its requests are still outstanding.

use std::collections::BTreeSet;

use bytes::Bytes;
use subtle::ConstantTimeEq;

use crate::store::WaitId;

/// The secrets (docs/reference.md#secrets-and-access): `DOOZER_RWSECRET` and `DOOZER_ROSECRET`.
/// Its `Debug` form says only whether each is set.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Grants read and write.
    pub rw: Bytes,
    /// Grants read only.
    pub ro: Bytes,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("rw", &shown_secret(&self.rw))
            .field("ro", &shown_secret(&self.ro))
            .finish()
    }
}

/// How a secret is shown: whether it is set, never its bytes.
pub fn shown_secret(secret: &[u8]) -> &'static str {
    if secret.is_empty() {
        "(unset)"
    } else {
        doozer::uri::HIDDEN
    }
}

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grant {
    /// May read.
    pub read: bool,
    /// May write.
    pub write: bool,
}

impl Secrets {
    /// The grant of a connection presenting `secret`, or `None` if it is
    /// neither secret. An unset secret is the empty string, so with no
    /// secrets at all the empty secret grants everything, and with only the
    /// rw secret set a new connection may read (as in the Go original).
    pub fn grant(&self, secret: &[u8]) -> Option<Grant> {
        if constant_time_eq(secret, &self.rw) {
            Some(Grant {
                read: true,
                write: true,
            })
        } else if constant_time_eq(secret, &self.ro) {
            Some(Grant {
                read: true,
                write: false,
            })
        } else {
            None
        }
    }
}

/// Compares secrets in constant time, so the time taken tells an attacker
/// neither how much of a guess was right nor how long the secret is: both
/// are hashed to SHA-256 digests of one length, which are compared with
/// `subtle` (no early exit, and opaque to the optimiser, unlike a
/// hand-written fold).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = ring::digest::digest(&ring::digest::SHA256, a);
    let db = ring::digest::digest(&ring::digest::SHA256, b);
    bool::from(da.as_ref().ct_eq(db.as_ref()))
}

/// One client connection's state.
#[derive(Debug, Default)]
pub struct Session {
    /// What it may do now.
    pub grant: Grant,
    /// Tags of requests not yet answered (a reused one is `TAG_IN_USE`).
    pub tags: BTreeSet<i32>,
    /// Store waits registered for it, cancelled when it goes away.
    pub waits: BTreeSet<WaitId>,
}

impl Session {
    /// A new connection: as if it had sent the empty secret.
    pub fn new(secrets: &Secrets) -> Session {
        Session {
            grant: secrets.grant(b"").unwrap_or_default(),
            ..Default::default()
        }
    }

    /// ACCESS with `secret`: the connection's grant becomes that secret's.
    /// A secret that is neither (false: the caller answers "permission
    /// denied") takes the connection back to the grant of the empty
    /// secret, as when it connected: a wrong secret never keeps a grant an
    /// earlier right one gave.
    pub fn access(&mut self, secrets: &Secrets, secret: &[u8]) -> bool {
        match secrets.grant(secret) {
            Some(grant) => {
                self.grant = grant;
                true
            }
            None => {
                self.grant = secrets.grant(b"").unwrap_or_default();
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(rw: &str, ro: &str) -> Secrets {
        Secrets {
            rw: Bytes::from(rw.to_string()),
            ro: Bytes::from(ro.to_string()),
        }
    }

    #[test]
    fn no_secrets_grant_everything() {
        let s = Session::new(&secrets("", ""));
        assert!(s.grant.read && s.grant.write);
    }

    #[test]
    fn rw_secret_only_leaves_new_connections_read_only() {
        let s = secrets("pw", "");
        assert_eq!(
            Session::new(&s).grant,
            Grant {
                read: true,
                write: false
            }
        );
        assert_eq!(
            s.grant(b"pw"),
            Some(Grant {
                read: true,
                write: true
            })
        );
        assert_eq!(s.grant(b"nope"), None);
    }

    #[test]
    fn both_secrets_leave_new_connections_without_access() {
        let s = secrets("rw", "ro");
        assert_eq!(Session::new(&s).grant, Grant::default());
        assert_eq!(
            s.grant(b"ro"),
            Some(Grant {
                read: true,
                write: false
            })
        );
        assert_eq!(
            s.grant(b"rw"),
            Some(Grant {
                read: true,
                write: true
            })
        );
        assert_eq!(s.grant(b"r"), None);
    }

    #[test]
    fn a_wrong_secret_after_a_right_one_drops_the_grant() {
        let none = Grant::default();
        let read = Grant {
            read: true,
            write: false,
        };
        let all = Grant {
            read: true,
            write: true,
        };
        // Both secrets set: back to no grant at all.
        let s = secrets("rw", "ro");
        let mut c = Session::new(&s);
        assert!(c.access(&s, b"rw"));
        assert_eq!(c.grant, all);
        assert!(!c.access(&s, b"nope"));
        assert_eq!(c.grant, none);
        assert!(c.access(&s, b"ro"));
        assert_eq!(c.grant, read);
        assert!(!c.access(&s, b"rw "));
        assert_eq!(c.grant, none);
        // Only the rw secret set: back to reading, as a new connection.
        let s = secrets("rw", "");
        let mut c = Session::new(&s);
        assert!(c.access(&s, b"rw"));
        assert_eq!(c.grant, all);
        assert!(!c.access(&s, b"wrong"));
        assert_eq!(c.grant, read);
    }

    #[test]
    fn debug_hides_the_secrets() {
        let shown = format!("{:?}", secrets("rw-HUSH", ""));
        assert!(!shown.contains("HUSH"), "{shown}");
        assert_eq!(shown, "Secrets { rw: \"<hidden>\", ro: \"(unset)\" }");
    }

    #[test]
    fn secrets_match_exactly() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(constant_time_eq(&[0, 255, 7], &[0, 255, 7]));
        for wrong in [
            &b""[..],
            b"s3cre",
            b"s3cret ",
            b"S3cret",
            b"s3crex",
            b"\0s3cret",
        ] {
            assert!(!constant_time_eq(wrong, b"s3cret"), "{wrong:?}");
            assert!(!constant_time_eq(b"s3cret", wrong), "{wrong:?}");
        }
        // a secret that is a prefix of the other, and one past a NUL
        let s = secrets("pw", "pw2");
        assert_eq!(
            s.grant(b"pw2"),
            Some(Grant {
                read: true,
                write: false
            })
        );
        assert_eq!(s.grant(b"pw\0"), None);
    }
}
