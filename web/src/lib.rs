//! Assets of the doozer web viewer, embedded in the `doozerd` binary so the
//! viewer works offline. The live viewer arrives with its own issue; until
//! then doozerd serves [`PLACEHOLDER_HTML`].

/// The page served on `-w` until the live viewer lands.
pub const PLACEHOLDER_HTML: &str = include_str!("placeholder.html");
