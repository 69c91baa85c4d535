//! Loading Sigma rules, filters and correlations from files and directories into a [`RuleSet`].
//!
//! Every YAML document is parsed on its own (files are split at `---` lines), so a document the
//! parser cannot read is rejected with its own id and title while the other documents of the
//! same file load. Files that use Sigma's collection actions (`action: global` / `reset` /
//! `repeat`) depend on their neighbours and are parsed whole.
//!
//! A document whose only fault is a missing `title` (the Sigma specification's own fragments)
//! loads under a stand-in title (its `name`, else its `id`, else the file stem) and leaves a
//! [`LoadWarning`]: reported by `rules check`, the conformance run and the engine log, never
//! silent.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rsigma_parser::{parse_sigma_yaml, CorrelationRule, Detections, FilterRule, SigmaRule};

use crate::error::{DetectionError, LoadWarning, Rejection};
use crate::expansion::{windash_expansion, Expansion, MAX_WINDASH_BYTES};

/// One loaded document and where it came from.
#[derive(Clone, Debug)]
pub struct Loaded<T> {
    /// The file the document came from.
    pub file: PathBuf,
    /// The parsed document.
    pub item: T,
    /// Parser warnings (the document loaded, but something in it was ignored, e.g. a malformed
    /// `related` entry).
    pub warnings: Vec<String>,
}

/// Everything found under a rules directory: what loaded, and what was rejected and why.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// Detection rules.
    pub rules: Vec<Loaded<SigmaRule>>,
    /// Correlation rules whose referenced rules all exist in the set.
    pub correlations: Vec<Loaded<CorrelationRule>>,
    /// Sigma filters (applied to the rules they name when a detector is compiled).
    pub filters: Vec<Loaded<FilterRule>>,
    /// Documents that could not be loaded.
    pub rejected: Vec<Rejection>,
    /// Documents that loaded only after a repair (a stand-in title), and what was done.
    pub warnings: Vec<LoadWarning>,
}

impl RuleSet {
    /// Loads a file or a directory (recursively, `.yml` / `.yaml`, in sorted path order).
    pub fn load(path: &Path) -> Result<RuleSet, DetectionError> {
        let mut set = RuleSet::default();
        let files = if path.is_dir() { yaml_files(path)? } else { vec![path.to_path_buf()] };
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|source| DetectionError::Io { path: file.clone(), source })?;
            set.add_text(&file, &text);
        }
        set.validate();
        for warning in &set.warnings {
            tracing::warn!(%warning, "Sigma document loaded with a warning.");
        }
        Ok(set)
    }

    /// Loads the documents of one YAML text as if read from `file` (for tests and tools).
    pub fn from_text(file: &Path, text: &str) -> RuleSet {
        let mut set = RuleSet::default();
        set.add_text(file, text);
        set.validate();
        set
    }

    /// Number of documents seen: loaded plus rejected.
    pub fn documents(&self) -> usize {
        self.rules.len() + self.correlations.len() + self.filters.len() + self.rejected.len()
    }

    /// The rule whose `id` or `name` is `reference`, as correlations and filters name rules.
    pub fn rule_by_reference(&self, reference: &str) -> Option<&Loaded<SigmaRule>> {
        self.rules.iter().find(|loaded| {
            loaded.item.id.as_deref() == Some(reference)
                || loaded.item.name.as_deref() == Some(reference)
        })
    }

    fn add_text(&mut self, file: &Path, text: &str) {
        let documents =
            if uses_collection_actions(text) { vec![text.to_string()] } else { split_documents(text) };
        for document in documents {
            self.add_document(file, &document);
        }
    }

    fn add_document(&mut self, file: &Path, text: &str) {
        let (id, title) = identity(text);
        let reject = |reason: String| Rejection {
            file: file.to_path_buf(),
            rule_id: id.clone(),
            title: title.clone(),
            reason,
        };
        let mut collection = match parse_sigma_yaml(text) {
            Ok(collection) => collection,
            Err(error) => {
                self.rejected.push(reject(format!("parse error: {error}")));
                return;
            }
        };
        let mut count = documents_in(&collection);
        if count == 0 && title.is_none() && only_title_missing(&collection.errors) && !uses_collection_actions(text) {
            let stand_in = stand_in_title(text, file);
            let repaired = format!("title: {}\n{text}", serde_json::Value::String(stand_in.clone()));
            // When the repaired document still fails, its errors are the real reason.
            if let Ok(retry) = parse_sigma_yaml(&repaired) {
                count = documents_in(&retry);
                collection = retry;
                if count > 0 {
                    self.warnings.push(LoadWarning {
                        file: file.to_path_buf(),
                        rule_id: id.clone(),
                        message: format!("no title; using {stand_in}"),
                    });
                }
            }
        }
        if count == 0 {
            let reason = if collection.errors.is_empty() {
                "not a Sigma rule, filter or correlation".to_string()
            } else {
                collection.errors.join("; ")
            };
            self.rejected.push(reject(reason));
            return;
        }
        // In a whole-file parse (collection actions) the errors cannot be told apart by
        // document: documents that failed are reported once, under the file.
        let warnings = if uses_collection_actions(text) && !collection.errors.is_empty() {
            self.rejected.push(reject(format!(
                "some documents of this collection failed: {}",
                collection.errors.join("; ")
            )));
            Vec::new()
        } else {
            collection.errors
        };
        let rules = within_budget(file, collection.rules, &mut self.rejected, |rule| (&rule.detection, &rule.id, &rule.title));
        self.rules.extend(rules.map(|item| loaded(file, item, &warnings)));
        self.correlations
            .extend(collection.correlations.into_iter().map(|item| loaded(file, item, &warnings)));
        let filters =
            within_budget(file, collection.filters, &mut self.rejected, |filter| (&filter.detection, &filter.id, &filter.title));
        self.filters.extend(filters.map(|item| loaded(file, item, &warnings)));
    }

    /// Rejects duplicate rule ids and correlations whose references do not resolve.
    fn validate(&mut self) {
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut kept = Vec::with_capacity(self.rules.len());
        for loaded in std::mem::take(&mut self.rules) {
            if let Some(id) = loaded.item.id.clone() {
                if let Some(first) = seen.get(&id) {
                    self.rejected.push(Rejection {
                        file: loaded.file.clone(),
                        rule_id: Some(id),
                        title: Some(loaded.item.title.clone()),
                        reason: format!("duplicate rule id (first defined in {})", first.display()),
                    });
                    continue;
                }
                seen.insert(id, loaded.file.clone());
            }
            kept.push(loaded);
        }
        self.rules = kept;
        self.validate_correlations();
    }

    /// A correlation is valid when each referenced rule is a loaded detection rule or a valid
    /// correlation (found by `id` or `name`). Computed as a fixpoint, so chains resolve in any
    /// file order and reference cycles never become valid.
    fn validate_correlations(&mut self) {
        let mut known: HashSet<String> = HashSet::new();
        for loaded in &self.rules {
            known.extend(loaded.item.id.iter().cloned());
            known.extend(loaded.item.name.iter().cloned());
        }
        let mut pending = std::mem::take(&mut self.correlations);
        loop {
            let before = pending.len();
            let (ready, waiting): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|loaded| loaded.item.rules.iter().all(|reference| known.contains(reference)));
            for loaded in &ready {
                known.extend(loaded.item.id.iter().cloned());
                known.extend(loaded.item.name.iter().cloned());
            }
            self.correlations.extend(ready);
            pending = waiting;
            if pending.len() == before || pending.is_empty() {
                break;
            }
        }
        for loaded in pending {
            let missing: Vec<&str> = loaded
                .item
                .rules
                .iter()
                .filter(|reference| !known.contains(*reference))
                .map(String::as_str)
                .collect();
            self.rejected.push(Rejection {
                file: loaded.file.clone(),
                rule_id: loaded.item.id.clone().or_else(|| loaded.item.name.clone()),
                title: Some(loaded.item.title.clone()),
                reason: format!(
                    "correlation references rules that are not loaded (or form a cycle): {}",
                    missing.join(", ")
                ),
            });
        }
    }
}

fn documents_in(collection: &rsigma_parser::SigmaCollection) -> usize {
    collection.rules.len() + collection.correlations.len() + collection.filters.len()
}

/// True when the parser's only complaint is the missing `title`.
fn only_title_missing(errors: &[String]) -> bool {
    matches!(errors, [error] if error.contains("Missing required field 'title'"))
}

/// The title a title-less document loads under: its `name`, else its `id`, else the file stem.
fn stand_in_title(text: &str, file: &Path) -> String {
    top_level(text, "name").or_else(|| top_level(text, "id")).unwrap_or_else(|| {
        file.file_stem().map_or_else(|| "untitled".to_string(), |stem| stem.to_string_lossy().into_owned())
    })
}

/// The documents of `items` whose detections fit the expansion budget; the others become
/// rejections of `file`. `parts` gives a document's detection, id and title.
fn within_budget<'a, T: 'a>(
    file: &'a Path,
    items: Vec<T>,
    rejected: &'a mut Vec<Rejection>,
    parts: impl Fn(&T) -> (&Detections, &Option<String>, &String) + 'a,
) -> impl Iterator<Item = T> + 'a {
    items.into_iter().filter(move |item| {
        let (detection, id, title) = parts(item);
        let Some(reason) = too_large(detection) else { return true };
        rejected.push(Rejection { file: file.to_path_buf(), rule_id: id.clone(), title: Some(title.clone()), reason });
        false
    })
}

/// Why `detection` is refused before compiling, when it would expand past the budget.
fn too_large(detection: &Detections) -> Option<String> {
    let Expansion { variants, bytes } = windash_expansion(detection);
    (bytes > MAX_WINDASH_BYTES).then(|| {
        format!(
            "windash values expand to {variants} variants of {bytes} bytes in all (five forms of each '-'); at most {MAX_WINDASH_BYTES} bytes a rule"
        )
    })
}

fn loaded<T>(file: &Path, item: T, warnings: &[String]) -> Loaded<T> {
    Loaded { file: file.to_path_buf(), item, warnings: warnings.to_vec() }
}

/// `.yml` / `.yaml` files under `dir`, recursively, sorted by path.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, DetectionError> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|source| DetectionError::Io { path: current.clone(), source })?;
        for entry in entries {
            let path = entry.map_err(|source| DetectionError::Io { path: current.clone(), source })?.path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(path.extension().and_then(|ext| ext.to_str()), Some("yml" | "yaml")) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// True when a top-level `action:` key appears (Sigma collection actions).
fn uses_collection_actions(text: &str) -> bool {
    text.lines().any(|line| line.starts_with("action:"))
}

/// Splits a multi-document YAML text at document-start lines (`---`). Documents holding only
/// comments or blank lines are left out.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let is_separator = line.strip_prefix("---").is_some_and(|rest| {
            let rest = rest.trim();
            rest.is_empty() || rest.starts_with('#')
        });
        if is_separator {
            documents.push(std::mem::take(&mut current));
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    documents.push(current);
    documents.into_iter().filter(|document| has_content(document)).collect()
}

fn has_content(document: &str) -> bool {
    document.lines().any(|line| {
        let trimmed = line.trim();
        !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "..."
    })
}

/// The top-level `id` (else `name`) and `title` of a document, read from its text so that they
/// are known even when the document does not parse.
fn identity(text: &str) -> (Option<String>, Option<String>) {
    (top_level(text, "id").or_else(|| top_level(text, "name")), top_level(text, "title"))
}

/// The scalar value of a top-level `key:` line, unquoted; `None` when absent or empty.
fn top_level(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?.trim();
        let value = value.trim_matches(|c| c == '\'' || c == '"');
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_RULES_ONE_BROKEN: &str = "\
title: Good rule
id: 11111111-0000-0000-0000-000000000001
logsource:
    product: linux
detection:
    keywords:
        - 'evil'
    condition: keywords
---
title: Broken rule
id: 11111111-0000-0000-0000-000000000002
logsource:
    product: linux
detection:
    selection:
        field: x
    condition: selection and
";

    #[test]
    fn a_broken_document_is_rejected_with_its_id_and_title_and_its_neighbour_loads() {
        let set = RuleSet::from_text(Path::new("mixed.yml"), TWO_RULES_ONE_BROKEN);
        assert_eq!(set.rules.len(), 1);
        assert_eq!(set.rules[0].item.title, "Good rule");
        assert_eq!(set.rejected.len(), 1, "{:?}", set.rejected);
        let rejection = &set.rejected[0];
        assert_eq!(rejection.file, Path::new("mixed.yml"));
        assert_eq!(rejection.rule_id.as_deref(), Some("11111111-0000-0000-0000-000000000002"));
        assert_eq!(rejection.title.as_deref(), Some("Broken rule"));
        assert!(!rejection.reason.is_empty());
        assert!(rejection.to_string().starts_with("mixed.yml: 11111111-0000-0000-0000-000000000002: "));
    }

    /// A rule whose `windash` values each have `dashes` dashes, `values` of them, in a list of maps.
    fn windash_rule(title: &str, values: usize, dashes: usize) -> String {
        let value: String = (0..dashes).map(|index| format!(" -{index}")).collect();
        let list: String = (0..values).map(|index| format!("\n        - 'v{index}{value}'")).collect();
        format!("title: {title}\nlogsource: {{product: windows}}\ndetection:\n  s:\n    - CommandLine|windash|contains:{list}\n  condition: s\n")
    }

    #[test]
    fn a_rule_whose_windash_values_would_expand_past_the_budget_is_rejected_before_compiling() {
        // Found by fuzzing: six values of eight dashes are 2,343,750 variants, which took a
        // release build 46 s to compile. Four dashes (625 variants of 14 bytes) still load.
        let text = format!("{}---\n{}", windash_rule("huge", 6, 8), windash_rule("fits", 1, 4));
        let set = RuleSet::from_text(Path::new("dash.yml"), &text);
        assert_eq!(set.rules.iter().map(|rule| rule.item.title.as_str()).collect::<Vec<_>>(), ["fits"]);
        assert_eq!(set.rejected.len(), 1, "{:?}", set.rejected);
        assert_eq!(set.rejected[0].title.as_deref(), Some("huge"));
        assert_eq!(
            set.rejected[0].reason,
            "windash values expand to 2343750 variants of 60937500 bytes in all (five forms of each '-'); at most 65536 bytes a rule"
        );
    }

    #[test]
    fn a_document_without_title_loads_under_its_name_with_a_warning() {
        let text = "name: internal_error\ndetection:\n  selection: {status: 500}\n  condition: selection\n";
        let set = RuleSet::from_text(Path::new("dir/aliases.yml"), text);
        assert!(set.rejected.is_empty(), "{:?}", set.rejected);
        assert_eq!(set.rules.len(), 1);
        assert_eq!(set.rules[0].item.title, "internal_error");
        assert_eq!(set.rules[0].item.name.as_deref(), Some("internal_error"));
        assert_eq!(
            set.warnings,
            [LoadWarning {
                file: PathBuf::from("dir/aliases.yml"),
                rule_id: Some("internal_error".into()),
                message: "no title; using internal_error".into(),
            }]
        );
        assert_eq!(set.warnings[0].to_string(), "dir/aliases.yml: internal_error: no title; using internal_error");
    }

    #[test]
    fn the_stand_in_title_is_the_id_then_the_file_stem() {
        let rule = "logsource:\n  product: linux\ndetection:\n  k: [a]\n  condition: k\n";
        let with_id = RuleSet::from_text(Path::new("t.yml"), &format!("id: only-an-id\n{rule}"));
        assert_eq!(with_id.rules[0].item.title, "only-an-id");
        assert_eq!(with_id.warnings[0].message, "no title; using only-an-id");
        let bare = RuleSet::from_text(Path::new("rules/temporal_fragment.yml"), rule);
        assert_eq!(bare.rules[0].item.title, "temporal_fragment");
        assert_eq!(bare.warnings[0].rule_id, None);
        assert_eq!(bare.warnings[0].message, "no title; using temporal_fragment");
    }

    #[test]
    fn a_title_less_correlation_whose_rules_are_missing_is_still_rejected() {
        let text = "correlation:\n  type: temporal\n  rules: [recon_a, recon_b]\n  group-by: [Host]\n  timespan: 5m\n";
        let set = RuleSet::from_text(Path::new("temporal_fragment.yml"), text);
        assert!(set.correlations.is_empty());
        assert_eq!(set.warnings.len(), 1, "the title was repaired: {:?}", set.warnings);
        assert_eq!(set.rejected.len(), 1);
        assert_eq!(set.rejected[0].title.as_deref(), Some("temporal_fragment"));
        assert!(set.rejected[0].reason.contains("recon_a, recon_b"), "{:?}", set.rejected);
    }

    #[test]
    fn a_title_less_document_with_another_fault_is_rejected_for_that_fault() {
        let text = "id: no-title\nlogsource:\n  product: linux\ndetection:\n  k: [a]\n";
        let set = RuleSet::from_text(Path::new("t.yml"), text);
        assert!(set.rules.is_empty());
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        assert_eq!(set.rejected.len(), 1);
        assert_eq!(set.rejected[0].rule_id.as_deref(), Some("no-title"));
        assert!(set.rejected[0].reason.contains("condition"), "{:?}", set.rejected);
    }

    #[test]
    fn a_document_with_a_title_gets_no_warning() {
        let rule = "title: T\nlogsource:\n  product: linux\ndetection:\n  k: [a]\n  condition: k\n";
        let set = RuleSet::from_text(Path::new("t.yml"), rule);
        assert_eq!(set.rules.len(), 1);
        assert!(set.warnings.is_empty());
    }

    #[test]
    fn duplicate_ids_keep_the_first() {
        let rule = "title: A\nid: dup\nlogsource:\n  product: linux\ndetection:\n  k: [a]\n  condition: k\n";
        let text = format!("{rule}---\n{}", rule.replace("title: A", "title: B"));
        let set = RuleSet::from_text(Path::new("d.yml"), &text);
        assert_eq!(set.rules.len(), 1);
        assert_eq!(set.rules[0].item.title, "A");
        assert!(set.rejected[0].reason.contains("duplicate rule id"), "{:?}", set.rejected);
    }

    #[test]
    fn correlation_chains_resolve_and_dangling_references_are_rejected() {
        let text = "\
title: Chained
id: c2
correlation:
    type: temporal_ordered
    rules: [many_failures, success]
    group-by: [User]
    timespan: 10m
---
title: Many failures
name: many_failures
correlation:
    type: event_count
    rules: [failure]
    group-by: [User]
    timespan: 10m
    condition:
        gte: 3
---
title: Failure
name: failure
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
---
title: Success
name: success
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4624}
    condition: selection
---
title: Dangling
id: c3
correlation:
    type: event_count
    rules: [does_not_exist]
    group-by: [User]
    timespan: 1h
    condition: {gte: 2}
";
        let set = RuleSet::from_text(Path::new("chain.yml"), text);
        assert_eq!(set.rules.len(), 2);
        let names: Vec<&str> = set.correlations.iter().map(|c| c.item.title.as_str()).collect();
        assert_eq!(names, ["Many failures", "Chained"]);
        assert_eq!(set.rejected.len(), 1);
        assert_eq!(set.rejected[0].rule_id.as_deref(), Some("c3"));
        assert!(set.rejected[0].reason.contains("does_not_exist"));
    }

    #[test]
    fn directories_are_walked_recursively_and_other_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let rule = |title: &str| {
            format!("title: {title}\nlogsource:\n  product: linux\ndetection:\n  k: [x]\n  condition: k\n")
        };
        std::fs::write(dir.path().join("top.yml"), rule("Top")).unwrap();
        std::fs::write(dir.path().join("a/b/deep.yaml"), rule("Deep")).unwrap();
        std::fs::write(dir.path().join("a/notes.txt"), "not yaml").unwrap();
        let set = RuleSet::load(dir.path()).unwrap();
        let mut titles: Vec<&str> = set.rules.iter().map(|r| r.item.title.as_str()).collect();
        titles.sort();
        assert_eq!(titles, ["Deep", "Top"]);
        assert!(set.rejected.is_empty());
    }

    #[test]
    fn document_splitting_ignores_comment_only_documents() {
        let docs = split_documents("# header\n---\na: 1\n--- # second\nb: 2\n");
        assert_eq!(docs, ["a: 1\n", "b: 2\n"]);
    }
}
