//! A headless browser for the web viewer tests: Debian's `chromium`
//! driven by `chromedriver` over the W3C WebDriver protocol, with a small
//! hand-written HTTP/1.1 client (one request per connection) instead of an
//! async WebDriver crate.
//!
//! - [`Browser::start`]: starts `chromedriver --port=P` on a free port and
//!   opens a session with a fresh profile directory. Dropping the
//!   [`Browser`] deletes the session (closing chromium), then kills that
//!   chromedriver process (by its PID) and removes the profile.
//! - [`Browser::goto`], [`Browser::exec`] (run JS, get its JSON result),
//!   [`Browser::screenshot`] (PNG bytes).
//! - [`http_request`] / [`http_get`]: the same HTTP client, for raw
//!   requests to the viewer (`/$metrics`, `/$stats.json`, ...).
//!
//! The programs are `chromedriver` from `PATH` and `/usr/bin/chromium`;
//! `DOOZER_CHROMEDRIVER` and `DOOZER_CHROMIUM` override them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{free_port, TempDir, DEADLINE};

/// How long a browser-side condition may take (a page reflecting a change,
/// reconnecting after its node restarted).
pub const WEB_DEADLINE: Duration = Duration::from_secs(15);

/// How long one WebDriver command may take (creating a session starts
/// chromium, which can be slow on a loaded machine).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics, showing the body, if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) to `addr` and reads the
/// whole response, or returns an error (connection refused, timeout,
/// malformed response).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n");
    if let Some(b) = body {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(&out)
        .map_err(|e| format!("{method} {path}: write: {e}"))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "{method} {path}: no complete response within {timeout:?}"
            ));
        }
        s.set_read_timeout(Some(deadline - now))
            .map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                // Stop early once a Content-Length body is complete, in
                // case the server keeps the connection open (not for HEAD,
                // whose Content-Length is the GET body's: read to the end
                // to see that nothing follows the head).
                if let Some(resp) = (method != "HEAD")
                    .then(|| parse_response(&raw, false))
                    .flatten()
                {
                    return Ok(resp);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{method} {path}: read: {e}")),
        }
    }
    let parsed = if method == "HEAD" {
        parse_head_response(&raw)
    } else {
        parse_response(&raw, true)
    };
    parsed.ok_or_else(|| {
        format!(
            "{method} {path}: malformed HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// `GET path` on `addr` with the default deadline; panics on a transport
/// error.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, None, DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses a complete answer to HEAD (read to EOF): its body is whatever
/// followed the head, which should be nothing (its Content-Length is the
/// GET body's).
fn parse_head_response(raw: &[u8]) -> Option<HttpResponse> {
    let (head, rest) = parse_head(raw)?;
    Some(HttpResponse {
        body: rest.to_vec(),
        ..head
    })
}

/// The response in `raw` without its body (status, headers with names
/// lowercased), and what follows its head, once the head is complete.
fn parse_head(raw: &[u8]) -> Option<(HttpResponse, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let head = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    Some((head, rest))
}

/// Parses a response from `raw`. Without `eof`, returns `None` unless the
/// body's end is known (Content-Length or the last chunk).
pub fn parse_response(raw: &[u8], eof: bool) -> Option<HttpResponse> {
    let (
        HttpResponse {
            status, headers, ..
        },
        rest,
    ) = parse_head(raw)?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Decodes a complete chunked body; `None` if incomplete or malformed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..nl]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------
// chromedriver and the session
// ---------------------------------------------------------------------------

fn chromedriver_bin() -> PathBuf {
    std::env::var_os("DOOZER_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromedriver"))
}

fn chromium_bin() -> String {
    std::env::var("DOOZER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// A running `chromedriver` with one open session. Dropping it deletes the
/// session and kills the driver.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: Option<String>,
    dir: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless chromium
    /// session with a fresh profile. Panics (with the driver's log) if
    /// either does not come up.
    pub fn start() -> Browser {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            match Browser::try_start() {
                Ok(b) => return b,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start a browser: {last_err}");
    }

    fn try_start() -> Result<Browser, String> {
        let dir = TempDir::new("browser");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log = dir.path().join("chromedriver.log");
        let log_file = std::fs::File::create(&log).expect("create chromedriver log");
        let driver = Command::new(chromedriver_bin())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file"))
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                format!(
                    "spawn {}: {e} (install Debian's `chromium` and `chromium-driver`)",
                    chromedriver_bin().display()
                )
            })?;
        let mut b = Browser {
            driver,
            addr,
            session: None,
            dir,
        };
        // Wait until the driver answers /status with ready: true.
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = b.driver.try_wait() {
                return Err(format!(
                    "chromedriver exited with {status}: {}",
                    b.driver_log()
                ));
            }
            if let Ok(r) = http_request(addr, "GET", "/status", None, Duration::from_secs(2)) {
                if r.status == 200 {
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    if v["value"]["ready"] == Value::Bool(true) {
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver on {addr} not ready within {DEADLINE:?}: {}",
                    b.driver_log()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let profile = b.dir.path().join("profile");
        std::fs::create_dir_all(&profile).expect("create profile dir");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": chromium_bin(),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            "--window-size=1100,800",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                },
            },
        });
        let v = b
            .command("POST", "/session", Some(caps))
            .map_err(|e| format!("new session: {e}; log: {}", b.driver_log()))?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("new session: no sessionId in {v}"))?
            .to_string();
        b.session = Some(id);
        b.session_command(
            "POST",
            "timeouts",
            Some(json!({"script": 10_000, "pageLoad": 15_000, "implicit": 0})),
        )?;
        Ok(b)
    }

    /// What chromedriver logged so far (for failure messages).
    pub fn driver_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        // The verbose log can be long: its tail is what matters.
        let keep = 4000;
        if text.len() > keep {
            let mut start = text.len() - keep;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            format!("...{}", &text[start..])
        } else {
            text
        }
    }

    /// Sends a WebDriver command; returns its `value`, or the WebDriver
    /// error as text.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string().into_bytes());
        let r = http_request(self.addr, method, path, body.as_deref(), DRIVER_TIMEOUT)?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("{method} {path}: {} not JSON ({e}): {}", r.status, r.text()))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if r.status != 200 {
            return Err(format!(
                "{method} {path}: HTTP {}: {} {}",
                r.status,
                value["error"].as_str().unwrap_or("?"),
                value["message"].as_str().unwrap_or(&value.to_string())
            ));
        }
        Ok(value)
    }

    fn session_command(
        &self,
        method: &str,
        sub: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let id = self.session.as_deref().expect("session is open");
        let path = if sub.is_empty() {
            format!("/session/{id}")
        } else {
            format!("/session/{id}/{sub}")
        };
        self.command(method, &path, body)
    }

    /// Navigates to `url` and waits for the page load.
    pub fn goto(&self, url: &str) {
        self.session_command("POST", "url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// The current page's URL.
    pub fn url(&self) -> String {
        self.session_command("GET", "url", None)
            .unwrap_or_else(|e| panic!("get url: {e}"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body: use `return`) in the page with
    /// `args` (available as `arguments[i]`), returning its result as JSON.
    pub fn try_exec(&self, script: &str, args: &[Value]) -> Result<Value, String> {
        self.session_command(
            "POST",
            "execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// [`Browser::try_exec`], panicking on a script error.
    pub fn exec(&self, script: &str, args: &[Value]) -> Value {
        self.try_exec(script, args)
            .unwrap_or_else(|e| panic!("script failed: {e}\nscript: {script}"))
    }

    /// Resizes the window (outer size, in CSS pixels).
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.session_command(
            "POST",
            "window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .unwrap_or_else(|e| panic!("set window size: {e}"));
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self
            .session_command("GET", "screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        base64_decode(v.as_str().expect("screenshot is a base64 string"))
            .expect("screenshot is valid base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.session.is_some() {
            // Closes chromium; ignore failures (the driver may be gone).
            let _ = self.session_command("DELETE", "", None);
            self.session = None;
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if thread::panicking() {
            eprintln!(
                "--- chromedriver log (tail) ---\n{}\n--- end ---",
                self.driver_log()
            );
        }
    }
}

/// Decodes standard base64 (with or without padding; whitespace ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("//79AA==").unwrap(), [0xff, 0xfe, 0xfd, 0]);
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn responses_parse_with_length_chunks_or_eof() {
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab", false).is_none());
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n\r\nxyz", false).is_none());
        let r = parse_response(b"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nxyz", true).unwrap();
        assert_eq!(r.body, b"xyz");
        assert_eq!(r.header("x-a"), Some("b"));
    }
}
