//! Datagrams the kernel dropped on a UDP socket because its receive buffer was full (Linux `/proc/net/udp`).

use std::os::fd::AsRawFd;

/// Reads the kernel's drop count of one UDP socket and reports what is new since the last read.
#[derive(Debug)]
pub(super) struct KernelDrops {
    inode: Option<u64>,
    seen: u64,
}

impl KernelDrops {
    /// Follows the socket `socket` (found by its inode); counts nothing where `/proc` is missing.
    pub(super) fn of(socket: &impl AsRawFd) -> Self {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok();
        let inode = link
            .and_then(|target| target.to_str().and_then(|text| text.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()));
        let mut drops = KernelDrops { inode, seen: 0 };
        drops.seen = drops.total().unwrap_or(0);
        drops
    }

    /// Drops since the last call (0 when the count cannot be read).
    pub(super) fn new_drops(&mut self) -> u64 {
        let Some(total) = self.total() else { return 0 };
        let new = total.saturating_sub(self.seen);
        self.seen = total;
        new
    }

    /// The socket's drop count: the last column of its row in `/proc/net/udp` or `udp6`.
    fn total(&self) -> Option<u64> {
        let inode = self.inode?.to_string();
        ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|row| {
                let columns: Vec<&str> = row.split_whitespace().collect();
                // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
                (columns.get(9) == Some(&inode.as_str())).then(|| columns.last()?.parse().ok()).flatten()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the kernel: a socket nobody reads, with a small receive buffer, flooded. Every
    /// datagram sent is either still in the buffer or among the drops this reports.
    #[test]
    fn every_datagram_is_either_buffered_or_counted_as_dropped() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&receiver).set_recv_buffer_size(4096).unwrap();
        let mut drops = KernelDrops::of(&receiver);
        assert!(drops.inode.is_some(), "the socket's inode is found in /proc/self/fd");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 500u64;
        for index in 0..sent {
            sender.send_to(format!("<13>datagram {index:04}").as_bytes(), receiver.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let dropped = drops.new_drops();
        receiver.set_nonblocking(true).unwrap();
        let mut buffered = 0u64;
        let mut buffer = [0u8; 64];
        while receiver.recv(&mut buffer).is_ok() {
            buffered += 1;
        }
        assert!(dropped > 0, "a 4 KiB buffer cannot hold {sent} datagrams");
        assert_eq!(buffered + dropped, sent, "buffered {buffered} + dropped {dropped}");
        assert_eq!(drops.new_drops(), 0, "only new drops are reported");
    }
}
