//! Reading a crate's sources without compiling them: a small Rust tokenizer and the files a crate's
//! root file reaches through `mod` declarations (and `include!` of a literal path). Discovery uses it
//! to tell which test targets can hold `#[perf_test]` scenarios, `init` to find how a service takes
//! its port and which paths it serves.
//!
//! It is deliberately conservative: whatever it cannot follow (a `mod` whose file is not where the
//! rules put it, `include!` of a computed path) is reported as `unsure`, and the caller then builds
//! the target rather than skip one that might hold scenarios.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A token of Rust source: comments and whitespace are dropped; string literals keep their text
/// (escapes are left as written, which is enough for paths and names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Ident(String),
    Str(String),
    /// An integer or float literal as written, suffix included (`3000`, `8_080u16`).
    Num(String),
    Punct(char),
}

impl Token {
    pub fn is_ident(&self, s: &str) -> bool {
        matches!(self, Token::Ident(i) if i == s)
    }

    pub fn is_punct(&self, c: char) -> bool {
        matches!(self, Token::Punct(p) if *p == c)
    }
}

/// Splits Rust source into tokens. Never fails: malformed input (an unterminated string or comment)
/// ends the stream where it breaks.
pub fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let n = chars.len();
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0usize;
            while i < n {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            let (s, next) = quoted(&chars, i + 1);
            out.push(Token::Str(s));
            i = next;
        } else if let Some((hashes, start)) = raw_string_start(&chars, i) {
            let (s, next) = raw(&chars, start, hashes);
            out.push(Token::Str(s));
            i = next;
        } else if (c == 'b' || c == 'c') && at(i + 1) == '"' {
            let (s, next) = quoted(&chars, i + 2);
            out.push(Token::Str(s));
            i = next;
        } else if c == 'b' && at(i + 1) == '\'' {
            i = char_literal_end(&chars, i + 1).unwrap_or(n);
        } else if c == '\'' {
            match char_literal_end(&chars, i) {
                Some(end) => i = end,
                // A lifetime or a label: `'a`.
                None => {
                    i += 1;
                    while i < n && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                }
            }
        } else if c == 'r' && at(i + 1) == '#' && (at(i + 2).is_alphabetic() || at(i + 2) == '_') {
            // A raw identifier: `r#type`.
            let start = i + 2;
            i = start;
            while i < n && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < n && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < n && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Num(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// The text of a `"…"` literal whose body starts at `i`, and the index after its closing quote.
fn quoted(chars: &[char], mut i: usize) -> (String, usize) {
    let start = i;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return (chars[start..i].iter().collect(), i + 1),
            _ => i += 1,
        }
    }
    (chars[start..].iter().collect(), chars.len())
}

/// `r"`, `r#"`, `br##"`, `cr"` … at `i`: the number of hashes and where the body starts.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut k = i;
    if matches!(chars.get(k), Some('b' | 'c')) {
        k += 1;
    }
    if chars.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let mut hashes = 0;
    while chars.get(k) == Some(&'#') {
        hashes += 1;
        k += 1;
    }
    (chars.get(k) == Some(&'"')).then_some((hashes, k + 1))
}

fn raw(chars: &[char], start: usize, hashes: usize) -> (String, usize) {
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) {
            return (chars[start..i].iter().collect(), i + 1 + hashes);
        }
        i += 1;
    }
    (chars[start..].iter().collect(), chars.len())
}

/// The index after a char literal starting with the quote at `i` (`'x'`, `'\n'`, `'\u{1F600}'`), or
/// None when the quote starts a lifetime.
fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
    match chars.get(i + 1)? {
        '\\' => {
            let mut k = i + 2;
            while k < chars.len() && chars[k] != '\'' && k < i + 12 {
                k += 1;
            }
            (chars.get(k) == Some(&'\'')).then_some(k + 1)
        }
        _ => (chars.get(i + 2) == Some(&'\'')).then_some(i + 3),
    }
}

/// The files of one crate (a target's root file and every module it declares), tokenized.
#[derive(Debug, Default)]
pub struct CrateSources {
    pub files: Vec<(PathBuf, Vec<Token>)>,
    /// What could not be followed, one line each: the crate may have sources not in `files`.
    pub unsure: Vec<String>,
}

/// More files than any crate reachable by hand: a bound on the walk, not a limit users meet.
const MAX_FILES: usize = 5000;

impl CrateSources {
    /// Whether an identifier occurs in the crate's code (comments and strings do not count).
    pub fn mentions(&self, ident: &str) -> bool {
        self.files
            .iter()
            .any(|(_, toks)| toks.iter().any(|t| t.is_ident(ident)))
    }

    /// Every token of every file, with its file.
    pub fn tokens(&self) -> impl Iterator<Item = (&Path, &[Token])> {
        self.files.iter().map(|(p, t)| (p.as_path(), t.as_slice()))
    }
}

/// Reads the crate whose root file is `root` (a target's `src_path`), following `mod` declarations
/// the way rustc resolves them.
pub fn crate_sources(root: &Path) -> CrateSources {
    let mut out = CrateSources::default();
    let mut seen = BTreeSet::new();
    let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
    walk(root, dir, &mut out, &mut seen);
    out
}

/// Scans `file`, whose `mod x;` declarations resolve in `child_dir`.
fn walk(file: &Path, child_dir: PathBuf, out: &mut CrateSources, seen: &mut BTreeSet<PathBuf>) {
    if !seen.insert(file.to_path_buf()) || out.files.len() >= MAX_FILES {
        return;
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            out.unsure
                .push(format!("{} could not be read: {e}", file.display()));
            return;
        }
    };
    let toks = tokenize(&text);
    let here = file.parent().map(Path::to_path_buf).unwrap_or_default();
    // Inline `mod name { … }` blocks open at brace depths; a declaration inside resolves below them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut path_attr: Option<String> = None;
    let mut next_mod: Option<String> = None;
    let mut children = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.is_punct('#') {
            // An attribute: `#[…]` or `#![…]`, skipped as a unit; `#[path = "…"]` is kept.
            let mut k = i + 1;
            if toks.get(k).is_some_and(|t| t.is_punct('!')) {
                k += 1;
            }
            if toks.get(k).is_some_and(|t| t.is_punct('[')) {
                let end = matching(&toks, k, '[', ']');
                if let [Token::Ident(p), Token::Punct('='), Token::Str(v)] = &toks[k + 1..end] {
                    if p == "path" {
                        path_attr = Some(v.clone());
                    }
                }
                i = end + 1;
                continue;
            }
        }
        match t {
            Token::Ident(m) if m == "mod" => {
                if let Some(Token::Ident(name)) = toks.get(i + 1) {
                    match toks.get(i + 2) {
                        Some(Token::Punct(';')) => {
                            let dir = inline.iter().fold(child_dir.clone(), |d, (n, _)| d.join(n));
                            let found = match path_attr.take() {
                                // A `#[path]` file owns its directory, as mod.rs does.
                                Some(p) if inline.is_empty() => Some((here.join(p), true)),
                                Some(p) => Some((dir.join(p), true)),
                                None => [
                                    dir.join(format!("{name}.rs")),
                                    dir.join(name).join("mod.rs"),
                                ]
                                .into_iter()
                                .find(|c| c.is_file())
                                .map(|c| {
                                    let owns = c.ends_with("mod.rs");
                                    (c, owns)
                                }),
                            }
                            .filter(|(c, _)| c.is_file());
                            match found {
                                Some((f, owns)) => {
                                    let dir = match (owns, f.file_stem()) {
                                        (false, Some(stem)) => f.with_file_name(stem),
                                        _ => f.parent().map(Path::to_path_buf).unwrap_or_default(),
                                    };
                                    children.push((f, dir));
                                }
                                None => out.unsure.push(format!(
                                    "`mod {name};` in {}: its file is not where perfgate looked",
                                    file.display()
                                )),
                            }
                            i += 3;
                            continue;
                        }
                        Some(Token::Punct('{')) => next_mod = Some(name.clone()),
                        _ => {}
                    }
                }
            }
            Token::Ident(m)
                if m == "include" && toks.get(i + 1).is_some_and(|t| t.is_punct('!')) =>
            {
                match (toks.get(i + 2), toks.get(i + 3), toks.get(i + 4)) {
                    (Some(Token::Punct('(')), Some(Token::Str(p)), Some(Token::Punct(')')))
                        if here.join(p).is_file() =>
                    {
                        // The included text is part of this module: its `mod`s resolve as ours.
                        children.push((here.join(p), child_dir.clone()));
                    }
                    _ => out.unsure.push(format!(
                        "`include!` of a computed or missing file in {}",
                        file.display()
                    )),
                }
            }
            Token::Punct('{') => {
                depth += 1;
                if let Some(name) = next_mod.take() {
                    inline.push((name, depth));
                }
                path_attr = None;
            }
            Token::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                path_attr = None;
            }
            Token::Punct(';') => path_attr = None,
            _ => {}
        }
        i += 1;
    }
    out.files.push((file.to_path_buf(), toks));
    // A module file `a.rs` puts its children in `a/`; mod.rs and `#[path]` files in their own dir.
    for (child, dir) in children {
        walk(&child, dir, out, seen);
    }
}

/// The index of the token closing the group opened at `open` (or the last token when unbalanced).
pub fn matching(toks: &[Token], open: usize, o: char, c: char) -> usize {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        if t.is_punct(o) {
            depth += 1;
        } else if t.is_punct(c) {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    toks.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn comments_strings_and_chars_are_not_code() {
        let toks = tokenize(
            r##"
            // perf_test in a comment
            /* nested /* perf_test */ still a comment */
            let a = "perf_test"; let b = r#"perf_test "quoted""#; let c = b"x";
            let d = '"'; let e = '\''; fn f<'a>(x: &'a str) {}
            let port = 8_080u16; r#type;
            "##,
        );
        assert!(!toks.iter().any(|t| t.is_ident("perf_test")), "{toks:?}");
        assert!(toks.contains(&Token::Str("perf_test".into())));
        assert!(toks.contains(&Token::Str("perf_test \"quoted\"".into())));
        assert!(toks.contains(&Token::Num("8_080u16".into())));
        assert!(toks.contains(&Token::Ident("type".into())));
        assert!(
            toks.contains(&Token::Ident("str".into())),
            "the lifetime is skipped, not its type"
        );
    }

    #[test]
    fn modules_are_followed_as_rustc_resolves_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "src/lib.rs",
            "mod a;\npub mod b;\nmod inline { mod deep; }\n#[path = \"other/x.rs\"] mod x;\n",
        );
        write(d, "src/a.rs", "mod child;\n");
        write(d, "src/a/child.rs", "#[perf_test] async fn s() {}\n");
        write(d, "src/b/mod.rs", "mod sub;\n");
        write(d, "src/b/sub.rs", "");
        write(d, "src/inline/deep.rs", "");
        write(d, "src/other/x.rs", "mod y;");
        write(d, "src/other/y.rs", "");
        // Not reachable from the root: another target's file.
        write(d, "src/main.rs", "perf_test");
        let s = crate_sources(&d.join("src/lib.rs"));
        let mut files: Vec<String> = s
            .files
            .iter()
            .map(|(p, _)| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "src/a.rs",
                "src/a/child.rs",
                "src/b/mod.rs",
                "src/b/sub.rs",
                "src/inline/deep.rs",
                "src/lib.rs",
                "src/other/x.rs",
                "src/other/y.rs"
            ]
        );
        assert!(s.unsure.is_empty(), "{:?}", s.unsure);
        assert!(s.mentions("perf_test"));
    }

    #[test]
    fn what_cannot_be_followed_is_unsure() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "tests/perf.rs",
            "mod missing;\ninclude!(concat!(env!(\"OUT_DIR\"), \"/gen.rs\"));\ninclude!(\"shared.rs\");\n",
        );
        write(d, "tests/shared.rs", "use perfgate_runtime::perf_test;");
        let s = crate_sources(&d.join("tests/perf.rs"));
        assert_eq!(s.unsure.len(), 2, "{:?}", s.unsure);
        assert!(s.unsure[0].contains("mod missing;"));
        assert!(s.unsure[1].contains("include!"));
        assert!(s.mentions("perf_test"), "a literal include! is followed");
        let none = crate_sources(&d.join("tests/none.rs"));
        assert_eq!(none.unsure.len(), 1);
    }
}
