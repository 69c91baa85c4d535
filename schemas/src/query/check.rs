//! From syntax to the typed plan: resolves names stage by stage, types every expression and
//! rejects unknown names, unknown functions and mismatched types with the span they came from.

use chrono::{DateTime, Utc};

use super::ast::{self, Named, Span, StageKind, SyntaxExpr, SyntaxQuery};
use super::error::QueryError;
use super::plan::{Aggregate, CompareOp, Expr, ExprKind, Output, Plan, Stage, Table, Type, Value};
use crate::Severity;

/// The functions of expressions (aggregations are listed apart).
const FUNCTIONS: &str = "ago, now, bin, isnull, isnotnull, tolower, toupper, strlen";
/// The aggregations of `summarize`.
const AGGREGATIONS: &str = "count, dcount, min, max, sum, avg, percentile";

/// What names a stage can see.
struct Scope {
    /// The table's stored columns and fields are visible (before `project` / `summarize`).
    base: bool,
    /// Outputs of earlier stages, newest definition last.
    named: Vec<(String, Type)>,
}

struct Checker<'q> {
    text: &'q str,
    table: Table,
    now: DateTime<Utc>,
    scope: Scope,
}

/// Checks `query` (the syntax of `text`) into a plan; `now` is what `now()` and `ago()` mean.
pub fn check(text: &str, query: &SyntaxQuery, now: DateTime<Utc>) -> Result<Plan, QueryError> {
    let (table_name, table_span) = &query.table;
    let table = [Table::Events, Table::Alerts, Table::DeadLetters]
        .into_iter()
        .find(|table| table.as_str() == table_name)
        .ok_or_else(|| {
            QueryError::at(text, table_span.start, format!("unknown table `{table_name}`: expected events, alerts or dead_letters"))
        })?;
    let mut checker = Checker { text, table, now, scope: Scope { base: true, named: Vec::new() } };
    let mut stages = Vec::new();
    for stage in &query.stages {
        checker.stage(&stage.kind, &stage.span, &mut stages)?;
    }
    let columns = checker.visible_columns();
    Ok(Plan { table, stages, columns })
}

impl Checker<'_> {
    fn error(&self, span: &Span, message: impl Into<String>) -> QueryError {
        QueryError::at(self.text, span.start, message)
    }

    /// The columns a result row has at this point.
    fn visible_columns(&self) -> Vec<(String, Type)> {
        let mut columns: Vec<(String, Type)> = Vec::new();
        if self.scope.base {
            columns.extend(self.table.columns().iter().map(|(name, column)| ((*name).to_owned(), column.value_type())));
            if self.table == Table::Events {
                columns.push(("fields".to_owned(), Type::Dynamic));
            }
        }
        for (name, ty) in &self.scope.named {
            columns.retain(|(existing, _)| existing != name);
            columns.push((name.clone(), *ty));
        }
        columns
    }

    fn stage(&mut self, kind: &StageKind, span: &Span, stages: &mut Vec<Stage>) -> Result<(), QueryError> {
        match kind {
            StageKind::Where(predicate) => {
                let predicate = self.expr(predicate)?;
                self.expect_type(&predicate, Type::Bool, span, "`where` needs a condition")?;
                stages.push(Stage::Where(predicate));
            }
            StageKind::Search(term) => {
                if self.table != Table::Events || !self.scope.base {
                    return Err(self.error(span, "`search` reads the message of events: use it right after `events`"));
                }
                stages.push(Stage::Search(term.clone()));
            }
            StageKind::Extend(items) => {
                let outputs = self.outputs(items)?;
                for output in &outputs {
                    self.scope.named.push((output.name.clone(), output.expr.ty));
                }
                stages.push(Stage::Extend(outputs));
            }
            StageKind::Project(items) => {
                let outputs = self.outputs(items)?;
                self.replace_scope(&outputs);
                stages.push(Stage::Project(outputs));
            }
            StageKind::Distinct(items) => {
                let outputs = self.outputs(items)?;
                self.replace_scope(&outputs);
                stages.push(Stage::Distinct(outputs));
            }
            StageKind::Summarize { aggregates, by } => {
                let keys = self.outputs(by)?;
                let mut checked = Vec::new();
                for item in aggregates {
                    checked.push(self.aggregate(item)?);
                }
                let mut names: Vec<(String, Type)> = keys.iter().map(|key| (key.name.clone(), key.expr.ty)).collect();
                names.extend(checked.iter().map(|(name, aggregate)| (name.clone(), aggregate.result_type())));
                self.scope = Scope { base: false, named: names };
                stages.push(Stage::Summarize { aggregates: checked, keys });
            }
            StageKind::Top { n, by, order } => {
                let by = self.expr(by)?;
                stages.push(Stage::Sort(vec![(by, *order)]));
                stages.push(Stage::Take(*n));
            }
            StageKind::Sort(keys) => {
                let mut checked = Vec::new();
                for (key, order) in keys {
                    checked.push((self.expr(key)?, *order));
                }
                stages.push(Stage::Sort(checked));
            }
            StageKind::Take(n) => stages.push(Stage::Take(*n)),
            StageKind::Count => {
                self.scope = Scope { base: false, named: vec![("count_".to_owned(), Type::Int)] };
                stages.push(Stage::Count);
            }
        }
        Ok(())
    }

    fn replace_scope(&mut self, outputs: &[Output]) {
        self.scope = Scope { base: false, named: outputs.iter().map(|output| (output.name.clone(), output.expr.ty)).collect() };
    }

    fn outputs(&self, items: &[Named]) -> Result<Vec<Output>, QueryError> {
        let mut outputs: Vec<Output> = Vec::new();
        for item in items {
            let expr = self.expr(&item.expr)?;
            let name = match &item.name {
                Some(name) => name.clone(),
                None => default_name(&item.expr).ok_or_else(|| self.error(&item.expr.span, "name this expression: `name = expression`"))?,
            };
            if outputs.iter().any(|output| output.name == name) {
                return Err(self.error(&item.expr.span, format!("the column `{name}` is named twice")));
            }
            outputs.push(Output { name, expr });
        }
        Ok(outputs)
    }

    fn aggregate(&self, item: &Named) -> Result<(String, Aggregate), QueryError> {
        let span = &item.expr.span;
        let ast::ExprKind::Call(function, args) = &item.expr.kind else {
            return Err(self.error(span, format!("expected an aggregation ({AGGREGATIONS})")));
        };
        let arity = |count: usize| -> Result<(), QueryError> {
            if args.len() == count {
                Ok(())
            } else {
                Err(self.error(span, format!("`{function}()` takes {count} argument(s), {} given", args.len())))
            }
        };
        let argument_name = args.first().and_then(default_name).unwrap_or_default().replace('.', "_");
        let (default, aggregate) = match function.as_str() {
            "count" => {
                arity(0)?;
                ("count_".to_owned(), Aggregate::Count)
            }
            "dcount" | "min" | "max" | "sum" | "avg" => {
                arity(1)?;
                let argument = self.expr(&args[0])?;
                let numeric = argument.ty.is_numeric() || argument.ty == Type::Dynamic;
                if matches!(function.as_str(), "sum" | "avg") && !numeric {
                    return Err(self.error(&args[0].span, format!("`{function}()` needs a number, found {}", argument.ty.name())));
                }
                let aggregate = match function.as_str() {
                    "dcount" => Aggregate::DistinctCount(argument),
                    "min" => Aggregate::Min(argument),
                    "max" => Aggregate::Max(argument),
                    "sum" => Aggregate::Sum(argument),
                    _ => Aggregate::Avg(argument),
                };
                (format!("{function}_{argument_name}"), aggregate)
            }
            "percentile" => {
                arity(2)?;
                let argument = self.expr(&args[0])?;
                let rank = match args[1].kind {
                    ast::ExprKind::Int(p) => p as f64,
                    ast::ExprKind::Float(p) => p,
                    _ => return Err(self.error(&args[1].span, "the percentile is a number from 0 to 100")),
                };
                if !(0.0..=100.0).contains(&rank) {
                    return Err(self.error(&args[1].span, "the percentile is a number from 0 to 100"));
                }
                (format!("percentile_{argument_name}_{}", format_rank(rank)), Aggregate::Percentile(argument, rank))
            }
            other if FUNCTIONS.split(", ").any(|name| name == other) => {
                return Err(self.error(span, format!("`{other}()` is not an aggregation; expected one of {AGGREGATIONS}")))
            }
            other => return Err(self.error(span, format!("unknown aggregation `{other}()`; expected one of {AGGREGATIONS}"))),
        };
        Ok((item.name.clone().unwrap_or(default), aggregate))
    }

    fn expect_type(&self, expr: &Expr, ty: Type, span: &Span, what: &str) -> Result<(), QueryError> {
        if expr.ty == ty {
            Ok(())
        } else {
            Err(self.error(span, format!("{what}, found a {}", expr.ty.name())))
        }
    }

    fn resolve(&self, name: &str, span: &Span) -> Result<Expr, QueryError> {
        if let Some((_, ty)) = self.scope.named.iter().rev().find(|(named, _)| named == name) {
            return Ok(Expr { kind: ExprKind::Named(name.to_owned()), ty: *ty });
        }
        if self.scope.base {
            if let Some((_, column)) = self.table.columns().iter().find(|(column, _)| *column == name) {
                return Ok(Expr { kind: ExprKind::Column(*column), ty: column.value_type() });
            }
        }
        let known: Vec<String> = self.visible_columns().into_iter().map(|(name, _)| name).collect();
        let fields = if self.scope.base && self.table == Table::Events {
            "; source fields are read as fields.<name> or ['<name>']"
        } else {
            ""
        };
        Err(self.error(span, format!("unknown column `{name}`: known here are {}{fields}", known.join(", "))))
    }

    pub(super) fn expr(&self, syntax: &SyntaxExpr) -> Result<Expr, QueryError> {
        use ast::ExprKind as S;
        let span = &syntax.span;
        let typed = |kind, ty| Ok(Expr { kind, ty });
        match &syntax.kind {
            S::Name(name) => self.resolve(name, span),
            S::Field(name) => {
                if self.table != Table::Events || !self.scope.base {
                    return Err(self.error(span, "source fields are only readable on events before `project` or `summarize`"));
                }
                typed(ExprKind::Field(name.clone()), Type::Dynamic)
            }
            S::Text(text) => typed(ExprKind::Value(Value::Text(text.clone())), Type::Text),
            S::Int(value) => typed(ExprKind::Value(Value::Int(*value)), Type::Int),
            S::Float(value) => typed(ExprKind::Value(Value::Float(*value)), Type::Float),
            S::Bool(value) => typed(ExprKind::Value(Value::Bool(*value)), Type::Bool),
            S::Timespan(micros) => typed(ExprKind::Value(Value::Timespan(*micros)), Type::Timespan),
            S::Datetime(text) => {
                let time = parse_datetime(text).ok_or_else(|| {
                    self.error(span, format!("`{text}` is not a datetime: write it as 2026-01-31T13:45:00Z or 2026-01-31"))
                })?;
                typed(ExprKind::Value(Value::Time(time)), Type::Time)
            }
            S::Call(function, args) => self.call(function, args, span),
            S::Compare(op, left, right) => self.compare(*op, left, right, span),
            S::TextMatch { op, negated, subject, pattern } => {
                let subject = self.expr(subject)?;
                self.expect_text(&subject, &syntax.span, op.as_str())?;
                let S::Text(text) = &pattern.kind else {
                    return Err(self.error(&pattern.span, format!("`{}` takes a quoted string", op.as_str())));
                };
                typed(
                    ExprKind::TextMatch { op: *op, negated: *negated, subject: Box::new(subject), pattern: text.clone() },
                    Type::Bool,
                )
            }
            S::In { subject, list, negated } => {
                let subject = self.expr(subject)?;
                let mut checked = Vec::new();
                for (item, item_syntax) in list.iter().map(|item| (self.expr(item), item)) {
                    checked.push(self.coerce_to(&subject, item?, &item_syntax.span)?);
                }
                typed(ExprKind::In { subject: Box::new(subject), list: checked, negated: *negated, ignore_case: false }, Type::Bool)
            }
            S::Between { subject, low, high, negated } => {
                let subject = self.expr(subject)?;
                if !(subject.ty.is_numeric() || matches!(subject.ty, Type::Time | Type::Dynamic | Type::Timespan)) {
                    return Err(self.error(span, format!("`between` needs a number or a datetime, found a {}", subject.ty.name())));
                }
                let low = self.coerce_to(&subject, self.expr(low)?, &low.span)?;
                let high = self.coerce_to(&subject, self.expr(high)?, &high.span)?;
                let kind = ExprKind::Between { subject: Box::new(subject), low: Box::new(low), high: Box::new(high), negated: *negated };
                typed(kind, Type::Bool)
            }
            S::And(left, right) | S::Or(left, right) => {
                let (l, r) = (self.expr(left)?, self.expr(right)?);
                let word = if matches!(syntax.kind, S::And(..)) { "and" } else { "or" };
                self.expect_type(&l, Type::Bool, &left.span, &format!("`{word}` joins conditions"))?;
                self.expect_type(&r, Type::Bool, &right.span, &format!("`{word}` joins conditions"))?;
                let kind = if word == "and" { ExprKind::And(Box::new(l), Box::new(r)) } else { ExprKind::Or(Box::new(l), Box::new(r)) };
                typed(kind, Type::Bool)
            }
            S::Not(inner) => {
                let inner_expr = self.expr(inner)?;
                self.expect_type(&inner_expr, Type::Bool, &inner.span, "`not` takes a condition")?;
                typed(ExprKind::Not(Box::new(inner_expr)), Type::Bool)
            }
            S::Arith(op, left, right) => self.arith(*op, left, right, span),
            S::Negate(inner) => {
                let inner = self.expr(inner)?;
                if !(inner.ty.is_numeric() || inner.ty == Type::Timespan) {
                    return Err(self.error(span, format!("cannot negate a {}", inner.ty.name())));
                }
                let ty = inner.ty;
                typed(ExprKind::Negate(Box::new(inner)), ty)
            }
        }
    }

    fn expect_text(&self, expr: &Expr, span: &Span, what: &str) -> Result<(), QueryError> {
        if matches!(expr.ty, Type::Text | Type::Dynamic) {
            Ok(())
        } else {
            Err(self.error(span, format!("`{what}` needs a string, found a {}", expr.ty.name())))
        }
    }

    /// `value` made comparable with `subject`: severity names become codes; types must agree.
    fn coerce_to(&self, subject: &Expr, value: Expr, span: &Span) -> Result<Expr, QueryError> {
        if subject.ty == Type::Severity {
            if let ExprKind::Value(Value::Text(name)) = &value.kind {
                let severity = Severity::from_name(name)
                    .ok_or_else(|| self.error(span, format!("`{name}` is not a severity (emergency, alert, critical, error, warning, notice, informational, debug)")))?;
                return Ok(Expr { kind: ExprKind::Value(Value::Int(i64::from(severity.code()))), ty: Type::Severity });
            }
            if let ExprKind::Value(Value::Int(code)) = value.kind {
                if (0..=7).contains(&code) {
                    return Ok(Expr { kind: ExprKind::Value(Value::Int(code)), ty: Type::Severity });
                }
                return Err(self.error(span, "a severity code is 0 to 7"));
            }
        }
        if comparable(subject.ty, value.ty) {
            Ok(value)
        } else {
            Err(self.error(span, format!("cannot compare a {} with a {}", subject.ty.name(), value.ty.name())))
        }
    }

    fn compare(&self, op: CompareOp, left: &SyntaxExpr, right: &SyntaxExpr, span: &Span) -> Result<Expr, QueryError> {
        let mut l = self.expr(left)?;
        let mut r = self.expr(right)?;
        if r.ty == Type::Severity {
            l = self.coerce_to(&r, l, &left.span)?;
        } else {
            r = self.coerce_to(&l, r, &right.span)?;
        }
        if matches!(op, CompareOp::EqNoCase | CompareOp::NeNoCase) {
            self.expect_text(&l, span, "=~")?;
            self.expect_text(&r, &right.span, "=~")?;
        }
        if matches!(l.ty, Type::Bool) && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(self.error(span, "booleans are only compared with == and !="));
        }
        Ok(Expr { kind: ExprKind::Compare(op, Box::new(l), Box::new(r)), ty: Type::Bool })
    }

    fn arith(&self, op: ast::ArithOp, left: &SyntaxExpr, right: &SyntaxExpr, span: &Span) -> Result<Expr, QueryError> {
        use ast::ArithOp::{Add, Sub};
        let (l, r) = (self.expr(left)?, self.expr(right)?);
        let numeric = |ty: Type| ty.is_numeric() || ty == Type::Dynamic;
        let ty = match (l.ty, op, r.ty) {
            (Type::Time, Add | Sub, Type::Timespan) | (Type::Timespan, Add, Type::Time) => Type::Time,
            (Type::Time, Sub, Type::Time) | (Type::Timespan, Add | Sub, Type::Timespan) => Type::Timespan,
            (Type::Int, _, Type::Int) => Type::Int,
            (a, _, b) if numeric(a) && numeric(b) => Type::Float,
            (a, _, b) => return Err(self.error(span, format!("cannot compute a {} {} a {}", a.name(), op_symbol(op), b.name()))),
        };
        Ok(Expr { kind: ExprKind::Arith(op, Box::new(l), Box::new(r)), ty })
    }

    fn call(&self, function: &str, args: &[SyntaxExpr], span: &Span) -> Result<Expr, QueryError> {
        let arity = |count: usize| -> Result<(), QueryError> {
            if args.len() == count {
                Ok(())
            } else {
                Err(self.error(span, format!("`{function}()` takes {count} argument(s), {} given", args.len())))
            }
        };
        let time = |time: DateTime<Utc>| Ok(Expr { kind: ExprKind::Value(Value::Time(time)), ty: Type::Time });
        match function {
            "now" => {
                arity(0)?;
                time(self.now)
            }
            "ago" => {
                arity(1)?;
                match args[0].kind {
                    ast::ExprKind::Timespan(micros) => match self.now.checked_sub_signed(chrono::Duration::microseconds(micros)) {
                        Some(then) => time(then),
                        None => Err(self.error(&args[0].span, "`ago()` reaches outside the datetimes a query can name")),
                    },
                    _ => Err(self.error(&args[0].span, "`ago()` takes a timespan such as 1h or 15m")),
                }
            }
            "bin" => {
                arity(2)?;
                let subject = self.expr(&args[0])?;
                self.expect_type(&subject, Type::Time, &args[0].span, "`bin()` rounds a datetime")?;
                match args[1].kind {
                    ast::ExprKind::Timespan(micros) if micros > 0 => {
                        Ok(Expr { kind: ExprKind::BinTime(Box::new(subject), micros), ty: Type::Time })
                    }
                    _ => Err(self.error(&args[1].span, "the bin width is a positive timespan such as 5m")),
                }
            }
            "isnull" | "isnotnull" => {
                arity(1)?;
                let subject = self.expr(&args[0])?;
                Ok(Expr { kind: ExprKind::IsNull(Box::new(subject), function == "isnotnull"), ty: Type::Bool })
            }
            "tolower" | "toupper" | "strlen" => {
                arity(1)?;
                let subject = self.expr(&args[0])?;
                self.expect_text(&subject, &args[0].span, function)?;
                let subject = Box::new(subject);
                Ok(match function {
                    "tolower" => Expr { kind: ExprKind::Lower(subject), ty: Type::Text },
                    "toupper" => Expr { kind: ExprKind::Upper(subject), ty: Type::Text },
                    _ => Expr { kind: ExprKind::Length(subject), ty: Type::Int },
                })
            }
            other if AGGREGATIONS.split(", ").any(|name| name == other) => {
                Err(self.error(span, format!("`{other}()` is an aggregation: use it in `summarize`")))
            }
            other => Err(self.error(span, format!("unknown function `{other}()`; expected one of {FUNCTIONS}"))),
        }
    }
}

fn op_symbol(op: ast::ArithOp) -> &'static str {
    match op {
        ast::ArithOp::Add => "+",
        ast::ArithOp::Sub => "-",
        ast::ArithOp::Mul => "*",
        ast::ArithOp::Div => "/",
    }
}

/// Whether values of the two types can be compared.
fn comparable(a: Type, b: Type) -> bool {
    a == b || a == Type::Dynamic || b == Type::Dynamic || (a.is_numeric() && b.is_numeric())
}

/// The name a column gets when none is given: the column or field name, `time` for `bin(time, …)`.
fn default_name(expr: &SyntaxExpr) -> Option<String> {
    match &expr.kind {
        ast::ExprKind::Name(name) | ast::ExprKind::Field(name) => Some(name.clone()),
        ast::ExprKind::Call(function, args) if function == "bin" => args.first().and_then(default_name),
        _ => None,
    }
}

fn format_rank(rank: f64) -> String {
    if rank.fract() == 0.0 {
        format!("{rank:.0}")
    } else {
        format!("{rank}").replace('.', "_")
    }
}

/// `2026-01-31T13:45:00Z`, with fractions or an offset, or a date alone (midnight UTC).
fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(time.and_utc());
    }
    if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(time.and_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|date| date.and_hms_opt(0, 0, 0)).map(|time| time.and_utc())
}
