//! Parser and checker tests: every operator, every error case.

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn plan(text: &str) -> Plan {
    compile(text, now()).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn error(text: &str) -> QueryError {
    compile(text, now()).expect_err(text)
}

fn only_where(text: &str) -> Expr {
    match plan(text).stages.as_slice() {
        [Stage::Where(predicate)] => predicate.clone(),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn tables_and_an_empty_pipe() {
    assert_eq!(plan("events").table, Table::Events);
    assert_eq!(plan("alerts").table, Table::Alerts);
    assert_eq!(plan("  dead_letters  ").table, Table::DeadLetters);
    assert!(plan("events").stages.is_empty());
    let columns: Vec<String> = plan("events").columns.into_iter().map(|(name, _)| name).collect();
    assert!(columns.contains(&"source.kind".to_owned()) && columns.contains(&"message".to_owned()), "{columns:?}");
}

#[test]
fn every_comparison_operator() {
    for (text, op) in [
        ("==", CompareOp::Eq),
        ("!=", CompareOp::Ne),
        ("=~", CompareOp::EqNoCase),
        ("!~", CompareOp::NeNoCase),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::Le),
        (">", CompareOp::Gt),
        (">=", CompareOp::Ge),
    ] {
        let predicate = only_where(&format!("events | where host {text} \"web-1\""));
        let ExprKind::Compare(parsed, left, right) = predicate.kind else { panic!("{text}: {predicate:?}") };
        assert_eq!(parsed, op, "{text}");
        assert_eq!(left.kind, ExprKind::Column(Column::Host));
        assert_eq!(right.kind, ExprKind::Value(Value::Text("web-1".into())));
    }
}

#[test]
fn text_operators_and_their_negations() {
    for (text, op) in [
        ("has", TextOp::Has),
        ("contains", TextOp::Contains),
        ("startswith", TextOp::StartsWith),
        ("endswith", TextOp::EndsWith),
        ("matches regex", TextOp::Matches),
    ] {
        for negated in [false, true] {
            let bang = if negated { "!" } else { "" };
            let predicate = only_where(&format!("events | where message {bang}{text} 'Fail'"));
            let ExprKind::TextMatch { op: parsed, negated: parsed_negated, pattern, .. } = predicate.kind else {
                panic!("{text}: {predicate:?}")
            };
            assert_eq!((parsed, parsed_negated, pattern.as_str()), (op, negated, "Fail"));
        }
    }
}

#[test]
fn in_between_and_null_tests() {
    let ExprKind::In { list, negated: false, .. } = only_where(r#"events | where host in ("a", "b", 'c')"#).kind else { panic!() };
    assert_eq!(list.len(), 3);
    assert!(matches!(only_where(r#"events | where host !in ("a")"#).kind, ExprKind::In { negated: true, .. }));
    let ExprKind::Between { low, high, negated: false, .. } = only_where("events | where time between (datetime(2026-01-01) .. datetime(2026-01-02T00:00:00Z))").kind
    else {
        panic!()
    };
    assert_eq!(low.kind, ExprKind::Value(Value::Time(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())));
    assert_eq!(high.kind, ExprKind::Value(Value::Time(Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap())));
    assert!(matches!(only_where("events | where fields.port !between (1 .. 1024)").kind, ExprKind::Between { negated: true, .. }));
    assert!(matches!(only_where("events | where isnull(category)").kind, ExprKind::IsNull(_, false)));
    assert!(matches!(only_where("events | where isnotnull(fields.user)").kind, ExprKind::IsNull(_, true)));
}

#[test]
fn logic_binds_and_tighter_than_or_and_not_tightest() {
    let predicate = only_where(r#"events | where host == "a" or host == "b" and not message has "x""#);
    let ExprKind::Or(_, right) = predicate.kind else { panic!("{predicate:?}") };
    let ExprKind::And(_, not) = right.kind else { panic!("{right:?}") };
    assert!(matches!(not.kind, ExprKind::Not(_)));
    let grouped = only_where(r#"events | where (host == "a" or host == "b") and not(message has "x")"#);
    assert!(matches!(grouped.kind, ExprKind::And(..)), "{grouped:?}");
}

#[test]
fn time_functions_are_fixed_at_the_start() {
    let predicate = only_where("events | where time > ago(1h) and time <= now() - 30s");
    let ExprKind::And(left, right) = predicate.kind else { panic!() };
    let ExprKind::Compare(_, _, ago) = left.kind else { panic!() };
    assert_eq!(ago.kind, ExprKind::Value(Value::Time(now() - chrono::Duration::hours(1))));
    let ExprKind::Compare(_, _, arith) = right.kind else { panic!() };
    assert_eq!(arith.ty, Type::Time);
    for (span, micros) in [("1d", 86_400_000_000), ("2h", 7_200_000_000), ("5m", 300_000_000), ("1.5s", 1_500_000), ("250ms", 250_000)] {
        let ExprKind::Compare(_, _, value) = only_where(&format!("events | where time > ago({span})")).kind else { panic!() };
        assert_eq!(value.kind, ExprKind::Value(Value::Time(now() - chrono::Duration::microseconds(micros))), "{span}");
    }
}

#[test]
fn columns_fields_and_severity() {
    let ExprKind::Compare(_, left, _) = only_where(r#"events | where source.kind == "hec""#).kind else { panic!() };
    assert_eq!(left.kind, ExprKind::Column(Column::SourceKind));
    let ExprKind::Compare(_, left, _) = only_where(r#"events | where fields.data.srcip == "10.0.0.1""#).kind else { panic!() };
    assert_eq!(left.kind, ExprKind::Field("data.srcip".into()));
    let ExprKind::Compare(_, left, _) = only_where(r#"events | where ['origin@32473.user'] == "bob""#).kind else { panic!() };
    assert_eq!(left.kind, ExprKind::Field("origin@32473.user".into()));
    let ExprKind::Compare(_, _, right) = only_where(r#"events | where severity <= "warning""#).kind else { panic!() };
    assert_eq!(right.kind, ExprKind::Value(Value::Int(4)), "severity names compare as codes");
    assert!(matches!(only_where("events | where fields.port > 1000 and fields.ratio < 0.5").kind, ExprKind::And(..)));
}

#[test]
fn every_stage() {
    let stages = plan(
        r#"events | search "denied" | where host == "a" | extend user = fields.user, len = strlen(message)
           | project host, user, time, len | sort by time desc, host asc | take 10 | limit 5 | distinct host, user"#,
    )
    .stages;
    assert!(matches!(
        stages.as_slice(),
        [Stage::Search(_), Stage::Where(_), Stage::Extend(_), Stage::Project(_), Stage::Sort(_), Stage::Take(10), Stage::Take(5), Stage::Distinct(_)]
    ), "{stages:?}");
    let summary = plan(
        "events | summarize count(), hosts = dcount(host), min(time), max(time), sum(fields.bytes), avg(fields.bytes), percentile(fields.bytes, 95) by bin(time, 5m), severity | top 3 by count_ asc",
    );
    let names: Vec<&str> = summary.columns.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["time", "severity", "count_", "hosts", "min_time", "max_time", "sum_fields_bytes", "avg_fields_bytes", "percentile_fields_bytes_95"].map(|name| name.replace("fields_", "")),
    );
    assert!(matches!(summary.stages.as_slice(), [Stage::Summarize { .. }, Stage::Sort(order), Stage::Take(3)] if order[0].1 == Order::Asc));
    assert_eq!(plan("events | where host == 'a' | count").columns, vec![("count_".to_owned(), Type::Int)]);
    assert!(matches!(plan("alerts | order by time | take 1").stages[0], Stage::Sort(ref keys) if keys[0].1 == Order::Desc));
}

#[test]
fn comments_and_line_breaks_are_space() {
    let text = "events // all events\n| where host == \"a\" // one host\n| take 1";
    assert_eq!(plan(text).stages.len(), 2);
}

/// `(message, line, column)` of an error.
fn position(text: &str) -> (String, usize, usize) {
    let error = error(text);
    assert!(error.pointer.ends_with('^'), "{error}");
    (error.message, error.line, error.column)
}

#[test]
fn syntax_errors_name_the_position_and_what_was_expected() {
    let (message, line, column) = position("events | wher host == 'a'");
    assert_eq!((line, column), (1, 10));
    assert!(message.starts_with("expected an operator: where"), "{message}");

    let (message, _, column) = position("events | where host ==");
    assert_eq!(column, 23);
    assert!(message.contains("expected a value") && message.ends_with("found the end of the query"), "{message}");

    let (message, line, column) = position("events\n| where host == \"a\n| take 1");
    assert_eq!(line, 3, "an unclosed string reads to the end");
    assert!(message.contains("closing quote"), "{message} {column}");

    let (message, _, column) = position("events | where host in (\"a\" \"b\")");
    assert_eq!(column, 29);
    assert!(message.contains("`,` or `)`"), "{message}");

    let (message, _, column) = position("events | take ten");
    assert_eq!(column, 15);
    assert!(message.contains("a whole number"), "{message}");

    let (message, _, _) = position("events | top 5 host");
    assert!(message.contains("`by`"), "{message}");
    let (message, _, _) = position("events | where time between (1 2)");
    assert!(message.contains("`..`"), "{message}");
    let (message, _, column) = position("events | take 1 2");
    assert_eq!(column, 17);
    assert!(message.contains("end of the query"), "{message}");
    let (message, _, _) = position("events | where message matches 'x'");
    assert!(message.contains("`regex`"), "{message}");
    let (message, _, _) = position("");
    assert!(message.contains("a table"), "{message}");
    let (message, _, _) = position("events | where fields == 'x'");
    assert!(message.contains("field name after `fields`"), "{message}");
}

#[test]
fn meaning_errors_are_caught_before_anything_runs() {
    let cases = [
        ("logs | take 1", 1, "unknown table `logs`"),
        ("events | where hots == 'a'", 16, "unknown column `hots`"),
        ("events | where cnt(host) > 1", 16, "unknown function `cnt()`"),
        ("events | summarize total(host)", 20, "unknown aggregation `total()`"),
        ("events | where count() > 1", 16, "is an aggregation"),
        ("events | summarize ago(1h)", 20, "is not an aggregation"),
        ("events | where host", 10, "`where` needs a condition, found a string"),
        ("events | where time > 5", 23, "cannot compare a datetime with a int"),
        ("events | where severity == 'loud'", 28, "not a severity"),
        ("events | where host has 5", 25, "takes a quoted string"),
        ("events | where time has 'x'", 16, "needs a string, found a datetime"),
        ("events | summarize count() by host | where message has 'x'", 44, "unknown column `message`"),
        ("events | project host | where fields.x == 'a'", 31, "source fields"),
        ("events | where ago(5) < time", 20, "takes a timespan"),
        ("events | summarize count() by bin(time, 0m)", 41, "positive timespan"),
        ("events | summarize avg(host)", 24, "needs a number"),
        ("events | summarize percentile(fields.x, 101)", 41, "0 to 100"),
        ("events | where time > datetime(yesterday)", 23, "not a datetime"),
        ("events | project host, host", 24, "named twice"),
        ("events | project host + 'x'", 18, "cannot compute"),
        ("alerts | search 'x'", 10, "`search` reads the message of events"),
        ("events | where now(1) > time", 16, "takes 0 argument(s), 1 given"),
    ];
    for (text, column, expected) in cases {
        let error = error(text);
        assert!(error.message.contains(expected), "{text}: {error}");
        assert_eq!(error.column, column, "{text}: {error}");
    }
}

#[test]
fn the_error_display_shows_the_line_and_a_caret() {
    let error = error("events\n| where hots == 'a'");
    assert_eq!(error.to_string(), format!("line 2, column 9: {}\n| where hots == 'a'\n        ^", error.message));
}

/// Pieces of the language, so random queries get deep into the grammar, not only the first word.
const PIECES: &[&str] = &[
    "events", "alerts", "dead_letters", "|", "where", "project", "extend", "summarize", "by", "top", "sort", "take",
    "distinct", "count", "search", "host", "time", "severity", "fields.a.b", "['x@y']", "==", "!=", "=~", "<", ">=",
    "has", "!has", "contains", "startswith", "endswith", "matches", "regex", "in", "!in", "between", "..", "(", ")",
    ",", "and", "or", "not", "ago(1h)", "now()", "bin(time, 5m)", "count()", "dcount(host)", "percentile(x, 50)",
    "\"a\"", "'b", "5m", "1.5", "42", "datetime(2026-01-01)", "=", "-", "+", "*", "/", "asc", "desc", "//", "\n", "é",
];

proptest::proptest! {
    #[test]
    fn random_text_never_panics(text in "\\PC{0,80}") {
        if let Err(error) = compile(&text, now()) {
            proptest::prop_assert!(error.position <= text.len());
        }
    }

    #[test]
    fn random_pieces_never_panic(pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..24)) {
        let text = pieces.join(" ");
        if let Err(error) = compile(&text, now()) {
            proptest::prop_assert!(error.position <= text.len() && error.column >= 1, "{}", error);
        }
    }
}

/// Parses and checks `text` on a thread with a 1 MiB stack (tokio's workers have 2 MiB): a
/// query that recursed without bound would overflow it and abort the test run.
fn compile_on_a_small_stack(text: String) -> Result<Plan, QueryError> {
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || compile(&text, now()))
        .unwrap()
        .join()
        .expect("compiling does not panic")
}

#[test]
fn nesting_deeper_than_the_limit_is_refused_where_it_passes_the_limit() {
    let prefix = "events | where ";
    for (open, close) in [("(", ")"), ("not ", ""), ("-", ""), ("tolower(", ")")] {
        let text = format!("{prefix}{}host{}", open.repeat(100_000), close.repeat(100_000));
        let error = compile_on_a_small_stack(text).expect_err(open);
        assert!(error.message.contains("at most 32 levels"), "{open}: {}", error.message);
        // The caret is at the expression that sits one level too deep.
        assert_eq!(error.position, prefix.len() + open.len() * (parse::MAX_NESTING + 1), "{open}: {}", error.position);
    }
    let deepest = format!("{prefix}{}host == 'a'{}", "(".repeat(parse::MAX_NESTING), ")".repeat(parse::MAX_NESTING));
    compile_on_a_small_stack(deepest).expect("32 levels of parentheses are allowed");
}

#[test]
fn long_and_or_chains_stay_shallow_and_long_arithmetic_is_refused() {
    let alternatives: Vec<String> = (0..5000).map(|n| format!("host == 'h-{n}'")).collect();
    let text = format!("events | where {} and severity != 'debug'", alternatives.join(" or "));
    match compile_on_a_small_stack(text).expect("5,000 alternatives compile").stages.as_slice() {
        [Stage::Where(predicate)] => assert!(matches!(predicate.kind, ExprKind::Or(..)), "`or` binds loosest"),
        _ => panic!("one where stage"),
    }
    let sum = format!("events | extend n = {}", vec!["1"; 100].join(" + "));
    let error = compile_on_a_small_stack(sum).expect_err("100 chained additions");
    assert!(error.message.contains("nested too deeply"), "{}", error.message);
    assert!(error.position > "events | extend n = ".len(), "the caret is inside the sum: {}", error.position);
    compile_on_a_small_stack(format!("events | extend n = {}", vec!["1"; parse::MAX_DEPTH].join(" + "))).expect("64 chained additions compile");
}


#[test]
fn a_timespan_beyond_the_calendar_is_an_error_not_a_panic() {
    // Found by the query fuzz target: `now - 66...6h` overflowed chrono's subtraction.
    let text = format!("alerts | where ago({}h) and ago(0h)", "6".repeat(50));
    let refused = error(&text);
    assert!(refused.message.contains("`ago()` reaches outside"), "{refused}");
    assert_eq!(refused.position, "alerts | where ago(".len());
    assert!(error("events | where time > ago(9223372036854775807us)").message.contains("`ago()` reaches outside"));
}
