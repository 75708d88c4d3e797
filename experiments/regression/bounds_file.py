"""The bounds file: the committed bands of the variance-bound regression check
(``variance_bounds.json``, beside this module), its model and its JSON form.  See
:mod:`experiments.regression` for what the bands are."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

BOUNDS_FILE = Path(__file__).resolve().parent / "variance_bounds.json"
PROFILE = "ci"


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The committed bounds: what every check of the profile must satisfy, and how that was derived."""

    replicates: int  #: R of the run each check is for
    family_wise_false_alarm: float
    z_threshold: float
    reference: dict  #: how the reference run was made: replicates, seed, commit, versions, date
    checks: pd.DataFrame  #: one row per check (columns: CHECK + expected, source, ...)

    def to_json(self) -> str:
        header = {
            "description": "Variance-bound regression check of the ci profile; see experiments/regression/. "
            "Each check: the measured statistic (mean, or variance of the L-sample estimate) of one gradient "
            "coordinate over `replicates` replicates must lie in [lower, upper] = expected ± z·se on the "
            "statistic's scale (log for the variance); se combines the measurement's standard error at R "
            "(measurement_se) and the expected value's own (expected_se: 0 where exact).",
            "profile": PROFILE,
            "replicates": self.replicates,
            "checks_count": len(self.checks),
            "family_wise_false_alarm": self.family_wise_false_alarm,
            "per_check_false_alarm": self.family_wise_false_alarm / len(self.checks),
            "z_threshold": self.z_threshold,
            "reference": self.reference,
        }
        lines = json.dumps(header, indent=2)[:-2] + ',\n  "checks": [\n'
        records = self.checks.to_dict(orient="records")
        lines += ",\n".join("    " + json.dumps(_plain(record)) for record in records)
        return lines + "\n  ]\n}\n"

    @classmethod
    def from_json(cls, text: str) -> Bounds:
        payload = json.loads(text)
        return cls(
            replicates=payload["replicates"],
            family_wise_false_alarm=payload["family_wise_false_alarm"],
            z_threshold=payload["z_threshold"],
            reference=payload["reference"],
            checks=pd.DataFrame(payload["checks"]),
        )


def _plain(record: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}


def load_bounds(path: Path | str = BOUNDS_FILE) -> Bounds:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No bounds file at {path}; create it with `python -m experiments.bounds regenerate`.")
    return Bounds.from_json(path.read_text())
