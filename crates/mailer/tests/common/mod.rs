//! Helpers shared by the mailer's integration tests: decoding MIME bodies to search them.
#![allow(dead_code)]

/// Decodes quoted-printable and base64 parts enough to search the bodies.
pub fn decode_parts(raw: &str) -> String {
    let mut out = String::new();
    for part in raw.split("\r\n--") {
        let (head, body) = part.split_once("\r\n\r\n").unwrap_or(("", part));
        let lower = head.to_ascii_lowercase();
        if lower.contains("content-transfer-encoding: base64") {
            use base64_decode::decode;
            out.push_str(&String::from_utf8_lossy(&decode(body)));
        } else if lower.contains("quoted-printable") {
            out.push_str(&qp(body));
        } else {
            out.push_str(body);
        }
        out.push('\n');
    }
    out
}

pub fn qp(s: &str) -> String {
    let mut bytes = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() + 1 {
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if let (Some(h), Some(l)) = (b.get(i + 1), b.get(i + 2)) {
                if let Ok(v) = u8::from_str_radix(&format!("{}{}", *h as char, *l as char), 16) {
                    bytes.push(v);
                    i += 3;
                    continue;
                }
            }
        }
        bytes.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

mod base64_decode {
    pub fn decode(s: &str) -> Vec<u8> {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let mut buf = 0u32;
        let mut bits = 0;
        for c in s.bytes() {
            let Some(v) = T.iter().position(|&t| t == c) else {
                continue;
            };
            buf = (buf << 6) | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buf >> bits) as u8);
                buf &= (1 << bits) - 1;
            }
        }
        out
    }
}
