//! The plain-text part of an email derived from its HTML when a campaign has no `.txt`
//! template: block elements become line breaks, links keep their target as "text (url)",
//! `<head>`, `<style>` and `<script>` are dropped and entities decoded.

/// Converts rendered email HTML to readable plain text.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    let mut link: Option<String> = None;
    let mut link_text_start = 0usize;
    while let Some(lt) = rest.find('<') {
        let (text, tail) = rest.split_at(lt);
        if skip_until.is_none() {
            push_text(&mut out, text);
        }
        let Some(gt) = tail.find('>') else {
            rest = "";
            break;
        };
        let tag = &tail[1..gt];
        rest = &tail[gt + 1..];
        if tag.starts_with("!--") {
            // Comment: skip to its end.
            if let Some(end) = tail.find("-->") {
                rest = &tail[end + 3..];
            }
            continue;
        }
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(until) = skip_until {
            if closing && name == until {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "head" | "style" | "script" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "head" => "head",
                    "style" => "style",
                    "script" => "script",
                    _ => "title",
                })
            }
            "br" => out.push('\n'),
            "p" | "div" | "tr" | "table" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul"
            | "ol" | "section" | "header" | "footer" | "blockquote" => {
                newline(&mut out, 2);
            }
            "li" if !closing => {
                newline(&mut out, 1);
                out.push_str("- ");
            }
            "td" | "th" if closing => out.push(' '),
            "hr" => {
                newline(&mut out, 1);
                out.push_str("----");
                newline(&mut out, 1);
            }
            "img" => {
                if let Some(alt) = attr(tag, "alt").filter(|a| !a.trim().is_empty()) {
                    push_text(&mut out, &alt);
                }
            }
            "a" if !closing => {
                link = attr(tag, "href");
                link_text_start = out.len();
            }
            "a" => {
                if let Some(href) = link.take() {
                    let label = out[link_text_start..].trim().to_string();
                    let plain = href.starts_with("http") && label != href;
                    if plain && !href.contains("/o/") {
                        if label.is_empty() {
                            out.push_str(&href);
                        } else {
                            out.push_str(" (");
                            out.push_str(&href);
                            out.push(')');
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if skip_until.is_none() {
        push_text(&mut out, rest);
    }
    // Tidy: trim lines, at most one blank line in a row.
    let mut tidy = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let l = line.trim();
        if l.is_empty() {
            blank += 1;
            if blank > 1 || tidy.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        tidy.push_str(l);
        tidy.push('\n');
    }
    tidy.trim_end().to_string()
}

fn newline(out: &mut String, n: usize) {
    let have = out.chars().rev().take_while(|c| *c == '\n').count();
    for _ in have..n {
        out.push('\n');
    }
}

fn push_text(out: &mut String, text: &str) {
    let decoded = decode_entities(text);
    let mut last_space = out.ends_with(' ') || out.ends_with('\n') || out.is_empty();
    for c in decoded.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
        } else {
            out.push(if c == '\u{a0}' { ' ' } else { c });
            last_space = false;
        }
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at > 0 && lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let vstart = tag.len() - after.len() + 1;
        let v = tag[vstart..].trim_start();
        let value = match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or(""),
            _ => v.split(|c: char| c.is_whitespace()).next().unwrap_or(""),
        };
        return Some(decode_entities(value));
    }
    None
}

/// Decodes the HTML entities templates and escaping produce (named basics and numeric).
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let ent = &tail[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                "middot" => Some('·'),
                "copy" => Some('©'),
                "reg" => Some('®'),
                "hellip" => Some('…'),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "euro" => Some('€'),
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &tail[e + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_links_entities_and_hidden_parts() {
        let html = r#"<html><head><title>T</title><style>p{color:red}</style></head>
<body><h1>Hello &amp; welcome</h1><p>Hi Zo&#235;,<br>come back</p>
<p><a href="https://shop.example/x?a=1&amp;b=2">Shop now</a></p>
<ul><li>one</li><li>two</li></ul><img src="https://t/o/abc" alt=""><!-- hidden --></body></html>"#;
        let t = html_to_text(html);
        assert_eq!(
            t,
            "Hello & welcome\n\nHi Zoë,\ncome back\n\nShop now (https://shop.example/x?a=1&b=2)\n\n- one\n- two"
        );
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a &lt;b&gt; &#x41; &bogus; &"),
            "a <b> A &bogus; &"
        );
    }
}
