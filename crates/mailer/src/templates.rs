//! Email templates: loading a campaign's `NAME.html` / `NAME.txt` / `NAME.subject` (plus the
//! shared `base.html` layout and `_*.html` partials) into tera, the `track` filter and function
//! that turn links into signed click-tracking URLs, rendering, CSS inlining and the plain-text
//! part derived from the HTML when there is no `.txt`.
//!
//! CSS is inlined once, when the set is loaded (`inline.rs`): the HTML template is
//! compiled into a second tera template with the styles already in place, whose output is
//! byte for byte what inlining each rendered message would give. A template that cannot be
//! inlined safely at load time ([`TemplateSet::per_message_inlining`] says why), and a message
//! with a value the HTML parser would have altered, are inlined per message as before.
//!
//! tera 2 autoescapes `.html` templates only: values in the HTML are escaped, the subject and
//! the text part are not (they are not HTML; the subject is sanitised as a header instead).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use retain_core::tracking::Links;
use tera::{Kwargs, State, Tera, TeraResult, Value};

use crate::error::{template_error, MailerError};
use crate::html_text::html_to_text;

/// One rendered email.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    /// HTML with CSS inlined.
    pub html: String,
    pub text: String,
}

/// Signs click URLs for the send being rendered (its id is the context's `send_id`).
#[derive(Clone)]
struct Tracker {
    base_url: Arc<str>,
    secret: Arc<[u8]>,
}

impl Tracker {
    fn track(&self, url: &str, state: &State) -> TeraResult<Value> {
        let url = url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(tera::Error::message(format!(
                "track: '{url}' is not an http(s) URL"
            )));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(tera::Error::message(format!(
                "track: '{url}' contains whitespace"
            )));
        }
        let send_id = state.get::<i64>("send_id")?.unwrap_or(0);
        let links = Links {
            base_url: &self.base_url,
            secret: &self.secret,
            send_id,
        };
        // The base URL is validated and the token is URL-safe base64: nothing to escape.
        Ok(Value::safe_string(&links.click(url)))
    }
}

struct TrackFilter(Tracker);

impl tera::Filter<&str, TeraResult<Value>> for TrackFilter {
    fn call(&self, value: &str, _: Kwargs, state: &State) -> TeraResult<Value> {
        self.0.track(value, state)
    }
    fn is_safe(&self) -> bool {
        true
    }
}

struct TrackFunction(Tracker);

impl tera::Function<TeraResult<Value>> for TrackFunction {
    fn call(&self, kwargs: Kwargs, state: &State) -> TeraResult<Value> {
        let url = kwargs.must_get::<&str>("url")?;
        self.0.track(url, state)
    }
    fn is_safe(&self) -> bool {
        true
    }
}

/// Filters every template set has besides tera's own: `fixed(decimals=2)` formats a number
/// with a fixed number of decimals (`{{ stats.avg_order_value | fixed }}` → `93.61`).
pub fn register_helpers(tera: &mut Tera) {
    tera.register_filter(
        "fixed",
        |v: f64, kw: Kwargs, _: &State| -> TeraResult<String> {
            let d = kw.get::<usize>("decimals")?.unwrap_or(2).min(12);
            Ok(format!("{v:.d$}"))
        },
    );
}

/// Checks `tracking.base_url`: an http(s) URL without characters that would need escaping.
pub fn validate_base_url(base: &str) -> Result<(), MailerError> {
    let ok_scheme = base.starts_with("https://") || base.starts_with("http://");
    let bad = base
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`{}|^".contains(c));
    if !ok_scheme || bad || base.len() < 10 {
        return Err(MailerError::Config(format!(
            "tracking.base_url '{base}' must be an http(s) URL (e.g. https://t.example.com)"
        )));
    }
    Ok(())
}

/// The compiled templates of one campaign.
pub struct TemplateSet {
    tera: Tera,
    name: String,
    has_text: bool,
    has_subject: bool,
    inliner: css_inline::CSSInliner<'static>,
    /// The compiled, already-inlined HTML template, or why there is none.
    inlined: Result<String, String>,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet")
            .field("name", &self.name)
            .field("has_text", &self.has_text)
            .field("has_subject", &self.has_subject)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, MailerError> {
    std::fs::read_to_string(path).map_err(|e| MailerError::io(path, e))
}

impl TemplateSet {
    /// Loads template `name` from `dir`: `name.html` (required), `name.txt`, `name.subject`,
    /// `base.html` and every `_*.html` / `_*.txt` partial. Syntax errors are reported with the
    /// file and line.
    pub fn load(
        dir: &Path,
        name: &str,
        tracking_base_url: &str,
        secret: &[u8],
    ) -> Result<Self, MailerError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(MailerError::Config(format!(
                "template name '{name}': use letters, digits, '_' and '-' only"
            )));
        }
        let html = dir.join(format!("{name}.html"));
        if !html.is_file() {
            return Err(MailerError::TemplateMissing {
                name: name.to_string(),
                dir: dir.to_path_buf(),
            });
        }
        let mut files: Vec<(String, PathBuf)> = vec![(format!("{name}.html"), html)];
        for ext in ["txt", "subject"] {
            let p = dir.join(format!("{name}.{ext}"));
            if p.is_file() {
                files.push((format!("{name}.{ext}"), p));
            }
        }
        let entries = std::fs::read_dir(dir).map_err(|e| MailerError::io(dir, e))?;
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().to_string();
            let shared = file == "base.html"
                || file == "base.txt"
                || (file.starts_with('_') && (file.ends_with(".html") || file.ends_with(".txt")));
            if shared && !files.iter().any(|(n, _)| *n == file) {
                files.push((file, e.path()));
            }
        }
        let sources: Vec<(String, String)> = files
            .iter()
            .map(|(n, p)| read(p).map(|s| (n.clone(), s)))
            .collect::<Result<_, _>>()?;
        Self::from_sources(name, &sources, tracking_base_url, secret)
    }

    /// Builds a set from in-memory sources `(file name, text)`; `name.html` must be among them.
    pub fn from_sources(
        name: &str,
        sources: &[(String, String)],
        tracking_base_url: &str,
        secret: &[u8],
    ) -> Result<Self, MailerError> {
        validate_base_url(tracking_base_url)?;
        let html_name = format!("{name}.html");
        if !sources.iter().any(|(n, _)| *n == html_name) {
            return Err(MailerError::TemplateMissing {
                name: name.to_string(),
                dir: PathBuf::from("."),
            });
        }
        let mut tera = Tera::new();
        let tracker = Tracker {
            base_url: Arc::from(tracking_base_url.trim_end_matches('/')),
            secret: Arc::from(secret),
        };
        tera.register_filter("track", TrackFilter(tracker.clone()));
        tera.register_function("track", TrackFunction(tracker));
        register_helpers(&mut tera);
        // Parse each file alone first so a syntax error names its own file.
        for (n, src) in sources {
            let mut probe = Tera::new();
            if let Err(e) = probe.add_raw_template(n, src) {
                if matches!(e.kind(), tera::ErrorKind::SyntaxError(_)) {
                    return Err(template_error(n, &e));
                }
            }
        }
        tera.add_raw_templates(sources.iter().map(|(n, s)| (n.as_str(), s.as_str())))
            .map_err(|e| template_error(&html_name, &e))?;
        let inliner = css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_at_rules(true)
            .build();
        let inlined = crate::inline::compile(sources, &html_name, &inliner).and_then(|src| {
            tera.register_filter(
                crate::inline::TEXT_FILTER,
                crate::inline::ValueFilter { attr: false },
            );
            tera.register_filter(
                crate::inline::ATTR_FILTER,
                crate::inline::ValueFilter { attr: true },
            );
            let compiled = format!("{name}.inlined.html");
            tera.add_raw_template(&compiled, &src)
                .map(|_| compiled)
                .map_err(|e| format!("the inlined template does not compile: {e}"))
        });
        Ok(Self {
            inlined,
            has_text: sources.iter().any(|(n, _)| *n == format!("{name}.txt")),
            has_subject: sources.iter().any(|(n, _)| *n == format!("{name}.subject")),
            name: name.to_string(),
            tera,
            inliner,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `None` when the CSS was inlined into the template at load time; otherwise why every
    /// message of this template is inlined on its own (a construct that compile-time inlining
    /// cannot handle safely, e.g. a `+` selector or a tera tag inside a `class` attribute).
    pub fn per_message_inlining(&self) -> Option<&str> {
        self.inlined.as_ref().err().map(String::as_str)
    }

    /// The HTML part for one context, CSS inlined (from the compiled template when there is
    /// one; a render it refuses — a value the HTML parser would alter — is inlined per message).
    /// `ctx` must already hold `subject` when the set has a `.subject`.
    pub fn render_html(&self, ctx: &tera::Context) -> Result<String, MailerError> {
        match self.render_html_compiled(ctx) {
            Some(html) => Ok(html),
            None => self.render_html_per_message(ctx),
        }
    }

    /// The HTML part from the compiled template alone: `None` when the set has none or it
    /// refused this context (then [`Self::render_html`] inlines the message on its own).
    pub fn render_html_compiled(&self, ctx: &tera::Context) -> Option<String> {
        let compiled = self.inlined.as_ref().ok()?;
        self.tera.render(compiled, ctx).ok()
    }

    /// The HTML part rendered, then CSS-inlined as one document: the reference the compiled
    /// template is checked against.
    pub fn render_html_per_message(&self, ctx: &tera::Context) -> Result<String, MailerError> {
        let n = format!("{}.html", self.name);
        let raw = self
            .tera
            .render(&n, ctx)
            .map_err(|e| template_error(&n, &e))?;
        self.inliner
            .inline(&raw)
            .map_err(|e| MailerError::Template {
                template: n.clone(),
                line: None,
                message: format!("CSS inlining failed: {e}"),
            })
    }

    /// Renders subject, HTML (CSS inlined) and text for one context.
    pub fn render(&self, ctx: &tera::Context) -> Result<Rendered, MailerError> {
        self.render_with(ctx, false)
    }

    /// [`Self::render`] with every message inlined on its own (the reference output).
    pub fn render_per_message(&self, ctx: &tera::Context) -> Result<Rendered, MailerError> {
        self.render_with(ctx, true)
    }

    fn render_with(&self, ctx: &tera::Context, per_message: bool) -> Result<Rendered, MailerError> {
        let subject = if self.has_subject {
            let n = format!("{}.subject", self.name);
            let s = self
                .tera
                .render(&n, ctx)
                .map_err(|e| template_error(&n, &e))?;
            clean_subject(&s)
        } else {
            String::new()
        };
        let mut ctx2;
        let ctx = if self.has_subject {
            ctx2 = ctx.clone();
            ctx2.insert("subject", &subject);
            &ctx2
        } else {
            ctx
        };
        let html = if per_message {
            self.render_html_per_message(ctx)?
        } else {
            self.render_html(ctx)?
        };
        let text = if self.has_text {
            let n = format!("{}.txt", self.name);
            self.tera
                .render(&n, ctx)
                .map_err(|e| template_error(&n, &e))?
        } else {
            html_to_text(&html)
        };
        let subject = if subject.is_empty() {
            title_of(&html).unwrap_or_default()
        } else {
            subject
        };
        if subject.is_empty() {
            return Err(MailerError::Template {
                template: format!("{}.subject", self.name),
                line: None,
                message: "the subject is empty (add NAME.subject or a <title>)".into(),
            });
        }
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }
}

/// One line, no control characters, collapsed whitespace, at most 200 characters.
pub fn clean_subject(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = one.split_whitespace().collect();
    let mut out = words.join(" ");
    if out.chars().count() > 200 {
        out = out.chars().take(199).collect::<String>() + "…";
    }
    out
}

fn title_of(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title>")? + 7;
    let end = lower[start..].find("</title>")? + start;
    let t = clean_subject(&crate::html_text::decode_entities(&html[start..end]));
    (!t.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn set(files: &[(&str, &str)]) -> Result<TemplateSet, MailerError> {
        let sources: Vec<(String, String)> = files
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        TemplateSet::from_sources("t", &sources, "https://t.example.com", SECRET)
    }

    fn ctx(name: &str) -> tera::Context {
        let mut c = tera::Context::new();
        c.insert("send_id", &7i64);
        c.insert("name", name);
        c
    }

    #[test]
    fn html_is_escaped_text_and_subject_are_not() {
        let s = set(&[
            ("t.html", "<html><head><style>p{color:red}</style></head><body><p>Hi {{ name }}</p></body></html>"),
            ("t.txt", "Hi {{ name }}"),
            ("t.subject", "For {{ name }}\r\nBcc: x@y.z"),
        ])
        .expect("compiles");
        let r = s.render(&ctx("<script>&'")).expect("renders");
        assert!(r.html.contains("Hi &lt;script&gt;&amp;"), "{}", r.html);
        assert!(!r.html.contains("<script>"));
        assert!(
            r.html.contains("style=\"color: red"),
            "css inlined: {}",
            r.html
        );
        assert_eq!(r.text, "Hi <script>&'");
        assert_eq!(r.subject, "For <script>&' Bcc: x@y.z", "one line");
    }

    #[test]
    fn track_signs_links_for_the_send() {
        let s = set(&[(
            "t.html",
            "<title>T</title><a href=\"{{ 'https://shop.example/a?x=1&y=2' | track }}\">a</a> {{ track(url='https://shop.example/b') }}",
        )])
        .expect("compiles");
        let r = s.render(&ctx("x")).expect("renders");
        let href = r
            .html
            .split("href=\"")
            .nth(1)
            .and_then(|h| h.split('"').next())
            .expect("href");
        assert!(href.starts_with("https://t.example.com/c/"), "{href}");
        let token = href.rsplit('/').next().expect("token");
        let t = retain_core::tracking::Token::verify(SECRET, token).expect("valid");
        assert_eq!(t.send_id, 7);
        assert_eq!(
            t.action,
            retain_core::tracking::Action::Click {
                url: "https://shop.example/a?x=1&y=2".into()
            }
        );
        assert_eq!(r.subject, "T", "subject from <title> without .subject");
        assert!(r.text.contains('a'));
        let bad = set(&[(
            "t.html",
            "<title>T</title>{{ 'javascript:alert(1)' | track }}",
        )])
        .expect("compiles");
        assert!(bad.render(&ctx("x")).is_err());
    }

    #[test]
    fn errors_name_template_and_line() {
        let e = set(&[("t.html", "<p>\n\n{% if x %}unclosed\n")]).expect_err("syntax");
        match e {
            MailerError::Template { template, line, .. } => {
                assert_eq!(template, "t.html");
                assert!(line.is_some());
            }
            other => panic!("{other:?}"),
        }
        let s = set(&[("t.html", "<title>x</title>\n<p>\n{{ nmae }}</p>")]).expect("compiles");
        let e = s.render(&ctx("x")).expect_err("undefined");
        let msg = e.to_string();
        assert!(msg.contains("t.html"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("nmae"), "{msg}");
    }

    #[test]
    fn inheritance_from_base() {
        let s = set(&[
            ("base.html", "<html><head><title>{{ subject }}</title></head><body>{% block body %}{% endblock %}<footer>F</footer></body></html>"),
            ("t.html", "{% extends \"base.html\" %}{% block body %}<p>B {{ name }}</p>{% endblock %}"),
            ("t.subject", "S {{ name }}"),
        ])
        .expect("compiles");
        let r = s.render(&ctx("n")).expect("renders");
        assert!(r.html.contains("<p>B n</p>"));
        assert!(r.html.contains("<footer>F</footer>"));
        assert!(r.html.contains("<title>S n</title>"));
        assert!(r.text.contains("B n") && r.text.contains('F'), "{}", r.text);
    }
}
