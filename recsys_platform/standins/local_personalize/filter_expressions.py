"""Personalize filter expressions: a tokenizer, a recursive-descent parser, checks against the dataset
group's schemas, and evaluation for one recommendation request.

The grammar, as the developer guide describes it ("Filter expression structure and elements"):

    filter      := expression ( "|" expression )*
    expression  := ( INCLUDE | EXCLUDE ) ItemID WHERE conditions [ IF user_conds ]
    conditions  := condition ( ( AND | OR ) condition )*        -- AND binds tighter than OR
    condition   := Dataset "." FIELD ( [NOT] IN values | comparator scalar )
    values      := "(" value ( "," value )* ")" | $PARAM | CurrentItem "." FIELD
    value       := "string" | number | $PARAM | *
    comparator  := = | != | < | <= | > | >=
    scalar      := number | $PARAM | "(" $PARAM ")" | CurrentItem "." FIELD
    user_conds  := CurrentUser "." FIELD ( [NOT] IN values | comparator scalar )
                   ( AND CurrentUser "." FIELD ... )*

Rules the guide states, enforced here with an InvalidInputException naming the problem:
- Datasets in WHERE: `Items` and `Interactions` (only `EVENT_TYPE`, only IN / NOT IN); conditions
  chained with AND/OR use the dataset of the first condition, so Items and Interactions combine only
  through `|`; `*` (every event type) only for `Interactions.EVENT_TYPE`.
- `CurrentUser` only in the IF condition, once, at the end; `CurrentItem` only as a value.
- Comparators test numbers; IN / NOT IN match exact strings (a categorical field matches when any of
  its `|`-separated categories does); boolean fields cannot be filtered on, nor textual ones.
- At most 5 distinct dataset fields in a filter; `$NAME` parameters: letters, digits, underscores.

Evaluation, as the guide describes it ("Filtering real-time recommendations", "Combining multiple
expressions"): `INCLUDE A | INCLUDE B | EXCLUDE C` keeps items of A or B and drops items of C;
Interactions conditions see the user's most recent interactions per event type (at most
`MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE` each; event types match case-insensitively); an INCLUDE
expression needs a value for each of its parameters, an EXCLUDE expression whose parameters have no
value is not used; an expression whose IF condition does not hold for the user is not used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from recsys_platform.shared.personalize_facts import MAX_FILTER_FIELDS
from recsys_platform.standins.local_personalize.avro_schemas import SchemaField, field_named
from recsys_platform.standins.local_personalize.errors import InvalidInputException

COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = ("INCLUDE", "EXCLUDE", "WHERE", "AND", "OR", "NOT", "IN", "IF")
ITEM_DATASETS = ("Items", "Interactions")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_]+")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z_]))
  | (?P<param>\$[A-Za-z0-9_]+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|=|<|>)
  | (?P<punct>[().,|*])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, param, word, op, punct, end
    text: str
    position: int  # 1-based character position, for messages


@dataclass(frozen=True)
class Value:
    kind: str  # literal, number, param, star, current_item
    text: str  # the literal's text, the parameter's name, or the CurrentItem field


@dataclass(frozen=True)
class Condition:
    dataset: str  # Items, Interactions, CurrentUser
    field: str  # as written
    operator: str  # IN, NOT IN, or a comparator
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Expression:
    action: str  # INCLUDE or EXCLUDE
    where: tuple[tuple[Condition, ...], ...]  # OR of AND-groups
    if_conditions: tuple[Condition, ...] = ()

    @property
    def dataset(self) -> str:
        return self.where[0][0].dataset

    def conditions(self) -> list[Condition]:
        return [c for group in self.where for c in group] + list(self.if_conditions)

    def parameters(self) -> set[str]:
        return {v.text for c in self.conditions() for v in c.values if v.kind == "param"}


@dataclass(frozen=True)
class FilterExpression:
    expressions: tuple[Expression, ...]

    def parameters(self) -> set[str]:
        return set().union(*(e.parameters() for e in self.expressions))

    def datasets(self) -> set[str]:
        """Datasets whose data the filter reads (CurrentItem reads Items, CurrentUser reads Users)."""
        used = set()
        for condition in (c for e in self.expressions for c in e.conditions()):
            used.add("Users" if condition.dataset == "CurrentUser" else condition.dataset)
            if any(v.kind == "current_item" for v in condition.values):
                used.add("Items")
        return used

    def fields(self) -> set[tuple[str, str]]:
        """Distinct (dataset, FIELD) pairs: CurrentItem.X is the Items field X, CurrentUser.X the Users one."""
        found = set()
        for condition in (c for e in self.expressions for c in e.conditions()):
            dataset = "Users" if condition.dataset == "CurrentUser" else condition.dataset
            found.add((dataset, condition.field.upper()))
            found |= {("Items", v.text.upper()) for v in condition.values if v.kind == "current_item"}
        return found

    def uses_current_item(self) -> bool:
        return any(v.kind == "current_item" for e in self.expressions for c in e.conditions() for v in c.values)


# ---- parsing ------------------------------------------------------------------------------------


def _tokens(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            character = text[position]
            hint = " (strings take double quotes)" if character == "'" else ""
            raise InvalidInputException(
                f"filterExpression: unexpected character {character!r} at position {position + 1}{hint}"
            )
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    # -- token helpers

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def _describe(self, token: Token) -> str:
        return "the end of the expression" if token.kind == "end" else f"{token.text!r} at position {token.position}"

    def error(self, expected: str) -> InvalidInputException:
        return InvalidInputException(f"filterExpression: expected {expected}, found {self._describe(self.current)}")

    def is_word(self, *words: str) -> bool:
        return self.current.kind == "word" and self.current.text.upper() in words

    def take_word(self, *words: str) -> str:
        if not self.is_word(*words):
            raise self.error(" or ".join(words))
        token = self.current
        self.index += 1
        return token.text.upper()

    def take(self, kind: str, text: str | None = None, expected: str | None = None) -> Token:
        token = self.current
        if token.kind != kind or (text is not None and token.text != text):
            raise self.error(expected or repr(text) if text else expected or kind)
        self.index += 1
        return token

    # -- grammar

    def parse(self) -> FilterExpression:
        expressions = [self.expression()]
        while self.current.kind == "punct" and self.current.text == "|":
            self.index += 1
            expressions.append(self.expression())
        if self.current.kind != "end":
            raise self.error("'|', AND, OR, IF or the end of the expression")
        return FilterExpression(tuple(expressions))

    def expression(self) -> Expression:
        action = self.take_word("INCLUDE", "EXCLUDE")
        target = self.current
        if target.kind != "word" or target.text.upper() not in ("ITEMID", "USERID", "ACTIONID"):
            raise self.error("ItemID after " + action)
        if target.text.upper() != "ITEMID":
            raise InvalidInputException(
                f"filterExpression: {target.text} filters (user segments, action recommendations) are "
                "not supported here; this service filters item recommendations (ItemID)"
            )
        self.index += 1
        self.take_word("WHERE")
        groups = [[self.condition(where=True)]]
        while self.is_word("AND", "OR"):
            joiner = self.take_word("AND", "OR")
            condition = self.condition(where=True)
            if joiner == "AND":
                groups[-1].append(condition)
            else:
                groups.append([condition])
        if_conditions = []
        if self.is_word("IF"):
            self.index += 1
            if_conditions.append(self.condition(where=False))
            while self.is_word("AND"):
                self.index += 1
                if_conditions.append(self.condition(where=False))
            if self.is_word("OR"):
                raise InvalidInputException(
                    f"filterExpression: an IF condition extends only with AND (OR at position {self.current.position})"
                )
            if self.is_word("IF"):
                raise InvalidInputException(
                    f"filterExpression: IF may appear once, at the end of an expression (position {self.current.position})"
                )
        expression = Expression(action, tuple(tuple(g) for g in groups), tuple(if_conditions))
        _check_expression(expression)
        return expression

    def condition(self, where: bool) -> Condition:
        start = self.current
        dataset_token = self.take("word", expected="a dataset field such as Items.CATEGORY")
        self.take("punct", ".", expected=f"'.' after {dataset_token.text}")
        field_token = self.take("word", expected=f"a field name after {dataset_token.text}.")
        dataset = _canonical_dataset(dataset_token.text)
        if where and dataset not in ITEM_DATASETS:
            if dataset == "CurrentUser":
                raise InvalidInputException(
                    f"filterExpression: CurrentUser may be used only in the IF condition (position {start.position})"
                )
            if dataset == "CurrentItem":
                raise InvalidInputException(
                    f"filterExpression: CurrentItem is a value (Items.PRICE < CurrentItem.PRICE), not a "
                    f"condition's subject (position {start.position})"
                )
            if dataset == "Users":
                raise InvalidInputException(
                    "filterExpression: Users.<field> conditions filter user segments; for item "
                    "recommendations check the user with IF CurrentUser.<field>"
                )
            raise InvalidInputException(
                f"filterExpression: unknown dataset {dataset_token.text!r} at position {start.position} "
                "(use Items or Interactions, and CurrentUser in IF)"
            )
        if not where and dataset != "CurrentUser":
            raise InvalidInputException(
                f"filterExpression: the IF condition checks CurrentUser.<field> only, found "
                f"{dataset_token.text}.{field_token.text} at position {start.position}"
            )
        if self.is_word("NOT"):
            self.index += 1
            self.take_word("IN")
            return Condition(dataset, field_token.text, "NOT IN", self.in_values())
        if self.is_word("IN"):
            self.index += 1
            return Condition(dataset, field_token.text, "IN", self.in_values())
        if self.current.kind == "op":
            operator = self.current.text
            self.index += 1
            return Condition(dataset, field_token.text, operator, (self.scalar(),))
        raise self.error(f"IN, NOT IN or a comparator ({', '.join(COMPARATORS)}) after {dataset_token.text}.{field_token.text}")

    def current_item(self) -> Value:
        self.index += 1
        self.take("punct", ".", expected="'.' after CurrentItem")
        return Value("current_item", self.take("word", expected="a field name after CurrentItem.").text)

    def in_values(self) -> tuple[Value, ...]:
        if self.current.kind == "param":
            return (self.param(),)
        if self.is_word("CURRENTITEM"):
            return (self.current_item(),)
        self.take("punct", "(", expected="'(' and a list of values, a $PARAMETER or CurrentItem.<field>")
        values = [self.in_value()]
        while self.current.kind == "punct" and self.current.text == ",":
            self.index += 1
            values.append(self.in_value())
        self.take("punct", ")", expected="',' or ')' in the list of values")
        if any(v.kind == "star" for v in values) and len(values) > 1:
            raise InvalidInputException("filterExpression: * stands for every event type and must be alone in its list")
        return tuple(values)

    def in_value(self) -> Value:
        token = self.current
        if token.kind == "string":
            self.index += 1
            text = _unquote(token)
            return Value("star", "*") if text == "*" else Value("literal", text)
        if token.kind == "number":
            self.index += 1
            return Value("number", token.text)
        if token.kind == "param":
            return self.param()
        if token.kind == "punct" and token.text == "*":
            self.index += 1
            return Value("star", "*")
        if self.is_word("CURRENTITEM"):
            return self.current_item()
        raise self.error('a value: a "string", a number, a $PARAMETER or *')

    def scalar(self) -> Value:
        token = self.current
        if token.kind == "number":
            self.index += 1
            return Value("number", token.text)
        if token.kind == "param":
            return self.param()
        if self.is_word("CURRENTITEM"):
            return self.current_item()
        if token.kind == "punct" and token.text == "(":  # `> ($VALUE)`, as in the guide's examples
            self.index += 1
            value = self.scalar()
            self.take("punct", ")", expected="')'")
            return value
        if token.kind == "string":
            raise InvalidInputException(
                f"filterExpression: comparators test numbers; use IN (...) to match the string "
                f"{token.text} (position {token.position})"
            )
        raise self.error("a number, a $PARAMETER or CurrentItem.<field> after the comparator")

    def param(self) -> Value:
        token = self.take("param")
        name = token.text[1:]
        if len(name) > 50:
            raise InvalidInputException(f"filterExpression: parameter ${name[:20]}... is longer than 50 characters")
        return Value("param", name)


def _unquote(token: Token) -> str:
    try:
        return json.loads(token.text)
    except ValueError:
        raise InvalidInputException(
            f"filterExpression: the string at position {token.position} has an invalid escape"
        ) from None


def _canonical_dataset(name: str) -> str:
    for known in ("Items", "Interactions", "Users", "CurrentUser", "CurrentItem"):
        if name.upper() == known.upper():
            return known
    return name


def _check_expression(expression: Expression) -> None:
    first = expression.dataset
    for condition in (c for group in expression.where for c in group):
        if condition.dataset != first:
            raise InvalidInputException(
                f"filterExpression: conditions chained with AND/OR use the dataset of the first condition "
                f"({first}); {condition.dataset}.{condition.field} needs its own expression, combined with '|' "
                "(Items and Interactions cannot share one expression)"
            )
    for condition in expression.conditions():
        star = any(v.kind == "star" for v in condition.values)
        if condition.dataset == "Interactions":
            if condition.field.upper() != "EVENT_TYPE":
                raise InvalidInputException(
                    f"filterExpression: Interactions conditions filter by event type only "
                    f"(Interactions.EVENT_TYPE), not Interactions.{condition.field}"
                )
            if condition.operator not in ("IN", "NOT IN"):
                raise InvalidInputException(
                    "filterExpression: Interactions.EVENT_TYPE takes IN or NOT IN, not " + condition.operator
                )
            if any(v.kind in ("number", "current_item") for v in condition.values):
                raise InvalidInputException(
                    'filterExpression: Interactions.EVENT_TYPE IN takes event type strings ("purchase"), '
                    "$PARAMETERS or *"
                )
        elif star:
            raise InvalidInputException(
                f"filterExpression: * (every event type) is for Interactions.EVENT_TYPE only, not "
                f"{condition.dataset}.{condition.field}"
            )


def parse_filter_expression(text: str) -> FilterExpression:
    """The parsed expression; InvalidInputException naming the problem (and where) otherwise."""
    if not text.strip():
        raise InvalidInputException("filterExpression is empty")
    parsed = _Parser(text).parse()
    fields = parsed.fields()
    if len(fields) > MAX_FILTER_FIELDS:
        names = ", ".join(f"{d}.{f}" for d, f in sorted(fields))
        raise InvalidInputException(
            f"filterExpression uses {len(fields)} distinct dataset fields ({names}); at most {MAX_FILTER_FIELDS}"
        )
    return parsed


def check_against_schemas(parsed: FilterExpression, schemas: Mapping[str, list[SchemaField]]) -> None:
    """Every field the filter names exists in its dataset's schema and suits its operator.
    `schemas`: dataset type (Items, Interactions, Users) -> fields, for the dataset group's datasets."""
    for dataset in sorted(parsed.datasets()):
        if dataset not in schemas:
            raise InvalidInputException(
                f"filterExpression uses {dataset} data but the dataset group has no {dataset} dataset"
            )
    for expression in parsed.expressions:
        for condition in expression.conditions():
            dataset = "Users" if condition.dataset == "CurrentUser" else condition.dataset
            subject = _schema_field(schemas[dataset], dataset, condition.field)
            for value in condition.values:
                if value.kind == "current_item":
                    item_field = _schema_field(schemas["Items"], "Items", value.text)
                    if condition.operator in COMPARATORS and not item_field.numeric:
                        raise InvalidInputException(
                            f"filterExpression: CurrentItem.{value.text} is {item_field.avro_type}; comparators test numbers"
                        )
            if condition.operator in COMPARATORS and not subject.numeric:
                raise InvalidInputException(
                    f"filterExpression: {condition.dataset}.{condition.field} is a {subject.avro_type} "
                    f"field; comparators ({condition.operator}) test numbers, use IN / NOT IN for strings"
                )


def _schema_field(fields: list[SchemaField], dataset: str, name: str) -> SchemaField:
    found = field_named(fields, name)
    if found is None:
        known = ", ".join(f.name for f in fields)
        raise InvalidInputException(f"filterExpression: the {dataset} schema has no field {name} (fields: {known})")
    if found.avro_type == "boolean":
        raise InvalidInputException(
            f"filterExpression: {dataset}.{found.name} is boolean, which filters cannot use (store "
            '"True"/"False" strings or 0/1 numbers instead)'
        )
    if found.textual:
        raise InvalidInputException(
            f"filterExpression: {dataset}.{found.name} is textual (unstructured text), which filters cannot use"
        )
    return found


# ---- filter values ------------------------------------------------------------------------------

_VALUE_ITEM = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^,"]*?))\s*(,|$)')


def parse_filter_value(name: str, text: str) -> list[str]:
    """`"\\"comedy\\",\\"drama\\""` -> ["comedy", "drama"]; unquoted values (`10`) are accepted too."""
    values, position = [], 0
    while True:
        match = _VALUE_ITEM.match(text, position)
        if match is None or (match.group(1) is None and not match.group(2)):
            raise InvalidInputException(
                f"filterValues[{name}] {text[:80]!r} is not a comma-separated list of values, each in "
                'double quotes (\\"value\\")'
            )
        if match.group(1) is not None:
            try:
                values.append(json.loads(f'"{match.group(1)}"'))
            except ValueError:
                raise InvalidInputException(f"filterValues[{name}] has an invalid escape") from None
        else:
            values.append(match.group(2))
        position = match.end()
        if match.group(3) != ",":
            return values


# ---- evaluation ---------------------------------------------------------------------------------


@dataclass
class RequestContext:
    """What one recommendation request knows when its filter is applied."""

    filter_values: dict[str, list[str]]
    user_interactions: Mapping[str, list[str]]  # event type (lower case) -> the user's recent items
    user: Mapping[str, object] | None  # the user's Users record (FIELD upper case -> value), if any
    current_item: Mapping[str, object] | None  # the request's itemId's Items record, if any
    item_lookup: Callable[[str], Mapping[str, object] | None]  # ITEM_ID -> Items record
    item_schema: Mapping[str, SchemaField] = field(default_factory=dict)  # FIELD upper -> field
    user_schema: Mapping[str, SchemaField] = field(default_factory=dict)


def compile_filter(parsed: FilterExpression, context: RequestContext) -> Callable[[str], bool]:
    """A predicate on ITEM_ID: whether the item may be recommended in this request."""
    includes, excludes = [], []
    for expression in parsed.expressions:
        missing = sorted(p for p in expression.parameters() if p not in context.filter_values)
        if missing:
            if expression.action == "INCLUDE":
                raise InvalidInputException(
                    "filterValues must give a value for " + ", ".join(f"${p}" for p in missing)
                    + ": an INCLUDE expression uses all of its parameters"
                )
            continue  # an EXCLUDE expression without its values is not used, as the service does
        if expression.if_conditions and not all(
            _user_condition_holds(c, context) for c in expression.if_conditions
        ):
            continue
        matcher = _expression_matcher(expression, context)
        (includes if expression.action == "INCLUDE" else excludes).append(matcher)

    def allowed(item_id: str) -> bool:
        if includes and not any(match(item_id) for match in includes):
            return False
        return not any(match(item_id) for match in excludes)

    return allowed


def _resolve(values: tuple[Value, ...], context: RequestContext, operator: str) -> list[str]:
    resolved = []
    for value in values:
        if value.kind == "param":
            resolved.extend(context.filter_values[value.text])
        elif value.kind == "current_item":
            resolved.extend(_field_values(context.current_item, value.text, context.item_schema))
        else:
            resolved.append(value.text)
    if operator in COMPARATORS and len(resolved) > 1:
        raise InvalidInputException(f"a comparator ({operator}) takes one value, got {len(resolved)}: {resolved[:5]}")
    return resolved


def _field_values(record: Mapping[str, object] | None, name: str, schema: Mapping[str, SchemaField]) -> list[str]:
    """A record's value(s) for a field as strings: a categorical value gives each of its categories."""
    if record is None:
        return []
    value = record.get(name.upper())
    if value is None:
        return []
    spec = schema.get(name.upper())
    if spec is not None and spec.categorical and isinstance(value, str):
        return [part for part in value.split("|")]
    return [_as_text(value)]


def _as_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInputException(f"{where}: {text[:40]!r} is not a number") from None


def _compare(left: float, operator: str, right: float) -> bool:
    return {
        "=": left == right, "!=": left != right, "<": left < right,
        "<=": left <= right, ">": left > right, ">=": left >= right,
    }[operator]


def _value_test(condition: Condition, context: RequestContext, schema: Mapping[str, SchemaField]):
    """A test on one record's field for an Items or CurrentUser condition."""
    wanted = _resolve(condition.values, context, condition.operator)
    spec = schema.get(condition.field.upper())
    numeric = spec is not None and spec.numeric
    where = f"{condition.dataset}.{condition.field}"
    if condition.operator in COMPARATORS:
        if not wanted:  # CurrentItem without a value: nothing compares
            return lambda record: False
        target = _number(wanted[0], where)
        operator = condition.operator

        def compare(record) -> bool:
            values = _field_values(record, condition.field, schema)
            return bool(values) and _compare(_number(values[0], where), operator, target)

        return compare
    if numeric:
        wanted_numbers = {_number(text, where) for text in wanted}

        def member(record) -> bool:
            return any(_number(v, where) in wanted_numbers for v in _field_values(record, condition.field, schema))
    else:
        wanted_texts = set(wanted)

        def member(record) -> bool:
            return any(v in wanted_texts for v in _field_values(record, condition.field, schema))

    if condition.operator == "IN":
        return member
    return lambda record: not member(record)


def _user_condition_holds(condition: Condition, context: RequestContext) -> bool:
    if context.user is None:
        return False  # a user without a Users record has no attributes to match
    return _value_test(condition, context, context.user_schema)(context.user)


def _interactions_items(condition: Condition, context: RequestContext) -> set[str]:
    wanted = {v.lower() for v in _resolve(condition.values, context, condition.operator)}
    every = any(v.kind == "star" for v in condition.values)
    items: set[str] = set()
    for event_type, recent in context.user_interactions.items():
        listed = every or event_type in wanted
        if listed == (condition.operator == "IN"):
            items.update(recent)
    return items


def _expression_matcher(expression: Expression, context: RequestContext) -> Callable[[str], bool]:
    groups = []
    for group in expression.where:
        tests = []
        for condition in group:
            if condition.dataset == "Interactions":
                items = _interactions_items(condition, context)
                tests.append(lambda item_id, items=items: item_id in items)
            else:
                test = _value_test(condition, context, context.item_schema)
                tests.append(lambda item_id, test=test: test(context.item_lookup(item_id)))
        groups.append(tests)
    return lambda item_id: any(all(test(item_id) for test in tests) for tests in groups)
