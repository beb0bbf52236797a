//! A TCP proxy in front of a database, which tests cut (connections reset, new ones refused)
//! and restore on the same port: the database "goes away" for one gateway only. It can also
//! hold every connection but the first for a while before the database sees it (a slow login).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP proxy to a database that can be cut (connections reset, new ones refused) and
/// restored on the same port.
pub struct Proxy {
    pub port: u16,
    target: u16,
    up: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    /// Armed: the next `COMMIT` a client sends reaches the database, and its answer never
    /// reaches the client: the connection is cut right after.
    commit_trap: Arc<AtomicBool>,
    /// How many times the trap went off.
    pub commits_cut: Arc<AtomicUsize>,
    /// Every connection after the first waits this long before it reaches the database.
    hold: Duration,
    accepted: Arc<AtomicUsize>,
    /// Connections held, and those of them whose client hung up during the hold.
    pub held: Arc<AtomicUsize>,
    pub closed_while_held: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        Self::start_holding(target, Duration::ZERO)
    }

    /// A proxy that holds every connection after the first for `hold` before it reaches the
    /// database (what the client sent meanwhile is passed on after).
    pub fn start_holding(target: u16, hold: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let p = Proxy {
            port,
            target,
            up: Arc::new(AtomicBool::new(true)),
            streams: Arc::new(Mutex::new(Vec::new())),
            commit_trap: Arc::new(AtomicBool::new(false)),
            commits_cut: Arc::default(),
            hold,
            accepted: Arc::default(),
            held: Arc::default(),
            closed_while_held: Arc::default(),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: TcpListener) {
        let link = Link {
            up: Arc::clone(&self.up),
            streams: Arc::clone(&self.streams),
            target: self.target,
            trap: Arc::clone(&self.commit_trap),
            cut: Arc::clone(&self.commits_cut),
        };
        let (hold, accepted) = (self.hold, Arc::clone(&self.accepted));
        let (held, closed) = (Arc::clone(&self.held), Arc::clone(&self.closed_while_held));
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while link.up.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut client, _)) => {
                        client.set_nonblocking(false).expect("blocking");
                        if accepted.fetch_add(1, Ordering::SeqCst) == 0 || hold.is_zero() {
                            link.join(client, &[]);
                            continue;
                        }
                        // Held in a thread of its own: each held login waits `hold`, not
                        // the sum of the holds before it.
                        held.fetch_add(1, Ordering::SeqCst);
                        let (link, closed) = (link.clone(), Arc::clone(&closed));
                        std::thread::spawn(move || {
                            let mut early = Vec::new();
                            if hold_connection(&mut client, hold, &mut early) {
                                link.join(client, &early);
                            } else {
                                closed.fetch_add(1, Ordering::SeqCst);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            // Dropping the listener: new connections are refused.
        });
    }

    /// Connections the proxy accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn cut(&self) {
        // Under the streams' lock, so that a connection being accepted sees it (see `serve`).
        let mut streams = self.streams.lock().expect("lock");
        self.up.store(false, Ordering::SeqCst);
        for s in streams.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        drop(streams);
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Cut the connection that sends the next `COMMIT`, after the database has it and before
    /// its answer comes back: the transaction is committed, the client cannot know.
    pub fn cut_after_next_commit(&self) {
        self.commit_trap.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the proxy port");
        self.up.store(true, Ordering::Relaxed);
        self.serve(listener);
    }
}

/// Keep `client` from the database for `hold`, gathering what it sends into `early`: false when
/// it hung up meanwhile.
fn hold_connection(client: &mut TcpStream, hold: Duration, early: &mut Vec<u8>) -> bool {
    let until = Instant::now() + hold;
    client
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let mut open = true;
    while open && Instant::now() < until {
        match client.read(&mut buf) {
            Ok(0) => open = false,
            Ok(n) => early.extend_from_slice(&buf[..n]),
            Err(e) => {
                open = matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
    client.set_read_timeout(None).expect("timeout");
    open
}

/// What joins an accepted client to the database.
#[derive(Clone)]
struct Link {
    up: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    target: u16,
    trap: Arc<AtomicBool>,
    cut: Arc<AtomicUsize>,
}

impl Link {
    /// Connect `client` to the database (after sending it `early`) and pipe both ways.
    fn join(&self, client: TcpStream, early: &[u8]) {
        let Ok(mut server) = TcpStream::connect(("127.0.0.1", self.target)) else {
            return;
        };
        if server.write_all(early).is_err() {
            return;
        }
        let mut s = self.streams.lock().expect("lock");
        // Cut while this one was being accepted: it must not outlive the cut.
        if !self.up.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        s.push(client.try_clone().expect("clone"));
        s.push(server.try_clone().expect("clone"));
        drop(s);
        for (upstream, mut from, mut to) in [
            (
                true,
                client.try_clone().expect("c"),
                server.try_clone().expect("s"),
            ),
            (false, server, client),
        ] {
            let (trap, cut) = (Arc::clone(&self.trap), Arc::clone(&self.cut));
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = from.read(&mut buf) {
                    let commit = upstream
                        && n > 0
                        && buf[..n]
                            .windows(6)
                            .any(|w| w.eq_ignore_ascii_case(b"COMMIT"));
                    if commit && trap.swap(false, Ordering::SeqCst) {
                        // The client hears nothing more (cut before the COMMIT goes on, so no
                        // answer can slip back); the database reads the COMMIT, then the end
                        // of the stream.
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.write_all(&buf[..n]);
                        std::thread::sleep(Duration::from_millis(300));
                        let _ = to.shutdown(Shutdown::Write);
                        cut.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Both);
            });
        }
    }
}
