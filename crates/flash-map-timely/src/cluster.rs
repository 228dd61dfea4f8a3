//! [`Cluster`]: where the workers run (threads of one process, or processes on hosts), and
//! connecting them with a deadline.
//!
//! timely's own connect loop retries forever. Here each process binds its address,
//! connects to the processes before it and accepts those after it (timely's layout), with
//! a greeting that carries the job's process count, and gives up at a deadline with
//! [`Error::Connect`]. The connected sockets are then handed to timely.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::Hooks;
use timely::worker::Worker;
use timely::WorkerConfig;

use crate::error::{Error, Result};

/// The greeting's first word: "flashmap" in ASCII, then a protocol version.
const MAGIC: u64 = u64::from_le_bytes(*b"flashmap");
const PROTOCOL: u64 = 1;

/// The shape of a job and how long to wait for its processes.
///
/// ```
/// use flash_map_timely::Cluster;
/// // 2 processes × 2 workers on localhost; this is process 0.
/// let (c, rest) = Cluster::from_args(["-w", "2", "-n", "2", "-p", "0", "input.txt"].map(String::from))?;
/// assert_eq!((c.workers(), c.processes(), rest), (4, 2, vec!["input.txt".to_string()]));
/// # Ok::<(), flash_map_timely::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Cluster {
    threads: usize,
    process: usize,
    addresses: Vec<String>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
}

/// What a worker knows about its place in the job (passed to [`Cluster::run`]'s closure).
#[derive(Clone, Debug)]
pub struct WorkerCtx {
    /// This worker's index, `0..peers`.
    pub index: usize,
    /// Workers in the job.
    pub peers: usize,
    /// This process's index.
    pub process: usize,
    /// Processes in the job.
    pub processes: usize,
    /// Workers in this process (they share its cores and GPUs).
    pub threads: usize,
    /// How long a shard waits for its peers' handshake.
    pub handshake_timeout: Duration,
}

impl Cluster {
    /// `threads` workers in this one process.
    pub fn local(threads: usize) -> Self {
        Cluster {
            threads: threads.max(1),
            process: 0,
            addresses: vec!["localhost:0".into()],
            connect_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
        }
    }

    /// Process `process` of a job whose processes listen at `addresses` (`host:port`, one per
    /// process, the same list in every process), with `threads` workers each.
    pub fn hosts(addresses: Vec<String>, process: usize, threads: usize) -> Result<Self> {
        if addresses.is_empty() || process >= addresses.len() {
            return Err(Error::Args(format!(
                "process index {process} is not below the number of processes {}",
                addresses.len()
            )));
        }
        Ok(Cluster { addresses, process, ..Self::local(threads) })
    }

    /// Reads timely's options: `-w` workers per process (default 1), `-n` processes
    /// (default 1), `-p` this process's index (default 0), `-h` a hostfile with one
    /// `host:port` per line (default `localhost:2101`, `localhost:2102`, ...), and
    /// `--connect-timeout SECS` (default 30). Returns the other arguments, in order.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<(Self, Vec<String>)> {
        let (mut threads, mut processes, mut process, mut hostfile, mut timeout) = (1, 1, 0, None, 30.0);
        let mut rest = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| Error::Args(format!("{name} needs a value")));
            match a.as_str() {
                "-w" | "--threads" => threads = number(&value(&a)?, &a)?,
                "-n" | "--processes" => processes = number(&value(&a)?, &a)?,
                "-p" | "--process" => process = number(&value(&a)?, &a)?,
                "-h" | "--hostfile" => hostfile = Some(value(&a)?),
                "--connect-timeout" => {
                    let v = value(&a)?;
                    timeout = v
                        .parse::<f64>()
                        .ok()
                        .filter(|t| *t > 0.0 && t.is_finite())
                        .ok_or_else(|| Error::Args(format!("--connect-timeout wants seconds > 0, got {v:?}")))?
                }
                _ => rest.push(a),
            }
        }
        if threads == 0 || processes == 0 {
            return Err(Error::Args("-w and -n must be at least 1".into()));
        }
        let addresses = match hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Args(format!("cannot read hostfile {path}: {e}")))?;
                let hosts: Vec<String> =
                    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                if hosts.len() < processes {
                    return Err(Error::Args(format!(
                        "hostfile {path} lists {} hosts; -n {processes} needs one per process",
                        hosts.len()
                    )));
                }
                hosts.into_iter().take(processes).collect()
            }
            None => (0..processes).map(|i| format!("localhost:{}", 2101 + i)).collect(),
        };
        let mut c = Self::hosts(addresses, process, threads)?;
        c.connect_timeout = Duration::from_secs_f64(timeout);
        Ok((c, rest))
    }

    /// How long to wait for the other processes to be reachable (default 30 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How long a shard waits for its peers to agree on its types (default 30 s).
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Workers in the whole job.
    pub fn workers(&self) -> usize {
        self.threads * self.addresses.len()
    }

    /// Processes in the job.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// Connects to the other processes (within the timeout), runs `work` on every worker
    /// of this process, and returns their results in worker order once every dataflow has
    /// finished. The first error of any worker is returned.
    pub fn run<T, F>(self, work: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(&mut Worker, &WorkerCtx) -> Result<T> + Send + Sync + 'static,
    {
        let processes = self.addresses.len();
        let (builders, guard): (Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>) = if processes == 1 {
            let b = ProcessBuilder::new_typed_vector(self.threads, Hooks::default().refill, None);
            (b.into_iter().map(AllocatorBuilder::Process).collect(), Box::new(()))
        } else {
            let sockets = connect(&self.addresses, self.process, self.connect_timeout)?;
            let hooks = Hooks::default();
            let locals = ProcessBuilder::new_typed_vector(self.threads, hooks.refill.clone(), None);
            let (tcp, guard) = initialize_networking_from_sockets(locals, sockets, self.process, self.threads, hooks)?;
            (tcp.into_iter().map(AllocatorBuilder::Tcp).collect(), Box::new(guard))
        };
        let (threads, process, handshake_timeout) = (self.threads, self.process, self.handshake_timeout);
        let guards = timely::execute::execute_from(builders, guard, WorkerConfig::default(), move |worker| {
            let ctx = WorkerCtx {
                index: worker.index(),
                peers: worker.peers(),
                process,
                processes,
                threads,
                handshake_timeout,
            };
            work(worker, &ctx)
        })
        .map_err(Error::Timely)?;
        let mut out = Vec::new();
        for r in guards.join() {
            out.push(r.map_err(Error::WorkerPanicked)??);
        }
        Ok(out)
    }
}

fn number(v: &str, name: &str) -> Result<usize> {
    v.parse().map_err(|_| Error::Args(format!("{name} wants a number, got {v:?}")))
}

fn greeting(process: usize, processes: usize) -> [u8; 32] {
    let mut g = [0u8; 32];
    for (i, w) in [MAGIC, PROTOCOL, process as u64, processes as u64].iter().enumerate() {
        g[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    g
}

/// Reads a peer's greeting.
fn read_greeting(s: &mut TcpStream) -> std::result::Result<[u8; 32], String> {
    let mut g = [0u8; 32];
    s.read_exact(&mut g).map_err(|e| format!("no greeting: {e}"))?;
    Ok(g)
}

/// Checks a peer's greeting: returns the peer's process index.
fn check_greeting(g: [u8; 32], processes: usize) -> std::result::Result<usize, String> {
    let w = |i: usize| u64::from_le_bytes(g[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    if w(0) != MAGIC {
        return Err("the peer is not a flash-map-timely process".into());
    }
    if w(1) != PROTOCOL {
        return Err(format!("the peer speaks protocol {}, this process {PROTOCOL}; build both alike", w(1)));
    }
    if w(3) != processes as u64 {
        return Err(format!("the peer was started with -n {}, this process with -n {processes}", w(3)));
    }
    usize::try_from(w(2)).ok().filter(|&p| p < processes).ok_or_else(|| format!("bad peer index {}", w(2)))
}

/// Sockets to every other process (`None` at `me`), or [`Error::Connect`] at the deadline.
fn connect(addresses: &[String], me: usize, timeout: Duration) -> Result<Vec<Option<TcpStream>>> {
    let n = addresses.len();
    let start = Instant::now();
    let deadline = start + timeout;
    let fail = |peer: usize, reason: String| Error::Connect {
        process: me,
        peer,
        address: addresses[peer].clone(),
        waited: start.elapsed(),
        reason,
    };
    // A read may wait until the deadline, never forever.
    let read_timeout = || Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
    let listener = TcpListener::bind(&addresses[me]).map_err(|e| fail(me, format!("cannot listen: {e}")))?;
    listener.set_nonblocking(true)?;
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    // Processes before this one: connect, greet, and wait for their greeting back.
    for (peer, address) in addresses.iter().enumerate().take(me) {
        let mut last = String::from("not tried");
        let mut s = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(fail(peer, last));
            }
            let addr = match address.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(a)) => a,
                Ok(None) => return Err(fail(peer, "the address resolves to nothing".into())),
                Err(e) => return Err(fail(peer, format!("cannot resolve: {e}"))),
            };
            match TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(1))) {
                Ok(s) => break s,
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(100).min(left));
                }
            }
        };
        s.set_read_timeout(read_timeout())?;
        s.write_all(&greeting(me, n)).map_err(|e| fail(peer, e.to_string()))?;
        match read_greeting(&mut s).and_then(|g| check_greeting(g, n)) {
            Ok(p) if p == peer => {}
            Ok(p) => return Err(fail(peer, format!("process {p} answered at process {peer}'s address"))),
            Err(e) => return Err(fail(peer, e)),
        }
        sockets[peer] = Some(s);
    }
    // Processes after this one: accept, read their greeting, greet back.
    while let Some(waiting) = (me + 1..n).find(|&p| sockets[p].is_none()) {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(read_timeout())?;
                // Greet back before judging, so that a mismatched peer hears why too.
                let g = read_greeting(&mut s).map_err(|e| fail(waiting, e))?;
                s.write_all(&greeting(me, n)).map_err(|e| fail(waiting, e.to_string()))?;
                let peer = check_greeting(g, n).map_err(|e| fail(waiting, e))?;
                if peer <= me || sockets[peer].is_some() {
                    return Err(fail(waiting, format!("unexpected greeting from process {peer}")));
                }
                sockets[peer] = Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(fail(waiting, "it never connected".into()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(fail(waiting, e.to_string())),
        }
    }
    for s in sockets.iter().flatten() {
        s.set_read_timeout(None)?;
        s.set_nodelay(true)?;
    }
    log::info!("flash-map-timely: process {me} connected to {} peers in {:?}", n - 1, start.elapsed());
    Ok(sockets)
}
