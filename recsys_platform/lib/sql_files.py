"""The platform's SQL files: where they are, the identifiers that may be formatted into statements, and
how a fragment used by several files is written once.

Two kinds of shared fragment, both expanded on sqlglot's syntax tree rather than by text substitution:
- a macro (`sql/macros/<name>.sql`, one expression) is called like a function, `IS_HELD_OUT(USER_ID)`, and
  replaced by its expression with the parameter bound to the argument;
- a relation (`sql/fragments/<name>.sql`, one query) is referenced as the table `fragments.<name>` and
  becomes a CTE of the statement that names it (dbt's ephemeral model, in effect).
No library expands user-defined SQL fragments across dialects, so this small piece is written here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # sqlglot is imported where SQL is built or translated, not when definitions load
    from sqlglot import exp


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MACRO_HEADER = re.compile(r"^--\s*macro\s+(?P<name>[a-z_][a-z0-9_]*)\((?P<params>[a-z_, ]*)\)\s*$", re.MULTILINE)


def validate_identifier(name: str, what: str = "identifier") -> str:
    """`name` if it is a plain SQL identifier; anything else (a backtick, a dot, a space) is refused."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"{what} {name!r} is not a plain SQL identifier")
    return name


def read_sql(anchor_file: str, name: str) -> str:
    """The text of `sql/<name>` beside the module `anchor_file` (pass `__file__`), macros expanded."""
    path = Path(anchor_file).with_name("sql") / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} does not exist")
    return _expand(path.read_text(), path.parent)


def _expand(sql: str, folder: Path) -> str:
    return expand_fragments(expand_macros(sql, _macros(str(folder / "macros"))), folder / "fragments")


FRAGMENTS_DATASET = "fragments"


def expand_fragments(sql: str, folder: Path) -> str:
    """Each `fragments.<name>` table becomes the CTE `<name>`, defined by `<folder>/<name>.sql`."""
    import sqlglot
    from sqlglot import exp

    if f"{FRAGMENTS_DATASET}." not in sql:
        return sql
    trees = [tree for tree in sqlglot.parse(sql, read="bigquery") if tree is not None]
    for tree in trees:
        names = []
        for table in list(tree.find_all(exp.Table)):
            if table.args.get("db") is None or table.db != FRAGMENTS_DATASET:
                continue
            name = validate_identifier(table.name, "fragment")
            alias = table.args.get("alias")
            table.replace(exp.Table(this=exp.to_identifier(name), alias=alias))
            if name not in names:
                names.append(name)
        ctes = []
        for name in names:
            path = folder / f"{name}.sql"
            if not path.is_file():
                raise FileNotFoundError(f"SQL fragment {path} does not exist")
            body = sqlglot.parse_one(_expand(path.read_text(), folder.parent), read="bigquery")
            ctes.append(exp.CTE(this=body, alias=exp.TableAlias(this=exp.to_identifier(name))))
        existing = tree.args.get("with_")
        if existing is not None:
            existing.set("expressions", [*ctes, *existing.expressions])
        else:
            tree.set("with_", exp.With(expressions=ctes))
    return ";\n".join(tree.sql("bigquery", pretty=True) for tree in trees)


@lru_cache(maxsize=None)
def _macros(folder: str) -> dict[str, tuple[list[str], exp.Expression]]:
    """name -> (parameters, expression) of every `sql/macros/*.sql` file beside the SQL."""
    import sqlglot

    macros = {}
    for path in sorted(Path(folder).glob("*.sql")):
        text = path.read_text()
        header = MACRO_HEADER.search(text)
        if header is None:
            raise ValueError(f"{path}: a macro file starts with '-- macro name(param, ...)'")
        params = [p.strip() for p in header["params"].split(",") if p.strip()]
        macros[header["name"].upper()] = (params, sqlglot.parse_one(text, read="bigquery"))
    return macros


def expand_macros(sql: str, macros: dict[str, tuple[list[str], exp.Expression]]) -> str:
    import sqlglot
    from sqlglot import exp

    if not macros or not any(f"{name}(" in sql.upper() for name in macros):
        return sql
    trees = [tree for tree in sqlglot.parse(sql, read="bigquery") if tree is not None]
    for tree in trees:
        for call in list(tree.find_all(exp.Anonymous)):
            macro = macros.get(call.name.upper())
            if macro is None:
                continue
            params, body = macro
            if len(call.expressions) != len(params):
                raise ValueError(f"macro {call.name} takes {len(params)} argument(s), got {len(call.expressions)}")
            bound = dict(zip(params, call.expressions))
            expanded = body.copy().transform(
                lambda node: bound[node.name].copy()
                if isinstance(node, exp.Column) and not node.table and node.name in bound else node
            )
            call.replace(exp.Paren(this=expanded))
    return ";\n".join(tree.sql("bigquery", pretty=True) for tree in trees)
