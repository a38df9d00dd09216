"""`pumpctl predict`: the concentrations a program's plan is predicted to give (population model)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pumpctl.operator.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SOFT_LIMIT,
    echo,
    pair_overrides,
    with_overrides,
)

if TYPE_CHECKING:
    from pumpctl.dosing.pk.predict import Prediction
    from pumpctl.dosing.plan import Plan

DISCLAIMER = (
    "These are population-model predictions for the typical patient of the model's study, "
    "not this patient's measured concentration; real patients differ widely."
)


def _hms(t_s: float) -> str:
    total = round(t_s)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def render_prediction(plan: Plan, prediction: Prediction) -> str:
    """The short table `pumpctl predict` prints."""
    from pumpctl.dosing.pk.models import get_model, load_models

    drug = plan.drug or "ketamine"
    spec = get_model(prediction.pk_model, drug)
    version = load_models(drug).version
    p, e = prediction.peak_plasma, prediction.peak_effect
    lines = [
        f"program     {plan.program}   {drug} {plan.concentration_mg_per_ml:g} mg/mL   "
        f"patient {plan.weight_kg:g} kg {plan.care_area or ''}".rstrip(),
        f"pk model    {spec.name}: {spec.title} (models {version})",
        f"population  {' '.join(spec.population.summary.split())}",
        "",
        f"{'':<16}{'plasma':>22}{'effect site':>24}   (µg/mL)",
        f"{'peak':<16}{f'{p.value_ug_per_ml:.4g} at {_hms(p.t_s)}':>22}"
        f"{f'{e.value_ug_per_ml:.4g} at {_hms(e.t_s)}':>24}",
        f"{'end ' + _hms(prediction.end_t_s):<16}{prediction.end_plasma_ug_per_ml:>22.4g}"
        f"{prediction.end_effect_ug_per_ml:>24.4g}",
        f"drug        {sum(i.drug_mg for i in prediction.infusions):.4g} mg to the patient "
        "(prime excluded)",
    ]
    lines += [f"note        {n}" for n in prediction.notes]
    lines += [f"warning     {w}" for w in prediction.warnings]
    lines.append(DISCLAIMER)
    return "\n".join(lines)


@click.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--pk-model",
    "pk_model",
    metavar="NAME",
    help="pharmacokinetic model (default: domino for adults, herd2007 for children)",
)
@click.option("--json", "as_json", is_flag=True, help="print the timeline as one JSON object")
@with_overrides
def predict(
    program: Path,
    pk_model: str | None,
    as_json: bool,
    override_fields: tuple[str, ...],
    override_reasons: tuple[str, ...],
) -> None:
    """Predict plasma and effect-site concentration of PROGRAM's plan, every 10 s.

    The program is checked exactly as by `pumpctl check`; a refused program exits with the
    same code and predicts nothing.
    """
    import json
    import logging

    from pumpctl.dosing.check import check_program
    from pumpctl.dosing.pk.models import UnknownModel
    from pumpctl.dosing.pk.predict import predict_plan
    from pumpctl.log import configure_logging

    configure_logging(console=False, level=logging.WARNING)
    result = check_program(program, dict(pair_overrides(override_fields, override_reasons)))
    if result.exit_code != EXIT_OK or result.plan is None:
        for v in result.violations:
            click.echo(f"error: {v.message}", err=True)
        if result.exit_code == EXIT_SOFT_LIMIT:
            click.echo(
                "a soft limit was crossed: re-run with --override FIELD --reason TEXT to proceed",
                err=True,
            )
        click.echo("refused: nothing predicted", err=True)
        sys.exit(result.exit_code or EXIT_REFUSED)
    try:
        prediction = predict_plan(result.plan, pk_model)
    except (UnknownModel, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    if as_json:
        echo(json.dumps(prediction.to_json()))
    else:
        echo(render_prediction(result.plan, prediction))
