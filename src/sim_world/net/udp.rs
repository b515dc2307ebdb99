//! Datagrams on the simulated network: sent once, each on its own delay,
//! so they arrive late, out of order, or (with the loss knob or across a
//! partition) not at all.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Attempt, Kind, Net, Packet, SockKind, not_connected, pair};
use crate::sim_world::config::Config;
use crate::sim_world::rng::Rng;

impl Net {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn udp_send(
        &mut self,
        id: u64,
        bytes: Vec<u8>,
        to: SocketAddr,
        to_host: Option<u32>,
        now: Duration,
        rng: &mut Rng,
        cfg: &Config,
    ) -> io::Result<usize> {
        let Some(SockKind::Udp(u)) = self.sock(id).map(|s| &mut s.kind) else {
            return Err(not_connected());
        };
        let (from, host) = (u.local, u.host);
        let n = bytes.len();
        let Some(to_host) = to_host else {
            return Ok(n); // nobody there: lost
        };
        if rng.chance(cfg.loss) || self.cut.contains(&pair(host, to_host)) {
            return Ok(n);
        }
        self.send(
            now,
            rng,
            cfg,
            Packet {
                from: host,
                to: to_host,
                kind: Kind::Dgram { from, to, bytes },
            },
        );
        Ok(n)
    }

    pub(crate) fn udp_recv(
        &mut self,
        id: u64,
        buf: &mut [u8],
        peek: bool,
    ) -> Attempt<(usize, SocketAddr)> {
        let Some(SockKind::Udp(u)) = self.sock(id).map(|s| &mut s.kind) else {
            return Some(Err(not_connected()));
        };
        let (bytes, from) = if peek {
            u.rx.front().cloned()?
        } else {
            u.rx.pop_front()?
        };
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Some(Ok((n, from)))
    }
}
