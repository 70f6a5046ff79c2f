//! The plugin's translations (`locale/*.ini`): every language has exactly en-US's keys with
//! the same placeholders, en-US has every key the code asks for, and the translations are
//! translations (mostly different from the English).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LANGUAGES: [&str; 7] = [
    "en-US", "de-DE", "es-ES", "fr-FR", "ja-JP", "pt-BR", "zh-CN",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `Key="Value"` lines as OBS's text lookup reads them (no duplicates allowed here).
fn read(language: &str) -> BTreeMap<String, String> {
    let path = root().join(format!("locale/{language}.ini"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut entries = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{language}.ini:{}: not Key=\"Value\"", number + 1));
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{language}.ini:{}: value not quoted", number + 1));
        assert!(!value.trim().is_empty(), "{language}.ini: {key} is empty");
        let previous = entries.insert(key.to_string(), value.to_string());
        assert!(previous.is_none(), "{language}.ini: {key} twice");
    }
    entries
}

fn placeholders(value: &str) -> BTreeSet<&str> {
    ["%1", "%2", "%3"]
        .into_iter()
        .filter(|p| value.contains(p))
        .collect()
}

/// Every `tr!("Key")` in the plugin's sources (not in comments).
fn keys_in_code() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut dirs = vec![root().join("src/obs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (index, _) in line.match_indices("tr!(\"") {
                    if line[..index].ends_with("cs") {
                        continue; // cstr!("...")
                    }
                    let rest = &line[index + 5..];
                    keys.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
    }
    keys
}

#[test]
fn every_language_has_exactly_the_english_keys() {
    let english = read("en-US");
    for language in &LANGUAGES[1..] {
        let entries = read(language);
        let missing: Vec<_> = english
            .keys()
            .filter(|k| !entries.contains_key(*k))
            .collect();
        let extra: Vec<_> = entries
            .keys()
            .filter(|k| !english.contains_key(*k))
            .collect();
        assert!(missing.is_empty(), "{language} misses {missing:?}");
        assert!(
            extra.is_empty(),
            "{language} has keys en-US lacks: {extra:?}"
        );
        for (key, value) in &entries {
            assert_eq!(
                placeholders(value),
                placeholders(&english[key]),
                "{language}: {key} has other placeholders than en-US"
            );
        }
        let same = entries.iter().filter(|(k, v)| english[*k] == **v).count();
        assert!(
            same * 4 < entries.len(),
            "{language}: {same} of {} texts are the English ones",
            entries.len()
        );
    }
}

#[test]
fn english_has_every_key_the_plugin_uses() {
    let english = read("en-US");
    let used = keys_in_code();
    assert!(
        used.contains("Menu") && used.contains("Enable.Tooltip"),
        "{used:?}"
    );
    let missing: Vec<_> = used.iter().filter(|k| !english.contains_key(*k)).collect();
    assert!(missing.is_empty(), "en-US.ini misses {missing:?}");
    let unused: Vec<_> = english.keys().filter(|k| !used.contains(*k)).collect();
    assert!(
        unused.is_empty(),
        "en-US.ini has keys no code uses: {unused:?}"
    );
}
