"""Write one synthetic study (head CT or limb radiograph) as DICOM files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.synthetic import (
    HemorrhageType,
    SyntheticStudy,
    make_ct_head_study,
    make_radiograph_study,
    write_study,
)

KINDS = ("ct-head", "dx", "cr")


class Command(BaseCommand):
    help = (
        "Write a synthetic study (fake patient, known finding) as DICOM files in "
        "OUT/<kind>-seed<SEED>[-<finding>]/. The same options always write the "
        "same files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="parent folder")
        parser.add_argument("--kind", choices=KINDS, default="ct-head")
        parser.add_argument("--seed", type=int, default=0, help="case number, >= 0")
        parser.add_argument("--slices", type=int, default=32, help="CT slices")
        parser.add_argument(
            "--size",
            type=int,
            default=None,
            help="CT matrix (default 512) or radiograph rows (default 1024; "
            "columns are 3/4 of the rows)",
        )
        parser.add_argument(
            "--hemorrhage",
            choices=[kind.value for kind in HemorrhageType],
            default=None,
            help="CT only: add an acute bleed of this kind",
        )
        parser.add_argument(
            "--fracture", action="store_true", help="DX/CR only: break a bone"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind: str = options["kind"]
        seed: int = options["seed"]
        hemorrhage: str | None = options["hemorrhage"]
        fracture: bool = options["fracture"]
        size: int | None = options["size"]
        try:
            study = _make_study(
                kind, seed, options["slices"], size, hemorrhage, fracture
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        finding = hemorrhage or ("fracture" if fracture else "")
        folder = Path(options["out"]) / "-".join(
            part for part in (kind, f"seed{seed}", finding) if part
        )
        paths = write_study(study, folder)
        self.stdout.write(f"wrote {len(paths)} files to {folder}")


def _make_study(
    kind: str,
    seed: int,
    slices: int,
    size: int | None,
    hemorrhage: str | None,
    fracture: bool,
) -> SyntheticStudy:
    if kind == "ct-head":
        if fracture:
            raise ValueError("--fracture applies to dx and cr only")
        return make_ct_head_study(
            seed, slices=slices, size=size or 512, hemorrhage=hemorrhage
        )
    if hemorrhage is not None:
        raise ValueError("--hemorrhage applies to ct-head only")
    rows = size or 1024
    return make_radiograph_study(
        seed, modality=kind.upper(), fracture=fracture, size=(rows, rows * 3 // 4)
    )
