//! CSS inlining at template compile time. The CSS of an email does not depend on the recipient,
//! so instead of inlining every rendered message, [`compile`] inlines the template itself once:
//! the campaign's HTML template is flattened (`extends`/`block`/`include` resolved into one
//! source), every tera tag is replaced by a placeholder that the HTML parser keeps in place
//! (a private-use character sequence in text and attribute values, a comment for `{% %}` tags
//! between elements), the document goes through the same inliner as a rendered message would,
//! and the placeholders are put back as tera tags. The result is one tera template whose output
//! is what inlining the rendered message would have produced, byte for byte.
//!
//! Byte identity needs the values to come out as the inliner's serializer writes text: every
//! `{{ expr }}` becomes `{{ (expr) | __retain_text }}` (or `__retain_attr` inside an attribute
//! value), filters that escape the value the way the HTML serializer escapes the parsed text
//! (`&`, `<`, `>`, U+00A0 in text; `&`, `"`, U+00A0 in attributes). A value the parser would
//! have changed (a carriage return, a NUL, markup in a string marked safe) makes that one
//! render fail, and [`crate::templates::TemplateSet::render`] then inlines that message the old
//! way.
//!
//! Compile-time inlining is only sound when the control flow of the template cannot change
//! which CSS rule matches an element, or how the HTML parser builds the tree. [`compile`]
//! checks that and refuses otherwise (the set then inlines every message):
//! - selectors use types, classes, ids, attributes and the descendant/child combinators only
//!   (no `+`, `~`, `:first-child`, `:nth-*`, `:empty`, `:has()`, `:lang()`…); classes, ids
//!   and inline `style` attributes are static, and no attribute with a tera tag is named by an
//!   attribute selector;
//! - the `{% if %}`/`{% for %}` tags of one construct sit under the same parent element (each
//!   branch is balanced HTML), nothing the parser moves (foster-parented text in tables,
//!   reconstructed formatting elements, text that opens an implied `<body>`) is near a tag —
//!   checked by numbering every tag, element and text run in source order and requiring the
//!   same order, each number once, after parsing;
//! - no tera tag inside `<style>`, `<script>`, `<pre>`, `<textarea>`, comments, tag names,
//!   unquoted attribute values, SVG/MathML; no `set`, `filter`, `raw`, macros, components,
//!   `break`/`continue`, `super()`.

use std::fmt::Write as _;

use tera::{Kwargs, State, TeraResult, Value};

/// Start and end of a tag placeholder (private use area).
const P0: char = '\u{E000}';
const P1: char = '\u{E001}';
/// Start and end of a text-run marker.
const M0: char = '\u{E002}';
const M1: char = '\u{E003}';
const MARK_ATTR: &str = "data-retain-mark";
/// Name of the filters that write a value as the serializer writes text / attribute values.
pub(crate) const TEXT_FILTER: &str = "__retain_text";
pub(crate) const ATTR_FILTER: &str = "__retain_attr";
/// The message a value-filter fails with when the message must be inlined the old way.
pub(crate) const PER_MESSAGE: &str = "value needs per-message CSS inlining";

/// One piece of a lexed template.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Text(String),
    /// `{{ expr }}`: the expression.
    Var(String),
    /// `{% … %}`: its content, keyword first.
    Tag(String),
}

/// Splits a tera source into text and tags, applying tera's whitespace control (`{%-`, `-%}`…)
/// the way tera's lexer does (a trailing `-` trims the next piece of text, however far).
fn lex(src: &str) -> Result<Vec<Seg>, String> {
    let mut out: Vec<Seg> = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    loop {
        let next = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|d| rest.find(d).map(|i| (i, *d)))
            .min_by_key(|(i, _)| *i);
        let Some((i, delim)) = next else {
            push_text(&mut out, rest, &mut trim_next, false);
            return Ok(out);
        };
        let after = &rest[i + 2..];
        let ws_left = after.starts_with('-');
        push_text(&mut out, &rest[..i], &mut trim_next, ws_left);
        let body = if ws_left { &after[1..] } else { after };
        let end = match delim {
            "{#" => "#}",
            "{{" => "}}",
            _ => "%}",
        };
        let close = if delim == "{#" {
            body.find(end).ok_or("unclosed comment")?
        } else {
            find_close(body, end).ok_or("unclosed tag")?
        };
        let mut inner = &body[..close];
        let ws_right = inner.ends_with('-');
        if ws_right {
            inner = &inner[..inner.len() - 1];
        }
        if inner.contains(['{', '}']) && delim != "{#" {
            // Map literals and nested braces: tera's lexer and ours could disagree.
            return Err("braces inside a tag".into());
        }
        match delim {
            "{{" => out.push(Seg::Var(inner.trim().to_string())),
            "{%" => out.push(Seg::Tag(inner.trim().to_string())),
            _ => {}
        }
        trim_next = ws_right;
        rest = &body[close + 2..];
    }
}

fn push_text(out: &mut Vec<Seg>, text: &str, trim_next: &mut bool, trim_end: bool) {
    let mut t = text;
    if *trim_next && !t.is_empty() {
        t = t.trim_start();
        *trim_next = false;
    }
    if trim_end {
        t = t.trim_end();
    }
    if !t.is_empty() {
        out.push(Seg::Text(t.to_string()));
    }
}

/// Position of `end` in a tag body, outside string literals.
fn find_close(body: &str, end: &str) -> Option<usize> {
    let b = body.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) => {
                if c == b'\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == b'"' || c == b'\'' || c == b'`' {
                    quote = Some(c);
                } else if body[i..].starts_with(end) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn keyword(tag: &str) -> &str {
    tag.split(|c: char| c.is_whitespace()).next().unwrap_or("")
}

/// The quoted template name of `extends "x"` / `include "x"`.
fn quoted_name(tag: &str) -> Result<String, String> {
    let rest = tag[keyword(tag).len()..].trim();
    let q = rest.chars().next().ok_or("missing template name")?;
    if !matches!(q, '"' | '\'' | '`') {
        return Err(format!("unsupported `{tag}`"));
    }
    let inner = &rest[1..];
    let end = inner.find(q).ok_or("unclosed string")?;
    if !inner[end + 1..].trim().is_empty() {
        return Err(format!("unsupported `{tag}`"));
    }
    Ok(inner[..end].to_string())
}

/// A parsed template: text, values, control tags, and blocks.
#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Var(String),
    Ctl(String),
    Block(String, Vec<Node>),
    Include(String),
}

struct Parsed {
    parent: Option<String>,
    nodes: Vec<Node>,
}

fn parse(src: &str) -> Result<Parsed, String> {
    let segs = lex(src)?;
    let mut parent = None;
    // Stack of open blocks: (name, nodes before it).
    let mut stack: Vec<(String, Vec<Node>)> = Vec::new();
    let mut cur: Vec<Node> = Vec::new();
    for s in segs {
        match s {
            Seg::Text(t) => cur.push(Node::Text(t)),
            Seg::Var(v) => {
                if v.contains("super(") {
                    return Err("`super()`".into());
                }
                cur.push(Node::Var(v));
            }
            Seg::Tag(t) => match keyword(&t) {
                "extends" => {
                    if parent.is_some() {
                        return Err("two `extends`".into());
                    }
                    parent = Some(quoted_name(&t)?);
                }
                "block" => {
                    let name = t["block".len()..].trim().to_string();
                    stack.push((name, std::mem::take(&mut cur)));
                }
                "endblock" => {
                    let (name, before) = stack.pop().ok_or("`endblock` without `block`")?;
                    let body = std::mem::replace(&mut cur, before);
                    cur.push(Node::Block(name, body));
                }
                "include" => cur.push(Node::Include(quoted_name(&t)?)),
                "if" | "elif" | "else" | "endif" | "for" | "endfor" => cur.push(Node::Ctl(t)),
                other => return Err(format!("`{{% {other} %}}`")),
            },
        }
    }
    if !stack.is_empty() {
        return Err("unclosed block".into());
    }
    Ok(Parsed { parent, nodes: cur })
}

fn collect_blocks(nodes: &[Node], into: &mut Vec<(String, Vec<Node>)>) {
    for n in nodes {
        if let Node::Block(name, body) = n {
            if !into.iter().any(|(k, _)| k == name) {
                into.push((name.clone(), body.clone()));
            }
            collect_blocks(body, into);
        }
    }
}

/// A flattened template piece.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Text(String),
    Var(String),
    Ctl(String),
}

fn source_of<'a>(sources: &'a [(String, String)], name: &str) -> Result<&'a str, String> {
    sources
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.as_str())
        .ok_or_else(|| format!("template `{name}` not found"))
}

/// Resolves inheritance and includes into one list of pieces.
fn flatten(sources: &[(String, String)], name: &str) -> Result<Vec<Item>, String> {
    let mut chain = Vec::new();
    let mut current = name.to_string();
    loop {
        if chain.len() > 8 {
            return Err("inheritance too deep".into());
        }
        let p = parse(source_of(sources, &current)?)?;
        let parent = p.parent.clone();
        chain.push(p);
        match parent {
            Some(next) => current = next,
            None => break,
        }
    }
    // Most-derived definition of each block first.
    let mut blocks = Vec::new();
    for p in &chain {
        if p.parent.is_some() {
            // A child template renders nothing outside its blocks.
            for n in &p.nodes {
                match n {
                    Node::Block(..) => {}
                    Node::Text(t) if t.trim().is_empty() => {}
                    _ => return Err("content outside blocks in a child template".into()),
                }
            }
        }
        collect_blocks(&p.nodes, &mut blocks);
    }
    let root = chain.last().ok_or("empty chain")?;
    let mut out = Vec::new();
    emit(&root.nodes, &blocks, sources, &mut out, 0)?;
    Ok(out)
}

fn emit(
    nodes: &[Node],
    blocks: &[(String, Vec<Node>)],
    sources: &[(String, String)],
    out: &mut Vec<Item>,
    depth: usize,
) -> Result<(), String> {
    if depth > 16 {
        return Err("nesting too deep".into());
    }
    for n in nodes {
        match n {
            Node::Text(t) => out.push(Item::Text(t.clone())),
            Node::Var(v) => out.push(Item::Var(v.clone())),
            Node::Ctl(c) => out.push(Item::Ctl(c.clone())),
            Node::Block(name, body) => {
                let body = blocks
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, b)| b)
                    .unwrap_or(body);
                emit(body, blocks, sources, out, depth + 1)?;
            }
            Node::Include(name) => {
                let p = parse(source_of(sources, name)?)?;
                if p.parent.is_some() {
                    return Err("an included template extends another".into());
                }
                let mut inner = Vec::new();
                collect_blocks(&p.nodes, &mut inner);
                emit(&p.nodes, &inner, sources, out, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// What a number in the protected document stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mark {
    /// Flattened item index (a `Var` or a `Ctl`).
    Tag(usize),
    Element,
    TextRun,
}

const RAW_TEXT: &[&str] = &[
    "style",
    "script",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];

struct Protected {
    html: String,
    marks: Vec<Mark>,
    /// Whether the CSS has attribute selectors.
    attr_selectors: bool,
}

fn is_mark_char(c: char) -> bool {
    (P0..=M1).contains(&c)
}

/// Builds the document the inliner sees: placeholders for tags, numbered elements and text runs.
fn protect(items: &[Item]) -> Result<Protected, String> {
    // The source with `P0 index P1` for every tag.
    let mut src = String::new();
    for (i, it) in items.iter().enumerate() {
        match it {
            Item::Text(t) => {
                if t.contains(is_mark_char) || t.contains('\0') || t.contains(MARK_ATTR) {
                    return Err("reserved characters in the template".into());
                }
                src.push_str(t);
            }
            Item::Var(_) | Item::Ctl(_) => {
                let _ = write!(src, "{P0}{i}{P1}");
            }
        }
    }
    let mut out = String::with_capacity(src.len() * 2);
    let mut marks: Vec<Mark> = Vec::new();
    let mut css = String::new();
    let b = src.as_bytes();
    let mut i = 0;
    let mut run_marked = false;
    // Reads a placeholder at `i`: (item index, length in bytes).
    let placeholder = |i: usize| -> Option<(usize, usize)> {
        let s = &src[i..];
        let rest = s.strip_prefix(P0)?;
        let end = rest.find(P1)?;
        let n = rest[..end].parse().ok()?;
        Some((n, P0.len_utf8() + end + P1.len_utf8()))
    };
    let hazard_before = |text: &str| -> Result<(), String> {
        if text.ends_with('\r') || text.ends_with('<') || text.ends_with("</") {
            return Err("a tag right after `<` or a carriage return".into());
        }
        if let Some(amp) = text.rfind('&') {
            if text[amp + 1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '#')
            {
                return Err("a tag right after an unterminated character reference".into());
            }
        }
        Ok(())
    };
    while i < b.len() {
        if let Some((n, len)) = placeholder(i) {
            hazard_before(&src[..i])?;
            let s = marks.len();
            marks.push(Mark::Tag(n));
            match &items[n] {
                Item::Ctl(_) => {
                    let _ = write!(out, "<!--{P0}{s}{P1}-->");
                }
                _ => {
                    let _ = write!(out, "{P0}{s}{P1}");
                }
            }
            run_marked = false;
            i += len;
            continue;
        }
        let c = b[i];
        if c == b'<' {
            let rest = &src[i..];
            if let Some(body) = rest.strip_prefix("<!--") {
                let end = body.find("-->").ok_or("unclosed comment")? + 4 + 3;
                if rest[..end].contains(is_mark_char) {
                    return Err("a tag inside an HTML comment".into());
                }
                out.push_str(&rest[..end]);
                i += end;
                run_marked = false;
                continue;
            }
            if rest.starts_with("<!") || rest.starts_with("<?") {
                let end = rest.find('>').ok_or("unclosed declaration")? + 1;
                if rest[..end].contains(is_mark_char) {
                    return Err("a tag inside a declaration".into());
                }
                out.push_str(&rest[..end]);
                i += end;
                run_marked = false;
                continue;
            }
            let closing = rest.starts_with("</");
            let name_start = if closing { 2 } else { 1 };
            let first = rest[name_start..].chars().next();
            if first.is_some_and(is_mark_char) {
                return Err("a tag in a tag name".into());
            }
            if !first.is_some_and(|c| c.is_ascii_alphabetic()) {
                // A lone `<` is text.
                if !run_marked {
                    let _ = write!(out, "{M0}{}{M1}", marks.len());
                    marks.push(Mark::TextRun);
                    run_marked = true;
                }
                out.push('<');
                i += 1;
                continue;
            }
            let name_len = rest[name_start..]
                .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
                .unwrap_or(rest.len() - name_start);
            let name = rest[name_start..name_start + name_len].to_ascii_lowercase();
            if name.contains(is_mark_char) {
                return Err("a tag in a tag name".into());
            }
            if name == "svg" || name == "math" || name == "template" {
                return Err(format!("<{name}> content"));
            }
            run_marked = false;
            if closing {
                let end = rest.find('>').ok_or("unclosed end tag")? + 1;
                if rest[..end].contains(is_mark_char) {
                    return Err("a tag inside an end tag".into());
                }
                out.push_str(&rest[..end]);
                i += end;
                continue;
            }
            // Start tag: the name, our number, then the attributes.
            out.push_str(&rest[..name_start + name_len]);
            let _ = write!(out, " {MARK_ATTR}=\"{}\"", marks.len());
            marks.push(Mark::Element);
            let mut j = i + name_start + name_len;
            loop {
                let Some(ch) = src[j..].chars().next() else {
                    return Err("unclosed start tag".into());
                };
                if ch == '>' {
                    out.push('>');
                    j += 1;
                    break;
                }
                if ch.is_ascii_whitespace() || ch == '/' {
                    out.push(ch);
                    j += 1;
                    continue;
                }
                if is_mark_char(ch) {
                    return Err("a tag inside a start tag, outside an attribute value".into());
                }
                // Attribute name.
                let an_len = src[j..]
                    .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>' || c == '=')
                    .unwrap_or(src.len() - j);
                let an_len = an_len.max(1);
                let aname = &src[j..j + an_len];
                if aname.contains(is_mark_char) {
                    return Err("a tag in an attribute name".into());
                }
                out.push_str(aname);
                j += an_len;
                // Optional `= value`.
                let ws = src[j..]
                    .find(|c: char| !c.is_ascii_whitespace())
                    .unwrap_or(src.len() - j);
                if !src[j + ws..].starts_with('=') {
                    continue;
                }
                out.push_str(&src[j..j + ws + 1]);
                j += ws + 1;
                let ws = src[j..]
                    .find(|c: char| !c.is_ascii_whitespace())
                    .unwrap_or(src.len() - j);
                out.push_str(&src[j..j + ws]);
                j += ws;
                let q = src[j..].chars().next().ok_or("unclosed start tag")?;
                if q == '"' || q == '\'' {
                    let vend = src[j + 1..].find(q).ok_or("unclosed attribute value")? + j + 1;
                    out.push(q);
                    let mut k = j + 1;
                    while k < vend {
                        if let Some((n, len)) = placeholder(k) {
                            hazard_before(&src[j + 1..k])?;
                            let s = marks.len();
                            marks.push(Mark::Tag(n));
                            let _ = write!(out, "{P0}{s}{P1}");
                            k += len;
                        } else {
                            let ch = src[k..].chars().next().ok_or("bad attribute")?;
                            if is_mark_char(ch) {
                                return Err("a broken placeholder".into());
                            }
                            out.push(ch);
                            k += ch.len_utf8();
                        }
                    }
                    out.push(q);
                    j = vend + 1;
                } else {
                    let vlen = src[j..]
                        .find(|c: char| c.is_ascii_whitespace() || c == '>')
                        .unwrap_or(src.len() - j);
                    if src[j..j + vlen].contains(is_mark_char) {
                        return Err("a tag in an unquoted attribute value".into());
                    }
                    out.push_str(&src[j..j + vlen]);
                    j += vlen;
                }
            }
            i = j;
            // Raw text and RCDATA elements: their content up to the end tag.
            let rcdata = name == "title" || name == "textarea";
            if RAW_TEXT.contains(&name.as_str()) || rcdata {
                let lower = src[i..].to_ascii_lowercase();
                let end = lower
                    .find(&format!("</{name}"))
                    .ok_or_else(|| format!("unclosed <{name}>"))?;
                let content = &src[i..i + end];
                if name == "style" {
                    css.push_str(content);
                    css.push('\n');
                }
                if name == "title" {
                    let mut k = i;
                    while k < i + end {
                        if let Some((n, len)) = placeholder(k) {
                            hazard_before(&src[i..k])?;
                            let s = marks.len();
                            marks.push(Mark::Tag(n));
                            let _ = write!(out, "{P0}{s}{P1}");
                            k += len;
                        } else {
                            let ch = src[k..].chars().next().ok_or("bad title")?;
                            out.push(ch);
                            k += ch.len_utf8();
                        }
                    }
                } else {
                    if content.contains(is_mark_char) {
                        return Err(format!("a tag inside <{name}>"));
                    }
                    out.push_str(content);
                }
                i += end;
            }
            continue;
        }
        // Text: number each run of text with something other than whitespace, at its first
        // non-whitespace character.
        let ch = src[i..].chars().next().ok_or("bad text")?;
        if !run_marked && !matches!(ch, ' ' | '\t' | '\n' | '\x0C' | '\r') {
            let _ = write!(out, "{M0}{}{M1}", marks.len());
            marks.push(Mark::TextRun);
            run_marked = true;
        }
        out.push(ch);
        i += ch.len_utf8();
    }
    let attr_selectors = check_css(&css)?;
    Ok(Protected {
        html: out,
        marks,
        attr_selectors,
    })
}

/// Checks that every selector of the stylesheet matches by an element's own attributes and its
/// ancestors only. Returns whether attribute selectors are used.
fn check_css(css: &str) -> Result<bool, String> {
    // Strip comments.
    let mut text = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    text.push_str(rest);
    const ALLOWED: &[&str] = &[
        "hover",
        "active",
        "focus",
        "focus-visible",
        "focus-within",
        "visited",
        "link",
        "any-link",
        "target",
        "root",
        "not",
        "is",
        "where",
    ];
    let mut attr = false;
    let mut acc = String::new();
    for c in text.chars() {
        match c {
            '{' => {
                let prelude = acc.trim();
                if !prelude.starts_with('@') {
                    if prelude.contains(['+', '~', '\\', '|', '$']) {
                        return Err(format!("selector `{prelude}`"));
                    }
                    attr |= prelude.contains('[');
                    let mut parts = prelude.split(':');
                    parts.next();
                    let mut after_colon = false;
                    for part in parts {
                        if part.is_empty() {
                            // `::pseudo-element`
                            after_colon = true;
                            continue;
                        }
                        if after_colon {
                            after_colon = false;
                            continue;
                        }
                        let ident: String = part
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                            .collect();
                        if !ALLOWED.contains(&ident.to_ascii_lowercase().as_str()) {
                            return Err(format!("selector `{prelude}`"));
                        }
                    }
                }
                acc.clear();
            }
            '}' | ';' => acc.clear(),
            _ => acc.push(c),
        }
    }
    Ok(attr)
}

/// Where a placeholder was found in the inlined document.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    /// Between nodes (a comment) or in text: the parent element's number.
    Node(usize),
    /// In an attribute value: the element's number and the attribute name.
    Attr(usize, String),
}

const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
];

/// Parents where a value would be parsed differently, or moved.
const NO_TEXT_PARENT: &[&str] = &[
    "html",
    "head",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "colgroup",
    "select",
    "frameset",
    "template",
    "pre",
    "textarea",
    "listing",
    "style",
    "script",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];

struct Frame {
    id: usize,
    name: String,
    marked: bool,
}

/// Turns the inlined document back into a tera template, checking that the parser kept every
/// placeholder where the template had it.
fn restore(items: &[Item], p: &Protected, inlined: &str) -> Result<String, String> {
    let mut out = String::with_capacity(inlined.len() + 64 * items.len());
    let mut seen: Vec<usize> = Vec::new();
    let mut places: Vec<(usize, Place)> = Vec::new();
    let mut stack = vec![Frame {
        id: 0,
        name: String::new(),
        marked: false,
    }];
    let mut next_id = 1;
    let mut emitted: Vec<Item> = Vec::new();
    let parse_num = |s: &str, open: char, close: char| -> Option<(usize, usize)> {
        let rest = s.strip_prefix(open)?;
        let end = rest.find(close)?;
        Some((
            rest[..end].parse().ok()?,
            open.len_utf8() + end + close.len_utf8(),
        ))
    };
    let tag_of = |s: usize| -> Result<usize, String> {
        match p.marks.get(s) {
            Some(Mark::Tag(n)) => Ok(*n),
            _ => Err("a placeholder lost its meaning".into()),
        }
    };
    let emit_tag = |out: &mut String, emitted: &mut Vec<Item>, item: &Item, filter: &str| match item
    {
        Item::Var(e) => {
            let _ = write!(out, "{{{{ ({e}) | {filter} }}}}");
            emitted.push(Item::Var(format!("({e}) | {filter}")));
        }
        Item::Ctl(c) => {
            let _ = write!(out, "{{% {c} %}}");
            emitted.push(Item::Ctl(c.clone()));
        }
        Item::Text(_) => {}
    };
    let mut i = 0;
    while i < inlined.len() {
        let rest = &inlined[i..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unclosed comment")? + 4;
            let body = &rest[4..end];
            if let Some((s, len)) = parse_num(body, P0, P1) {
                if len != body.len() {
                    return Err("a tag inside a comment".into());
                }
                let n = tag_of(s)?;
                let parent = stack.last().ok_or("stack")?.id;
                seen.push(s);
                places.push((n, Place::Node(parent)));
                emit_tag(&mut out, &mut emitted, &items[n], TEXT_FILTER);
            } else if body.contains(is_mark_char) {
                return Err("a tag inside a comment".into());
            } else {
                out.push_str(&rest[..end + 3]);
            }
            i += end + 3;
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            let end = rest.find('>').ok_or("declaration")? + 1;
            out.push_str(&rest[..end]);
            i += end;
        } else if let Some(r) = rest.strip_prefix("</") {
            let end = r.find('>').ok_or("end tag")?;
            let name = &r[..end];
            let top = stack.pop().ok_or("unbalanced document")?;
            if top.name != name {
                return Err("unbalanced document".into());
            }
            out.push_str(&rest[..end + 3]);
            i += end + 3;
        } else if rest.starts_with('<') {
            let name_end = rest.find([' ', '>']).ok_or("start tag")?;
            let name = rest[1..name_end].to_string();
            out.push_str(&rest[..name_end]);
            let id = next_id;
            next_id += 1;
            let mut marked = false;
            let mut j = i + name_end;
            loop {
                let r = &inlined[j..];
                if let Some(r2) = r.strip_prefix('>') {
                    let _ = r2;
                    out.push('>');
                    j += 1;
                    break;
                }
                let r = r.strip_prefix(' ').ok_or("attribute")?;
                let eq = r.find("=\"").ok_or("attribute")?;
                let aname = &r[..eq];
                let vstart = j + 1 + eq + 2;
                let vend = inlined[vstart..].find('"').ok_or("attribute value")? + vstart;
                let value = &inlined[vstart..vend];
                if aname == MARK_ATTR {
                    let s: usize = value.parse().map_err(|_| "element number")?;
                    if p.marks.get(s) != Some(&Mark::Element) {
                        return Err("element number".into());
                    }
                    seen.push(s);
                    marked = true;
                } else {
                    out.push(' ');
                    out.push_str(aname);
                    out.push_str("=\"");
                    let mut k = 0;
                    let mut static_start = 0;
                    while k < value.len() {
                        if let Some((s, len)) = parse_num(&value[k..], P0, P1) {
                            out.push_str(&value[static_start..k]);
                            let n = tag_of(s)?;
                            if matches!(aname, "class" | "id" | "style") {
                                return Err(format!("a tag in a `{aname}` attribute"));
                            }
                            if p.attr_selectors {
                                return Err(
                                    "a tag in an attribute, with attribute selectors in the CSS"
                                        .into(),
                                );
                            }
                            seen.push(s);
                            places.push((n, Place::Attr(id, aname.to_string())));
                            emit_tag(&mut out, &mut emitted, &items[n], ATTR_FILTER);
                            k += len;
                            static_start = k;
                        } else {
                            let ch = value[k..].chars().next().ok_or("attribute")?;
                            if is_mark_char(ch) {
                                return Err("a marker in an attribute".into());
                            }
                            k += ch.len_utf8();
                        }
                    }
                    out.push_str(&value[static_start..]);
                    out.push('"');
                }
                j = vend + 1;
            }
            i = j;
            if !VOID.contains(&name.as_str()) {
                stack.push(Frame {
                    id,
                    name: name.clone(),
                    marked,
                });
                if RAW_TEXT.contains(&name.as_str()) {
                    let end = inlined[i..]
                        .find(&format!("</{name}>"))
                        .ok_or("raw text element")?;
                    let content = &inlined[i..i + end];
                    if content.contains(is_mark_char) {
                        return Err(format!("a tag inside <{name}>"));
                    }
                    out.push_str(content);
                    i += end;
                }
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            let top = stack.last().ok_or("stack")?;
            let mut k = 0;
            let mut static_start = 0;
            while k < text.len() {
                let t = &text[k..];
                if let Some((s, len)) = parse_num(t, M0, M1) {
                    out.push_str(&text[static_start..k]);
                    if p.marks.get(s) != Some(&Mark::TextRun) {
                        return Err("text number".into());
                    }
                    seen.push(s);
                    k += len;
                    static_start = k;
                } else if let Some((s, len)) = parse_num(t, P0, P1) {
                    out.push_str(&text[static_start..k]);
                    let n = tag_of(s)?;
                    let ok_parent = top.marked && !NO_TEXT_PARENT.contains(&top.name.as_str());
                    let ok = match &items[n] {
                        Item::Var(_) => ok_parent,
                        // Control tags stay text only inside <title>.
                        _ => top.name == "title" && top.marked,
                    };
                    if !ok {
                        return Err(format!("a tag in text directly inside <{}>", top.name));
                    }
                    seen.push(s);
                    places.push((n, Place::Node(top.id)));
                    emit_tag(&mut out, &mut emitted, &items[n], TEXT_FILTER);
                    k += len;
                    static_start = k;
                } else {
                    let ch = t.chars().next().ok_or("text")?;
                    if is_mark_char(ch) {
                        return Err("a broken placeholder".into());
                    }
                    k += ch.len_utf8();
                }
            }
            out.push_str(&text[static_start..]);
            i += end;
        }
    }
    // Every number once, in source order.
    if seen.windows(2).any(|w| w[0] >= w[1]) {
        return Err("the HTML parser moved content around a tag".into());
    }
    let tags = p.marks.iter().filter(|m| matches!(m, Mark::Tag(_))).count();
    if places.len() != tags {
        return Err("the HTML parser dropped a tag".into());
    }
    check_constructs(items, &places)?;
    // The static text must not contain anything tera would read as a tag.
    let relexed = lex(&out).map_err(|e| format!("re-lexing: {e}"))?;
    let relexed: Vec<Item> = relexed
        .into_iter()
        .filter_map(|s| match s {
            Seg::Var(v) => Some(Item::Var(v)),
            Seg::Tag(t) => Some(Item::Ctl(t)),
            Seg::Text(_) => None,
        })
        .collect();
    if relexed != emitted {
        return Err("the inlined text reads as template tags".into());
    }
    Ok(out)
}

/// All tags of one `if`/`for` construct must sit in the same place.
fn check_constructs(items: &[Item], places: &[(usize, Place)]) -> Result<(), String> {
    let place_of = |n: usize| places.iter().find(|(m, _)| *m == n).map(|(_, p)| p);
    let mut stack: Vec<(&str, Option<&Place>)> = Vec::new();
    for (n, it) in items.iter().enumerate() {
        let Item::Ctl(c) = it else { continue };
        let kw = keyword(c);
        let here = place_of(n);
        match kw {
            "if" | "for" => stack.push((kw, here)),
            "elif" | "else" | "endif" | "endfor" => {
                let (open, at) = stack.last().ok_or("unbalanced control tags")?;
                let ok_kw = match kw {
                    "elif" => *open == "if",
                    "else" => true,
                    "endif" => *open == "if",
                    _ => *open == "for",
                };
                if !ok_kw {
                    return Err("unbalanced control tags".into());
                }
                if *at != here {
                    return Err(format!(
                        "`{{% {c} %}}` is not under the same element as its opening tag"
                    ));
                }
                if kw == "endif" || kw == "endfor" {
                    stack.pop();
                }
            }
            _ => return Err(format!("`{{% {kw} %}}`")),
        }
    }
    if !stack.is_empty() {
        return Err("unclosed control tag".into());
    }
    Ok(())
}

/// Compiles template `name` (with its layout and partials among `sources`) into one tera
/// source with the CSS already inlined, or says why it cannot be done safely.
pub(crate) fn compile(
    sources: &[(String, String)],
    name: &str,
    inliner: &css_inline::CSSInliner<'_>,
) -> Result<String, String> {
    let items = flatten(sources, name)?;
    let protected = protect(&items)?;
    let inlined = inliner
        .inline(&protected.html)
        .map_err(|e| format!("CSS inlining failed: {e}"))?;
    restore(&items, &protected, &inlined)
}

/// Writes `s` as the inliner's serializer writes text (`attr`: attribute values).
fn escape_like_serializer(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            '"' if attr => out.push_str("&quot;"),
            '<' if !attr => out.push_str("&lt;"),
            '>' if !attr => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// The value filters of compiled templates: a value as it comes out of parse + serialize.
pub(crate) struct ValueFilter {
    pub(crate) attr: bool,
}

impl tera::Filter<&Value, TeraResult<Value>> for ValueFilter {
    fn call(&self, value: &Value, _: Kwargs, _: &State) -> TeraResult<Value> {
        if value.is_undefined() {
            return Err(tera::Error::message(PER_MESSAGE));
        }
        let owned;
        let s = match value.as_str() {
            Some(s) => {
                // Markup in a string marked safe is parsed as markup: per-message inlining.
                if value.is_safe() && s.contains(['&', '<', '>', '"', '\'']) {
                    return Err(tera::Error::message(PER_MESSAGE));
                }
                s
            }
            None => {
                owned = value.to_string();
                &owned
            }
        };
        if s.contains(['\r', '\0']) {
            return Err(tera::Error::message(PER_MESSAGE));
        }
        Ok(Value::safe_string(&escape_like_serializer(s, self.attr)))
    }
    fn is_safe(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inliner() -> css_inline::CSSInliner<'static> {
        css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_at_rules(true)
            .build()
    }

    fn one(src: &str) -> Result<String, String> {
        compile(&[("t.html".into(), src.into())], "t.html", &inliner())
    }

    #[test]
    fn lexes_whitespace_control_like_tera() {
        let segs = lex("a  {%- if x -%}  b {{ y }}  {#- c -#}  d").expect("lexes");
        assert_eq!(
            segs,
            vec![
                Seg::Text("a".into()),
                Seg::Tag("if x".into()),
                Seg::Text("b ".into()),
                Seg::Var("y".into()),
                Seg::Text("d".into()),
            ]
        );
    }

    #[test]
    fn inlines_a_simple_template() {
        let t = one("<html><head><style>p{color:red}</style></head><body><p class=\"x\">Hi {{ name }}</p>{% if a %}<p>{{ a }}</p>{% endif %}</body></html>")
            .expect("compiles");
        assert!(t.contains("style=\"color: red;\""), "{t}");
        assert!(t.contains("{{ (name) | __retain_text }}"), "{t}");
        assert!(t.contains("{% if a %}"), "{t}");
        assert!(!t.contains(MARK_ATTR), "{t}");
    }

    #[test]
    fn refuses_what_it_cannot_inline_safely() {
        let base = |css: &str, body: &str| {
            format!("<html><head><style>{css}</style></head><body>{body}</body></html>")
        };
        for (css, body) in [
            ("p:first-child{color:red}", "<p>x</p>"),
            ("p+p{color:red}", "<p>x</p>"),
            ("p{color:red}", "<p class=\"{{ c }}\">x</p>"),
            ("p{color:red}", "<p style=\"color:{{ c }}\">x</p>"),
            ("a[href]{color:red}", "<a href=\"{{ u }}\">x</a>"),
            (
                "p{color:red}",
                "{% if a %}<div>{% endif %}<p>x</p>{% if a %}</div>{% endif %}",
            ),
            ("p{color:red}", "<table><tr>{{ x }}<td>y</td></tr></table>"),
            (
                "p{color:red}",
                "<table>{% if x %}hello{% endif %}<tr><td>y</td></tr></table>",
            ),
            ("p{color:red}", "<p {% if a %}hidden{% endif %}>x</p>"),
            ("p{color:red}", "<p><b>x</p>{{ y }}"),
            ("p{color:red}", "<p>&amp{{ y }}</p>"),
            ("p{color:red}", "<pre>{{ y }}</pre>"),
            ("p{color:red}", "{% set a = 1 %}<p>{{ a }}</p>"),
        ] {
            let r = one(&base(css, body));
            assert!(r.is_err(), "{css} {body}: {r:?}");
        }
        // A value right in an implied <body>: an empty one would not open it.
        assert!(one("<title>{{ t }}</title>{{ x }}<p>y</p>").is_err());
        assert!(one("<title>{{ t }}</title><p>{{ x }}</p>").is_ok());
    }

    #[test]
    fn values_are_escaped_as_the_serializer_writes_them() {
        assert_eq!(
            escape_like_serializer("<a href=\"x\">&\u{a0}'", false),
            "&lt;a href=\"x\"&gt;&amp;&nbsp;'"
        );
        assert_eq!(
            escape_like_serializer("<a href=\"x\">&\u{a0}'", true),
            "<a href=&quot;x&quot;>&amp;&nbsp;'"
        );
    }
}
