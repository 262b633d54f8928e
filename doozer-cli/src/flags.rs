//! Go-style command-line flags: `-name value`, `-name=value`, `--name`
//! also accepted; boolean flags take no value (`-prefill`, or
//! `-prefill=false`). A token like `-1` is a (negative number) argument,
//! not a flag, so `doozer del /x -1` works; `--` ends the flags.

use std::collections::HashMap;

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Name without dashes.
    pub name: &'static str,
    /// True if the flag takes a value; false for a boolean.
    pub takes_value: bool,
}

/// Parsed flags and the remaining arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Flag name → last value given (`"true"`/`"false"` for booleans).
    pub values: HashMap<&'static str, String>,
    /// Arguments that are not flags, in order.
    pub args: Vec<String>,
}

impl Parsed {
    /// The value of a flag, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// True if the boolean flag was given and not set to false.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }
}

/// Parses `args`. With `stop_at_arg`, the first non-flag argument ends
/// flag parsing (it and everything after go to `args` untouched), as Go's
/// `flag` package does for the global options before the command.
pub fn parse(args: &[String], specs: &[Spec], stop_at_arg: bool) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            out.args.extend(args[i..].iter().cloned());
            break;
        }
        if !is_flag(a) {
            out.args.push(a.clone());
            if stop_at_arg {
                out.args.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| {
            format!(
                "flag provided but not defined: -{}",
                doozer::uri::redact(name)
            )
        })?;
        let value = if spec.takes_value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                    i += 1;
                    v.clone()
                }
            }
        } else {
            match inline.as_deref() {
                None | Some("true") | Some("1") | Some("t") => "true".to_string(),
                Some("false") | Some("0") | Some("f") => "false".to_string(),
                Some(v) => {
                    let v = doozer::uri::redact(v);
                    return Err(format!("invalid boolean value {v:?} for -{name}"));
                }
            }
        };
        out.values.insert(spec.name, value);
    }
    Ok(out)
}

/// `-x`, `--x`, but not `-`, `-1`, `--`, or `---x`.
fn is_flag(a: &str) -> bool {
    let body = a
        .strip_prefix("--")
        .or_else(|| a.strip_prefix('-'))
        .unwrap_or("");
    a.starts_with('-')
        && body
            .chars()
            .next()
            .is_some_and(|c| c != '-' && c != '=' && !c.is_ascii_digit() && c != '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec {
            name: "r",
            takes_value: true,
        },
        Spec {
            name: "prefill",
            takes_value: false,
        },
    ];

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_style_forms() {
        let p = parse(&strs(&["-r", "5", "--prefill", "x"]), SPECS, false).unwrap();
        assert_eq!(p.get("r"), Some("5"));
        assert!(p.is_set("prefill"));
        assert_eq!(p.args, ["x"]);
        let p = parse(&strs(&["--r=7", "-prefill=false"]), SPECS, false).unwrap();
        assert_eq!(p.get("r"), Some("7"));
        assert!(!p.is_set("prefill"));
    }

    #[test]
    fn negative_numbers_are_arguments() {
        let p = parse(&strs(&["/x", "-1", "-r", "-2"]), SPECS, false).unwrap();
        assert_eq!(p.args, ["/x", "-1"]);
        assert_eq!(p.get("r"), Some("-2"));
    }

    #[test]
    fn stop_at_first_argument() {
        let p = parse(&strs(&["-r", "1", "get", "-r", "2"]), SPECS, true).unwrap();
        assert_eq!(p.get("r"), Some("1"));
        assert_eq!(p.args, ["get", "-r", "2"]);
    }

    #[test]
    fn errors() {
        assert!(parse(&strs(&["-x"]), SPECS, false).is_err());
        assert!(parse(&strs(&["-r"]), SPECS, false).is_err());
        assert!(parse(&strs(&["-prefill=maybe"]), SPECS, false).is_err());
        let p = parse(&strs(&["--", "-r"]), SPECS, false).unwrap();
        assert_eq!(p.args, ["-r"]);
    }
}
