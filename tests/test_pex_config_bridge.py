"""Tests of the lsst.pex.config bridge."""

from __future__ import annotations

import pickle
import sys
from typing import Literal

import pytest

pexConfig = pytest.importorskip(
    "lsst.pex.config", reason="lsst-pex-config is not installed: pip install -e '.[dev,lsst]' (make install does)")

from lsst.meas.extensions.madness.framework import (  # noqa: E402
    Config,
    ConfigurableField,
    Field,
    FieldValidationError,
    Task,
    pexConfigBridge,
    to_pex_config,
    to_pex_target,
)

# --------------------------------------------------------------------------
# Our tasks.


class PriorConfig(Config):
    weight: float = Field(1, description="Prior weight.")


class FitConfig(Config):
    maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    tol: float = Field(1e-3, description="Tolerance.")
    useFlow: bool = Field(True, description="Use the flow prior.")
    label: str = Field("madness", description="A label.")
    optional: int | None = Field(None, description="Optional value.")
    mode: Literal["map", "sample"] = Field("map", description="Fitting mode.")
    bands: list[str] = Field(default_factory=lambda: ["g", "r"], description="Bands.")
    scales: tuple[float, ...] = Field((1.0, 2.0), description="Scales.")
    weights: dict[str, float] = Field(default_factory=lambda: {"g": 1.0}, description="Band weights.")
    prior: PriorConfig = Field(default_factory=PriorConfig, description="Prior settings.")


class FitTask(Task):
    ConfigClass = FitConfig
    _DefaultName = "fit"


class OtherFitConfig(Config):
    nSteps: int = Field(3, description="Number of steps.", ge=0)


class OtherFitTask(Task):
    ConfigClass = OtherFitConfig
    _DefaultName = "otherFit"


class DeblendConfig(Config):
    minFlux: float = Field(0.0, description="Minimum flux.")
    fit: ConfigurableField = ConfigurableField(doc="Fitter to use.", target=FitTask)

    def setDefaults(self) -> None:
        super().setDefaults()
        self.fit.maxIter = 50


class DeblendTask(Task):
    ConfigClass = DeblendConfig
    _DefaultName = "deblend"

    def __init__(self, *, schema: object = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.schema = schema
        self.makeSubtask("fit")


# --------------------------------------------------------------------------
# A pex_config pipeline, as in pipe_tasks.


class PexDeblendConfig(pexConfig.Config):
    maxFootprintArea = pexConfig.Field(doc="Area limit.", dtype=int, default=10)


class PexDeblendTask:
    ConfigClass = PexDeblendConfig
    _DefaultName = "pexDeblend"

    def __init__(self, config=None, *, name=None, parentTask=None, schema=None) -> None:
        self.config = config


class PipelineConfig(pexConfig.Config):
    multibandDeblend = pexConfig.ConfigurableField(target=PexDeblendTask, doc="Multiband deblender.")


# --------------------------------------------------------------------------


def test_field_mapping() -> None:
    pexClass = to_pex_config(FitConfig)
    assert issubclass(pexClass, pexConfig.Config)
    assert pexClass._madnessModel is FitConfig
    fields = pexClass._fields
    assert set(fields) == set(FitConfig.model_fields)

    assert type(fields["maxIter"]) is pexConfig.Field
    assert fields["maxIter"].dtype is int and fields["maxIter"].default == 300
    assert fields["maxIter"].doc == "Maximum number of iterations."
    assert not fields["maxIter"].optional
    assert fields["tol"].dtype is float
    assert fields["useFlow"].dtype is bool and fields["label"].dtype is str
    assert fields["optional"].dtype is int and fields["optional"].optional

    assert type(fields["mode"]) is pexConfig.ChoiceField
    assert fields["mode"].allowed == {"map": "map", "sample": "sample"}
    assert type(fields["bands"]) is pexConfig.ListField and fields["bands"].itemtype is str
    assert type(fields["scales"]) is pexConfig.ListField and fields["scales"].itemtype is float
    assert type(fields["weights"]) is pexConfig.DictField
    assert fields["weights"].keytype is str and fields["weights"].itemtype is float
    assert type(fields["prior"]) is pexConfig.ConfigField
    assert fields["prior"].dtype is to_pex_config(PriorConfig)
    assert to_pex_config(PriorConfig)._fields["weight"].default == 1.0

    deblendFields = to_pex_config(DeblendConfig)._fields
    assert type(deblendFields["fit"]) is pexConfig.ConfigurableField
    assert deblendFields["fit"].target is to_pex_target(FitTask)
    assert deblendFields["fit"].ConfigClass is pexClass


def test_classes_are_cached() -> None:
    assert to_pex_config(FitConfig) is to_pex_config(FitConfig)
    assert to_pex_target(FitTask) is to_pex_target(FitTask)
    assert FitTask.makePexConfigClass() is to_pex_config(FitConfig)
    assert FitTask.makePexTarget() is to_pex_target(FitTask)


def test_defaults_and_round_trip_through_pex() -> None:
    pex = to_pex_config(DeblendConfig)()
    # The model's setDefaults is applied to the pex_config object too.
    assert pex.fit.maxIter == 50
    assert pex.toDict() == DeblendConfig().toDict() | {"fit": pex.fit.value.toDict()}
    assert DeblendConfig.fromPexConfig(pex) == DeblendConfig()

    pex.minFlux = 2.5
    pex.fit.bands = ["i"]
    pex.fit.mode = "sample"
    pex.fit.prior.weight = 0.5
    pex.validate()
    model = DeblendConfig.fromPexConfig(pex)
    assert model.minFlux == 2.5
    assert model.fit.bands == ["i"]
    assert model.fit.mode == "sample"
    assert model.fit.prior.weight == 0.5
    assert model.fit.scales == (1.0, 2.0)


def test_pex_validate_enforces_model_constraints() -> None:
    pex = to_pex_config(FitConfig)()
    pex.maxIter = -3
    with pytest.raises(FieldValidationError, match=r"FitConfig\.maxIter = -3 is invalid"):
        pex.validate()
    pex.maxIter = 3
    pex.validate()
    with pytest.raises(pexConfig.FieldValidationError):
        pex.mode = "gradient"


def test_pipeline_retarget_to_our_task() -> None:
    config = PipelineConfig()
    config.multibandDeblend.retarget(DeblendTask, ConfigClass=to_pex_config(DeblendTask.ConfigClass))
    config.multibandDeblend.minFlux = 4.0
    config.multibandDeblend.fit.maxIter = 12
    config.validate()
    task = config.multibandDeblend.apply(name="multibandDeblend", schema="schema")
    assert type(task) is DeblendTask
    assert isinstance(task.config, DeblendConfig)
    assert task.config.minFlux == 4.0
    assert task.schema == "schema"
    assert type(task.fit) is FitTask
    assert task.fit.config.maxIter == 12
    assert task.fit.getFullName() == "multibandDeblend.fit"

    config.multibandDeblend.fit.maxIter = 0
    with pytest.raises(FieldValidationError, match=r"maxIter = 0 is invalid"):
        config.validate()


def test_pipeline_retarget_with_pex_target_and_nested_retarget() -> None:
    config = PipelineConfig()
    config.multibandDeblend.retarget(DeblendTask.makePexTarget())
    config.multibandDeblend.fit.retarget(to_pex_target(OtherFitTask))
    config.multibandDeblend.fit.nSteps = 8
    config.validate()
    task = config.multibandDeblend.apply(name="deblend")
    assert type(task) is DeblendTask
    assert type(task.fit) is OtherFitTask
    assert task.fit.config.nSteps == 8
    assert task.config.fit.target is OtherFitTask


def test_model_retarget_is_mirrored_in_pex_defaults() -> None:
    class RetargetedConfig(DeblendConfig):
        def setDefaults(self) -> None:
            super().setDefaults()
            self.fit.retarget(OtherFitTask)
            self.fit.nSteps = 1

    pex = to_pex_config(RetargetedConfig)()
    assert pex.fit.target is to_pex_target(OtherFitTask)
    assert pex.fit.nSteps == 1
    assert RetargetedConfig.fromPexConfig(pex) == RetargetedConfig()


def test_task_accepts_pex_config_directly() -> None:
    pex = to_pex_config(FitConfig)()
    pex.maxIter = 21
    task = FitTask(config=pex)
    assert isinstance(task.config, FitConfig)
    assert task.config.maxIter == 21


def test_pex_save_load_and_pickle_round_trip() -> None:
    pexClass = to_pex_config(DeblendConfig)
    pex = pexClass()
    pex.fit.retarget(to_pex_target(OtherFitTask))
    pex.fit.nSteps = 6
    text = pex.saveToString()
    assert "PexTarget__" in text
    loaded = pexClass()
    loaded.loadFromString(text)
    assert loaded.compare(pex)
    assert loaded.fit.target is to_pex_target(OtherFitTask)

    restored = pickle.loads(pickle.dumps(pex))
    assert restored.compare(pex)


def test_generated_names_resolve_from_the_module() -> None:
    name = to_pex_config(FitConfig).__name__
    assert name.startswith("PexConfig__")
    assert getattr(pexConfigBridge, name) is to_pex_config(FitConfig)
    targetName = to_pex_target(FitTask).__name__
    assert getattr(pexConfigBridge, targetName) is to_pex_target(FitTask)
    with pytest.raises(AttributeError):
        pexConfigBridge.NotGenerated  # noqa: B018


def test_unsupported_types_are_reported() -> None:
    class OddConfig(Config):
        nested: list[list[int]] = Field(default_factory=list, description="Nested lists.")

    with pytest.raises(TypeError, match=r"OddConfig\.nested .*no lsst\.pex\.config equivalent"):
        to_pex_config(OddConfig)
    with pytest.raises(TypeError, match="needs a Config subclass"):
        to_pex_config(PexDeblendConfig)
    with pytest.raises(TypeError, match="ConfigClass is a framework Config"):
        to_pex_target(PexDeblendTask)


def test_missing_pex_config_gives_helpful_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class FreshConfig(Config):
        value: int = Field(1, description="A value.")

    monkeypatch.setitem(sys.modules, "lsst.pex.config", None)
    with pytest.raises(ImportError, match="pip install lsst-pex-config"):
        to_pex_config(FreshConfig)
