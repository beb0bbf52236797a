//! Diagnostics a DBA reads: errors and warnings that name a file, line and column and say how
//! to fix the problem. Owns locating byte offsets in source text and rendering diagnostics; it
//! does not decide what is wrong (the config and mapping compilers do).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// How serious a diagnostic is. Errors stop a catalog from loading; warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, located in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// 1-based line; 0 when the finding concerns the file as a whole.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            write!(f, "{}: {level}: {}", self.file, self.message)?;
        } else if self.column == 0 {
            write!(f, "{}:{}: {level}: {}", self.file, self.line, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {level}: {}",
                self.file, self.line, self.column, self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    fn level(&self) -> &'static str {
        match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }

    /// As a JSON object: `severity`, `file`, `line`, `column` (0 for the file as a whole),
    /// `message`, `hint` (or null).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": self.level(),
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "hint": self.hint,
        })
    }

    /// As a GitHub Actions workflow command (`::error file=…,line=…,col=…::message`), which
    /// the pull request shows on the line.
    pub fn to_github(&self) -> String {
        // Workflow commands end at a line break; `%`, CR and LF are escaped, and `,` and `:`
        // too inside properties.
        let data = |s: &str| {
            s.replace('%', "%25")
                .replace('\r', "%0D")
                .replace('\n', "%0A")
        };
        let prop = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
        let mut message = self.message.clone();
        if let Some(h) = &self.hint {
            message.push_str("\nhint: ");
            message.push_str(h);
        }
        let mut props = format!("file={}", prop(&self.file));
        if self.line > 0 {
            let _ = fmt::Write::write_fmt(
                &mut props,
                format_args!(",line={},col={}", self.line, self.column),
            );
        }
        format!("::{} {props}::{}", self.level(), data(&message))
    }
}

/// The text of one file, able to turn byte offsets into line and column.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }
}

/// Collects diagnostics for several files; compilers push into it and never stop at the first.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn at(
        &mut self,
        severity: Severity,
        file: &SourceFile,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (line, column) = span.map_or((0, 0), |s| file.locate(s.start));
        self.items.push(Diagnostic {
            severity,
            file: file.name.clone(),
            line,
            column,
            message: message.into(),
            hint,
        });
    }

    pub fn error(&mut self, file: &SourceFile, span: Range<usize>, message: impl Into<String>) {
        self.at(Severity::Error, file, Some(span), message, None);
    }

    pub fn error_hint(
        &mut self,
        file: &SourceFile,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.at(
            Severity::Error,
            file,
            Some(span),
            message,
            Some(hint.into()),
        );
    }

    pub fn warning(
        &mut self,
        file: &SourceFile,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.at(Severity::Warning, file, Some(span), message, hint);
    }

    /// An error about a file as a whole (it could not be read, say).
    pub fn file_error(&mut self, file: &str, message: impl Into<String>, hint: Option<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            line: 0,
            column: 0,
            message: message.into(),
            hint,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn all(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }
}

/// Everything that stopped a load, rendered one per line.
#[derive(Debug)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        write!(
            f,
            "{errors} error{} found; nothing was loaded",
            if errors == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for LoadError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let f = SourceFile::new("a.toml", "ab\ncdé\nx");
        assert_eq!(f.locate(0), (1, 1));
        assert_eq!(f.locate(1), (1, 2));
        assert_eq!(f.locate(3), (2, 1));
        // after the two-byte é
        assert_eq!(f.locate(8), (3, 1));
        assert_eq!(f.locate(7), (2, 4));
    }

    #[test]
    fn renders_with_hint() {
        let f = SourceFile::new("m.toml", "a\nbad = 1\n");
        let mut d = Diagnostics::new();
        d.error_hint(&f, 2..5, "unknown field `bad`", "remove it");
        assert_eq!(
            d.all()[0].to_string(),
            "m.toml:2:1: error: unknown field `bad`\n  hint: remove it"
        );
        assert!(d.has_errors());
    }
}
