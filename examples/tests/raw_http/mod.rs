//! A blocking HTTP/1.1 client for tests against servers in other processes: one request per
//! connection, the answer read whole (`Content-Length` or chunked), as the conformance table's
//! [`Got`].

// Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use qstash_test_cases::{Case, Framing, Got};

/// Sends `case` on a fresh connection and reads the one answer.
pub(crate) fn send(addr: SocketAddr, case: &Case) -> Result<Got, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\n",
        case.method, case.target
    )
    .into_bytes();
    for (name, value) in &case.headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    match case.content_length() {
        Some(len) => head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes()),
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"\r\n");
    let mut wire = head;
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
    exchange_on(&mut stream, &wire)
}

/// Sends `wire` (a whole request) on a fresh connection and reads the one answer.
pub(crate) fn exchange(addr: SocketAddr, wire: &[u8]) -> Result<Got, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    exchange_on(&mut stream, wire)
}

fn exchange_on(stream: &mut TcpStream, wire: &[u8]) -> Result<Got, String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    // A refusal before the body may close the connection while this is still being written.
    let _ = stream.write_all(wire);
    read_answer(stream)
}

fn read_answer(stream: &mut TcpStream) -> Result<Got, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "EOF before the answer's head: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut rest = buf.split_off(end + 4);
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
    let mut more = |rest: &mut Vec<u8>| -> Result<(), String> {
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("EOF in the answer's body".into());
        }
        rest.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    let body = if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
        while rest.len() < len {
            more(&mut rest)?;
        }
        rest.truncate(len);
        rest
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line = loop {
                if let Some(at) = find(&rest, b"\r\n") {
                    break at;
                }
                more(&mut rest)?;
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line]).trim(), 16)
                .map_err(|e| e.to_string())?;
            rest.drain(..line + 2);
            while rest.len() < size + 2 {
                more(&mut rest)?;
            }
            body.extend(rest.drain(..size));
            rest.drain(..2);
            if size == 0 {
                break body;
            }
        }
    } else {
        Vec::new()
    };
    Ok(Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
