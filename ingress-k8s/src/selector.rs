//! Kubernetes label selectors as flags write them (`--watch-namespace-selector`):
//! `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key`, `!key`,
//! comma-separated, all of which must hold.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A parsed selector; [`LabelSelector::matches`] tells whether a set of labels satisfies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

impl LabelSelector {
    /// Whether `labels` satisfy every requirement (an empty selector selects everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }

    /// The selector as written, for the API server's `labelSelector` parameter.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for LabelSelector {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::Config { field: "label selector", why: format!("`{s}`: {why}") };
        let mut requirements = Vec::new();
        if !s.trim().is_empty() {
            for part in split_top_level(s).map_err(bad)? {
                let part = part.trim();
                if part.is_empty() {
                    return Err(bad("an empty requirement (a stray comma)".into()));
                }
                requirements.push(requirement(part).map_err(bad)?);
            }
        }
        Ok(Self { text: s.trim().to_owned(), requirements })
    }
}

/// The requirements: split at commas outside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced parentheses".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::Absent(label_key(key.trim())?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotIn(label_key(key.trim())?, vec![label_value(value.trim())?]));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::In(label_key(key.trim())?, vec![label_value(value.trim())?]));
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(Requirement::Exists(label_key(key)?)),
        [key, rest] => {
            let rest = rest.trim_start();
            let (op, list) = if let Some(list) = rest.strip_prefix("notin") {
                (false, list)
            } else if let Some(list) = rest.strip_prefix("in") {
                (true, list)
            } else {
                return Err(format!("`{part}`: expected `=`, `!=`, `in` or `notin`"));
            };
            let list = list.trim();
            let inner = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(|| format!("`{part}`: the values go in parentheses"))?;
            if inner.trim().is_empty() {
                return Err(format!("`{part}`: the set of values is empty"));
            }
            let values = inner.split(',').map(|v| label_value(v.trim())).collect::<Result<Vec<_>, _>>()?;
            let key = label_key(key)?;
            Ok(if op { Requirement::In(key, values) } else { Requirement::NotIn(key, values) })
        }
        _ => Err(format!("`{part}` is not a requirement")),
    }
}

/// A label key: an optional DNS prefix and `/`, then a name of letters, digits, `-`, `_`, `.`.
fn label_key(key: &str) -> Result<String, String> {
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    let ok = !name.is_empty()
        && name.len() <= 63
        && key.len() <= 253 + 1 + 63
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if ok { Ok(key.to_owned()) } else { Err(format!("`{key}` is not a label key")) }
}

/// A label value: empty, or up to 63 letters, digits, `-`, `_`, `.` beginning and ending with a
/// letter or digit.
fn label_value(value: &str) -> Result<String, String> {
    let edges = |b: Option<&u8>| b.is_none_or(u8::is_ascii_alphanumeric);
    let ok = value.len() <= 63
        && edges(value.as_bytes().first())
        && edges(value.as_bytes().last())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(value.to_owned()) } else { Err(format!("`{value}` is not a label value")) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_operator_selects_as_kubernetes_does() {
        let s: LabelSelector =
            "team=web, env in (prod,staging),!legacy,tier!=db,app.kubernetes.io/name".parse().unwrap();
        let good =
            labels(&[("team", "web"), ("env", "prod"), ("tier", "front"), ("app.kubernetes.io/name", "x")]);
        assert!(s.matches(&good));
        for (k, v) in [("team", "ops"), ("env", "dev"), ("tier", "db")] {
            let mut l = good.clone();
            l.insert(k.into(), v.into());
            assert!(!s.matches(&l), "{k}={v}");
        }
        let mut l = good.clone();
        l.insert("legacy".into(), String::new());
        assert!(!s.matches(&l), "!legacy");
        let mut l = good;
        l.remove("app.kubernetes.io/name");
        assert!(!s.matches(&l), "exists");
        let notin: LabelSelector = "env notin (prod)".parse().unwrap();
        assert!(notin.matches(&labels(&[])) && !notin.matches(&labels(&[("env", "prod")])));
        let double: LabelSelector = "a==b".parse().unwrap();
        assert!(double.matches(&labels(&[("a", "b")])));
        assert!("".parse::<LabelSelector>().unwrap().matches(&labels(&[])));
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in [
            "a in b",
            "a in (b",
            "a=(b)",
            "a=b c",
            "a b c",
            "a=b)",
            "=b",
            "a==b=c!",
            "a in (b,c))",
            "a,",
            "a in ()",
            "a=-b",
        ] {
            assert!(bad.parse::<LabelSelector>().is_err(), "{bad}");
        }
    }
}
