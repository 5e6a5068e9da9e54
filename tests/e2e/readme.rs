//! The README's examples for the other runtimes are the ones the tests run:
//! its Python and JavaScript code blocks are the example files, word for
//! word, and every `wasmtime --invoke` call it shows is one the wasmtime CLI
//! tests make.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

/// The fenced code blocks (language, text) of the README section `heading`.
fn code_blocks(readme: &str, heading: &str) -> Vec<(String, String)> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has no section {heading:?}"));
    let level = heading.split(' ').next().unwrap();
    let body = &readme[start + heading.len() + 2..];
    // The section ends at the next heading of the same or a higher level,
    // outside code blocks (where `# ` starts a comment).
    let mut end = body.len();
    let mut offset = 0;
    let mut in_code = false;
    for line in body.split_inclusive('\n') {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            if hashes <= level.len() && line[hashes..].starts_with(' ') {
                end = offset;
                break;
            }
        }
        offset += line.len();
    }
    let mut blocks = Vec::new();
    let mut lines = body[..end].lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.strip_prefix("```") {
            let mut text = String::new();
            for line in lines.by_ref() {
                if line == "```" {
                    break;
                }
                text.push_str(line);
                text.push('\n');
            }
            blocks.push((language.to_string(), text));
        }
    }
    blocks
}

fn block(readme: &str, heading: &str, language: &str) -> String {
    code_blocks(readme, heading)
        .into_iter()
        .find(|(l, _)| l == language)
        .unwrap_or_else(|| panic!("no {language} block under {heading:?}"))
        .1
}

#[test]
fn the_python_example_is_the_file_the_tests_run() {
    let readme = read("README.md");
    assert_eq!(
        block(&readme, "### Python", "python"),
        read("python/examples/quickstart.py"),
        "the README's Python example differs from python/examples/quickstart.py"
    );
}

#[test]
fn the_javascript_example_is_the_file_the_tests_run() {
    let readme = read("README.md");
    assert_eq!(
        block(&readme, "### JavaScript (Node, jco)", "js"),
        read("js/examples/quickstart.mjs"),
        "the README's JavaScript example differs from js/examples/quickstart.mjs"
    );
}

#[test]
fn every_wasmtime_call_in_the_readme_is_one_the_tests_make() {
    let readme = read("README.md");
    let commands = block(&readme, "### wasmtime CLI", "sh");
    let tests = read("tests/e2e/wasmtime_cli.rs");
    let mut calls = 0;
    for line in commands.lines() {
        let Some(rest) = line.strip_prefix("wasmtime run --dir _COMM::/_COMM --invoke '") else {
            assert!(
                !line.starts_with("wasmtime"),
                "a wasmtime command not in the tested form: {line}"
            );
            continue;
        };
        let call = rest
            .strip_suffix("' fmes_queue.wasm")
            .unwrap_or_else(|| panic!("not the tested form: {line}"));
        assert!(
            tests.contains(&format!("r#\"{call}\"#")),
            "the README calls {call}, which tests/e2e/wasmtime_cli.rs does not"
        );
        calls += 1;
    }
    assert!(calls >= 3, "{commands}");
}
