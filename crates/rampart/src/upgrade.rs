//! Zero-downtime binary upgrade: the running process starts its successor (the binary now at
//! the path it was started from, with the same arguments) and hands it every listening socket
//! (and each HTTP/3 listener's UDP socket) over a Unix socket with `SCM_RIGHTS`. The successor serves on the very same sockets (same
//! accept queues, so no connection is refused or lost in between), says "ready", and only
//! then does the old process stop accepting, drain and exit. If the successor fails to start,
//! the old process keeps serving.

use std::io::{IoSlice, IoSliceMut, Read as _, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

/// Environment variable naming the Unix socket a successor fetches its sockets from.
pub(crate) const SOCKET_ENV: &str = "RAMPART_UPGRADE_SOCKET";

/// Most sockets one hand-over carries (the kernel's `SCM_MAX_FD` is 253).
const MAX_FDS: usize = 240;

/// How long the successor has to start and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary and arguments this process was started with (read at startup, before the file
/// can be replaced).
pub(crate) struct SelfExe {
    path: PathBuf,
    args: Vec<std::ffi::OsString>,
}

impl SelfExe {
    /// Records the current executable's path and arguments.
    pub(crate) fn capture() -> Self {
        let path = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rampart"));
        Self {
            path,
            args: std::env::args_os().skip(1).collect(),
        }
    }
}

/// The sockets a successor received, and the channel to tell its parent it is ready.
pub(crate) struct Inherited {
    pub(crate) sockets: Vec<(String, Vec<std::net::TcpListener>)>,
    parent: Option<UnixStream>,
}

impl Inherited {
    /// Tells the old process this one is serving (it then drains and exits).
    pub(crate) fn ready(&mut self) {
        if let Some(mut p) = self.parent.take() {
            let _ = p.write_all(b"ready\n");
        }
    }
}

/// Marks an HTTP/3 listener's UDP socket in the hand-over (`:` is in no listener name).
const UDP_PREFIX: &str = "udp:";

/// HTTP/3 listeners' UDP sockets as hand-over entries (the descriptors travel as any other).
pub(crate) fn udp_entries(
    sockets: Vec<(String, std::net::UdpSocket)>,
) -> Vec<(String, Vec<std::net::TcpListener>)> {
    sockets
        .into_iter()
        .map(|(name, socket)| {
            let fd = OwnedFd::from(socket);
            (
                format!("{UDP_PREFIX}{name}"),
                vec![std::net::TcpListener::from(fd)],
            )
        })
        .collect()
}

/// Takes the HTTP/3 listeners' UDP sockets out of what a successor received.
pub(crate) fn udp_sockets(
    received: &mut Vec<(String, Vec<std::net::TcpListener>)>,
) -> Vec<(String, std::net::UdpSocket)> {
    received
        .extract_if(.., |(name, _)| name.starts_with(UDP_PREFIX))
        .flat_map(|(name, sockets)| {
            let name = name[UDP_PREFIX.len()..].to_owned();
            sockets
                .into_iter()
                .map(move |s| (name.clone(), std::net::UdpSocket::from(OwnedFd::from(s))))
        })
        .collect()
}

/// In a successor (the environment names a hand-over socket): receives the listening sockets.
/// Otherwise: nothing inherited.
pub(crate) fn inherit() -> anyhow::Result<Inherited> {
    let Some(path) = std::env::var_os(SOCKET_ENV) else {
        return Ok(Inherited {
            sockets: Vec::new(),
            parent: None,
        });
    };
    let stream = UnixStream::connect(&path)
        .with_context(|| format!("upgrade: cannot reach the old process at {path:?}"))?;
    stream.set_read_timeout(Some(READY_TIMEOUT))?;
    let sockets = receive(&stream)?;
    tracing::info!(
        listeners = sockets.len(),
        "upgrade: took over the listening sockets"
    );
    Ok(Inherited {
        sockets,
        parent: Some(stream),
    })
}

/// Names and counts travel as text (`name count\n` per listener); the sockets in order as
/// `SCM_RIGHTS` in the same message.
fn receive(stream: &UnixStream) -> anyhow::Result<Vec<(String, Vec<std::net::TcpListener>)>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .context("upgrade: receiving the sockets")?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    let text = std::str::from_utf8(buf.get(..msg.bytes).unwrap_or_default())
        .context("upgrade: malformed hand-over")?;
    let mut fds = fds.into_iter();
    let mut out = Vec::new();
    for line in text.lines() {
        let (name, count) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow!("upgrade: malformed hand-over line {line:?}"))?;
        let count: usize = count.parse().context("upgrade: malformed socket count")?;
        let mut sockets = Vec::with_capacity(count);
        for _ in 0..count {
            let fd = fds
                .next()
                .ok_or_else(|| anyhow!("upgrade: fewer sockets than announced"))?;
            sockets.push(std::net::TcpListener::from(fd));
        }
        out.push((name.to_owned(), sockets));
    }
    Ok(out)
}

fn send(
    stream: &UnixStream,
    sockets: &[(String, Vec<std::net::TcpListener>)],
) -> anyhow::Result<()> {
    let mut text = String::new();
    let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
    for (name, list) in sockets {
        text.push_str(&format!("{name} {}\n", list.len()));
        fds.extend(list.iter().map(AsFd::as_fd));
    }
    if fds.len() > MAX_FDS {
        bail!(
            "upgrade: {} listening sockets, at most {MAX_FDS} can be handed over",
            fds.len()
        );
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        bail!("upgrade: cannot attach the sockets");
    }
    sendmsg(
        stream,
        &[IoSlice::new(text.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )
    .context("upgrade: sending the sockets")?;
    Ok(())
}

/// Starts the successor and hands it `sockets`; returns once it said it is ready (the caller
/// then drains and exits), or fails and leaves this process serving.
pub(crate) fn hand_over(
    exe: &SelfExe,
    sockets: &[(String, Vec<std::net::TcpListener>)],
) -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path = std::env::temp_dir().join(format!(
        "rampart-upgrade-{}-{nanos}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("upgrade: cannot bind {}", path.display()))?;
    let result = start_successor(exe, &path, &listener, sockets);
    let _ = std::fs::remove_file(&path);
    result
}

fn start_successor(
    exe: &SelfExe,
    path: &Path,
    listener: &UnixListener,
    sockets: &[(String, Vec<std::net::TcpListener>)],
) -> anyhow::Result<()> {
    let mut child = Command::new(&exe.path)
        .args(&exe.args)
        .env(SOCKET_ENV, path)
        .spawn()
        .with_context(|| format!("upgrade: cannot start {}", exe.path.display()))?;
    tracing::info!(pid = child.id(), binary = %exe.path.display(), "upgrade: successor started");
    let stream = match accept_from(listener, &mut child) {
        Ok(s) => s,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    send(&stream, sockets)?;
    stream.set_read_timeout(Some(READY_TIMEOUT))?;
    let mut answer = [0u8; 6];
    let ready = (&stream).read_exact(&mut answer).is_ok() && &answer == b"ready\n";
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        bail!("upgrade: the new process did not become ready; this one keeps serving");
    }
    // The successor outlives this process; it is reparented when we exit.
    drop(child);
    Ok(())
}

/// Accepts the successor's connection (and only its: checked by peer credentials).
fn accept_from(listener: &UnixListener, child: &mut Child) -> anyhow::Result<UnixStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                let cred = rustix::net::sockopt::socket_peercred(&stream)?;
                if u32::try_from(cred.pid.as_raw_nonzero().get()).ok() == Some(child.id()) {
                    return Ok(stream);
                }
                tracing::warn!("upgrade: ignored a connection from another process");
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(status) = child.try_wait()? {
            bail!("upgrade: the new process exited ({status}) before taking over");
        }
        if Instant::now() > deadline {
            bail!("upgrade: the new process did not connect in {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `rampart upgrade --pid PID`: asks the process to upgrade itself (SIGUSR2) and waits until it
/// has exited (its successor then serves).
pub(crate) fn signal_and_wait(pid: i32, timeout: Duration) -> anyhow::Result<()> {
    let target = rustix::process::Pid::from_raw(pid).ok_or_else(|| anyhow!("invalid pid {pid}"))?;
    rustix::process::kill_process(target, rustix::process::Signal::USR2)
        .with_context(|| format!("cannot signal process {pid}"))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if rustix::process::test_kill_process(target).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("process {pid} still runs after {timeout:?}: see its log for why the upgrade failed")
}
