//! A minimal Redis client for tests (RESP2 over a loopback TCP connection):
//! send a command, read its reply. Enough to drive a real `redis-server`
//! started with [`super::peer`].
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// A Redis reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n` bulk string (`None` for `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n` array (`None` for `*-1`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The integer of an `Int` reply, or of a bulk string holding one.
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).expect("a number"),
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// The elements of an array reply.
    pub fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(a)) => a,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
}

/// One connection to a Redis server.
pub struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Redis {
    /// Connects to `127.0.0.1:port`.
    pub fn connect(port: u16) -> Redis {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis-server");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Redis { reader: BufReader::new(stream.try_clone().expect("clone stream")), writer: stream }
    }

    /// Sends `args` as one command and returns its reply (an error reply
    /// is returned, not a panic).
    pub fn call(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("write to redis-server");
        self.read()
    }

    /// [`Redis::call`] with string arguments.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        self.call(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>())
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read from redis-server");
        assert!(line.ends_with("\r\n"), "truncated reply from redis-server: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn read(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        let n = || rest.parse::<i64>().expect("a length");
        match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(n()),
            "$" if n() < 0 => Reply::Bulk(None),
            "$" => {
                let mut buf = vec![0; n() as usize + 2];
                self.reader.read_exact(&mut buf).expect("read bulk string");
                buf.truncate(buf.len() - 2);
                Reply::Bulk(Some(buf))
            }
            "*" if n() < 0 => Reply::Array(None),
            "*" => Reply::Array(Some((0..n()).map(|_| self.read()).collect())),
            other => panic!("unknown reply type {other:?} from redis-server: {line:?}"),
        }
    }
}
