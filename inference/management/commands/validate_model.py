"""manage.py validate_model MODEL DATA: validate a model on labelled local cases."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from inference import runtime, services, validation
from inference.models import FindingSetting
from inference.validation_report import (
    ReportContext,
    ValidationDataError,
    baseline_json,
    read_cases,
    render_report,
    score_cases,
    scores_csv,
)


class Command(BaseCommand):
    help = (
        "Validate MODEL on DATA (a folder with labels.csv naming pictures or DICOM "
        "cases): ROC AUC with a 95% bootstrap interval, sensitivity, specificity, "
        "PPV and NPV at the threshold in force, calibration, subgroups and the "
        "threshold for a target sensitivity; writes an HTML report."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("model", help="the model id (see the models folder)")
        parser.add_argument("data", type=Path, help="folder holding labels.csv")
        parser.add_argument(
            "--finding", default="", help="finding code (default: first)"
        )
        parser.add_argument("--label-column", default=None)
        parser.add_argument(
            "--target-sensitivity",
            type=float,
            default=validation.DEFAULT_TARGET_SENSITIVITY,
        )
        parser.add_argument(
            "--bootstrap", type=int, default=validation.DEFAULT_BOOTSTRAP
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--out", type=Path, default=None, help="report path (default under var/)"
        )
        parser.add_argument(
            "--save-threshold",
            action="store_true",
            help="save the threshold for the target sensitivity as the site override",
        )
        parser.add_argument("--user", default="", help="who saves it, for the audit")

    def handle(self, *args: Any, **options: Any) -> None:
        model_id: str = options["model"]
        data: Path = options["data"]
        services.sync_registry()
        loaded, _ = services.discover_models(Path(settings.RADTRIAGE_MODELS_DIR))
        model = next((m for m in loaded if m.manifest.model_id == model_id), None)
        if model is None:
            known = ", ".join(m.manifest.model_id for m in loaded) or "none"
            raise CommandError(f"no model {model_id!r} (models: {known})")
        manifest = model.manifest
        codes = [f.code for f in manifest.findings]
        code = options["finding"] or codes[0]
        if code not in codes:
            raise CommandError(
                f"{model_id} has no finding {code!r} ({', '.join(codes)})"
            )
        finding = manifest.finding(code)
        setting = FindingSetting.objects.filter(
            model__model_id=model_id, code=code
        ).first()
        threshold = setting.threshold if setting else finding.threshold
        source = (
            "site override"
            if setting and setting.threshold_override is not None
            else "manifest"
        )
        try:
            cases = read_cases(data, options["label_column"])
        except ValidationDataError as exc:
            raise CommandError(str(exc)) from exc

        self.stdout.write(
            f"Validating {model_id} {manifest.version} ({code}) on {len(cases)} "
            f"cases; threshold in force {threshold:.3f} ({source})"
        )

        def progress(done: int, total: int, name: str) -> None:
            if done == total or done % 10 == 0:
                self.stdout.write(f"  scored {done}/{total} ({name})")

        try:
            scored = score_cases(model, cases, codes.index(code), progress)
        except runtime.InferenceDeviceError as exc:
            raise CommandError(str(exc)) from exc
        if scored.provider:
            self.stdout.write(
                f"  scored by the production runtime on {scored.provider}"
            )
        self.stdout.write(f"  bootstrap: {options['bootstrap']} resamples ...")
        result = validation.validate(
            scored.labels,
            scored.scores,
            threshold=threshold,
            target_sensitivity=options["target_sensitivity"],
            groups=scored.groups,
            resamples=options["bootstrap"],
            seed=options["seed"],
        )
        now = timezone.now()
        context = ReportContext(
            model_id=model_id,
            model_version=manifest.version,
            model_name=manifest.name,
            finding_code=code,
            finding_display=finding.display,
            data_folder=str(data),
            threshold_source=source,
            created_at=now,
            provider=scored.provider,
        )
        out_dir = Path(settings.VAR_DIR) / "validation"
        out: Path = options["out"] or out_dir / (
            f"{model_id}-{manifest.version}-{code}-{now:%Y%m%d-%H%M%S}.html"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_report(context, result), encoding="utf-8")
        scores_path = out.with_suffix(".scores.csv")
        scores_path.write_text(scores_csv(scored), encoding="utf-8")
        out_dir.mkdir(parents=True, exist_ok=True)
        baseline = out_dir / f"{model_id}-{manifest.version}-{code}.baseline.json"
        baseline.write_text(baseline_json(context, result), encoding="utf-8")
        self._summary(result)
        self.stdout.write(f"Report: {out}")
        self.stdout.write(f"Scores per case: {scores_path}")
        self.stdout.write(f"Score baseline for drift monitoring: {baseline}")
        if options["save_threshold"]:
            self._save(result, model_id, code, options["user"], now)

    def _summary(self, result: validation.Validation) -> None:
        ci = result.auc_interval
        auc = "n/a" if result.auc is None else f"{result.auc:.3f}"
        interval = "" if ci is None else f" (95% CI {ci.low:.3f}-{ci.high:.3f})"
        self.stdout.write(f"ROC AUC {auc}{interval}")
        p = result.current
        rates = (p.sensitivity, p.specificity, p.ppv, p.npv)
        text = ", ".join(
            f"{name} {'n/a' if v is None else f'{v:.1%}'}"
            for name, v in zip(
                ("sensitivity", "specificity", "PPV", "NPV"), rates, strict=True
            )
        )
        self.stdout.write(f"At threshold {p.threshold:.3f}: {text}")
        if result.target_threshold is not None:
            self.stdout.write(
                f"Threshold for sensitivity >= {result.target_sensitivity:.0%}: "
                f"{result.target_threshold:.3f}"
            )

    def _save(
        self,
        result: validation.Validation,
        model_id: str,
        code: str,
        username: str,
        now: Any,
    ) -> None:
        if result.target_threshold is None:
            raise CommandError("no positive cases: no threshold to save")
        setting = FindingSetting.objects.filter(
            model__model_id=model_id, code=code
        ).first()
        if setting is None:
            raise CommandError(f"{model_id}:{code} is not registered")
        user = None
        if username:
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user {username!r}")
        services.set_threshold_override(
            setting.pk, result.target_threshold, user=user, now=now
        )
        self.stdout.write(
            f"Saved {result.target_threshold:.3f} as the site threshold of "
            f"{model_id}:{code} (audited)"
        )
