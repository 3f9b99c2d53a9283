"""One owner for each piece of study state: only the owning app writes it.

``triage`` owns what arrived (patients, studies, series, instances, events),
``inference`` the scoring state and results, ``worklist`` the reading state,
claims, priority, delta versions and alerts. This reads the product's source
(not the tests, migrations or demo data loading through services) and finds
every write to a model of ours: ORM writes (``create``, ``update``,
``bulk_update``, ``get_or_create``...), attribute assignments to a field only
one model group has, and raw SQL naming a model's table. A write from another
app's module fails the test, with where it is.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps
from django.db import models

ROOT = Path(__file__).resolve().parent.parent
OUR_APPS = ("triage", "inference", "worklist")
#: Product code: each top-level package; demo data goes through the services.
SCANNED = ("radtriage", "triage", "inference", "worklist", "demo")
WRITE_METHODS = frozenset(
    {
        "create",
        "update",
        "bulk_create",
        "bulk_update",
        "get_or_create",
        "update_or_create",
    }
)
SQL_WRITES = ("UPDATE ", "INSERT INTO ", "DELETE FROM ")
#: The study's field groups, whose fields are also caught when assigned.
STUDY_STATE = (
    "Patient",
    "Study",
    "Series",
    "Instance",
    "Order",
    "StudyScoring",
    "WorklistEntry",
)


@dataclass(frozen=True, slots=True)
class Write:
    path: str
    line: int
    model: str
    owner: str
    how: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line} writes {self.model} ({self.owner}'s) {self.how}"
        )


def our_models() -> dict[str, type[models.Model]]:
    return {m.__name__: m for m in apps.get_models() if m._meta.app_label in OUR_APPS}


def unique_fields(
    classes: dict[str, type[models.Model]],
) -> dict[str, tuple[str, str]]:
    """Field names that belong to one owner's models only: name -> (model, app)."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for name, model in classes.items():
        for field in model._meta.concrete_fields:
            if field.primary_key:
                continue
            for attr in {field.name, field.attname}:
                seen.setdefault(attr, set()).add((name, model._meta.app_label))
    return {
        attr: sorted(owners)[0]
        for attr, owners in seen.items()
        if len({app for _, app in owners}) == 1
        and any(model in STUDY_STATE for model, _ in owners)
    }


def app_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


def writes_in(
    path: Path,
    source: str,
    classes: dict[str, type[models.Model]],
    fields: dict[str, tuple[str, str]],
) -> Iterator[Write]:
    """Every write to one of our models that ``source`` makes."""
    tree = ast.parse(source)
    rel = str(path.relative_to(ROOT))
    tables = {m._meta.db_table: name for name, m in classes.items()}
    table_names = _table_variables(tree, classes)
    for node in ast.walk(tree):
        # Model.objects....create(...) / .update(...) / ...
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITE_METHODS
        ):
            model = _manager_model(node.func.value, classes)
            if model is not None:
                app = classes[model]._meta.app_label
                yield Write(rel, node.lineno, model, app, f".{node.func.attr}()")
        # something.field = ... for a field only one owner's models have
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in fields:
                    if isinstance(target.value, ast.Name) and target.value.id in {
                        "self",
                        "cls",
                    }:
                        continue
                    model, app = fields[target.attr]
                    yield Write(rel, node.lineno, model, app, f".{target.attr} =")
        # insert_rows(Model, ...): the hot-path bulk insert.
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "insert_rows"
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in classes
        ):
            model = node.args[0].id
            app = classes[model]._meta.app_label
            yield Write(rel, node.lineno, model, app, "insert_rows()")
        # Raw SQL naming a table.
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.upper()
            if any(verb in text for verb in SQL_WRITES):
                for table, model in tables.items():
                    if any(f"{verb}{table.upper()}" in text for verb in SQL_WRITES):
                        app = classes[model]._meta.app_label
                        yield Write(rel, node.lineno, model, app, "in SQL")
        # f"UPDATE {_STUDY} ...", where _STUDY = Study._meta.db_table.
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            for before, value in itertools.pairwise(parts):
                if (
                    isinstance(before, ast.Constant)
                    and isinstance(before.value, str)
                    and before.value.upper()
                    .rstrip()
                    .endswith(tuple(v.strip() for v in SQL_WRITES))
                    and isinstance(value, ast.FormattedValue)
                    and isinstance(value.value, ast.Name)
                    and value.value.id in table_names
                ):
                    model = table_names[value.value.id]
                    app = classes[model]._meta.app_label
                    yield Write(rel, node.lineno, model, app, "in SQL")


def _manager_model(
    node: ast.expr, classes: dict[str, type[models.Model]]
) -> str | None:
    """The model of a ``Model.objects...`` chain, if it is one of ours."""
    while isinstance(node, ast.Call | ast.Attribute):
        if isinstance(node, ast.Call):
            node = node.func
            continue
        if (
            node.attr in {"objects", "_default_manager"}
            and isinstance(node.value, ast.Name)
            and node.value.id in classes
        ):
            return node.value.id
        node = node.value
    return None


def _table_variables(
    tree: ast.AST, classes: dict[str, type[models.Model]]
) -> dict[str, str]:
    """Names bound to a model's table: ``_STUDY = Study._meta.db_table``."""
    found = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "db_table"
            and isinstance(node.value.value, ast.Attribute)
            and node.value.value.attr == "_meta"
            and isinstance(node.value.value.value, ast.Name)
            and node.value.value.value.id in classes
        ):
            found[node.targets[0].id] = node.value.value.value.id
    return found


def product_files() -> Iterator[Path]:
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def foreign_writes() -> list[Write]:
    classes = our_models()
    fields = unique_fields(classes)
    return [
        write
        for path in product_files()
        for write in writes_in(path, path.read_text(), classes, fields)
        if write.owner != app_of(path)
    ]


@pytest.mark.django_db
def test_only_the_owning_app_writes_each_piece_of_study_state() -> None:
    foreign = foreign_writes()
    assert not foreign, "\n".join(map(str, foreign))


@pytest.mark.parametrize(
    ("app", "source"),
    [
        ("triage", "Study.objects.none()\nWorklistEntry.objects.filter().update(x=1)"),
        ("triage", "entry.reading_status = 'ready'"),
        ("worklist", "scoring.ai_status = 'scored'"),
        ("worklist", "StudyScoring.objects.get_or_create(study_id=1)"),
        ("inference", "SQL = 'UPDATE worklist_worklistentry SET version = 1'"),
        ("worklist", "T = Study._meta.db_table\nQ = f'UPDATE {T} SET x = 1'"),
        ("worklist", "insert_rows(StudyEvent, rows)"),
    ],
)
def test_the_check_finds_a_write_from_another_app(app: str, source: str) -> None:
    classes = our_models()
    path = ROOT / app / "example.py"
    found = list(writes_in(path, source, classes, unique_fields(classes)))
    assert [w for w in found if w.owner != app], found


def test_the_check_passes_the_owners_own_writes() -> None:
    classes = our_models()
    source = "entry.reading_status = 'ready'\nWorklistEntry.objects.create(study=s)"
    path = ROOT / "worklist" / "example.py"
    found = list(writes_in(path, source, classes, unique_fields(classes)))
    assert found and all(w.owner == "worklist" for w in found)
