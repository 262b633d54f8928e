//! Free ports on 127.0.0.1.

use std::net::{TcpListener, UdpSocket};

/// A port on 127.0.0.1 that is free for both TCP and UDP right now (it is
/// released before returning, so a race with other processes is possible;
/// [`DoozerdBuilder::start`](crate::DoozerdBuilder::start) retries on
/// "address in use").
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP after 100 tries");
}
