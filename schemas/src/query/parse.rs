//! The grammar: winnow combinators over the located query text, committing (`cut_err`) once an
//! operator is recognised so an error points where the query went wrong. Nesting is bounded so
//! no query can exhaust the stack of the thread that parses it.

use winnow::ascii::digit1;
use winnow::combinator::{alt, cut_err, delimited, eof, not, opt, preceded, repeat, separated, terminated};
use winnow::error::{ContextError, ErrMode, ModalResult};
use winnow::stream::{LocatingSlice, Location, Stateful};
use winnow::token::{any, literal, one_of, take_till, take_while};
use winnow::Parser;

use super::ast::{ArithOp, CompareOp, ExprKind, Named, Order, StageKind, SyntaxExpr, SyntaxQuery, SyntaxStage, TextOp};
use super::error::QueryError;

/// The query text with its byte positions, and how deeply the parser is nested in it.
type Input<'a> = Stateful<LocatingSlice<&'a str>, usize>;
type Error = ContextError<&'static str>;
type Parsed<T> = ModalResult<T, Error>;

/// What the parser expects after `|`.
const AN_OPERATOR: &str =
    "an operator: where, search, project, extend, summarize, top, sort, order, take, limit, distinct, count";
/// What the parser expects where a value goes.
const A_VALUE: &str = "a value: a column, a field, a string, a number, a timespan or a function call";

/// How deeply parentheses, function arguments, `not` and unary `-` may nest.
pub const MAX_NESTING: usize = 32;
/// What a query nested deeper than [`MAX_NESTING`] is told.
const LESS_NESTING: &str = "at most 32 levels of parentheses, arguments, `not` and `-` inside each other";
/// How deep the syntax tree may grow, chains of operators included (`a + b + c` is 3 deep; `and`
/// and `or` chains are balanced, so 1,000 alternatives are 11 deep). The checker and the SQL
/// compiler recurse once per level.
pub const MAX_DEPTH: usize = 64;

/// Parses `text` into its syntax tree, or says where and what was expected.
pub fn parse_syntax(text: &str) -> Result<SyntaxQuery, QueryError> {
    let parsed = query.parse(Stateful { input: LocatingSlice::new(text), state: 0 }).map_err(|error| {
        let expected = error.inner().context().next().copied().unwrap_or("something else");
        let found = text[error.offset()..].chars().next().map_or("the end of the query".to_owned(), |c| format!("{c:?}"));
        QueryError::at(text, error.offset(), format!("expected {expected}, found {found}"))
    })?;
    match too_deep(&parsed) {
        Some(position) => Err(QueryError::at(
            text,
            position,
            format!("this expression is nested too deeply: at most {MAX_DEPTH} operators inside each other"),
        )),
        None => Ok(parsed),
    }
}

/// Where the syntax tree passes [`MAX_DEPTH`], walked without recursion.
fn too_deep(query: &SyntaxQuery) -> Option<usize> {
    let mut pending: Vec<(&SyntaxExpr, usize)> = query.stages.iter().flat_map(|stage| stage_exprs(&stage.kind)).map(|expr| (expr, 1)).collect();
    while let Some((expr, depth)) = pending.pop() {
        if depth > MAX_DEPTH {
            return Some(expr.span.start);
        }
        pending.extend(expr.kind.children().into_iter().map(|child| (child, depth + 1)));
    }
    None
}

/// The expressions written in a stage.
fn stage_exprs(stage: &StageKind) -> Vec<&SyntaxExpr> {
    fn named(list: &[Named]) -> Vec<&SyntaxExpr> {
        list.iter().map(|named| &named.expr).collect()
    }
    match stage {
        StageKind::Where(expr) | StageKind::Top { by: expr, .. } => vec![expr],
        StageKind::Project(list) | StageKind::Extend(list) | StageKind::Distinct(list) => named(list),
        StageKind::Summarize { aggregates, by } => named(aggregates).into_iter().chain(named(by)).collect(),
        StageKind::Sort(keys) => keys.iter().map(|(expr, _)| expr).collect(),
        StageKind::Search(_) | StageKind::Take(_) | StageKind::Count => Vec::new(),
    }
}

/// Runs `inner` one nesting level deeper, refusing to go past [`MAX_NESTING`].
fn nested<'a, O>(input: &mut Input<'a>, inner: impl FnOnce(&mut Input<'a>) -> Parsed<O>) -> Parsed<O> {
    if input.state >= MAX_NESTING {
        return Err(ErrMode::Cut(ContextError::new().tap_push(LESS_NESTING)));
    }
    input.state += 1;
    let result = inner(input);
    input.state -= 1;
    result
}

/// An expression inside parentheses or a call's argument list.
fn nested_expression(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    nested(input, expression)
}

fn query(input: &mut Input<'_>) -> Parsed<SyntaxQuery> {
    skip_space(input)?;
    let table = identifier.with_span().context("a table: events, alerts or dead_letters").parse_next(input)?;
    skip_space(input)?;
    let stages = repeat(0.., preceded(('|', skip_space), cut_err(stage.context(AN_OPERATOR)))).parse_next(input)?;
    cut_err(eof.context("`|` and an operator, or the end of the query")).parse_next(input)?;
    Ok(SyntaxQuery { table: (table.0.to_owned(), table.1), stages })
}

/// Whitespace and `//` comments.
fn skip_space(input: &mut Input<'_>) -> Parsed<()> {
    loop {
        take_while(0.., char::is_whitespace).parse_next(input)?;
        if input.starts_with("//") {
            take_till(0.., '\n').parse_next(input)?;
        } else {
            return Ok(());
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A whole word: `word` not followed by a name character.
fn keyword<'a>(word: &'static str) -> impl Parser<Input<'a>, (), ErrMode<Error>> {
    terminated(literal(word), not(one_of(is_name_char))).void()
}

fn identifier<'a>(input: &mut Input<'a>) -> Parsed<&'a str> {
    (one_of(|c: char| c.is_ascii_alphabetic() || c == '_'), take_while(0.., is_name_char)).take().parse_next(input)
}

/// `keyword` then spaces.
fn word<'a>(text: &'static str) -> impl Parser<Input<'a>, (), ErrMode<Error>> {
    terminated(keyword(text), skip_space)
}

/// `symbol` then spaces.
fn symbol<'a>(text: &'static str) -> impl Parser<Input<'a>, (), ErrMode<Error>> {
    terminated(literal(text), skip_space).void()
}

fn stage(input: &mut Input<'_>) -> Parsed<SyntaxStage> {
    let start = input.current_token_start();
    // Two groups: winnow's `alt` takes at most nine alternatives.
    let kind = alt((
        alt((
            preceded(word("where"), cut_err(where_stage)),
            preceded(word("search"), cut_err(search_stage)),
            preceded(word("project"), cut_err(named_list)).map(StageKind::Project),
            preceded(word("extend"), cut_err(named_list)).map(StageKind::Extend),
            preceded(word("summarize"), cut_err(summarize)),
            preceded(word("top"), cut_err(top)),
        )),
        alt((
            preceded(alt((word("sort"), word("order"))), cut_err(sort)),
            preceded(alt((word("take"), word("limit"))), cut_err(count_literal)).map(StageKind::Take),
            preceded(word("distinct"), cut_err(named_list)).map(StageKind::Distinct),
            word("count").map(|()| StageKind::Count),
        )),
    ))
    .parse_next(input)?;
    let span = start..input.previous_token_end();
    skip_space(input)?;
    Ok(SyntaxStage { kind, span })
}

fn where_stage(input: &mut Input<'_>) -> Parsed<StageKind> {
    expression.context("a condition").map(StageKind::Where).parse_next(input)
}

fn search_stage(input: &mut Input<'_>) -> Parsed<StageKind> {
    string.context("a quoted search term").map(StageKind::Search).parse_next(input)
}

fn count_literal(input: &mut Input<'_>) -> Parsed<u64> {
    terminated(digit1.try_map(str::parse::<u64>), skip_space).context("a whole number").parse_next(input)
}

fn named_list(input: &mut Input<'_>) -> Parsed<Vec<Named>> {
    separated(1.., named, symbol(",")).context("a column or `name = expression`").parse_next(input)
}

fn named(input: &mut Input<'_>) -> Parsed<Named> {
    let name = opt(terminated(identifier, (skip_space, '=', not(one_of(['=', '~'])), skip_space))).parse_next(input)?;
    let expr = if name.is_some() { cut_err(expression).parse_next(input)? } else { expression.parse_next(input)? };
    Ok(Named { name: name.map(str::to_owned), expr })
}

fn summarize(input: &mut Input<'_>) -> Parsed<StageKind> {
    let aggregates = named_list.context("an aggregation such as count()").parse_next(input)?;
    let by = opt(preceded(word("by"), cut_err(named_list))).parse_next(input)?.unwrap_or_default();
    Ok(StageKind::Summarize { aggregates, by })
}

fn order(input: &mut Input<'_>) -> Parsed<Option<Order>> {
    opt(alt((word("asc").value(Order::Asc), word("desc").value(Order::Desc)))).parse_next(input)
}

fn top(input: &mut Input<'_>) -> Parsed<StageKind> {
    let n = count_literal.parse_next(input)?;
    word("by").context("`by`").parse_next(input)?;
    let by = expression.context("an expression to rank by").parse_next(input)?;
    let order = order(input)?.unwrap_or(Order::Desc);
    Ok(StageKind::Top { n, by, order })
}

fn sort(input: &mut Input<'_>) -> Parsed<StageKind> {
    word("by").context("`by`").parse_next(input)?;
    let keys = separated(1.., (expression, order).map(|(key, order)| (key, order.unwrap_or(Order::Desc))), symbol(","))
        .context("an expression to sort by")
        .parse_next(input)?;
    Ok(StageKind::Sort(keys))
}

/// Builds a binary node spanning both operands.
fn join(left: SyntaxExpr, right: SyntaxExpr, make: impl FnOnce(Box<SyntaxExpr>, Box<SyntaxExpr>) -> ExprKind) -> SyntaxExpr {
    let span = left.span.start..right.span.end;
    SyntaxExpr { kind: make(Box::new(left), Box::new(right)), span }
}

/// `a op b op c ...` of an associative operator as a balanced tree: as deep as the logarithm of
/// its length, so long generated lists of alternatives stay shallow.
fn balanced(mut operands: Vec<SyntaxExpr>, make: fn(Box<SyntaxExpr>, Box<SyntaxExpr>) -> ExprKind) -> SyntaxExpr {
    if operands.len() == 1 {
        return operands.pop().expect("one operand");
    }
    let right = operands.split_off(operands.len() / 2);
    join(balanced(operands, make), balanced(right, make), make)
}

fn expression(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let first = conjunction(input)?;
    let rest: Vec<SyntaxExpr> = repeat(0.., preceded(word("or"), cut_err(conjunction))).parse_next(input)?;
    Ok(balanced([first].into_iter().chain(rest).collect(), ExprKind::Or))
}

fn conjunction(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let first = negation(input)?;
    let rest: Vec<SyntaxExpr> = repeat(0.., preceded(word("and"), cut_err(negation))).parse_next(input)?;
    Ok(balanced([first].into_iter().chain(rest).collect(), ExprKind::And))
}

fn negation(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let start = input.current_token_start();
    if opt(terminated(keyword("not"), skip_space)).parse_next(input)?.is_some() {
        let inner = nested(input, |input| cut_err(negation).parse_next(input))?;
        let span = start..inner.span.end;
        return Ok(SyntaxExpr { kind: ExprKind::Not(Box::new(inner)), span });
    }
    comparison(input)
}

enum Tail {
    Compare(CompareOp, SyntaxExpr),
    Text(TextOp, bool, SyntaxExpr),
    In(bool, Vec<SyntaxExpr>, usize),
    Between(bool, SyntaxExpr, SyntaxExpr, usize),
}

fn compare_op(input: &mut Input<'_>) -> Parsed<CompareOp> {
    terminated(
        alt((
            "==".value(CompareOp::Eq),
            "!=".value(CompareOp::Ne),
            "=~".value(CompareOp::EqNoCase),
            "!~".value(CompareOp::NeNoCase),
            "<=".value(CompareOp::Le),
            ">=".value(CompareOp::Ge),
            "<".value(CompareOp::Lt),
            ">".value(CompareOp::Gt),
        )),
        skip_space,
    )
    .parse_next(input)
}

fn text_op(input: &mut Input<'_>) -> Parsed<(TextOp, bool)> {
    let negated = opt('!').parse_next(input)?.is_some();
    let op = alt((
        word("has").value(TextOp::Has),
        word("contains").value(TextOp::Contains),
        word("startswith").value(TextOp::StartsWith),
        word("endswith").value(TextOp::EndsWith),
        (word("matches"), cut_err(word("regex").context("`regex` after `matches`"))).value(TextOp::Matches),
    ))
    .parse_next(input)?;
    Ok((op, negated))
}

fn comparison(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let left = additive(input)?;
    let tail = opt(alt((
        (compare_op, cut_err(additive.context(A_VALUE))).map(|(op, right)| Tail::Compare(op, right)),
        (text_op, cut_err(additive.context(A_VALUE))).map(|((op, negated), right)| Tail::Text(op, negated, right)),
        (opt('!').map(|bang| bang.is_some()), word("in"), cut_err(value_list)).map(|(negated, (), (list, end))| Tail::In(negated, list, end)),
        (opt('!').map(|bang| bang.is_some()), word("between"), cut_err(range))
            .map(|(negated, (), (low, high, end))| Tail::Between(negated, low, high, end)),
    )))
    .parse_next(input)?;
    let start = left.span.start;
    Ok(match tail {
        None => left,
        Some(Tail::Compare(op, right)) => join(left, right, |l, r| ExprKind::Compare(op, l, r)),
        Some(Tail::Text(op, negated, right)) => {
            join(left, right, |subject, pattern| ExprKind::TextMatch { op, negated, subject, pattern })
        }
        Some(Tail::In(negated, list, end)) => {
            SyntaxExpr { kind: ExprKind::In { subject: Box::new(left), list, negated }, span: start..end }
        }
        Some(Tail::Between(negated, low, high, end)) => SyntaxExpr {
            kind: ExprKind::Between { subject: Box::new(left), low: Box::new(low), high: Box::new(high), negated },
            span: start..end,
        },
    })
}

/// `(a, b, c)` and the offset after `)`.
fn value_list(input: &mut Input<'_>) -> Parsed<(Vec<SyntaxExpr>, usize)> {
    symbol("(").context("`(`").parse_next(input)?;
    let list = separated(1.., additive, symbol(",")).context("a list of values").parse_next(input)?;
    literal(")").context("`,` or `)`").parse_next(input)?;
    let end = input.current_token_start();
    skip_space(input)?;
    Ok((list, end))
}

/// `(low .. high)` and the offset after `)`.
fn range(input: &mut Input<'_>) -> Parsed<(SyntaxExpr, SyntaxExpr, usize)> {
    symbol("(").context("`(`").parse_next(input)?;
    let low = additive.context("a lower bound").parse_next(input)?;
    symbol("..").context("`..`").parse_next(input)?;
    let high = additive.context("an upper bound").parse_next(input)?;
    literal(")").context("`)`").parse_next(input)?;
    let end = input.current_token_start();
    skip_space(input)?;
    Ok((low, high, end))
}

fn additive(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let first = multiplicative(input)?;
    let op = alt(("+".value(ArithOp::Add), "-".value(ArithOp::Sub)));
    let rest: Vec<(ArithOp, SyntaxExpr)> =
        repeat(0.., (terminated(op, skip_space), cut_err(multiplicative.context(A_VALUE)))).parse_next(input)?;
    Ok(rest.into_iter().fold(first, |left, (op, right)| join(left, right, |l, r| ExprKind::Arith(op, l, r))))
}

fn multiplicative(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let first = unary(input)?;
    let op = alt(("*".value(ArithOp::Mul), "/".value(ArithOp::Div)));
    let rest: Vec<(ArithOp, SyntaxExpr)> =
        repeat(0.., (terminated(op, skip_space), cut_err(unary.context(A_VALUE)))).parse_next(input)?;
    Ok(rest.into_iter().fold(first, |left, (op, right)| join(left, right, |l, r| ExprKind::Arith(op, l, r))))
}

fn unary(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let start = input.current_token_start();
    if opt(symbol("-")).parse_next(input)?.is_some() {
        let inner = nested(input, |input| cut_err(unary.context(A_VALUE)).parse_next(input))?;
        let span = start..inner.span.end;
        return Ok(SyntaxExpr { kind: ExprKind::Negate(Box::new(inner)), span });
    }
    terminated(primary, skip_space).parse_next(input)
}

fn primary(input: &mut Input<'_>) -> Parsed<SyntaxExpr> {
    let (kind, span) = alt((
        delimited(symbol("("), cut_err(nested_expression), cut_err(literal(")").context("`)`"))).map(|inner| inner.kind),
        string.map(ExprKind::Text),
        number_or_timespan,
        delimited(symbol("["), cut_err(string.context("a quoted field name")), cut_err(literal("]").context("`]`")))
            .map(ExprKind::Field),
        name_or_call,
    ))
    .with_span()
    .context(A_VALUE)
    .parse_next(input)?;
    Ok(SyntaxExpr { kind, span })
}

/// `"..."` or `'...'` with `\` escapes.
fn string(input: &mut Input<'_>) -> Parsed<String> {
    let quote = one_of(['"', '\'']).parse_next(input)?;
    let mut text = String::new();
    loop {
        let c = cut_err(any.context("a closing quote")).parse_next(input)?;
        if c == quote {
            return Ok(text);
        }
        if c == '\\' {
            let escaped = cut_err(any.context("an escaped character")).parse_next(input)?;
            text.push(match escaped {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            });
        } else {
            text.push(c);
        }
    }
}

/// Microseconds per timespan unit.
fn unit_micros(unit: &str) -> f64 {
    match unit {
        "d" => 86_400e6,
        "h" => 3_600e6,
        "m" => 60e6,
        "s" => 1e6,
        "ms" => 1e3,
        _ => 1.0,
    }
}

fn number_or_timespan(input: &mut Input<'_>) -> Parsed<ExprKind> {
    let digits = (digit1, opt(('.', digit1))).take().parse_next(input)?;
    let unit = opt(terminated(alt(("ms", "us", "d", "h", "m", "s")), not(one_of(is_name_char)))).parse_next(input)?;
    let value: f64 = digits.parse().map_err(|_| ErrMode::Cut(ContextError::new()))?;
    Ok(match unit {
        Some(unit) => ExprKind::Timespan((value * unit_micros(unit)).round() as i64),
        None if digits.contains('.') => ExprKind::Float(value),
        None => ExprKind::Int(digits.parse().map_err(|_| ErrMode::Cut(ContextError::new().tap_push("a smaller number")))?),
    })
}

trait TapPush {
    fn tap_push(self, context: &'static str) -> Self;
}

impl TapPush for Error {
    fn tap_push(mut self, context: &'static str) -> Self {
        self.push(context);
        self
    }
}

fn name_or_call(input: &mut Input<'_>) -> Parsed<ExprKind> {
    let name = identifier.parse_next(input)?;
    if name == "datetime" && input.starts_with('(') {
        let text = delimited('(', take_till(0.., ')'), cut_err(literal(")").context("`)`"))).parse_next(input)?;
        return Ok(ExprKind::Datetime(text.trim().trim_matches(['"', '\'']).to_owned()));
    }
    if input.starts_with('(') {
        symbol("(").parse_next(input)?;
        let args = cut_err(separated(0.., nested_expression, symbol(","))).parse_next(input)?;
        cut_err(literal(")").context("`,` or `)`")).parse_next(input)?;
        return Ok(ExprKind::Call(name.to_owned(), args));
    }
    match name {
        "true" => return Ok(ExprKind::Bool(true)),
        "false" => return Ok(ExprKind::Bool(false)),
        _ => {}
    }
    let parts: Vec<&str> = repeat(0.., preceded('.', cut_err(identifier.context("a name after `.`")))).parse_next(input)?;
    if name == "fields" {
        if parts.is_empty() {
            return Err(ErrMode::Cut(ContextError::new().tap_push("`.` and a field name after `fields`")));
        }
        return Ok(ExprKind::Field(parts.join(".")));
    }
    let mut full = name.to_owned();
    for part in parts {
        full.push('.');
        full.push_str(part);
    }
    Ok(ExprKind::Name(full))
}
