//! HTTP on `-w`, parsed with `httparse`. Until the live viewer lands this
//! serves the placeholder page and a plain-text status; one request per
//! connection (`Connection: close`).

use crate::server::Server;

/// Largest request head accepted; more is answered 431 and closed.
const MAX_HEAD_LEN: usize = 16 << 10;

/// What to do with the bytes read so far on a web connection.
pub enum Outcome {
    /// The request head is incomplete.
    NeedMore,
    /// Send these bytes, then close.
    Reply(Vec<u8>),
}

/// The web site of one node.
pub struct Site {
    node_id: String,
    cluster: String,
}

impl Site {
    /// The site for node `node_id` of cluster `cluster`.
    pub fn new(node_id: String, cluster: String) -> Site {
        Site { node_id, cluster }
    }

    /// Answers the request in `buf` once its head is complete.
    pub fn respond(&self, buf: &[u8], server: &Server) -> Outcome {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_LEN => Outcome::NeedMore,
            Ok(httparse::Status::Partial) => {
                Outcome::Reply(reply(431, "text/plain", b"request head too large\n"))
            }
            Err(_) => Outcome::Reply(reply(400, "text/plain", b"bad request\n")),
            Ok(httparse::Status::Complete(_)) => {
                let path = req.path.unwrap_or("/");
                match (req.method, path) {
                    (Some("GET") | Some("HEAD"), "/") => Outcome::Reply(reply(
                        200,
                        "text/html; charset=utf-8",
                        doozer_web::PLACEHOLDER_HTML.as_bytes(),
                    )),
                    (Some("GET") | Some("HEAD"), "/$stats") => {
                        let stats = server.stats();
                        let store = server.store();
                        let body = format!(
                            "node {}\ncluster {}\nrev {}\nhistory-oldest {}\nclients {}\nwaits {}\nrequests {}\n",
                            self.node_id,
                            self.cluster,
                            store.rev(),
                            store.oldest_rev(),
                            stats.clients,
                            store.waits_pending(),
                            stats.requests,
                        );
                        Outcome::Reply(reply(200, "text/plain; charset=utf-8", body.as_bytes()))
                    }
                    (Some("GET") | Some("HEAD"), _) => {
                        Outcome::Reply(reply(404, "text/plain", b"not found\n"))
                    }
                    _ => Outcome::Reply(reply(405, "text/plain", b"method not allowed\n")),
                }
            }
        }
    }
}

fn reply(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}
