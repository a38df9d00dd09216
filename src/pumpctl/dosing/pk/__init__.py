"""Pharmacology: population PK models as data, exact prediction, TCI controller, taper.

Everything here is pure (no clock, no I/O besides reading the packaged model files) and in
explicit units: s, mg, mg/h, mL/h, µg/mL (= mg/L). Predictions are population models, not a
patient's measured concentration. See docs/pharmacology.md.
"""

from __future__ import annotations

from pumpctl.dosing.pk.history import DeliveryTracker, Infusion, infusions_from_volumes
from pumpctl.dosing.pk.models import (
    ModelSpec,
    UnknownModel,
    default_model_name,
    get_model,
    load_models,
    model_names,
    population_warnings,
)
from pumpctl.dosing.pk.predict import (
    Peak,
    Prediction,
    infusions_from_plan,
    predict_infusions,
    predict_plan,
)
from pumpctl.dosing.pk.solver import Kinetics, PkState, Propagator, ke0_from_t_peak
from pumpctl.dosing.pk.taper import TaperError, taper_segments
from pumpctl.dosing.pk.tci import TciCommand, TciController, TciLimits, TciSite

__all__ = [
    "DeliveryTracker",
    "Infusion",
    "Kinetics",
    "ModelSpec",
    "Peak",
    "PkState",
    "Prediction",
    "Propagator",
    "TaperError",
    "TciCommand",
    "TciController",
    "TciLimits",
    "TciSite",
    "UnknownModel",
    "default_model_name",
    "get_model",
    "infusions_from_plan",
    "infusions_from_volumes",
    "ke0_from_t_peak",
    "load_models",
    "model_names",
    "population_warnings",
    "predict_infusions",
    "predict_plan",
    "taper_segments",
]
