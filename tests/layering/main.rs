//! The workspace's layering, held by tests: which crate may depend on which (DESIGN §11), no
//! import circle between the files of a crate, no long source file, no SQL in the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest non-test source file, in lines.
const MAX_SOURCE_LINES: usize = 600;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Every `.rs` file under `dir`, sorted, leaving out build output (`target/` folders, such as
/// the fuzz targets' in `tests/fuzz/target`).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The workspace members: package name → folder.
fn members() -> BTreeMap<String, PathBuf> {
    let root = workspace_root();
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
    let members = manifest["workspace"]["members"].as_array().expect("workspace members");
    members
        .iter()
        .map(|member| {
            let dir = root.join(member.as_str().expect("member path"));
            let package: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().parse().unwrap();
            (package["package"]["name"].as_str().expect("package name").to_string(), dir)
        })
        .collect()
}

/// The dependencies of the package in `dir` listed in its manifest table `table`
/// (`dependencies`, `dev-dependencies`).
fn dependencies(dir: &Path, table: &str) -> BTreeSet<String> {
    let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().parse().unwrap();
    manifest.get(table).and_then(|table| table.as_table()).map(|table| table.keys().cloned().collect()).unwrap_or_default()
}

/// The normal (not dev, not build) dependencies of the package in `dir`.
fn normal_dependencies(dir: &Path) -> BTreeSet<String> {
    dependencies(dir, "dependencies")
}

#[test]
fn crates_depend_only_on_the_layers_below_them() {
    let members = members();
    // What each library crate may use of the workspace; `securewatch` (the binary), bench and
    // tests may use everything.
    let operators = ["securewatch-schemas", "securewatch-parse", "securewatch-detection"];
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("securewatch-schemas", &[][..]),
        ("securewatch-parse", &["securewatch-schemas"][..]),
        ("securewatch-detection", &["securewatch-schemas"][..]),
        ("securewatch-dataflow", &operators[..]),
        ("securewatch-connectors", &["securewatch-schemas"][..]),
    ]);
    let mut violations = Vec::new();
    for (crate_name, may_use) in &allowed {
        let dir = &members[*crate_name];
        // Tests too: a sibling as a dev-dependency still ties the two crates together.
        let all = normal_dependencies(dir).into_iter().chain(dependencies(dir, "dev-dependencies"));
        for dependency in all {
            let in_workspace = members.contains_key(&dependency);
            if in_workspace && !may_use.contains(&dependency.as_str()) {
                violations.push(format!("{crate_name} depends on {dependency}"));
            }
            let dataflow_engine = dependency == "timely" || dependency == "differential-dataflow";
            if dataflow_engine && *crate_name != "securewatch-dataflow" {
                violations.push(format!("{crate_name} depends on {dependency}: only securewatch-dataflow may"));
            }
        }
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
}

#[test]
fn package_names_match_their_folders() {
    for (name, dir) in members() {
        let folder = dir.file_name().unwrap().to_string_lossy().to_string();
        // The binary's package is named after the binary; the others are securewatch-<folder>.
        let expected = if folder == "pipeline" { "securewatch".to_string() } else { format!("securewatch-{folder}") };
        assert_eq!(name, expected, "package in {}", dir.display());
    }
}

/// A test file: a `tests` module, a `*_tests.rs` / `tests_*.rs` file, or anything under a
/// `tests/` or `e2e/` folder of a crate.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_stem().unwrap().to_string_lossy();
    let in_test_folder = path.components().any(|part| matches!(part.as_os_str().to_str(), Some("tests" | "e2e" | "layering")));
    name == "tests" || name.ends_with("_tests") || name.starts_with("tests_") || in_test_folder
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    for dir in members().values() {
        for file in rust_files(dir) {
            let relative = file.strip_prefix(dir).unwrap();
            if is_test_file(relative) {
                continue;
            }
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_SOURCE_LINES {
                long.push(format!("{}: {lines} lines", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these files by concern:\n{}", long.join("\n"));
}

#[test]
fn the_binary_holds_no_sql() {
    let dir = &members()["securewatch"];
    assert!(!normal_dependencies(dir).contains("sqlx"), "pipeline depends on sqlx");
    let keywords = ["SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "CREATE TABLE"];
    for file in rust_files(&dir.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for keyword in keywords {
            assert!(!text.contains(keyword), "{}: SQL ({keyword:?}) belongs in the sinks", file.display());
        }
    }
}

/// A module path within its crate (`["sinks", "sqlite", "store"]`).
type ModulePath = Vec<String>;

/// The module path of `file` under the crate's `src`.
fn module_of(src: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: ModulePath = relative.components().map(|part| part.as_os_str().to_string_lossy().to_string()).collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        path.pop();
    }
    path
}

/// The code of a file without comments and without its inline `mod tests` block.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(start) => &text[..start],
        None => text,
    };
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The modules of the same crate that `code` (of module `own`) names through `crate::`,
/// `super::` or `self::` paths.
fn referenced_modules(code: &str, own: &ModulePath, modules: &BTreeSet<ModulePath>) -> BTreeSet<ModulePath> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(offset) = code[from..].find(start) {
            let at = from + offset;
            from = at + start.len();
            let preceded_by_identifier = at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':');
            if preceded_by_identifier {
                continue;
            }
            let rest: String = code[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut segments: Vec<&str> = rest.split("::").filter(|segment| !segment.is_empty()).collect();
            let mut base = match segments.first().copied() {
                Some("crate") => Vec::new(),
                Some("self") => own.clone(),
                Some("super") => own.clone(),
                _ => continue,
            };
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
            if matches!(segments.first().copied(), Some("crate" | "self")) {
                segments.remove(0);
            }
            base.extend(segments.iter().map(|segment| segment.to_string()));
            // The longest prefix that is a module of the crate.
            while !base.is_empty() && !modules.contains(&base) {
                base.pop();
            }
            let related = base.starts_with(own) || own.starts_with(&base);
            if !related {
                found.insert(base);
            }
        }
    }
    found
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn circles(edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Vec<Vec<ModulePath>> {
    struct Search<'a> {
        edges: &'a BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        index: BTreeMap<ModulePath, usize>,
        low: BTreeMap<ModulePath, usize>,
        stack: Vec<ModulePath>,
        found: Vec<Vec<ModulePath>>,
    }
    impl Search<'_> {
        fn visit(&mut self, node: &ModulePath) {
            let number = self.index.len();
            self.index.insert(node.clone(), number);
            self.low.insert(node.clone(), number);
            self.stack.push(node.clone());
            for next in self.edges.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node.clone(), low);
                } else if self.stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node.clone(), low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    let done = &member == node;
                    component.push(member);
                    if done {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for node in edges.keys() {
        if !search.index.contains_key(node) {
            search.visit(node);
        }
    }
    search.found
}

#[test]
fn no_import_circle_between_the_files_of_a_crate() {
    let mut report = Vec::new();
    for (name, dir) in members() {
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let files = rust_files(&src);
        let modules: BTreeSet<ModulePath> = files.iter().map(|file| module_of(&src, file)).collect();
        let mut edges: BTreeMap<ModulePath, BTreeSet<ModulePath>> = BTreeMap::new();
        for file in &files {
            let own = module_of(&src, file);
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            edges.insert(own.clone(), referenced_modules(&code, &own, &modules));
        }
        for circle in circles(&edges) {
            let names: Vec<String> = circle.iter().map(|module| module.join("::")).collect();
            report.push(format!("{name}: {}", names.join(" <-> ")));
        }
    }
    assert!(report.is_empty(), "import circles (a module and one it names also naming it, directly or around):\n{}", report.join("\n"));
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let module = |path: &str| path.split("::").map(str::to_string).collect::<ModulePath>();
    let modules: BTreeSet<ModulePath> = ["a", "b", "c", "c::d"].into_iter().map(module).collect();
    let edges = BTreeMap::from([
        (module("a"), referenced_modules("use crate::b::Thing;", &module("a"), &modules)),
        (module("b"), referenced_modules("use super::a::Other; fn f() { crate::c::g() }", &module("b"), &modules)),
        (module("c"), referenced_modules("use self::d::X;", &module("c"), &modules)),
        (module("c::d"), referenced_modules("use super::super::a::Y;", &module("c::d"), &modules)),
    ]);
    assert_eq!(edges[&module("c::d")], BTreeSet::from([module("a")]));
    assert!(edges[&module("c")].is_empty(), "a parent naming its child is the module tree, not a circle");
    assert_eq!(circles(&edges), vec![vec![module("b"), module("a")]]);
}
