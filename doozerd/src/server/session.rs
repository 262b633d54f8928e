//! Per-connection protocol state: what the connection may do (its grant
//! from the secrets) and which of its requests are still outstanding.

use std::collections::HashSet;

use bytes::Bytes;

use crate::store::WaitId;

/// The secrets of SPEC §3: `DOOZER_RWSECRET` and `DOOZER_ROSECRET`.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Grants read and write.
    pub rw: Bytes,
    /// Grants read only.
    pub ro: Bytes,
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

/// Compares secrets without an early exit on the first differing byte, so
/// the time taken does not tell an attacker how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One client connection's state.
#[derive(Debug, Default)]
pub struct Session {
    /// What it may do now.
    pub grant: Grant,
    /// Tags of requests not yet answered (a reused one is `TAG_IN_USE`).
    pub tags: HashSet<i32>,
    /// Store waits registered for it, cancelled when it goes away.
    pub waits: HashSet<WaitId>,
}

impl Session {
    /// A new connection: as if it had sent the empty secret.
    pub fn new(secrets: &Secrets) -> Session {
        Session {
            grant: secrets.grant(b"").unwrap_or_default(),
            ..Default::default()
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
}
