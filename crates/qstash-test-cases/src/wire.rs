//! The wire driver every suite uses: a blocking HTTP/1.1 client on a plain [`TcpStream`],
//! with no web framework, that sends a [`Case`] exactly as its [`Framing`] says and reads the
//! answer back as a [`Got`].
//!
//! It writes a whole request before it reads anything, as most clients do (Node's `fetch`
//! among them): when a server answers early and then closes with the rest of the body
//! unread, the kernel resets the connection and this client sees what those clients see, a
//! write or read error instead of the answer. Such an error fails the case.
//!
//! [`Client`] keeps its connection across requests until an answer says
//! `Connection: close`, so a request lost on a kept-alive connection fails too.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::{Case, Framing, Got};

/// How long a read waits for the server before the case fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The send buffer of the driver's sockets: 16 KiB (the kernel may double it).
pub const SEND_BUFFER: usize = 16 * 1024;

/// The bytes of `case` as a request to `host`: its method, target and headers, the
/// `Content-Length` (or `Transfer-Encoding: chunked`) its framing says, and its body
/// (in chunks of 1000 bytes when chunked).
#[must_use]
pub fn request_bytes(case: &Case, host: &str) -> Vec<u8> {
    let mut wire = format!(
        "{} {} HTTP/1.1\r\nhost: {host}\r\n",
        case.method, case.target
    )
    .into_bytes();
    for (name, value) in &case.headers {
        wire.extend_from_slice(name.as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value);
        wire.extend_from_slice(b"\r\n");
    }
    match case.content_length() {
        Some(len) => wire.extend_from_slice(format!("content-length: {len}\r\n").as_bytes()),
        None => wire.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    wire.extend_from_slice(b"\r\n");
    if case.framing == Framing::Chunked {
        for chunk in case.body.chunks(1000) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    } else {
        wire.extend_from_slice(&case.body);
    }
    wire
}

/// Sends `case` on a fresh connection and reads its one answer.
///
/// # Errors
///
/// The connection failed, was reset or closed before the whole answer, or the answer is not
/// HTTP/1.1 this driver reads (a message naming what went wrong).
pub fn send(addr: SocketAddr, case: &Case) -> Result<Got, String> {
    Client::connect(addr)
        .map_err(|e| format!("connect to {addr}: {e}"))?
        .send(case)
}

/// Sends `wire` (a whole request, as is) on a fresh connection and reads its one answer.
///
/// # Errors
///
/// As [`send`].
pub fn exchange(addr: SocketAddr, wire: &[u8]) -> Result<Got, String> {
    let mut client = Client::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    client.write(wire)?;
    client.read_answer()
}

/// A keep-alive HTTP/1.1 connection to one server.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    stream: TcpStream,
    /// Bytes read past the last answer.
    buffered: Vec<u8>,
}

impl Client {
    /// Connects to `addr`, with reads bounded by [`READ_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// The connection failed.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // A small send buffer, as on a real network where only a window's worth is in
        // flight: a large body is still being written when an early answer comes, so a
        // server that then closes with unread bytes resets the write, as Node's `fetch` sees
        // it. (On loopback the kernel would otherwise take 2 MiB at once, and the answer would
        // survive the reset in the receive queue.)
        socket.set_send_buffer_size(SEND_BUFFER)?;
        socket.connect(&addr.into())?;
        let stream = TcpStream::from(socket);
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr,
            stream,
            buffered: Vec::new(),
        })
    }

    /// Writes the whole of `case` ([`request_bytes`]), then reads its answer.
    ///
    /// # Errors
    ///
    /// As [`send`]: a reset while writing is an error, not a cue to read.
    pub fn send(&mut self, case: &Case) -> Result<Got, String> {
        self.write_case(case)?;
        self.read_answer()
    }

    /// Writes the whole of `case`, and reads nothing.
    ///
    /// # Errors
    ///
    /// The server reset or closed the connection while the request was written.
    pub fn write_case(&mut self, case: &Case) -> Result<(), String> {
        let wire = request_bytes(case, &self.addr.to_string());
        self.write(&wire)
    }

    /// Writes `wire` whole.
    ///
    /// # Errors
    ///
    /// The server reset or closed the connection while it was written.
    pub fn write(&mut self, wire: &[u8]) -> Result<(), String> {
        self.stream.write_all(wire).map_err(|e| {
            format!(
                "the connection failed while the request was written ({} bytes): {e}",
                wire.len()
            )
        })
    }

    /// Reads one answer: its head, then its body (`Content-Length` or chunked).
    ///
    /// # Errors
    ///
    /// The connection was reset, timed out or closed before the whole answer, or the answer
    /// is malformed.
    pub fn read_answer(&mut self) -> Result<Got, String> {
        let end = loop {
            if let Some(at) = find(&self.buffered, b"\r\n\r\n") {
                break at;
            }
            if self.fill()? == 0 {
                return Err(format!(
                    "the connection closed before the answer's head: {:?}",
                    String::from_utf8_lossy(&self.buffered)
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buffered[..end]).into_owned();
        self.buffered.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
            self.take(len)?
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked()?
        } else {
            Vec::new()
        };
        Ok(Got {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Whether the server closed the connection (cleanly or with a reset) with no bytes
    /// beyond the last answer.
    pub fn closed_by_server(&mut self) -> bool {
        if !self.buffered.is_empty() {
            return false;
        }
        matches!(self.fill(), Ok(0) | Err(_))
    }

    /// The connection, for a test that writes on it from another thread
    /// ([`TcpStream::try_clone`]) while this client reads.
    #[must_use]
    pub const fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Closes the writing half, as a client that has sent everything does.
    ///
    /// # Errors
    ///
    /// The shutdown failed.
    pub fn finish_writing(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    fn fill(&mut self) -> Result<usize, String> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .map_err(|e| format!("the connection failed while the answer was read: {e}"))?;
        self.buffered.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn take(&mut self, len: usize) -> Result<Vec<u8>, String> {
        while self.buffered.len() < len {
            if self.fill()? == 0 {
                return Err("the connection closed in the answer's body".into());
            }
        }
        Ok(self.buffered.drain(..len).collect())
    }

    fn line(&mut self) -> Result<String, String> {
        let at = loop {
            if let Some(at) = find(&self.buffered, b"\r\n") {
                break at;
            }
            if self.fill()? == 0 {
                return Err("the connection closed in a chunked answer".into());
            }
        };
        let line = String::from_utf8_lossy(&self.buffered[..at]).into_owned();
        self.buffered.drain(..at + 2);
        Ok(line)
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(size)?);
            if !self.line()?.is_empty() {
                return Err("a chunk longer than its size".into());
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;
    use crate::cases;

    /// A server that reads `read` bytes of the request, answers `answer`, then closes.
    fn server(read: usize, answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut got = 0;
            let mut buf = [0u8; 4096];
            while got < read {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            stream.write_all(answer).unwrap();
        });
        addr
    }

    fn big_case() -> Case {
        let mut case = cases(0).remove(0);
        case.body = vec![b'x'; 2 * 1024 * 1024];
        case.framing = Framing::Exact;
        case
    }

    #[test]
    fn reads_a_sized_and_a_chunked_answer_on_one_connection() {
        let answers: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let addr = server(1, answers);
        let mut client = Client::connect(addr).unwrap();
        client.write(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let first = client.read_answer().unwrap();
        assert_eq!((first.status, first.body.as_str()), (200, "ok"));
        let second = client.read_answer().unwrap();
        assert_eq!((second.status, second.body.as_str()), (401, "abcde"));
        assert_eq!(second.headers[0].0, "transfer-encoding");
        assert!(client.closed_by_server());
    }

    #[test]
    fn the_request_is_the_case_as_framed() {
        let mut case = big_case();
        case.body = b"0123456789".repeat(150);
        case.framing = Framing::Chunked;
        let wire = String::from_utf8(request_bytes(&case, "h")).unwrap();
        assert!(
            wire.contains("\r\ntransfer-encoding: chunked\r\n\r\n3e8\r\n"),
            "{wire}"
        );
        assert!(wire.ends_with("\r\n0\r\n\r\n"), "{wire}");
        case.framing = Framing::Declared(99);
        let wire = String::from_utf8(request_bytes(&case, "h")).unwrap();
        assert!(
            wire.contains("\r\ncontent-length: 99\r\n\r\n0123"),
            "{wire}"
        );
    }
}
