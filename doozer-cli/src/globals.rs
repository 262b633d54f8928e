//! The global options (`-a`, `-b`, `-r`, `-t`) once parsed, shared by the
//! shell commands and the bench.

use std::time::Duration;

use doozer::{Client, DoozerUri, Error};

use crate::failure::Failure;

/// The global options after parsing.
pub struct Globals {
    /// `-a`, `$DOOZER_URI` or the default.
    pub uri: String,
    /// `-b` or `$DOOZER_BOOT_URI`.
    pub boot_uri: Option<String>,
    /// `-r`.
    pub rev: Option<i64>,
    /// `-t`.
    pub timeout: Option<Duration>,
}

impl Globals {
    /// Connects as the options say; a `cn=` is resolved through the name
    /// service of `-b`.
    pub fn connect(&self) -> Result<Client, Failure> {
        let uri: DoozerUri = self.uri.parse().map_err(Error::from)?;
        Ok(Client::connect_uri_via(&uri, self.boot_uri.as_deref())?)
    }

    /// The URI's `ca=` addresses, then those of its `cn=` cluster's CALs
    /// from the name service.
    pub fn addrs(&self, uri: &DoozerUri) -> Result<Vec<String>, Failure> {
        Ok(doozer::ns::addrs(uri, self.boot_uri.as_deref())?)
    }
}
