//! A minimal DNS client: one TXT question to one configured server (RFC 1035), over UDP with
//! EDNS(0) and over TCP when the answer is truncated.
//!
//! Ownership verification needs nothing more than "which TXT strings does this name hold,
//! according to this server", so this is a few hundred lines with tests rather than a full
//! resolver library. A recursive server (the cluster DNS, a public resolver) follows CNAMEs
//! itself; every TXT record in the answer section is returned.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

const TYPE_TXT: u16 = 16;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// EDNS(0) payload size that avoids IP fragmentation (DNS Flag Day 2020).
const EDNS_PAYLOAD: u16 = 1232;

/// Why a lookup gave no answer. Never carries record contents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("{0} is not a valid DNS name")]
    InvalidName(String),
    #[error("no answer from {server} within {timeout_ms} ms")]
    Timeout { server: SocketAddr, timeout_ms: u64 },
    #[error("talking to {server}: {message}")]
    Io { server: SocketAddr, message: String },
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("the server answered {0}")]
    Rcode(&'static str),
}

/// A DNS server to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolver {
    pub server: SocketAddr,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Resolver {
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }

    /// The TXT strings of `name` (each record's character-strings joined). A name that does
    /// not exist, or holds no TXT record, gives an empty list.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let id = fastrand::u16(..);
        let query = encode_query(id, name)?;
        let mut last = DnsError::Timeout {
            server: self.server,
            timeout_ms: self.timeout.as_millis() as u64,
        };
        for _ in 0..self.attempts.max(1) {
            match self.udp(&query).await {
                Ok(bytes) => {
                    let response = parse_response(id, &bytes)?;
                    if !response.truncated {
                        return response.into_txt();
                    }
                    let bytes = self.tcp(&query).await?;
                    return parse_response(id, &bytes)?.into_txt();
                }
                Err(e @ DnsError::Timeout { .. }) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn udp(&self, query: &[u8]) -> Result<Vec<u8>, DnsError> {
        let io = |e: std::io::Error| DnsError::Io {
            server: self.server,
            message: e.to_string(),
        };
        let local: SocketAddr = if self.server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        // Connected: only datagrams from the server reach us.
        socket.connect(self.server).await.map_err(io)?;
        socket.send(query).await.map_err(io)?;
        let mut buffer = vec![0u8; usize::from(EDNS_PAYLOAD)];
        let read = tokio::time::timeout(self.timeout, socket.recv(&mut buffer))
            .await
            .map_err(|_| self.timeout_error())?
            .map_err(io)?;
        buffer.truncate(read);
        Ok(buffer)
    }

    async fn tcp(&self, query: &[u8]) -> Result<Vec<u8>, DnsError> {
        let io = |e: std::io::Error| DnsError::Io {
            server: self.server,
            message: e.to_string(),
        };
        let exchange = async {
            let mut stream = TcpStream::connect(self.server).await.map_err(io)?;
            let length = u16::try_from(query.len()).map_err(|_| DnsError::Malformed("query"))?;
            let mut framed = length.to_be_bytes().to_vec();
            framed.extend_from_slice(query);
            stream.write_all(&framed).await.map_err(io)?;
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).await.map_err(io)?;
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut body).await.map_err(io)?;
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timeout_error())?
    }

    fn timeout_error(&self) -> DnsError {
        DnsError::Timeout {
            server: self.server,
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }
}

/// The first `nameserver` of a resolv.conf, on port 53.
pub fn nameserver_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        .find_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Parses `host:port`, `[v6]:port` or a bare IP address (port 53).
pub fn parse_server(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// A query for the TXT records of `name`, recursion desired, with an EDNS(0) OPT record.
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let invalid = || DnsError::InvalidName(name.to_string());
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(invalid());
    }
    let mut out = Vec::with_capacity(name.len() + 30);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&0u16.to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&0u16.to_be_bytes()); // NSCOUNT
    out.extend_from_slice(&1u16.to_be_bytes()); // ARCOUNT (OPT)
    for label in name.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid());
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&TYPE_TXT.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT pseudo-record: root name, type OPT, class = payload size, TTL 0, no options.
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    Ok(out)
}

/// What a response said.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub rcode: u8,
    pub truncated: bool,
    pub txt: Vec<String>,
}

impl Response {
    fn into_txt(self) -> Result<Vec<String>, DnsError> {
        match self.rcode {
            0 => Ok(self.txt),
            3 => Ok(Vec::new()), // NXDOMAIN: no such name, so no record
            1 => Err(DnsError::Rcode("FORMERR")),
            2 => Err(DnsError::Rcode("SERVFAIL")),
            4 => Err(DnsError::Rcode("NOTIMP")),
            5 => Err(DnsError::Rcode("REFUSED")),
            _ => Err(DnsError::Rcode("an error")),
        }
    }
}

/// Parses a response to the query with `id`: its RCODE, TC bit and the TXT records of its
/// answer section.
pub fn parse_response(id: u16, bytes: &[u8]) -> Result<Response, DnsError> {
    let mut reader = Reader { bytes, at: 0 };
    if reader.u16()? != id {
        return Err(DnsError::Malformed("response id does not match the query"));
    }
    let flags = reader.u16()?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Malformed("not a response"));
    }
    let truncated = flags & 0x0200 != 0;
    let rcode = (flags & 0x000f) as u8;
    let questions = reader.u16()?;
    let answers = reader.u16()?;
    reader.u16()?; // authority
    reader.u16()?; // additional
    for _ in 0..questions {
        reader.skip_name()?;
        reader.take(4)?;
    }
    let mut txt = Vec::new();
    if truncated {
        // A truncated answer section may be cut anywhere; the caller retries over TCP.
        return Ok(Response {
            rcode,
            truncated,
            txt,
        });
    }
    for _ in 0..answers {
        reader.skip_name()?;
        let type_ = reader.u16()?;
        let class = reader.u16()?;
        reader.take(4)?; // TTL
        let length = usize::from(reader.u16()?);
        let data = reader.take(length)?;
        if type_ == TYPE_TXT && class == CLASS_IN {
            txt.push(character_strings(data)?);
        }
    }
    Ok(Response {
        rcode,
        truncated,
        txt,
    })
}

/// A TXT record's character-strings, joined (long values are split into 255-byte strings).
fn character_strings(mut data: &[u8]) -> Result<String, DnsError> {
    let mut value = Vec::new();
    while let Some((&length, rest)) = data.split_first() {
        let length = usize::from(length);
        if rest.len() < length {
            return Err(DnsError::Malformed("TXT string runs past its record"));
        }
        value.extend_from_slice(&rest[..length]);
        data = &rest[length..];
    }
    Ok(String::from_utf8_lossy(&value).into_owned())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(DnsError::Malformed("response ends early"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Skips a name: labels up to the root, or up to a compression pointer.
    fn skip_name(&mut self) -> Result<(), DnsError> {
        for _ in 0..128 {
            let length = self.take(1)?[0];
            match length & 0xc0 {
                0x00 if length == 0 => return Ok(()),
                0x00 => {
                    self.take(usize::from(length))?;
                }
                0xc0 => {
                    self.take(1)?;
                    return Ok(());
                }
                _ => return Err(DnsError::Malformed("unknown label type")),
            }
        }
        Err(DnsError::Malformed("name too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as a server builds it: the question echoed, then TXT answers whose owner
    /// is a compression pointer to the question's name.
    fn response(id: u16, flags: u16, txt: &[&[&str]]) -> Vec<u8> {
        let query = encode_query(id, "_landlord-challenge.shop.example.com").expect("query");
        let question_end = query.len() - 11; // without the OPT record
        let mut out = query[..question_end].to_vec();
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[6..8].copy_from_slice(&(txt.len() as u16).to_be_bytes());
        out[10..12].copy_from_slice(&0u16.to_be_bytes());
        for strings in txt {
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&TYPE_TXT.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&60u32.to_be_bytes());
            let data: Vec<u8> = strings
                .iter()
                .flat_map(|s| std::iter::once(s.len() as u8).chain(s.bytes()))
                .collect();
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(&data);
        }
        out
    }

    #[test]
    fn query_encodes_labels_type_txt_and_edns() {
        let q = encode_query(0xabcd, "a.example.com.").expect("query");
        assert_eq!(&q[..2], &[0xab, 0xcd]);
        assert_eq!(&q[2..4], &[0x01, 0x00], "recursion desired");
        assert_eq!(
            &q[12..31],
            b"\x01a\x07example\x03com\x00\x00\x10\x00\x01".as_slice()
        );
        assert_eq!(&q[31..], &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn invalid_names_are_refused() {
        for name in [
            "",
            "a..b",
            "bad name.com",
            &"x".repeat(64),
            &"a.".repeat(130),
        ] {
            assert!(
                matches!(encode_query(1, name), Err(DnsError::InvalidName(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn txt_answers_are_read_and_split_strings_joined() {
        let bytes = response(
            7,
            0x8180,
            &[&["landlord-domain-verification=", "abc"], &["other"]],
        );
        let r = parse_response(7, &bytes).expect("parsed");
        assert_eq!(r.rcode, 0);
        assert!(!r.truncated);
        assert_eq!(r.txt, ["landlord-domain-verification=abc", "other"]);
        assert_eq!(
            r.into_txt(),
            Ok(vec![
                "landlord-domain-verification=abc".to_string(),
                "other".to_string()
            ])
        );
    }

    #[test]
    fn nxdomain_is_no_record_and_refused_is_an_error() {
        let nx = parse_response(7, &response(7, 0x8183, &[])).expect("parsed");
        assert_eq!(nx.into_txt(), Ok(vec![]));
        let refused = parse_response(7, &response(7, 0x8185, &[])).expect("parsed");
        assert_eq!(refused.into_txt(), Err(DnsError::Rcode("REFUSED")));
    }

    #[test]
    fn mismatched_ids_queries_and_short_responses_are_malformed() {
        let bytes = response(7, 0x8180, &[&["v"]]);
        assert!(matches!(
            parse_response(8, &bytes),
            Err(DnsError::Malformed(_))
        ));
        let mut query = bytes.clone();
        query[2] &= 0x7f;
        assert!(matches!(
            parse_response(7, &query),
            Err(DnsError::Malformed(_))
        ));
        for cut in [3, 13, bytes.len() - 1] {
            assert!(
                matches!(
                    parse_response(7, &bytes[..cut]),
                    Err(DnsError::Malformed(_))
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn truncated_responses_ask_for_tcp() {
        let r = parse_response(7, &response(7, 0x8380, &[&["v"]])).expect("parsed");
        assert!(r.truncated);
    }

    #[test]
    fn servers_and_resolv_conf() {
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some(([127, 0, 0, 1], 5353).into())
        );
        assert_eq!(
            parse_server("10.96.0.10"),
            Some(([10, 96, 0, 10], 53).into())
        );
        assert_eq!(parse_server("dns.example.com"), None);
        let conf =
            "# generated\nsearch svc.cluster.local\nnameserver  10.96.0.10\nnameserver 8.8.8.8\n";
        assert_eq!(
            nameserver_from_resolv_conf(conf),
            Some(([10, 96, 0, 10], 53).into())
        );
        assert_eq!(nameserver_from_resolv_conf("search x\n"), None);
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        // A bound socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let resolver = Resolver {
            server: silent.local_addr().expect("addr"),
            timeout: Duration::from_millis(100),
            attempts: 2,
        };
        assert!(matches!(
            resolver.txt("a.example.com").await,
            Err(DnsError::Timeout { .. })
        ));
    }
}
