//! The engine's shape, checked: data flows one way (trace → graph → autodiff → plan →
//! execute on a device → train), so no module imports from a layer above its own; only
//! the CUDA backend and the one place that picks a device name `backend::cuda`; the CLI
//! keeps no process-wide state; no file is over 450 lines and no function over 120.
//! docs/architecture.md draws the same table.

use std::path::{Path, PathBuf};

/// Each top-level module of `engine/` and its layer: a module may import from its own
/// layer and those below, never from above.
const LAYERS: &[(&str, u8)] = &[
    ("tensor", 0),
    ("memory", 0),
    ("rng", 0),
    ("kernels", 0),
    // The graph IR, the ops it is made of, and the tracer that records them know each other.
    ("graph", 1),
    ("ops", 1),
    ("trace", 1),
    ("autodiff", 2),
    ("plan", 3),
    ("exec", 4),
    // The collective a data-parallel step sums through, and how ranks meet: beside the
    // executor, whose errors carry its failures; it imports nothing of the engine.
    ("dist", 4),
    // Rules and data with no device in them: update rules, datasets, model definitions.
    ("optim", 5),
    ("data", 5),
    ("nn", 5),
    ("backend", 6),
    ("io", 7),
    ("train", 8),
];

/// Files (relative to the repository) that may name `backend::cuda` outside it.
const CUDA_DOORS: &[&str] = &["engine/backend/open.rs", "engine/backend/mod.rs"];

const MAX_FILE_LINES: usize = 450;
const MAX_FUNCTION_LINES: usize = 120;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(folders: &[&str]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for f in folders {
        rust_files(&root().join(f), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a readable source file");
            let rel = p
                .strip_prefix(root())
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            (rel.replace('\\', "/"), text)
        })
        .collect()
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module `engine/<module>/...` or `engine/<module>.rs` a file belongs to.
fn module_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("engine/")?;
    let first = rest.split('/').next()?;
    Some(first.strip_suffix(".rs").unwrap_or(first))
}

#[test]
fn every_engine_module_has_a_layer() {
    for (path, _) in sources(&["engine"]) {
        let module = module_of(&path).expect("an engine file");
        if module != "lib" && module != "layering" {
            assert!(layer(module).is_some(), "{path}: add module '{module}' to LAYERS");
        }
    }
}

#[test]
fn no_engine_module_imports_from_a_layer_above_it() {
    let mut wrong = Vec::new();
    for (path, text) in sources(&["engine"]) {
        let Some(own) = module_of(&path).and_then(layer) else {
            continue;
        };
        // Code only: a doc comment may point anywhere.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(theirs) = layer(&name).filter(|&l| l > own) {
                wrong.push(format!("{path} (layer {own}) imports crate::{name} (layer {theirs})"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that reach up:\n{}", wrong.join("\n"));
}

#[test]
fn only_the_cuda_backend_and_the_device_picker_name_it() {
    let mut wrong = Vec::new();
    for (path, text) in sources(&["engine", "cli", "benches"]) {
        let inside = path.starts_with("engine/backend/cuda/") || CUDA_DOORS.contains(&path.as_str());
        if !inside && (text.contains("backend::cuda") || text.contains("cudarc")) && path != "engine/layering.rs" {
            wrong.push(path);
        }
    }
    assert!(wrong.is_empty(), "name the CUDA backend outside it: {wrong:?}");
}

/// The CLI hands what it decided (a rank's voice, its files) to what needs it: a `static`
/// set in one place and read in another hides that from both.
#[test]
fn the_cli_keeps_no_process_wide_state() {
    let wrong: Vec<String> = sources(&["cli"])
        .into_iter()
        .filter(|(_, text)| {
            text.lines()
                .map(str::trim_start)
                .any(|l| l.starts_with("static ") || l.starts_with("pub static "))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(wrong.is_empty(), "statics in the CLI: {wrong:?}");
}

#[test]
fn no_file_or_function_is_too_long_to_read() {
    let mut wrong = Vec::new();
    for (path, text) in sources(&["engine", "cli", "tests", "benches"]) {
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > MAX_FILE_LINES {
            wrong.push(format!("{path}: {} lines", lines.len()));
        }
        for (i, line) in lines.iter().enumerate() {
            let body = line.trim_start();
            let is_fn = ["fn ", "pub fn ", "pub(super) fn ", "pub(crate) fn ", "unsafe fn "]
                .iter()
                .any(|p| body.starts_with(p));
            if !is_fn || line.trim_end().ends_with(';') {
                continue;
            }
            // rustfmt closes a function at its own indentation.
            let indent = &line[..line.len() - body.len()];
            let close = format!("{indent}}}");
            let end = lines[i + 1..]
                .iter()
                .position(|l| *l == close)
                .map_or(lines.len(), |k| i + 1 + k);
            if end + 1 - i > MAX_FUNCTION_LINES {
                wrong.push(format!("{path}:{}: a function of {} lines", i + 1, end + 1 - i));
            }
        }
    }
    assert!(wrong.is_empty(), "too long:\n{}", wrong.join("\n"));
}
