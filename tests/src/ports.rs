//! Free ports on 127.0.0.1 (or another loopback address).

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// A port on 127.0.0.1 that is free for both TCP and UDP right now (it is
/// released before returning, so a race with other processes is possible;
/// [`DoozerdBuilder::start`](crate::DoozerdBuilder::start) retries on
/// "address in use").
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// [`free_port`] on the address `ip` (any address of 127.0.0.0/8 is
/// loopback on Linux).
pub fn free_port_on(ip: Ipv4Addr) -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on {ip} for both TCP and UDP after 100 tries");
}
